"""The validators every public function goes through: tokens, labels, integers, layers and heads."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Sequence, Union

import torch
from jaxtyping import Bool, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from palindrome.constants import HALF_LENGTH, MAX_VALUE

TokensLike = Union[Tensor, Sequence[int], Sequence[Sequence[int]]]


def check_int(name: str, value: object, minimum: int, extra: str = "") -> int:
    """Return ``value`` as an int, or raise ValueError naming ``name`` unless it is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(
            f"{name} must be an integer >= {minimum}{extra}, got {value!r} ({type(value).__name__})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{extra}, got {value}")
    return int(value)


def check_positive(name: str, value: object, extra: str = "") -> float:
    """Return ``value`` as a float, or raise ValueError naming ``name`` unless it is a finite number > 0."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.dtype == torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive number{extra}, got {value!r}")
    return float(value)


def validate_tokens(
    toks: TokensLike, half_length: int = HALF_LENGTH, max_value: int = MAX_VALUE
) -> Int[Tensor, "batch seq"]:
    """Check a batch (or one sequence) of tokens and return it as a 2-D long tensor."""
    start, end = max_value + 1, max_value + 2
    seq_len = 2 * half_length + 2
    if not isinstance(toks, Tensor):
        try:
            toks = torch.tensor(toks)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"tokens must be a tensor or a (nested) list of ints, got {type(toks).__name__}: {exc}"
            ) from exc
    if toks.is_floating_point() or toks.is_complex() or toks.dtype == torch.bool:
        raise ValueError(f"tokens must be integers, got dtype {toks.dtype}; use torch.long")
    if toks.ndim == 1:
        toks = toks.unsqueeze(0)
    if toks.ndim != 2:
        raise ValueError(
            f"tokens must have shape (seq,) or (batch, seq), got {tuple(toks.shape)}"
        )
    if toks.shape[0] == 0:
        raise ValueError("tokens must contain at least one sequence, got an empty batch")
    if toks.shape[1] != seq_len:
        raise ValueError(
            f"each sequence must have {seq_len} tokens (START, {2 * half_length} values, END), "
            f"got {toks.shape[1]}"
        )
    toks = toks.long()
    bad = (toks < 0) | (toks > end)
    if bad.any():
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"tokens must lie in 0..{end}; sequence {row} has {int(toks[row, col])} at position {col}"
        )
    if (toks[:, 0] != start).any():
        row = int((toks[:, 0] != start).nonzero()[0])
        raise ValueError(
            f"every sequence must begin with START={start}; sequence {row} begins with {int(toks[row, 0])}"
        )
    if (toks[:, -1] != end).any():
        row = int((toks[:, -1] != end).nonzero()[0])
        raise ValueError(
            f"every sequence must end with END={end}; sequence {row} ends with {int(toks[row, -1])}"
        )
    values = toks[:, 1:-1]
    if (values > max_value).any():
        row, col = (int(i) for i in (values > max_value).nonzero()[0])
        raise ValueError(
            f"positions 1..{2 * half_length} must hold values 0..{max_value}; sequence {row} has "
            f"{int(values[row, col])} (START/END) at position {col + 1}"
        )
    return toks


def validate_labels(labels: Tensor | Sequence[int], batch: int) -> Int[Tensor, "batch"]:
    """Check labels (1 = palindrome, 0 = not) against a batch size and return them as long."""
    labels = labels if isinstance(labels, Tensor) else torch.tensor(labels)
    if labels.is_floating_point():
        raise ValueError(f"labels must be integers 0 or 1, got dtype {labels.dtype}")
    labels = labels.long().reshape(-1)
    if labels.shape[0] != batch:
        raise ValueError(f"got {labels.shape[0]} labels for {batch} sequences; they must match")
    if ((labels != 0) & (labels != 1)).any():
        raise ValueError("labels must be 0 (not palindrome) or 1 (palindrome)")
    return labels


def mismatch_mask(toks: TokensLike, max_value: int = MAX_VALUE) -> Bool[Tensor, "*batch seq"]:
    """True at every value position whose token differs from its mirror's (START/END are False).

    ``toks`` is one sequence or a batch of full sequences (START, values, END), checked by
    ``validate_tokens`` (any even number of values, so other generator sizes work too).
    """
    if not isinstance(toks, Tensor):
        try:
            toks = torch.tensor(toks)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"tokens must be a tensor or a (nested) list of ints, got {type(toks).__name__}: {exc}") from exc
    squeeze = toks.ndim == 1
    length = toks.shape[-1] if toks.ndim in (1, 2) else 0
    if length < 4 or length % 2:
        raise ValueError(
            f"tokens must be full sequences START, values, END with an even number of values, "
            f"one (shape (seq,)) or a batch (shape (batch, seq)); got shape {tuple(toks.shape)}"
        )
    toks = validate_tokens(toks, (length - 2) // 2, max_value)
    values = toks[:, 1:-1]
    mask = torch.zeros_like(toks, dtype=torch.bool)
    mask[:, 1:-1] = values != values.flip(-1)
    return mask[0] if squeeze else mask


def is_palindrome(toks: TokensLike, max_value: int = MAX_VALUE) -> Int[Tensor, "*batch"]:
    """1 where the values read the same backwards, else 0 (full sequences, checked as ``mismatch_mask`` does)."""
    mask = mismatch_mask(toks, max_value)
    return (~mask.any(-1)).long()


def check_layer_head(model: HookedTransformer, layer: int, head: int | None = None) -> None:
    """Raise ValueError unless ``layer`` (and ``head``, if given) index the model's layers and heads."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if isinstance(layer, bool) or not isinstance(layer, Integral) or not 0 <= layer < n_layers:
        raise ValueError(f"layer must be an integer in 0..{n_layers - 1}, got {layer!r}")
    if head is not None and (
        isinstance(head, bool) or not isinstance(head, Integral) or not 0 <= head < n_heads
    ):
        raise ValueError(f"head must be an integer in 0..{n_heads - 1}, got {head!r}")
