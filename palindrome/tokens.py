"""The validators every public function goes through: tokens, labels, integers, layers and heads."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Iterable, Sequence, Union

import torch
from jaxtyping import Bool, Int, Shaped
from torch import Tensor
from transformer_lens import HookedTransformer

from palindrome.constants import HALF_LENGTH, MAX_VALUE, VALUE_POSITIONS

TokensLike = Union[Tensor, Sequence[int], Sequence[Sequence[int]]]


def check_int(name: str, value: object, minimum: int, extra: str = "", maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise ValueError naming ``name`` unless it is an integer, minimum <= value (<=
    maximum)."""
    bound = f">= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer {bound}{extra}, got {value!r} ({type(value).__name__})")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer {bound}{extra}, got {value}")
    return int(value)


MAX_SIZE: int = 2**20
MAX_SAMPLES: int = 10_000_000
"""The most sequences (or bases) one call may draw: 10 million sequences of 22 tokens take 1.8 GB as int64."""
"""Largest half_length and max_value the validators accept (token ids and tensor sizes stay far inside int64)."""


def check_sizes(half_length: object, max_value: object) -> tuple[int, int]:
    """Return (half_length, max_value) as ints, or raise ValueError unless each is an integer in 1..MAX_SIZE."""
    return (
        check_int("half_length", half_length, 1, maximum=MAX_SIZE),
        check_int("max_value", max_value, 1, maximum=MAX_SIZE),
    )


MAX_SEED: int = 2**63 - 2
"""Largest seed: torch's generators take 64-bit seeds (and a run draws its validation set with seed + 1)."""


def check_seed(seed: object) -> int:
    """Return ``seed`` as an int, or raise ValueError unless it is an integer in 0..MAX_SEED."""
    return check_int("seed", seed, 0, " (torch's generators take 64-bit seeds)", maximum=MAX_SEED)


def check_torch_generator(generator: object) -> torch.Generator | None:
    """Return ``generator`` unchanged, or raise ValueError unless it is None or a torch.Generator."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(
            f"generator must be None or a torch.Generator (torch.Generator().manual_seed(0)), "
            f"got {generator!r} ({type(generator).__name__})"
        )
    return generator


def check_type(name: str, value: object, expected: type | tuple[type, ...], made_by: str = "") -> object:
    """Return ``value``, or raise ValueError naming ``name``, the expected type (and what makes one) unless it is
    one."""
    if not isinstance(expected, type) and not (
        isinstance(expected, tuple) and expected and all(isinstance(t, type) for t in expected)
    ):
        raise ValueError(f"expected must be a class or a tuple of classes, got {expected!r:.60}")
    if not isinstance(value, expected):
        kinds = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        raise ValueError(
            f"{name} must be a {kinds}{f' ({made_by})' if made_by else ''}, got {value!r:.60} ({type(value).__name__})"
        )
    return value


def check_items(name: str, values: object, expected: type, made_by: str = "", allow_empty: bool = False) -> list:
    """Return ``values`` as a list, or raise ValueError unless it is a list or tuple of ``expected`` (non-empty unless
    allowed)."""
    if not isinstance(expected, type):
        raise ValueError(f"expected must be a class, got {expected!r:.60}")
    if not isinstance(values, (list, tuple)) or (not values and not allow_empty):
        raise ValueError(
            f"{name} must be a {'' if allow_empty else 'non-empty '}list of {expected.__name__}"
            f"{f' ({made_by})' if made_by else ''}, got {values!r:.60} ({type(values).__name__})"
        )
    for i, v in enumerate(values):
        check_type(f"{name}[{i}]", v, expected, made_by)
    return list(values)


def check_positions(positions: object, allowed: Sequence[int] = VALUE_POSITIONS) -> list[int]:
    """Return ``positions`` as a list, or raise ValueError unless it is a non-empty collection of integers in
    ``allowed``."""
    items = (
        None if isinstance(positions, (str, bytes, Tensor)) or not isinstance(positions, Iterable) else list(positions)
    )
    if (
        items is None
        or not items
        or any(isinstance(p, bool) or not isinstance(p, Integral) or p not in allowed for p in items)
    ):
        raise ValueError(
            f"positions must be a non-empty list of integers in {min(allowed)}..{max(allowed)}, got {positions!r}"
        )
    return [int(p) for p in items]


def check_finite(name: str, value: object, extra: str = "") -> float:
    """Return ``value`` as a float, or raise ValueError naming ``name`` unless it is a finite real number."""
    if isinstance(value, Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number{extra}, got {value!r} ({type(value).__name__})")
    return float(value)


def _to_tensor(value: object, expected: str) -> Tensor:
    """``value`` itself if it is a tensor, else a new tensor of it; ValueError saying ``expected`` if it cannot be one.

    Values are not checked (private: validate_tokens, check_floats and quickstart.as_tokens check them).
    """
    if isinstance(value, Tensor):
        return value
    if value is None or isinstance(value, (str, bytes)):
        raise ValueError(f"{expected}, got {value!r:.40} ({type(value).__name__})")
    try:
        return torch.tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{expected}; could not read {type(value).__name__}: {exc}") from exc


def check_floats(name: str, value: object, extra: str = "") -> Shaped[Tensor, "..."]:
    """Return ``value`` as a tensor (a tensor is returned as it is, dtype kept), or raise ValueError naming
    ``name`` unless it is a tensor or (nested) list of finite real numbers."""
    value = _to_tensor(value, f"{name} must be a tensor or (nested) list of numbers{extra}")
    if value.dtype == torch.bool or value.is_complex():
        raise ValueError(f"{name} must hold real numbers{extra}, got dtype {value.dtype}")
    if value.is_floating_point() and not torch.isfinite(value).all():
        raise ValueError(f"{name} must be finite{extra}; it holds NaN or inf (shape {tuple(value.shape)})")
    return value


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
    half_length, max_value = check_sizes(half_length, max_value)
    start, end = max_value + 1, max_value + 2
    seq_len = 2 * half_length + 2
    toks = _to_tensor(toks, "tokens must be a tensor or a (nested) list of ints")
    if toks.is_floating_point() or toks.is_complex() or toks.dtype == torch.bool:
        raise ValueError(f"tokens must be integers, got dtype {toks.dtype}; use torch.long")
    if toks.ndim == 1:
        toks = toks.unsqueeze(0)
    if toks.ndim != 2:
        raise ValueError(f"tokens must have shape (seq,) or (batch, seq), got {tuple(toks.shape)}")
    if toks.shape[0] == 0:
        raise ValueError("tokens must contain at least one sequence, got an empty batch")
    if toks.shape[1] != seq_len:
        raise ValueError(
            f"each sequence must have {seq_len} tokens (START, {2 * half_length} values, END), got {toks.shape[1]}"
        )
    toks = toks.long()
    bad = (toks < 0) | (toks > end)
    if bad.any():
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"tokens must lie in 0..{end}; sequence {row} has {int(toks[row, col])} at position {col}")
    if (toks[:, 0] != start).any():
        row = int((toks[:, 0] != start).nonzero()[0])
        raise ValueError(
            f"every sequence must begin with START={start}; sequence {row} begins with {int(toks[row, 0])}"
        )
    if (toks[:, -1] != end).any():
        row = int((toks[:, -1] != end).nonzero()[0])
        raise ValueError(f"every sequence must end with END={end}; sequence {row} ends with {int(toks[row, -1])}")
    values = toks[:, 1:-1]
    if (values > max_value).any():
        row, col = (int(i) for i in (values > max_value).nonzero()[0])
        raise ValueError(
            f"positions 1..{2 * half_length} must hold values 0..{max_value}; sequence {row} has "
            f"{int(values[row, col])} (START/END) at position {col + 1}"
        )
    return toks


def validate_labels(labels: Tensor | Sequence[int], batch: int) -> Int[Tensor, " batch"]:
    """Check labels (1 = palindrome, 0 = not) against a batch size and return them as long."""
    labels = _to_tensor(labels, "labels must be a tensor or list of 0/1 integers (1 = palindrome)")
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
    toks = _to_tensor(toks, "tokens must be a tensor or a (nested) list of ints")
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


def check_layer(model: HookedTransformer, layer: int) -> None:
    """Raise ValueError unless ``layer`` indexes the model's layers."""
    n_layers = model.cfg.n_layers
    if isinstance(layer, bool) or not isinstance(layer, Integral) or not 0 <= layer < n_layers:
        raise ValueError(f"layer must be an integer in 0..{n_layers - 1}, got {layer!r}")


def check_layer_head(model: HookedTransformer, layer: int, head: int) -> None:
    """Raise ValueError unless ``layer`` and ``head`` index the model's layers and heads (a head is required)."""
    check_layer(model, layer)
    n_heads = model.cfg.n_heads
    if isinstance(head, bool) or not isinstance(head, Integral) or not 0 <= head < n_heads:
        raise ValueError(f"head must be an integer in 0..{n_heads - 1}, got {head!r}")
