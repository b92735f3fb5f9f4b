"""How layer-0 heads feed layer-1 heads: composition scores, END's attention and the K-composition circuit."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import FactoredMatrix, HookedTransformer
from transformer_lens.utilities import get_act_name

from palindrome.circuits import attention_pattern, ov_circuit, qk_circuit
from palindrome.constants import D_HEAD, D_MODEL
from palindrome.hooks import activations
from palindrome.tokens import (
    MAX_SAMPLES,
    MAX_SIZE,
    TokensLike,
    check_floats,
    check_int,
    check_layer,
    check_layer_head,
    check_positions,
    check_seed,
    mismatch_mask,
    validate_tokens,
)

COMPOSITION_KINDS: tuple[str, ...] = ("Q", "K", "V")
"""Which input of the reading head the writing head's output feeds: query, key or value."""
BASELINE_SAMPLES: int = 300
BASELINE_SEED: int = 0

Matrix = Union[FactoredMatrix, Tensor]


def _dense(matrix: Matrix) -> Tensor:
    return matrix.AB if isinstance(matrix, FactoredMatrix) else matrix


def composition_score(W_A: Matrix, W_B: Matrix) -> float:
    """||W_A W_B||_F / (||W_A||_F ||W_B||_F): how much of W_A's output space W_B reads (row vectors)."""
    # d_model x d_model is tiny: dense Frobenius norms are exact and far cheaper than
    # FactoredMatrix.norm(), which goes through an SVD.
    A, B = (check_floats(name, _dense(m)) for name, m in (("W_A", W_A), ("W_B", W_B)))
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
        raise ValueError(
            f"W_A and W_B must be matrices that multiply (a x b and b x c), got {tuple(A.shape)} and {tuple(B.shape)}"
        )
    if not A.norm() or not B.norm():
        raise ValueError("W_A and W_B must not be zero matrices (the score divides by their norms)")
    return ((A @ B).norm() / (A.norm() * B.norm())).item()


def composition_scores(
    model: HookedTransformer, kind: str, writer_layer: int = 0, reader_layer: int = 1
) -> Float[Tensor, "writer_head reader_head"]:
    """Q-, K- or V-composition scores of every writer head's OV with every reader head's QK or OV."""
    if kind not in COMPOSITION_KINDS:
        raise ValueError(f"kind must be one of {COMPOSITION_KINDS}, got {kind!r}")
    check_layer(model, writer_layer)
    check_layer(model, reader_layer)
    if writer_layer >= reader_layer:
        raise ValueError(f"writer_layer must come before reader_layer, got {writer_layer} and {reader_layer}")
    n_heads = model.cfg.n_heads
    scores = torch.zeros(n_heads, n_heads)
    for i in range(n_heads):
        W_OV = ov_circuit(model, writer_layer, i)
        for j in range(n_heads):
            if kind == "V":
                W_B = ov_circuit(model, reader_layer, j)
            else:
                W_QK = qk_circuit(model, reader_layer, j)
                # W_QK's rows meet the query side, its columns the key side.
                W_B = W_QK if kind == "Q" else W_QK.T
            scores[i, j] = composition_score(W_OV, W_B)
    return scores


def all_composition_scores(
    model: HookedTransformer, writer_layer: int = 0, reader_layer: int = 1
) -> dict[str, Float[Tensor, "writer_head reader_head"]]:
    """{"Q": ..., "K": ..., "V": ...} composition scores between two layers."""
    return {k: composition_scores(model, k, writer_layer, reader_layer) for k in COMPOSITION_KINDS}


def random_composition_scores(
    n_samples: int = BASELINE_SAMPLES,
    d_model: int = D_MODEL,
    d_head: int = D_HEAD,
    seed: int = BASELINE_SEED,
) -> Float[Tensor, " n_samples"]:
    """Composition scores of random pairs of rank-d_head products of kaiming-uniform (a=sqrt(5)) factors."""
    n_samples = check_int("n_samples", n_samples, 2, maximum=MAX_SAMPLES)
    d_model, d_head = (
        check_int("d_model", d_model, 1, maximum=MAX_SIZE),
        check_int("d_head", d_head, 1, maximum=MAX_SIZE),
    )
    generator = torch.Generator().manual_seed(check_seed(seed))
    factors = torch.empty(n_samples, 4, d_model, d_head)
    for factor in factors.flatten(0, 1):  # each d_model x d_head factor initialised on its own
        torch.nn.init.kaiming_uniform_(factor, a=math.sqrt(5), generator=generator)
    left_A, right_A, left_B, right_B = factors.unbind(1)
    A = left_A @ right_A.transpose(-1, -2)  # [n_samples, d_model, d_model], rank d_head
    B = left_B @ right_B.transpose(-1, -2)
    norm = torch.linalg.matrix_norm  # Frobenius over the last two axes
    return norm(A @ B) / (norm(A) * norm(B))


def end_attention(
    model: HookedTransformer, toks: TokensLike, layer: int = 1, head: int = 0
) -> Float[Tensor, "batch src"]:
    """The attention pattern of head ``layer.head`` from the END position (CPU tensor)."""
    return attention_pattern(model, toks, layer, head)[:, -1, :]


def attention_on_mismatches(
    attention: Float[Tensor, "batch src"], toks: TokensLike, positions: Optional[Sequence[int]] = None
) -> Float[Tensor, " batch"]:
    """Attention mass on positions whose token differs from its mirror's (optionally only among ``positions``)."""
    toks = validate_tokens(toks)
    attention = check_floats("attention", attention)
    if attention.shape != toks.shape:
        raise ValueError(
            f"attention must have one row per sequence, shape {tuple(toks.shape)}, got {tuple(attention.shape)}"
        )
    mask = mismatch_mask(toks).to(attention.device)
    if positions is not None:
        keep = torch.zeros_like(mask)
        keep[:, check_positions(positions, range(toks.shape[1]))] = True
        mask = mask & keep
    return (attention * mask).sum(-1)


def attention_entropy(attention: Float[Tensor, "batch src"]) -> Float[Tensor, " batch"]:
    """Entropy (nats) of each attention distribution: 0 on one position, ln(n) when uniform over n."""
    p = check_floats("attention", attention)
    if p.ndim != 2:
        raise ValueError(f"attention must be (batch, src) rows of attention weights, got shape {tuple(p.shape)}")
    p = p.clamp_min(0)
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


def end_queries(
    model: HookedTransformer, toks: TokensLike, layer: int = 1, head: int = 0
) -> Float[Tensor, "batch d_head"]:
    """Head ``layer.head``'s query vectors at the END position (CPU tensor)."""
    check_layer_head(model, layer, head)
    name = get_act_name("q", layer)
    return activations(model, toks, [name])[name][:, -1, head, :].cpu()


def positional_key_scores(
    model: HookedTransformer,
    toks: TokensLike,
    writer: tuple[int, int] = (0, 0),
    reader: tuple[int, int] = (1, 0),
) -> Float[Tensor, " pos"]:
    """Attention score the reader's mean END query gives the key made of the writer's output of W_pos[p].

    score(p) = q_mean . (W_pos[p] / s0) W_OV^writer W_K^reader / s1 / sqrt(d_head), with s0, s1 the
    mean LayerNorm scales over ``toks`` (LayerNorm approximated by a constant division) and q_mean
    the reader's END query averaged over ``toks``. Token embeddings and biases are left out.
    """
    (w_layer, w_head), (r_layer, r_head) = writer, reader
    check_layer_head(model, w_layer, w_head)
    check_layer_head(model, r_layer, r_head)
    if w_layer >= r_layer:
        raise ValueError(f"the writer's layer must come before the reader's, got {writer} and {reader}")
    q_name = get_act_name("q", r_layer)
    s0_name, s1_name = get_act_name("scale", w_layer, "ln1"), get_act_name("scale", r_layer, "ln1")
    acts = activations(model, toks, [q_name, s0_name, s1_name])
    q_mean = acts[q_name][:, -1, r_head].mean(0)
    s0, s1 = acts[s0_name].mean(), acts[s1_name].mean()
    written = (model.W_pos / s0) @ model.W_V[w_layer, w_head] @ model.W_O[w_layer, w_head]
    keys = written @ model.W_K[r_layer, r_head] / s1  # [pos, d_head]
    scale = model.blocks[r_layer].attn.attn_scale
    return ((keys @ q_mean) / scale).detach().cpu()


__all__ = [
    "COMPOSITION_KINDS",
    "all_composition_scores",
    "attention_entropy",
    "attention_on_mismatches",
    "composition_score",
    "composition_scores",
    "end_attention",
    "end_queries",
    "positional_key_scores",
    "random_composition_scores",
]
