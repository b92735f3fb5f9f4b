"""Loss, logit difference and accuracy read at the END position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from palindrome.tokens import TokensLike, check_floats, validate_labels, validate_tokens


@dataclass(frozen=True)
class Metrics:
    """Cross-entropy, mean logit difference (correct - incorrect) and accuracy at END."""

    loss: float
    logit_diff: float
    accuracy: float


def end_logits(model: HookedTransformer, toks: TokensLike) -> Float[Tensor, "batch 2"]:
    """The model's two logits (not palindrome, palindrome) at the END position."""
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
