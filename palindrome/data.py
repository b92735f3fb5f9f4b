"""The palindrome dataset, generated exactly as the July-2023 original, its variants, and a sequence viewer.

Generators (``GENERATORS``). "original" is the July-2023 generator, in its exact RNG order.
"single_mismatch" keeps its palindromes and replaces every non-palindrome by a *single-mismatch*
input: a fresh random palindrome with exactly one mirror pair broken, the pair uniform among the
ten and the second-half member set to a uniform value different from its mirror. "dose" replaces
a stated ``share`` of the original's non-palindromes (chosen uniformly) by such inputs. The
replacements come from their own ``torch.Generator`` seeded with ``seed``, so the global RNG, and
with it the training batches' order, is the original's; labels are always computed from the tokens.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from numbers import Real
from typing import Optional, Union

import torch
from jaxtyping import Int
from torch import Tensor

from palindrome.constants import HALF_LENGTH, MAX_VALUE
from palindrome.tokens import (
    MAX_SAMPLES,
    TokensLike,
    _to_tensor,
    check_int,
    check_seed,
    check_sizes,
    check_torch_generator,
    is_palindrome,
    mismatch_mask,
    validate_tokens,
)

GENERATORS: tuple[str, ...] = ("original", "single_mismatch", "dose")
"""Data generators: the July-2023 one, all non-palindromes single-mismatch, a share of them replaced."""


def check_generator(generator: str, share: Optional[float] = None) -> tuple[str, Optional[float]]:
    """Return (generator, share) if valid: "dose" needs a share in (0, 1), the others take none; else ValueError."""
    if not isinstance(generator, str) or generator not in GENERATORS:
        raise ValueError(f"generator must be one of {GENERATORS}, got {generator!r}")
    if generator != "dose":
        if share is not None:
            raise ValueError(
                f"share applies only to generator 'dose' (got share={share!r} with {generator!r}); pass share=None"
            )
        return generator, None
    if isinstance(share, bool) or not isinstance(share, Real) or not 0 < share < 1:
        raise ValueError(
            f"share must be a number strictly between 0 and 1 for generator 'dose' (the share of "
            f"non-palindromes replaced by single-mismatch inputs), got {share!r}"
        )
    return generator, float(share)


def single_mismatch_sequences(
    n: int, max_value: int, half_length: int, generator: torch.Generator
) -> Int[Tensor, "n length"]:
    """``n`` value sequences (no START/END), each a random palindrome with exactly one pair broken, the pair uniform."""
    n = check_int("n", n, 0, maximum=MAX_SAMPLES)
    half_length, max_value = check_sizes(half_length, max_value)
    generator = check_torch_generator(generator)
    halves = torch.randint(0, max_value + 1, (n, half_length), generator=generator)
    values = torch.cat([halves, halves.flip(-1)], dim=1)
    # Second-half index i (0-based within the values) mirrors index 2 * half_length - 1 - i.
    slot = half_length + torch.randint(0, half_length, (n,), generator=generator)
    offset = torch.randint(1, max_value + 1, (n,), generator=generator)
    rows = torch.arange(n)
    values[rows, slot] = (values[rows, 2 * half_length - 1 - slot] + offset) % (max_value + 1)
    return values


def generate_variant(
    size: int, max_value: int, half_length: int, seed: int, generator: str = "original", share: Optional[float] = None
) -> Int[Tensor, "size length"]:
    """Value sequences of one of ``GENERATORS``: the original's, with a share (all, or ``share``) of non-palindromes
    replaced."""
    generator, share = check_generator(generator, share)
    values = generate_sequences(size, max_value, half_length, seed)
    if generator == "original":
        return values
    rng = torch.Generator().manual_seed(seed)
    non_palindromes = (values != values.flip(-1)).any(-1).nonzero().squeeze(-1)
    count = len(non_palindromes) if share is None else round(share * len(non_palindromes))
    chosen = non_palindromes[torch.randperm(len(non_palindromes), generator=rng)[:count]]
    values[chosen] = single_mismatch_sequences(count, max_value, half_length, rng)
    return values


def generate_sequences(size: int, max_value: int, half_length: int, seed: int) -> Int[Tensor, "size length"]:
    """The original generator's value sequences (no START/END), in its exact RNG order."""
    size = check_int("size", size, 2, " and even (half palindromes, half not)", maximum=MAX_SAMPLES)
    if size % 2:
        raise ValueError(f"size must be even (half palindromes, half not), got {size}")
    half_length, max_value = check_sizes(half_length, max_value)
    torch.manual_seed(check_seed(seed))
    n = size // 2
    shape = (n, half_length)
    # Non-palindromes: a random first half; each second-half slot keeps the mirror of
    # the first half or, with probability 1/2, takes a fresh random value (which may
    # equal the mirror by chance, so some of these are palindromes after all).
    first_halves = torch.randint(0, max_value + 1, shape)
    replacements = torch.randint(0, max_value + 1, shape)
    replace = torch.randint(0, 2, shape).bool()
    second_halves = torch.where(replace, replacements, first_halves.flip(-1))
    near_palindromes = torch.cat([first_halves, second_halves], dim=1)
    # Palindromes: a fresh random half followed by its reverse.
    halves = torch.randint(0, max_value + 1, shape)
    palindromes = torch.cat([halves, halves.flip(-1)], dim=1)
    sequences = torch.cat([palindromes, near_palindromes], dim=0)
    return sequences[torch.randperm(size)]


class PalindromeDataset(torch.utils.data.Dataset):
    """Sequences START, a_1..a_2N, END with label 1 iff a is a palindrome (the July-2023 data, or a variant).

    ``generator`` and ``share`` select one of ``GENERATORS`` (see the module docstring); the
    defaults are the July-2023 generator, bit for bit.
    """

    def __init__(
        self,
        size: int,
        max_value: int = MAX_VALUE,
        half_length: int = HALF_LENGTH,
        seed: int = 42,
        generator: str = "original",
        share: Optional[float] = None,
    ) -> None:
        size = check_int("size", size, 2, " and even (half palindromes, half not)", maximum=MAX_SAMPLES)
        if size % 2:
            raise ValueError(f"size must be a positive even integer (half palindromes, half not), got {size}")
        self.half_length, self.max_value = check_sizes(half_length, max_value)
        self.seed = check_seed(seed)
        self.generator, self.share = check_generator(generator, share)
        self.size = size
        self.start_token = self.max_value + 1
        self.end_token = self.max_value + 2
        values = generate_variant(size, self.max_value, self.half_length, self.seed, self.generator, self.share)
        self.toks: Int[Tensor, "size seq"] = torch.cat(
            [
                torch.full((size, 1), self.start_token, dtype=torch.long),
                values,
                torch.full((size, 1), self.end_token, dtype=torch.long),
            ],
            dim=1,
        )
        self.is_palindrome: Int[Tensor, " size"] = is_palindrome(self.toks, self.max_value)

    @property
    def str_toks(self) -> list[list[str]]:
        """Each sequence as strings: START, two-digit values, END."""
        return [token_strings(row, self.max_value) for row in self.toks]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: Union[int, slice, Tensor]) -> tuple[Tensor, Tensor]:
        return self.toks[index], self.is_palindrome[index]

    def to(self, device: Union[str, torch.device]) -> "PalindromeDataset":
        """Move tokens and labels to a device (in place) and return the dataset."""
        self.toks = self.toks.to(device)
        self.is_palindrome = self.is_palindrome.to(device)
        return self

    def __repr__(self) -> str:
        return (
            f"PalindromeDataset(size={self.size}, max_value={self.max_value}, "
            f"half_length={self.half_length}, seed={self.seed}"
            + ("" if self.generator == "original" else f", generator={self.generator!r}, share={self.share!r}")
            + ")"
        )


def token_strings(toks: TokensLike, max_value: int = MAX_VALUE) -> list[str]:
    """One sequence as strings: START, two-digit values, END (for axis labels and circuitsvis)."""
    rows = _to_tensor(toks, "token_strings takes one sequence of tokens (a tensor or list of ints)")
    length = rows.shape[-1] if isinstance(rows, Tensor) and rows.ndim in (1, 2) else 0
    if length < 4 or length % 2:
        raise ValueError(f"token_strings takes one full sequence (START, an even number of values, END), got {toks!r}")
    rows = validate_tokens(rows, (length - 2) // 2, max_value)
    if rows.shape[0] != 1:
        raise ValueError(
            f"token_strings takes one sequence; got a batch of {rows.shape[0]} (use PalindromeDataset.str_toks)"
        )
    return ["START"] + [f"{v:02d}" for v in rows[0, 1:-1].tolist()] + ["END"]


@dataclass(frozen=True)
class SequenceView:
    """A sequence with its mirror-breaking tokens marked; renders as HTML or plain text."""

    values: tuple[int, ...]
    broken: tuple[bool, ...]
    prob: Optional[float] = None

    def __str__(self) -> str:
        cells = [f"*{v:02d}*" if b else f"{v:02d}" for v, b in zip(self.values, self.broken, strict=True)]
        text = "START |" + "|".join(cells) + "| END"
        if self.prob is not None:
            text += f"  ->  P(palindrome) = {self.prob:.3f}"
        return text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cells = []
        for v, b in zip(self.values, self.broken, strict=True):
            style = "background:#e8590c;color:white;font-weight:bold;" if b else "background:rgba(128,128,128,0.12);"
            cells.append(f'<span style="{style}padding:1px 4px;margin:0 1px;border-radius:3px">{v:02d}</span>')
        prob = (
            f' <span style="margin-left:8px">&rarr; P(palindrome) = <b>{self.prob:.3f}</b></span>'
            if self.prob is not None
            else ""
        )
        title = html.escape(str(self))
        return (
            f'<div class="palindrome-seq" title="{title}" style="font-family:monospace;'
            f'white-space:nowrap;margin:2px 0">START {"".join(cells)} END{prob}</div>'
        )


def format_seq(toks: TokensLike, prob: Optional[Union[float, Tensor]] = None) -> SequenceView:
    """Build the view of one sequence, marking every value that differs from its mirror."""
    row = validate_tokens(toks)
    if row.shape[0] != 1:
        raise ValueError(f"format_seq shows one sequence; got a batch of {row.shape[0]}")
    if prob is not None:
        prob = float(prob)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be a probability in [0, 1], got {prob}")
    broken = mismatch_mask(row)[0, 1:-1]
    return SequenceView(tuple(row[0, 1:-1].tolist()), tuple(broken.tolist()), prob)


def display_seq(toks: TokensLike, prob: Optional[Union[float, Tensor]] = None) -> None:
    """Show a sequence with mirror-breaking tokens highlighted (HTML in notebooks, text otherwise)."""
    view = format_seq(toks, prob)
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        shell = None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        display(view)
    else:
        print(view)
