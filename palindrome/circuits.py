"""QK and OV circuits of attention heads, read from the processed weights, and LayerNorm-scale statistics.

It also reads attention where it happens: a head's pattern on a batch (``attention_pattern``,
``attention_to`` between two positions) and how a layer-0 head's token-token scores treat the
same token (``same_token_score``).

Every function takes ``layer`` and ``head`` explicitly, so the same code serves any head of
the model. The layer-0 circuits replace LayerNorm by division by one constant ``scale`` (its
mean over a dataset): with the processed weights the layer-0 residual is already centred, so
LayerNorm there only divides each residual by its own scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import einops
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix, HookedTransformer
from transformer_lens.utilities import get_act_name

from palindrome.constants import END, MAX_VALUE, MIRROR, NOT_PALINDROME, PALINDROME, SECOND_HALF, START
from palindrome.hooks import activations, hold_scale, ln_scale_name
from palindrome.tokens import (
    TokensLike,
    check_floats,
    check_int,
    check_layer,
    check_layer_head,
    check_positive,
    check_type,
    mismatch_mask,
    validate_tokens,
)

REPEATED_TOKENS: Int[Tensor, "1 seq"] = torch.tensor([[START] + [1, 2, 3, 4, 5] * 4 + [END]])
"""A sequence whose values 1..5 repeat four times: many equal tokens, only some at mirror positions."""

TOLERANCE: float = 1e-6
"""Largest deviation ``processed_weight_deviations`` treats as float noise."""


def _check_scale(scale: float) -> float:
    return check_positive("scale", scale, " (a mean LayerNorm scale)")


# --- whole-head matrices ---------------------------------------------------------------------


def nonpal_direction(model: HookedTransformer) -> Float[Tensor, " d_model"]:
    """The residual direction that raises 'not palindrome' over 'palindrome': W_U[:, 0] - W_U[:, 1]."""
    return model.W_U[:, NOT_PALINDROME] - model.W_U[:, PALINDROME]


def ov_circuit(model: HookedTransformer, layer: int, head: int) -> FactoredMatrix:
    """The head's OV matrix W_V W_O (d_model x d_model, row vectors: x @ W_OV) as a FactoredMatrix."""
    check_layer_head(model, layer, head)
    return FactoredMatrix(model.W_V[layer, head], model.W_O[layer, head])


def qk_circuit(model: HookedTransformer, layer: int, head: int) -> FactoredMatrix:
    """The head's QK matrix W_Q W_K^T (d_model x d_model, query rows, key columns) as a FactoredMatrix."""
    check_layer_head(model, layer, head)
    return FactoredMatrix(model.W_Q[layer, head], model.W_K[layer, head].T)


# --- LayerNorm scale -------------------------------------------------------------------------


@dataclass(frozen=True)
class LNScaleStats:
    """Per-position statistics of a LayerNorm's scale (the residual's standard deviation) over a dataset."""

    mean: Float[Tensor, " seq"]
    std: Float[Tensor, " seq"]
    overall_mean: float
    overall_std: float

    @classmethod
    def from_scales(cls, scale: Float[Tensor, "batch seq"]) -> "LNScaleStats":
        """The statistics of scales already measured (``ln_scales`` or ``scale_values`` of a cached run)."""
        if scale.shape[0] < 2:
            raise ValueError(f"ln_scale_stats needs at least 2 sequences to measure a spread, got {scale.shape[0]}")
        return cls(
            mean=scale.mean(0), std=scale.std(0), overall_mean=scale.mean().item(), overall_std=scale.std().item()
        )

    @property
    def cv(self) -> Float[Tensor, " seq"]:
        """Coefficient of variation std / mean at each position."""
        return self.std / self.mean

    @property
    def max_cv(self) -> float:
        """The largest per-position coefficient of variation."""
        return self.cv.max().item()


def ln_scales(model: HookedTransformer, toks: TokensLike, layer: int) -> Float[Tensor, "batch seq"]:
    """The scale that layer ``layer``'s ln1 divides each residual by (hook ``blocks.L.ln1.hook_scale``)."""
    check_layer(model, layer)
    name = ln_scale_name(layer)
    return scale_values(activations(model, toks, [name])[name])


def scale_values(scale: Tensor) -> Float[Tensor, "batch seq"]:
    """A LayerNorm ``hook_scale`` activation as [batch, seq] on the CPU."""
    scale = check_floats("scale", scale, " (a LayerNorm hook_scale activation)")
    if scale.ndim not in (3, 4):
        raise ValueError(
            "scale must be a hook_scale activation [batch, seq, 1] or [batch, seq, head, 1], got shape "
            f"{tuple(scale.shape)}"
        )
    # With split q/k/v inputs the hook carries a head axis; every head sees the same scale.
    if scale.ndim == 4:
        scale = scale[:, :, 0]
    return scale[..., 0].float().cpu()


def layer0_scale(model: HookedTransformer, toks: TokensLike) -> float:
    """Mean layer-0 LayerNorm scale over ``toks`` (LayerNorm as one division, as in chapter 2)."""
    name = ln_scale_name(0)
    return activations(model, toks, [name])[name].mean().item()


def ln_scale_stats(model: HookedTransformer, toks: TokensLike, layer: int) -> LNScaleStats:
    """Mean and std of layer ``layer``'s ln1 scale at each position, and overall, over ``toks``."""
    return LNScaleStats.from_scales(ln_scales(model, toks, layer))


@dataclass(frozen=True)
class ConstantScaleEffect:
    """How much a head's pattern changes when its ln1 scale is replaced by one constant."""

    mean_tv: float
    """Total-variation distance between real and constant-scale rows, averaged over sequences and dest > 0."""
    max_tv: float
    """The largest such distance for any one row."""
    argmax_agreement: float
    """Fraction of rows (dest > 0) whose most-attended key is the same in both patterns."""


def constant_scale_effect(
    model: HookedTransformer, toks: TokensLike, layer: int, head: int, scale: float
) -> ConstantScaleEffect:
    """Compare a head's real pattern with the one obtained when ln1's scale is fixed to ``scale`` (a hook)."""
    check_layer_head(model, layer, head)
    scale = _check_scale(scale)
    pattern_name = get_act_name("pattern", layer)
    real = activations(model, toks, [pattern_name])
    fixed = activations(model, toks, [pattern_name], [(ln_scale_name(layer), hold_scale(scale))])
    # Destination 0 can only attend to itself; leave it out of every average.
    real_rows, fixed_rows = real[pattern_name][:, head, 1:], fixed[pattern_name][:, head, 1:]
    tv = 0.5 * einops.reduce((real_rows - fixed_rows).abs(), "batch dest src -> batch dest", "sum")
    agree = real_rows.argmax(-1) == fixed_rows.argmax(-1)
    return ConstantScaleEffect(
        mean_tv=tv.mean().item(), max_tv=tv.max().item(), argmax_agreement=agree.float().mean().item()
    )


# --- layer-0 QK circuits through a constant LayerNorm scale -----------------------------------


def _causal_softmax(scores: Float[Tensor, "... dest src"]) -> Float[Tensor, "... dest src"]:
    """Softmax over keys with every key after the query masked out."""
    causal = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


def _bilinear_scores(
    model: HookedTransformer, layer: int, head: int, rows: Float[Tensor, "n d_model"], scale: float
) -> Float[Tensor, "n n"]:
    """Attention scores rows' W_QK rows'^T / sqrt(d_head) with rows' = rows / scale, on the CPU."""
    check_layer_head(model, layer, head)
    rows = rows / _check_scale(scale)
    return ((rows @ qk_circuit(model, layer, head) @ rows.T).AB / model.cfg.attn_scale).detach().cpu()


def embedding_qk_circuit(
    model: HookedTransformer, layer: int, head: int, scale: float, pattern: bool = True
) -> Float[Tensor, "query_token key_token"]:
    """Token-token attention softmax(W_E' W_QK W_E'^T / sqrt(d_head)), W_E' = W_E / scale (scores if not pattern)."""
    scores = _bilinear_scores(model, layer, head, model.W_E, scale)
    return scores.softmax(-1) if check_type("pattern", pattern, bool) else scores


def positional_qk_circuit(
    model: HookedTransformer, layer: int, head: int, scale: float, pattern: bool = True
) -> Float[Tensor, "query_pos key_pos"]:
    """Position-position attention: causal softmax of W_pos' W_QK W_pos'^T / sqrt(d_head) (scores if not pattern)."""
    scores = _bilinear_scores(model, layer, head, model.W_pos, scale)
    return _causal_softmax(scores) if check_type("pattern", pattern, bool) else scores


def _value_token_scores(model: HookedTransformer, layer: int, head: int, scale: float) -> Tensor:
    return embedding_qk_circuit(model, layer, head, scale, pattern=False)[: MAX_VALUE + 1, : MAX_VALUE + 1]


def same_token_score(model: HookedTransformer, layer: int, head: int, scale: float) -> float:
    """Mean over value tokens of (score for the same token - mean score for the other tokens), embedding QK circuit."""
    scores = _value_token_scores(model, layer, head, scale)
    diag = scores.diagonal()
    return (diag - (scores.sum(-1) - diag) / (scores.shape[0] - 1)).mean().item()


def same_token_is_row_minimum(model: HookedTransformer, layer: int, head: int, scale: float) -> float:
    """Fraction of value tokens for which the same token gets the lowest score in the embedding QK circuit."""
    scores = _value_token_scores(model, layer, head, scale)
    return (scores.argmin(-1) == torch.arange(scores.shape[0])).float().mean().item()


def diagonal_argmax_rows(matrix: Float[Tensor, "rows cols"]) -> Bool[Tensor, " rows"]:
    """For each row i, whether the row's largest entry is in column i."""
    matrix = check_floats("matrix", matrix)
    if matrix.ndim != 2 or matrix.shape[1] < matrix.shape[0]:
        raise ValueError(f"matrix must be 2-D with at least as many columns as rows, got shape {tuple(matrix.shape)}")
    return matrix.argmax(-1).cpu() == torch.arange(matrix.shape[0])


def diagonal_argmax_fraction(matrix: Float[Tensor, "rows cols"]) -> float:
    """Fraction of rows whose largest entry lies on the diagonal."""
    return diagonal_argmax_rows(matrix).float().mean().item()


def mirror_attention(pos_circuit: Float[Tensor, "seq seq"]) -> pd.DataFrame:
    """For each second-half query position: attention to its mirror, to itself, and the top earlier key."""
    pos_circuit = check_floats("pos_circuit", pos_circuit)
    if pos_circuit.ndim != 2 or pos_circuit.shape[0] != pos_circuit.shape[1]:
        raise ValueError(f"pos_circuit must be a square (query, key) matrix, got {tuple(pos_circuit.shape)}")
    if pos_circuit.shape[0] <= max(SECOND_HALF):
        raise ValueError(
            f"pos_circuit must cover positions 0..{max(SECOND_HALF)}, got {pos_circuit.shape[0]} positions"
        )
    rows = []
    for query in SECOND_HALF:
        earlier = pos_circuit[query, :query]
        mirror = MIRROR[query]
        top_earlier = int(earlier.argmax())
        rows.append(
            {
                "position": query,
                "mirror": mirror,
                "attn_to_mirror": float(pos_circuit[query, mirror]),
                "attn_to_self": float(pos_circuit[query, query]),
                "top_earlier": top_earlier,
                "attn_to_top_earlier": float(earlier[top_earlier]),
                "mirror_is_top_earlier": top_earlier == mirror,
                "mirror_is_top_overall": int(pos_circuit[query, : query + 1].argmax()) == mirror,
            }
        )
    return pd.DataFrame(rows).set_index("position")


def attention_from_embeddings(
    model: HookedTransformer,
    toks: TokensLike,
    head: int,
    use_positions: bool,
    include_bias: bool = True,
) -> Float[Tensor, "batch dest src"]:
    """Layer-0 head ``head``'s pattern recomputed from W_E (and W_pos if ``use_positions``) through ln1."""
    check_layer_head(model, 0, head)
    toks = validate_tokens(toks).to(model.cfg.device)
    resid = model.W_E[toks]
    if use_positions:
        resid = resid + model.W_pos[: toks.shape[1]]
    with torch.inference_mode():
        normed = model.blocks[0].ln1(resid)
        q = normed @ model.W_Q[0, head]
        k = normed @ model.W_K[0, head]
        if include_bias:
            q, k = q + model.b_Q[0, head], k + model.b_K[0, head]
        scores = einops.einsum(q, k, "batch dest d, batch src d -> batch dest src") / model.cfg.attn_scale
        return _causal_softmax(scores).cpu()


def attention_pattern(
    model: HookedTransformer, toks: TokensLike, layer: int, head: int
) -> Float[Tensor, "batch dest src"]:
    """The head's real attention pattern on ``toks`` (from ``run_with_cache``)."""
    check_layer_head(model, layer, head)
    name = get_act_name("pattern", layer)
    return activations(model, toks, [name])[name][:, head].cpu()


def attention_to(
    model: HookedTransformer, toks: TokensLike, layer: int, head: int, dest: int, src: int
) -> Float[Tensor, " batch"]:
    """Attention weight from position ``dest`` to position ``src`` in head ``layer.head``, per sequence."""
    check_layer_head(model, layer, head)
    last = model.cfg.n_ctx - 1
    dest, src = check_int("dest", dest, 0, maximum=last), check_int("src", src, 0, maximum=last)
    if src > dest:
        raise ValueError(f"attention is causal: src must be <= dest, got src={src}, dest={dest}")
    name = get_act_name("pattern", layer)
    return activations(model, toks, [name])[name][:, head, dest, src].cpu()


def mirror_attention_by_match(model: HookedTransformer, toks: TokensLike, layer: int, head: int) -> pd.DataFrame:
    """Mean real attention from each second-half position to its mirror and to itself, split by whether the pair
    matches."""
    broken = mismatch_mask(validate_tokens(toks)).cpu()
    for query in SECOND_HALF:
        for label, count in (("matched", (~broken[:, query]).sum()), ("mismatched", broken[:, query].sum())):
            if not count:
                raise ValueError(
                    f"toks must hold, at every second-half position, matched and mismatched pairs; none is "
                    f"{label} at position {query}. Pass a larger batch (e.g. PalindromeDataset(1000).toks)"
                )
    pattern = attention_pattern(model, toks, layer, head)
    rows = []
    for query in SECOND_HALF:
        to_mirror, to_self = pattern[:, query, MIRROR[query]], pattern[:, query, query]
        matched = ~broken[:, query]
        row = {"position": query, "mirror": MIRROR[query]}
        for label, keep in (("matched", matched), ("mismatched", ~matched)):
            row[f"n_{label}"] = int(keep.sum())
            row[f"{label}_to_mirror"] = to_mirror[keep].mean().item()
            row[f"{label}_to_self"] = to_self[keep].mean().item()
        rows.append(row)
    return pd.DataFrame(rows).set_index("position")


def attention_to_equal_tokens(pattern: Float[Tensor, "dest src"], toks: TokensLike, query: int) -> pd.Series:
    """Attention from ``query`` to every position at or before it holding the same token, keyed by position."""
    row = validate_tokens(toks)
    if row.shape[0] != 1:
        raise ValueError(f"attention_to_equal_tokens takes one sequence, got a batch of {row.shape[0]}")
    seq_len = row.shape[1]
    if pattern.shape != (seq_len, seq_len):
        raise ValueError(f"pattern must have shape ({seq_len}, {seq_len}) for one sequence, got {tuple(pattern.shape)}")
    query = check_int("query", query, 0, " (a position)", maximum=seq_len - 1)
    keys = [j for j in range(query + 1) if row[0, j] == row[0, query]]
    return pd.Series([float(pattern[query, j]) for j in keys], index=pd.Index(keys, name="key position"))


# --- the processed weights -------------------------------------------------------------------


def processed_weight_deviations(model: HookedTransformer) -> dict[str, float]:
    """Max |deviation| from each invariant weight processing guarantees (all ~0 for processed weights)."""
    norms = [block.ln1 for block in model.blocks] + [model.ln_final]
    checks: dict[str, Union[Tensor, list[Tensor]]] = {
        "LayerNorm weights - 1": [ln.w - 1 for ln in norms],
        "LayerNorm biases": [ln.b for ln in norms],
        "W_U mean over d_model": einops.reduce(model.W_U, "d_model vocab -> vocab", "mean"),
        "W_U mean over d_vocab_out": einops.reduce(model.W_U, "d_model vocab -> d_model", "mean"),
        "b_U mean over d_vocab_out": model.b_U.mean(),
        "W_Q, W_K, W_V mean over d_model": [
            einops.reduce(w, "layer head d_model d_head -> layer head d_head", "mean")
            for w in (model.W_Q, model.W_K, model.W_V)
        ],
        "W_O mean over d_model": einops.reduce(model.W_O, "layer head d_head d_model -> layer head d_head", "mean"),
        "b_O mean over d_model": einops.reduce(model.b_O, "layer d_model -> layer", "mean"),
        "W_E mean over d_model": einops.reduce(model.W_E, "token d_model -> token", "mean"),
        "W_pos mean over d_model": einops.reduce(model.W_pos, "pos d_model -> pos", "mean"),
        "b_V": model.b_V,
    }
    out = {}
    for name, value in checks.items():
        tensors = value if isinstance(value, list) else [value]
        out[name] = max(t.detach().abs().max().item() for t in tensors)
    return out
