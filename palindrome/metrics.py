"""The clean model's END logits (one function, the fast path an option) and the scores read from them.

``end_logits`` is the one way to the clean model's END logits: ``model(toks)[:, -1]``, or with ``fast=True`` the
END-only forward pass of ``palindrome.fast`` (the same numbers to float rounding, many times faster); interventions
keep their own engines (``ablation``, ``path_patching``). Loss, logit difference and accuracy are read from END
logits. ``miss_rates_by_position`` is the one builder of per-position tables: given a decision rule (a
model's or a circuit's calls, "palindrome" or not) and a batch broken at one mirror pair per
position, it returns the fraction called palindromes per broken position; accuracy tables are
one minus it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from palindrome.constants import SECOND_HALF
from palindrome.fast import DEFAULT_BATCH_SIZE, EndOnlyForward
from palindrome.tokens import TokensLike, check_floats, check_type, validate_labels, validate_tokens

PALINDROMES_ROW: str = "palindromes"
"""Index label of the last entry of ``miss_rates_by_position`` when palindromes are passed in."""


@dataclass(frozen=True)
class Metrics:
    """Cross-entropy, mean logit difference (correct - incorrect) and accuracy at END."""

    loss: float
    logit_diff: float
    accuracy: float


def end_logits(
    model: HookedTransformer, toks: TokensLike, fast: bool = False, batch_size: int = DEFAULT_BATCH_SIZE
) -> Float[Tensor, "batch 2"]:
    """The clean model's two logits (not palindrome, palindrome) at END: ``model(toks)[:, -1]``, or with ``fast``
    the same numbers (to float rounding) from ``EndOnlyForward`` in chunks of ``batch_size`` (sweeps, many inputs)."""
    if not isinstance(fast, bool):
        raise ValueError(f"fast must be True or False, got {fast!r}")
    if fast:
        return EndOnlyForward(model).end_logits(toks, batch_size=batch_size)
    toks = validate_tokens(toks).to(model.cfg.device)
    with torch.inference_mode():
        return model(toks)[:, -1, :]


def p_palindrome(model: HookedTransformer, toks: TokensLike) -> Float[Tensor, " batch"]:
    """P(palindrome) for each sequence."""
    return end_logits(model, toks).softmax(-1)[:, 1]


def _as_end_logits(logits: Tensor) -> Tensor:
    logits = check_floats("logits", logits, "; NaN or inf here means the model or its inputs are broken")
    if logits.ndim == 3:
        logits = logits[:, -1, :]
    if logits.ndim != 2 or logits.shape[-1] != 2:
        raise ValueError(f"logits must have shape (batch, 2) or (batch, seq, 2), got {tuple(logits.shape)}")
    return logits.float()


def loss_from_logits(logits: Float[Tensor, "batch *seq 2"], labels: Union[Int[Tensor, " batch"], list[int]]) -> float:
    """Mean cross-entropy of END logits against labels."""
    logits = _as_end_logits(logits)
    labels = validate_labels(labels, logits.shape[0]).to(logits.device)
    return F.cross_entropy(logits, labels).item()


def logit_diff_from_logits(
    logits: Float[Tensor, "batch *seq 2"], labels: Union[Int[Tensor, " batch"], list[int]]
) -> float:
    """Mean of (correct logit - incorrect logit) at END."""
    logits = _as_end_logits(logits)
    labels = validate_labels(labels, logits.shape[0]).to(logits.device)
    correct = logits.gather(1, labels[:, None]).squeeze(1)
    incorrect = logits.gather(1, (1 - labels)[:, None]).squeeze(1)
    return (correct - incorrect).mean().item()


def accuracy_from_logits(
    logits: Float[Tensor, "batch *seq 2"], labels: Union[Int[Tensor, " batch"], list[int]]
) -> float:
    """Fraction of sequences whose END argmax is the label."""
    logits = _as_end_logits(logits)
    labels = validate_labels(labels, logits.shape[0]).to(logits.device)
    return (logits.argmax(-1) == labels).float().mean().item()


def evaluate(model: HookedTransformer, toks: TokensLike, labels: Union[Int[Tensor, " batch"], list[int]]) -> Metrics:
    """All three END metrics of a model on tokens and labels."""
    logits = end_logits(model, toks)
    return Metrics(
        loss=loss_from_logits(logits, labels),
        logit_diff=logit_diff_from_logits(logits, labels),
        accuracy=accuracy_from_logits(logits, labels),
    )


def cross_entropy(model: HookedTransformer, toks: TokensLike, labels: Int[Tensor, " batch"]) -> float:
    """Mean cross-entropy at END."""
    return loss_from_logits(end_logits(model, toks), labels)


def logit_diff(model: HookedTransformer, toks: TokensLike, labels: Int[Tensor, " batch"]) -> float:
    """Mean logit difference (correct minus incorrect) at END."""
    return logit_diff_from_logits(end_logits(model, toks), labels)


def accuracy(model: HookedTransformer, toks: TokensLike, labels: Int[Tensor, " batch"]) -> float:
    """Classification accuracy at END."""
    return accuracy_from_logits(end_logits(model, toks), labels)


def _calls(decide: Callable[[Tensor], Tensor], toks: Int[Tensor, "batch seq"]) -> Bool[Tensor, " batch"]:
    called = decide(toks)
    if not isinstance(called, Tensor) or called.dtype != torch.bool or called.shape != (toks.shape[0],):
        got = (
            f"{called.dtype} tensor of shape {tuple(called.shape)}"
            if isinstance(called, Tensor)
            else type(called).__name__
        )
        raise ValueError(
            f"decide must map a (batch, seq) token tensor to a bool tensor of shape ({toks.shape[0]},) (True: called "
            f"palindrome), got a {got}"
        )
    return called.cpu()


def miss_rates_by_position(
    decide: Callable[[Int[Tensor, "batch seq"]], Bool[Tensor, " batch"]],
    broken: Int[Tensor, "position n seq"],
    palindromes: Optional[TokensLike] = None,
    positions: Optional[Sequence[int]] = None,
    accuracy: bool = False,
) -> pd.Series:
    """Per broken position, the fraction of ``broken[i]`` that ``decide`` calls palindromes (its miss rate).

    ``decide`` maps a (batch, seq) token tensor to a bool tensor, True where it calls the input a
    palindrome; it is called once, on every input at once (``broken`` flattened, then
    ``palindromes``). ``broken`` holds one batch per position, each with one mirror pair broken;
    ``positions`` labels its first axis (default: the first ``broken.shape[0]`` second-half
    positions). With ``palindromes``, a last entry ``PALINDROMES_ROW`` gives the fraction of them
    not called palindromes (their error rate). ``accuracy=True`` gives one minus each entry instead
    (the accuracy table), each counted as its own mean so that it rounds as a direct count would.
    """
    if not callable(decide):
        raise ValueError(f"decide must be a function of a token tensor, got {type(decide).__name__}")
    if not isinstance(broken, Tensor) or broken.ndim != 3 or 0 in broken.shape:
        got = f"shape {tuple(broken.shape)}" if isinstance(broken, Tensor) else type(broken).__name__
        raise ValueError(f"broken must be a non-empty (position, n, seq) token tensor, got {got}")
    n_positions, n = broken.shape[:2]
    toks = validate_tokens(broken.flatten(0, 1))
    if positions is None:
        if n_positions > len(SECOND_HALF):
            raise ValueError(
                f"broken has {n_positions} positions, more than the {len(SECOND_HALF)} second-half ones: pass positions"
            )
        positions = SECOND_HALF[:n_positions]
    if isinstance(positions, (str, bytes)) or not isinstance(positions, Sequence) or len(positions) != n_positions:
        raise ValueError(f"positions must label broken's {n_positions} positions, got {positions!r}")
    if palindromes is not None:
        toks = torch.cat([toks, validate_tokens(palindromes).to(toks.device)])
    accuracy = check_type("accuracy", accuracy, bool)
    called = _calls(decide, toks)
    on_broken = ~called[: n_positions * n] if accuracy else called[: n_positions * n]
    rates = on_broken.view(n_positions, n).float().mean(1).tolist()
    index = list(positions)
    if palindromes is not None:
        on_palindromes = called[n_positions * n :].float().mean().item()
        rates.append(on_palindromes if accuracy else 1 - on_palindromes)
        index.append(PALINDROMES_ROW)
    name = "accuracy" if accuracy else "miss rate"
    return pd.Series(rates, index=pd.Index(index, name="broken position"), name=name)
