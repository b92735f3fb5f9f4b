"""How layer-0 heads feed layer-1 heads: composition scores, END's attention and the K-composition circuit."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import plotly.graph_objects as go
import torch
from jaxtyping import Float
from plotly.subplots import make_subplots
from torch import Tensor
from transformer_lens import FactoredMatrix, HookedTransformer
from transformer_lens.utilities import get_act_name

from palindrome.circuits import attention_pattern, check_layer_head, ov_circuit, qk_circuit
from palindrome.constants import D_HEAD, D_MODEL
from palindrome.data import token_strings
from palindrome.plots import NONPAL_COLOR, _numpy
from palindrome.tokens import TokensLike, mismatch_mask, validate_tokens

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
    A, B = _dense(W_A), _dense(W_B)
    return ((A @ B).norm() / (A.norm() * B.norm())).item()


def composition_scores(
    model: HookedTransformer, kind: str, writer_layer: int = 0, reader_layer: int = 1
) -> Float[Tensor, "writer_head reader_head"]:
    """Q-, K- or V-composition scores of every writer head's OV with every reader head's QK or OV."""
    if kind not in COMPOSITION_KINDS:
        raise ValueError(f"kind must be one of {COMPOSITION_KINDS}, got {kind!r}")
    check_layer_head(model, writer_layer)
    check_layer_head(model, reader_layer)
    if writer_layer >= reader_layer:
        raise ValueError(
            f"writer_layer must come before reader_layer, got {writer_layer} and {reader_layer}"
        )
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
) -> Float[Tensor, "n_samples"]:
    """Composition scores of random pairs of rank-d_head products of kaiming-uniform (a=sqrt(5)) factors."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    generator = torch.Generator().manual_seed(seed)
    factors = torch.empty(n_samples, 4, d_model, d_head)
    for factor in factors.flatten(0, 1):  # each d_model x d_head factor initialised on its own
        torch.nn.init.kaiming_uniform_(factor, a=math.sqrt(5), generator=generator)
    left_A, right_A, left_B, right_B = factors.unbind(1)
    A = left_A @ right_A.transpose(-1, -2)  # [n_samples, d_model, d_model], rank d_head
    B = left_B @ right_B.transpose(-1, -2)
    norm = torch.linalg.matrix_norm  # Frobenius over the last two axes
    return norm(A @ B) / (norm(A) * norm(B))


def _run_cache(model: HookedTransformer, toks: TokensLike, names: Sequence[str]) -> dict[str, Tensor]:
    """The named activations of one clean forward pass."""
    toks = validate_tokens(toks).to(model.cfg.device)
    with torch.inference_mode():
        _, cache = model.run_with_cache(toks, names_filter=lambda name: name in names)
    return {name: cache[name] for name in names}


def end_attention(
    model: HookedTransformer, toks: TokensLike, layer: int = 1, head: int = 0
) -> Float[Tensor, "batch src"]:
    """The attention pattern of head ``layer.head`` from the END position (CPU tensor)."""
    return attention_pattern(model, toks, layer, head)[:, -1, :]


def attention_on_mismatches(
    attention: Float[Tensor, "batch src"], toks: TokensLike, positions: Optional[Sequence[int]] = None
) -> Float[Tensor, "batch"]:
    """Attention mass on positions whose token differs from its mirror's (optionally only among ``positions``)."""
    toks = validate_tokens(toks)
    if attention.shape != toks.shape:
        raise ValueError(
            f"attention must have one row per sequence, shape {tuple(toks.shape)}, got {tuple(attention.shape)}"
        )
    mask = mismatch_mask(toks).to(attention.device)
    if positions is not None:
        keep = torch.zeros_like(mask)
        keep[:, list(positions)] = True
        mask = mask & keep
    return (attention * mask).sum(-1)


def attention_entropy(attention: Float[Tensor, "batch src"]) -> Float[Tensor, "batch"]:
    """Entropy (nats) of each attention distribution: 0 on one position, ln(n) when uniform over n."""
    p = attention.clamp_min(0)
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


def end_queries(
    model: HookedTransformer, toks: TokensLike, layer: int = 1, head: int = 0
) -> Float[Tensor, "batch d_head"]:
    """Head ``layer.head``'s query vectors at the END position (CPU tensor)."""
    check_layer_head(model, layer, head)
    name = get_act_name("q", layer)
    return _run_cache(model, toks, [name])[name][:, -1, head, :].cpu()


def positional_key_scores(
    model: HookedTransformer,
    toks: TokensLike,
    writer: tuple[int, int] = (0, 0),
    reader: tuple[int, int] = (1, 0),
) -> Float[Tensor, "pos"]:
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
    acts = _run_cache(model, toks, [q_name, s0_name, s1_name])
    q_mean = acts[q_name][:, -1, r_head].mean(0)
    s0, s1 = acts[s0_name].mean(), acts[s1_name].mean()
    written = (model.W_pos / s0) @ model.W_V[w_layer, w_head] @ model.W_O[w_layer, w_head]
    keys = written @ model.W_K[r_layer, r_head] / s1  # [pos, d_head]
    scale = model.blocks[r_layer].attn.attn_scale
    return ((keys @ q_mean) / scale).detach().cpu()


# --- figures -------------------------------------------------------------------------------------

def heatmap_grid(
    matrices: dict[str, Float[Tensor, "rows cols"]],
    title: str,
    x: Sequence[str],
    y: Sequence[str],
    midpoint: float = 0.0,
    text_format: str = ".2f",
    colorbar_title: str = "",
    **layout,
) -> go.Figure:
    """Side-by-side heatmaps on one diverging colour scale centred on ``midpoint``, values printed."""
    if not matrices:
        raise ValueError("matrices must name at least one matrix")
    arrays = {name: _numpy(m) for name, m in matrices.items()}
    zmin = min(float(a.min()) for a in arrays.values())
    zmax = max(float(a.max()) for a in arrays.values())
    fig = make_subplots(rows=1, cols=len(arrays), subplot_titles=list(arrays), horizontal_spacing=0.08)
    for col, z in enumerate(arrays.values(), start=1):
        fig.add_trace(
            go.Heatmap(
                z=z, x=list(x), y=list(y), coloraxis="coloraxis",
                texttemplate="%{z:" + text_format + "}",
                hovertemplate="%{y} -> %{x}<br>value=%{z:.4g}<extra></extra>",
            ),
            row=1, col=col,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    span = max(zmax - midpoint, midpoint - zmin, 1e-9)
    fig.update_layout(
        title=title,
        coloraxis=dict(
            colorscale="RdBu", reversescale=True, cmin=midpoint - span, cmax=midpoint + span,
            colorbar=dict(title=colorbar_title),
        ),
        height=layout.pop("height", 320),
        **layout,
    )
    return fig


def end_attention_bars(
    attention: Float[Tensor, "example src"],
    toks: TokensLike,
    titles: Sequence[str],
    title: str = "Attention from END",
) -> go.Figure:
    """One bar chart per example of END's attention over positions; mirror-breaking positions in red."""
    toks = validate_tokens(toks)
    attention = torch.as_tensor(attention).detach().cpu()
    if attention.shape != toks.shape or len(titles) != toks.shape[0]:
        raise ValueError(
            f"need one attention row and one title per sequence: tokens {tuple(toks.shape)}, "
            f"attention {tuple(attention.shape)}, {len(titles)} titles"
        )
    mask = mismatch_mask(toks)
    rows = len(titles)
    fig = make_subplots(
        rows=rows, cols=1, subplot_titles=list(titles), vertical_spacing=min(0.2, 0.6 / rows)
    )
    for row in range(toks.shape[0]):
        labels = [f"{p}:{s}" for p, s in enumerate(token_strings(toks[row]))]
        colors = [NONPAL_COLOR if m else "#9e9e9e" for m in mask[row].tolist()]
        fig.add_trace(
            go.Bar(x=labels, y=_numpy(attention[row]), marker_color=colors, showlegend=False),
            row=row + 1, col=1,
        )
        fig.update_yaxes(range=[0, 1], title_text="attention", row=row + 1, col=1)
    fig.update_layout(title=title, height=240 * rows + 60, margin=dict(t=80))
    return fig


__all__ = [
    "COMPOSITION_KINDS",
    "all_composition_scores",
    "attention_entropy",
    "attention_on_mismatches",
    "composition_score",
    "composition_scores",
    "end_attention",
    "end_attention_bars",
    "end_queries",
    "heatmap_grid",
    "positional_key_scores",
    "random_composition_scores",
]
