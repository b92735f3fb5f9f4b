"""The first-use path: classify a sequence, and show how the model read it, in one call each.

Method. Both functions accept what a newcomer is likely to type: the 20 values (0..30) or the
22 tokens (START, values, END), as a list or a tensor, one sequence or a batch; ``as_tokens``
turns any of these into the model's (batch, 22) tokens through the package's validators, so bad
input raises ValueError saying what was wrong. The model is ``load_model()``, loaded once on
first use (pass ``model=`` to use another). ``classify`` returns P(palindrome); ``explain``
returns it with every head's attention pattern, which shows in a notebook as the book shows it
(the sequence with its mismatches highlighted, and circuitsvis's view of all four heads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from palindrome.constants import END, HEAD_NAMES, SEQ_LEN, START
from palindrome.data import format_seq, token_strings
from palindrome.hooks import cached_run
from palindrome.metrics import p_palindrome
from palindrome.model import load_model
from palindrome.plots import AttentionPatterns, attention_patterns
from palindrome.tokens import (  # the one converter; values are checked below
    TokensLike,
    _to_tensor,
    check_int,
    validate_tokens,
)

VALUES = SEQ_LEN - 2
"""How many values a sequence holds (20)."""

_model: Optional[HookedTransformer] = None


def default_model() -> HookedTransformer:
    """``load_model()``, loaded on the first call and kept for the next ones."""
    global _model
    if _model is None:
        _model = load_model()
    return _model


def as_tokens(sequence: TokensLike) -> tuple[Int[Tensor, "batch seq"], bool]:
    """``sequence`` (20 values or 22 tokens; list or tensor; one or a batch) as (batch, 22) tokens, and whether it was
    one."""
    if isinstance(sequence, (str, bytes)):
        raise ValueError(f"give the values as numbers (a list or a tensor), not a string: {sequence!r}")
    sequence = _to_tensor(
        sequence,
        f"a sequence must be 20 values 0..30 (or 22 tokens with START={START} and END={END}), "
        f"as a list or tensor, one or a batch",
    )
    single = sequence.ndim == 1
    if sequence.ndim in (1, 2) and sequence.shape[-1] == VALUES:
        if sequence.is_floating_point() or sequence.dtype == torch.bool:
            raise ValueError(f"values must be integers 0..30, got dtype {sequence.dtype}")
        rows = sequence.reshape(-1, VALUES).long()
        if ((rows < 0) | (rows > START - 1)).any():
            bad = rows[(rows < 0) | (rows > START - 1)][0].item()
            raise ValueError(f"values must lie in 0..{START - 1}, got {bad}")
        sequence = torch.cat([torch.full((rows.shape[0], 1), START), rows, torch.full((rows.shape[0], 1), END)], 1)
    elif sequence.ndim not in (1, 2) or sequence.shape[-1] != SEQ_LEN:
        raise ValueError(
            f"a sequence must be {VALUES} values or {SEQ_LEN} tokens (START, values, END), one (shape ({VALUES},)) "
            f"or a batch (shape (n, {VALUES})); got shape {tuple(sequence.shape)}"
        )
    return validate_tokens(sequence), single


def classify(sequence: TokensLike, model: Optional[HookedTransformer] = None) -> Union[float, Float[Tensor, " batch"]]:
    """P(palindrome): a float for one sequence, a CPU tensor for a batch."""
    toks, single = as_tokens(sequence)
    model = default_model() if model is None else model
    p = p_palindrome(model, toks).float().cpu()
    return p.item() if single else p


@dataclass(frozen=True)
class Reading:
    """How the model read one sequence (or a batch): P(palindrome) and every head's attention pattern."""

    tokens: Int[Tensor, "batch seq"]
    p_palindrome: Float[Tensor, " batch"]
    patterns: Float[Tensor, "batch head dest src"]
    """Attention of heads ``HEAD_NAMES`` (0.0, 0.1, 1.0, 1.1) in that order, per sequence."""

    def view(self, index: int = 0) -> AttentionPatterns:
        """circuitsvis's view of the four heads on sequence ``index`` (as the chapters draw them)."""
        index = check_int("index", index, 0, " (a sequence index)", maximum=self.tokens.shape[0] - 1)
        return attention_patterns(
            self.patterns[index], token_strings(self.tokens[index]), [f"H{h}" for h in HEAD_NAMES]
        )

    def __repr__(self) -> str:
        lines = [str(format_seq(t, float(p))) for t, p in zip(self.tokens, self.p_palindrome, strict=True)]
        return "\n".join(lines) + f"\n(attention patterns of heads {', '.join(HEAD_NAMES)}: .patterns, .view())"

    def _repr_html_(self) -> str:
        rows = "".join(
            format_seq(t, float(p))._repr_html_() for t, p in zip(self.tokens, self.p_palindrome, strict=True)
        )
        return rows + self.view(0)._repr_html_()


def explain(sequence: TokensLike, model: Optional[HookedTransformer] = None) -> Reading:
    """P(palindrome) and the attention patterns of all four heads, shown as the book shows them."""
    toks, _ = as_tokens(sequence)
    model = default_model() if model is None else model
    names = [get_act_name("pattern", layer) for layer in range(model.cfg.n_layers)]
    logits, cache = cached_run(model, toks, names)
    patterns = torch.cat([cache[n] for n in names], dim=1).float().cpu()
    return Reading(toks.cpu(), logits[:, -1].float().softmax(-1)[:, 1].cpu(), patterns)
