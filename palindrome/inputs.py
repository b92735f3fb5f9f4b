"""Probe inputs: every batch of tokens the chapters build by hand, rather than draw from the generator.

Method. A probe starts from random palindromes (START, h, reverse(h), END with h uniform over the
31 values, from a seeded ``torch.Generator`` on the CPU, so every device sees the same inputs) and
edits them: breaking chosen mirror pairs (the edited member gets a random value different from its
mirror's), setting one pair to every ordered pair of distinct values, editing one position to each
of some values, or shuffling the second half. Validators for the positions, sides and bases these
builders take live here too. The chapters fix the sizes and seeds (``blindspots.per_position_mismatches``,
``backup.pos20_mismatch_pairs``, ``roles.mismatch_probe``, ...); this module has no defaults of its own for them.
"""

from __future__ import annotations

from numbers import Integral
from typing import Iterable, Optional, Sequence

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from palindrome.constants import HALF_LENGTH, MAX_VALUE, MIRROR, SECOND_HALF, VALUE_POSITIONS
from palindrome.tokens import (
    MAX_SAMPLES,
    MAX_SIZE,
    TokensLike,
    check_int,
    check_positions,
    check_seed,
    check_sizes,
    check_torch_generator,
    is_palindrome,
    validate_tokens,
)

SIDES: tuple[str, ...] = ("second", "first")
"""Which member of the mirror pair an edit changes: the second-half position p or its mirror 21 - p."""


# --- validators ----------------------------------------------------------------------------------


def check_side(side: str) -> str:
    """Return ``side`` ("second" or "first": which member of a mirror pair is edited) or raise ValueError."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    return side


def check_second_half(positions: Iterable[int], half_length: int = HALF_LENGTH) -> tuple[int, ...]:
    """Return ``positions`` as distinct second-half positions (11..20), or raise ValueError naming them."""
    half_length = check_int("half_length", half_length, 1, maximum=MAX_SIZE)
    valid = range(half_length + 1, 2 * half_length + 1)
    if isinstance(positions, (str, bytes)) or not isinstance(positions, Iterable):
        raise ValueError(
            f"positions must be a collection of second-half positions {valid.start}..{valid.stop - 1}, got "
            f"{positions!r}"
        )
    positions = tuple(positions)
    bad = [p for p in positions if isinstance(p, bool) or not isinstance(p, Integral) or p not in valid]
    if bad or len(set(positions)) != len(positions):
        raise ValueError(
            f"positions must be distinct second-half positions {valid.start}..{valid.stop - 1}, got {positions!r}"
        )
    return tuple(int(p) for p in positions)


def check_palindromes(bases: TokensLike) -> Int[Tensor, "base seq"]:
    """Return ``bases`` as a CPU token tensor, or raise ValueError naming the first one that is not a palindrome."""
    bases = validate_tokens(bases).cpu()
    if not is_palindrome(bases).all():
        row = int((is_palindrome(bases) == 0).nonzero()[0])
        raise ValueError(f"bases must all be palindromes; sequence {row} is not")
    return bases


def check_second_half_position(position: int) -> int:
    """Return ``position`` if it is a second-half position 11..20 (the pair 21 - p, p), else raise ValueError."""
    if isinstance(position, bool) or not isinstance(position, Integral) or position not in SECOND_HALF:
        raise ValueError(
            f"position must be a second-half position {SECOND_HALF[0]}..{SECOND_HALF[-1]} "
            f"(the pair 21 - p, p), got {position!r}"
        )
    return int(position)


# --- builders ------------------------------------------------------------------------------------


def random_palindromes(
    n: int,
    generator: Optional[torch.Generator] = None,
    half_length: int = HALF_LENGTH,
    max_value: int = MAX_VALUE,
) -> Int[Tensor, "n seq"]:
    """``n`` palindromes START, h, reverse(h), END with h uniform in 0..max_value (CPU tensor)."""
    n = check_int("n", n, 1, maximum=MAX_SAMPLES)
    half_length, max_value = check_sizes(half_length, max_value)
    generator = check_torch_generator(generator)
    halves = torch.randint(0, max_value + 1, (n, half_length), generator=generator)
    return torch.cat(
        [
            torch.full((n, 1), max_value + 1),
            halves,
            halves.flip(-1),
            torch.full((n, 1), max_value + 2),
        ],
        dim=1,
    )


def ordered_value_pairs(max_value: int = MAX_VALUE) -> tuple[Int[Tensor, " pair"], Int[Tensor, " pair"]]:
    """Every ordered pair (a, b) of distinct values 0..max_value, row-major: 31 x 30 = 930 pairs."""
    n = check_sizes(1, max_value)[1] + 1
    a, b = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = a != b
    return a[keep], b[keep]


def single_mismatch_tokens(
    bases: TokensLike, position: int, side: str = "second", max_value: int = MAX_VALUE
) -> Int[Tensor, "base pair seq"]:
    """Each base with its mirror pair at ``position`` set to (a, b) for every ordered pair of distinct values.

    The unedited member of the pair holds ``a`` (the base's value in a palindrome made of ``a``);
    the edited member (``position`` for side "second", its mirror for side "first") holds ``b``.
    """
    bases = check_palindromes(bases)
    (position,) = check_second_half([position])
    edited = position if check_side(side) == "second" else MIRROR[position]
    kept = MIRROR[edited]
    a, b = ordered_value_pairs(max_value)
    toks = bases[:, None, :].repeat(1, a.shape[0], 1)
    toks[:, :, kept] = a
    toks[:, :, edited] = b
    return toks


def break_pairs(
    bases: TokensLike,
    positions: Iterable[int],
    generator: Optional[torch.Generator] = None,
    side: str = "second",
    max_value: int = MAX_VALUE,
) -> Int[Tensor, "base seq"]:
    """Copies of ``bases`` with each mirror pair in ``positions`` broken by a random value != the other member."""
    toks = validate_tokens(bases).cpu().clone()
    positions = check_second_half(positions)
    if not positions:
        raise ValueError("positions must name at least one second-half position")
    check_side(side)
    generator, max_value = check_torch_generator(generator), check_sizes(1, max_value)[1]
    for position in positions:
        edited = position if side == "second" else MIRROR[position]
        offset = torch.randint(1, max_value + 1, (toks.shape[0],), generator=generator)
        toks[:, edited] = (toks[:, MIRROR[edited]] + offset) % (max_value + 1)
    return toks


def decoy_mask(toks: TokensLike, position: int) -> Bool[Tensor, " batch"]:
    """Whether the token at ``position`` also occurs at an earlier value position (a same-token key for H0.0)."""
    return decoy_masks(toks, [position])[:, 0]


def decoy_masks(toks: TokensLike, positions: Sequence[int] = SECOND_HALF) -> Bool[Tensor, "batch position"]:
    """``decoy_mask`` at each of ``positions`` (the tokens validated once)."""
    toks = validate_tokens(toks)
    positions = check_second_half(positions)
    return torch.stack([(toks[:, 1:p] == toks[:, p : p + 1]).any(-1) for p in positions], 1).cpu()


def broken_at_each_position(
    n_bases: int, seed: int
) -> tuple[Int[Tensor, "base seq"], Int[Tensor, "position base seq"]]:
    """Random palindromes and, for each second-half position, the same bases with that pair broken."""
    generator = torch.Generator().manual_seed(check_seed(seed))
    bases = random_palindromes(check_int("n_bases", n_bases, 1), generator)
    broken = torch.stack([break_pairs(bases, [p], generator) for p in SECOND_HALF])
    return bases, broken


def position_mismatch_batch(n: int, position: int, generator: Optional[torch.Generator] = None) -> Int[Tensor, "n seq"]:
    """``n`` random palindromes with only the pair (21 - position, position) broken, at ``position``."""
    position = check_second_half_position(position)
    return break_pairs(random_palindromes(check_int("n", n, 1, maximum=MAX_SAMPLES), generator), [position], generator)


def broken_and_bases(n: int, seed: int, position: int) -> tuple[Int[Tensor, "n seq"], Int[Tensor, "n seq"]]:
    """Paired batches ``(broken, palindromes)``: ``n`` random palindromes, and the same ones broken at ``position``."""
    position = check_second_half_position(position)
    generator = torch.Generator().manual_seed(check_seed(seed))
    bases = random_palindromes(check_int("n", n, 1, maximum=MAX_SAMPLES), generator)
    return break_pairs(bases, [position], generator), bases


def broken_at_each_position_fresh(n: int, seed: int) -> Int[Tensor, "position n seq"]:
    """For each second-half position p, ``n`` fresh random palindromes (new ones per p) with only the pair (21 - p, p)
    broken."""
    generator = torch.Generator().manual_seed(check_seed(seed))
    return torch.stack([position_mismatch_batch(n, p, generator) for p in SECOND_HALF])


def shuffled_halves(n: int, seed: int) -> Int[Tensor, "n seq"]:
    """Non-palindromes with a palindrome's values: each second half randomly permuted (palindromes redrawn)."""
    n = check_int("n", n, 1, maximum=MAX_SAMPLES)
    generator = torch.Generator().manual_seed(check_seed(seed))
    toks = random_palindromes(n, generator)
    second = torch.tensor(SECOND_HALF)
    while True:
        left = is_palindrome(toks).nonzero().flatten()  # unlucky shuffles (and repeated values)
        if len(left) == 0:
            return toks
        order = torch.rand(len(left), len(second), generator=generator).argsort(-1)
        toks[left[:, None], second] = toks[left][:, second].gather(1, order)


def _check_edits(positions: Iterable[int], values: Iterable[int]) -> tuple[list[int], list[int]]:
    positions = check_positions(positions, VALUE_POSITIONS)
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        values = None  # refused below
    values = list(values) if values is not None else []
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_VALUE for v in values):
        raise ValueError(f"values must be a non-empty list of integers in 0..{MAX_VALUE}, got {values!r}")
    return positions, values


def single_edits(base: TokensLike, positions: Iterable[int], values: Iterable[int]) -> Int[Tensor, "pos value seq"]:
    """Copies of one sequence with a single position set to a single value, for every (position, value)."""
    base = validate_tokens(base)
    if base.shape[0] != 1:
        raise ValueError(f"base must be one sequence, got a batch of {base.shape[0]}")
    positions, values = _check_edits(positions, values)
    edits = base.repeat(len(positions), len(values), 1)
    for i, position in enumerate(positions):
        edits[i, :, position] = torch.tensor(values)
    return edits
