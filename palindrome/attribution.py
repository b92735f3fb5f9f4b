"""Direct logit attribution: what each part of the residual stream writes along the non-palindrome direction.

The classifier reads one number, the logit difference ``logit_0 - logit_1`` at END, which is
the final residual (after LayerNorm) dotted with ``nonpal_direction = W_U[:, 0] - W_U[:, 1]``
(plus a constant bias difference). The residual stream is a sum of parts (token and position
embeddings, each head's output, the output biases), so the unnormalised logit difference is a
sum of per-part attributions. This module computes that decomposition, what the final
LayerNorm does to it, each head's direct effect on the logit difference (its attribution divided
by the final LayerNorm scale), how variable each head's output is over inputs (what mean ablation
removes), and the V-composition path H0.0 -> H1.0 -> logits.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence, Union

import einops
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from palindrome.circuits import attention_pattern, nonpal_direction, ov_circuit
from palindrome.constants import (
    FIRST_HALF,
    HEAD_NAMES,
    NOT_PALINDROME,
    PALINDROME,
    SECOND_HALF,
    SEQ_LEN,
    VALUE_POSITIONS,
)
from palindrome.hooks import FINAL_SCALE, activations, cached_run
from palindrome.tokens import (
    TokensLike,
    check_floats,
    check_int,
    check_layer_head,
    check_positions,
    mismatch_mask,
    validate_labels,
    validate_tokens,
)

COMPONENTS: tuple[str, ...] = ("embed", "pos_embed") + tuple(f"H{n}" for n in HEAD_NAMES) + ("b_O",)
"""The parts whose sum is the final residual stream: embeddings, four heads, summed output biases."""
CLASS_NAMES: dict[int, str] = {PALINDROME: "palindrome", NOT_PALINDROME: "non-palindrome"}
"""Class labels as used in the book's colour map (``plots.pal_colors``)."""
WEAK_FRACTION: float = 0.5
"""Default: a position is weak if its value is below this fraction of its half's median magnitude."""


def _direction(model: HookedTransformer) -> Float[Tensor, " d_model"]:
    return nonpal_direction(model).to(model.cfg.device)


# --- the residual stream at END, part by part ------------------------------------------------


def _run(model: HookedTransformer, toks: TokensLike, extra: Sequence[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
    """One forward pass caching the component hooks (plus ``extra``); returns END logits and the cache."""
    names = [get_act_name("embed"), get_act_name("pos_embed"), *extra]
    names += [get_act_name("result", layer) for layer in range(model.cfg.n_layers)]
    logits, cache = cached_run(model, toks, list(dict.fromkeys(names)))
    return logits[:, -1], cache


def components_from_cache(
    model: HookedTransformer, cache: Mapping[str, Tensor]
) -> Float[Tensor, "component batch seq d_model"]:
    """The residual components (``COMPONENTS`` order) from a cache holding hook_embed, hook_pos_embed and each layer's
    hook_result."""
    needed = [get_act_name("embed"), get_act_name("pos_embed")] + [
        get_act_name("result", layer) for layer in range(model.cfg.n_layers)
    ]
    missing = [n for n in needed if not isinstance(cache, Mapping) or n not in cache]
    if missing:
        raise ValueError(f"cache lacks {missing}; run the model with hooks.cached_run (or run_with_cache) first")
    embed = cache[get_act_name("embed")]
    pos_embed = cache[get_act_name("pos_embed")].expand_as(embed)
    heads = [
        einops.rearrange(cache[get_act_name("result", layer)], "batch seq head d -> head batch seq d")
        for layer in range(model.cfg.n_layers)
    ]
    biases = model.b_O.sum(0).expand_as(embed)
    return torch.cat([embed[None], pos_embed[None], *heads, biases[None]])


def residual_components(
    model: HookedTransformer, toks: TokensLike
) -> tuple[Float[Tensor, "component batch seq d_model"], list[str]]:
    """The final residual stream split into embed, pos_embed, each head's output and the summed b_O."""
    _, cache = _run(model, toks)
    return components_from_cache(model, cache), list(COMPONENTS)


def decomposition_error(model: HookedTransformer, toks: TokensLike) -> float:
    """Max |sum of residual_components - resid_post of the last layer| over all sequences and positions."""
    name = get_act_name("resid_post", model.cfg.n_layers - 1)
    _, cache = _run(model, toks, [name])
    return (components_from_cache(model, cache).sum(0) - cache[name]).abs().max().item()


def head_outputs(
    model: HookedTransformer, toks: TokensLike
) -> dict[tuple[int, int], Float[Tensor, "batch seq d_model"]]:
    """Every head's output (``hook_result``) on ``toks``, keyed by (layer, head), as float CPU tensors."""
    names = [get_act_name("result", layer) for layer in range(model.cfg.n_layers)]
    cache = activations(model, toks, names)
    return {
        (layer, head): cache[get_act_name("result", layer)][:, :, head].float().cpu()
        for layer in range(model.cfg.n_layers)
        for head in range(model.cfg.n_heads)
    }


def _variability(out: Float[Tensor, "batch pos d"]) -> tuple[Tensor, Tensor]:
    """Per-position total variance and squared norm of the mean, over the batch."""
    mean = out.mean(0)
    return (out - mean).pow(2).sum(-1).mean(0), mean.pow(2).sum(-1)


def output_variability(model: HookedTransformer, toks: TokensLike, layer: int, head: int) -> Float[Tensor, " seq"]:
    """Per position: sqrt(E||x - mean x||^2) / ||mean x|| of the head's output x over ``toks`` (0: constant)."""
    check_layer_head(model, layer, head)
    if validate_tokens(toks).shape[0] < 2:
        raise ValueError("output_variability needs at least 2 sequences")
    variance, mean_sq = _variability(head_outputs(model, toks)[(layer, head)])
    return (variance / mean_sq).sqrt()


def variability_table(model: HookedTransformer, toks: TokensLike) -> pd.DataFrame:
    """``output_variability`` of every head (columns) per position (rows), plus a "pooled 1..END" row."""
    if validate_tokens(toks).shape[0] < 2:
        raise ValueError("variability_table needs at least 2 sequences")
    return _variability_table(head_outputs(model, toks))


def _variability_table(outputs: Mapping[tuple[int, int], Tensor]) -> pd.DataFrame:
    columns = {}
    for (layer, head), out in outputs.items():
        variance, mean_sq = _variability(out)
        pooled = (variance[1:].sum() / mean_sq[1:].sum()).sqrt().item()
        columns[f"H{layer}.{head}"] = (variance / mean_sq).sqrt().tolist() + [pooled]
    seq_len = next(iter(outputs.values())).shape[1]
    return pd.DataFrame(columns, index=pd.Index(list(range(seq_len)) + ["pooled 1..END"], name="position"))


def direct_effect_from_cache(
    model: HookedTransformer, cache: Mapping[str, Tensor], layer: int, head: int
) -> Float[Tensor, " batch"]:
    """``direct_effect`` from a cache holding the layer's hook_result and the final LayerNorm scale
    (``hooks.FINAL_SCALE``)."""
    check_layer_head(model, layer, head)
    needed = [get_act_name("result", layer), FINAL_SCALE]
    missing = [n for n in needed if not isinstance(cache, Mapping) or n not in cache]
    if missing:
        raise ValueError(f"cache lacks {missing}; run the model with hooks.cached_run (or activations) first")
    out = cache[get_act_name("result", layer)][:, -1, head]
    return ((out @ nonpal_direction(model)) / cache[FINAL_SCALE][:, -1, 0]).cpu()


def direct_effect(model: HookedTransformer, toks: TokensLike, layer: int, head: int) -> Float[Tensor, " batch"]:
    """Head ``layer.head``'s direct effect on the logit difference at END, per sequence (logit units).

    Its output at END along W_U[:,0] - W_U[:,1], divided by the final LayerNorm scale at END.
    ``component_attribution`` is the same dot product *before* that division; dividing makes the
    direct effects of all residual components add up to the logit difference (up to the
    unembedding bias), so they compare across inputs whose final scale differs.
    """
    check_layer_head(model, layer, head)
    cache = activations(model, toks, [get_act_name("result", layer), FINAL_SCALE])
    return direct_effect_from_cache(model, cache, layer, head)


def component_attribution(model: HookedTransformer, toks: TokensLike) -> Float[Tensor, "component batch"]:
    """Each component's write at END dotted with the non-palindrome direction (final LayerNorm ignored)."""
    parts, _ = residual_components(model, toks)
    return (parts[:, :, -1] @ _direction(model)).cpu()


def separation_auc(scores: Float[Tensor, " batch"], labels: Int[Tensor, " batch"], atol: float = 1e-5) -> float:
    """Probability that a random non-palindrome scores above a random palindrome (ties, within atol, count half)."""
    scores = check_floats("scores", scores, " (NaN or inf cannot be ranked)").detach().float().cpu().reshape(-1)
    labels = validate_labels(labels, scores.shape[0]).cpu()
    nonpal, pal = scores[labels == NOT_PALINDROME], scores[labels == PALINDROME]
    if len(nonpal) == 0 or len(pal) == 0:
        raise ValueError("separation_auc needs at least one palindrome and one non-palindrome")
    diff = nonpal[:, None] - pal[None, :]
    return ((diff > atol).float().mean() + 0.5 * (diff.abs() <= atol).float().mean()).item()


def component_separation(model: HookedTransformer, toks: TokensLike, labels: Int[Tensor, " batch"]) -> pd.DataFrame:
    """Per component: mean attribution for each class and the AUC separating the classes."""
    attribution = component_attribution(model, toks)
    labels = validate_labels(labels, attribution.shape[1]).cpu()
    rows = {
        name: {
            f"mean ({CLASS_NAMES[PALINDROME]})": values[labels == PALINDROME].mean().item(),
            f"mean ({CLASS_NAMES[NOT_PALINDROME]})": values[labels == NOT_PALINDROME].mean().item(),
            "AUC": separation_auc(values, labels),
        }
        for name, values in zip(COMPONENTS, attribution, strict=True)
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def by_class(values: Float[Tensor, " batch"], labels: Int[Tensor, " batch"]) -> dict[str, Tensor]:
    """Split per-sequence values into {"palindrome": ..., "non-palindrome": ...} (for histograms)."""
    values = check_floats("values", values).detach().cpu()
    labels = validate_labels(labels, values.shape[0]).cpu()
    return {name: values[labels == label] for label, name in CLASS_NAMES.items()}


# --- the final LayerNorm ---------------------------------------------------------------------


def final_ln_scale(model: HookedTransformer, toks: TokensLike) -> Float[Tensor, " batch"]:
    """The scale (residual standard deviation) the final LayerNorm divides END's residual by."""
    return activations(model, toks, [FINAL_SCALE])[FINAL_SCALE][:, -1, 0].cpu()


def final_ln_scale_stats(model: HookedTransformer, toks: TokensLike, labels: Int[Tensor, " batch"]) -> pd.DataFrame:
    """Mean, std, min and max of the final LayerNorm scale at END, per class and over all sequences.

    The standard deviation needs two sequences of a class: a batch with fewer than two of either class is refused
    (ValueError naming the class), never answered with a table missing that class.
    """
    scale = final_ln_scale(model, toks)
    groups = {**by_class(scale, labels), "all": scale}
    few = {name: len(s) for name, s in groups.items() if len(s) < 2}
    if few:
        counts = ", ".join(f"{n} {name}" for name, n in few.items())
        raise ValueError(
            f"final_ln_scale_stats needs at least two sequences of each class for a standard deviation; got {counts}. "
            f"Pass a larger batch with both classes (e.g. PalindromeDataset(100))"
        )
    return pd.DataFrame.from_dict(
        {
            name: {"mean": s.mean().item(), "std": s.std().item(), "min": s.min().item(), "max": s.max().item()}
            for name, s in groups.items()
        },
        orient="index",
    )


def _ln_readout(model: HookedTransformer, toks: TokensLike) -> tuple[Tensor, Tensor, Tensor]:
    """Real logit difference, unnormalised attribution x . u and final LN scale at END, from one pass."""
    logits, cache = _run(model, toks, [FINAL_SCALE])
    real = logits[:, NOT_PALINDROME] - logits[:, PALINDROME]
    unnormalised = components_from_cache(model, cache)[:, :, -1].sum(0) @ _direction(model)
    return real.cpu(), unnormalised.cpu(), cache[FINAL_SCALE][:, -1, 0].cpu()


def ln_rescaling_error(model: HookedTransformer, toks: TokensLike) -> float:
    """Max |logit_0 - logit_1 - (x . u / final LN scale + b_U[0] - b_U[1])|: ~0 if the LN only rescales."""
    real, unnormalised, scale = _ln_readout(model, toks)
    bias = (model.b_U[NOT_PALINDROME] - model.b_U[PALINDROME]).item()
    return (real - (unnormalised / scale + bias)).abs().max().item()


def sign_agreement(model: HookedTransformer, toks: TokensLike) -> float:
    """Fraction of sequences where the unnormalised attribution x . u and the real logit difference agree in sign."""
    real, unnormalised, _ = _ln_readout(model, toks)
    return ((unnormalised > 0) == (real > 0)).float().mean().item()


# --- V-composition: H0.0's values through H1.0's OV circuit ------------------------------------


def _through_h10(
    model: HookedTransformer, toks: TokensLike, positions: Iterable[int], activation: str
) -> Float[Tensor, "batch pos"]:
    positions = check_positions(positions, range(SEQ_LEN))
    toks = validate_tokens(toks).to(model.cfg.device)
    name = get_act_name(activation, 0)
    # hook_v holds d_head-dimensional values (read out through W_O); hook_result is already d_model.
    readout = ov_circuit(model, 1, 0).AB @ _direction(model)
    if activation == "v":
        readout = model.W_O[0, 0] @ readout
    return (activations(model, toks, [name])[name][:, positions, 0] @ readout).cpu()


def h00_value_attribution(
    model: HookedTransformer, toks: TokensLike, positions: Iterable[int] = VALUE_POSITIONS
) -> Float[Tensor, "batch pos"]:
    """H0.0's value at each position, through W_O^{0.0} then H1.0's W_V W_O, dotted with the direction
    (pre-LayerNorm)."""
    return _through_h10(model, toks, positions, "v")


def h00_output_attribution(
    model: HookedTransformer, toks: TokensLike, positions: Iterable[int] = VALUE_POSITIONS
) -> Float[Tensor, "batch pos"]:
    """H0.0's output at each position, through H1.0's W_V W_O, dotted with the direction (layer-1 and final LN
    ignored)."""
    return _through_h10(model, toks, positions, "result")


def value_attribution_std(
    model: HookedTransformer, toks: TokensLike, positions: Iterable[int] = VALUE_POSITIONS
) -> float:
    """Std over sequences of ``h00_value_attribution``, averaged over positions."""
    attribution = h00_value_attribution(model, toks, positions)
    if attribution.shape[0] < 2:
        raise ValueError(f"value_attribution_std needs at least 2 sequences, got {attribution.shape[0]}")
    return attribution.std(0).mean().item()


def composed_ov_circuit(
    model: HookedTransformer,
    first: tuple[int, int] = (0, 0),
    second: tuple[int, int] = (1, 0),
) -> Float[Tensor, " pos"]:
    """W_pos W_OV^{first} W_OV^{second} (W_U[:,0] - W_U[:,1]): each position's vote, all LayerNorms ignored."""
    check_layer_head(model, *first)
    check_layer_head(model, *second)
    if first[0] >= second[0]:
        raise ValueError(f"the first head must sit in an earlier layer than the second, got {first} and {second}")
    composed = model.W_pos @ ov_circuit(model, *first) @ ov_circuit(model, *second)
    return (composed.AB @ _direction(model)).detach().cpu()


def weak_positions(circuit: Float[Tensor, " pos"], fraction: float = WEAK_FRACTION) -> tuple[int, ...]:
    """Value positions whose vote has the wrong sign (first half should be < 0, second > 0) or is weak.

    Weak means: smaller in magnitude than ``fraction`` times the median magnitude over its half.
    """
    circuit = check_floats("circuit", circuit).detach().float().cpu()
    if circuit.ndim != 1 or circuit.shape[0] != SEQ_LEN:
        raise ValueError(f"circuit must hold one value per position (shape ({SEQ_LEN},)), got {tuple(circuit.shape)}")
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must lie in [0, 1), got {fraction}")
    weak = []
    for half, sign in ((FIRST_HALF, -1.0), (SECOND_HALF, 1.0)):
        values = circuit[list(half)]
        threshold = fraction * values.abs().median()
        weak += [p for p, v in zip(half, values, strict=True) if sign * v <= 0 or v.abs() < threshold]
    return tuple(weak)


def by_half(
    values: Float[Tensor, "*batch pos"], positions: Iterable[int] = VALUE_POSITIONS
) -> dict[str, Float[Tensor, "*batch pos"]]:
    """Copies of per-position values with NaN outside each group: {"first half", "second half", "START/END"}."""
    positions = check_positions(positions, range(SEQ_LEN))
    values = check_floats("values", values).detach().float().cpu()
    if values.shape[-1] != len(positions):
        raise ValueError(f"values must end with one entry per position ({len(positions)}), got {tuple(values.shape)}")
    groups = {"first half": FIRST_HALF, "second half": SECOND_HALF, "START/END": (0, SEQ_LEN - 1)}
    out = {}
    for name, half in groups.items():
        keep = torch.tensor([p in half for p in positions])
        if keep.any():
            out[name] = values.masked_fill(~keep, float("nan"))
    return out


def split_by_mismatch(
    values: Float[Tensor, "batch pos"], toks: TokensLike, positions: Optional[Iterable[int]] = None
) -> dict[str, Tensor]:
    """Flatten per-position values at value ``positions`` (default: second half) into {"matched", "mismatched"}."""
    toks = validate_tokens(toks).cpu()
    positions = check_positions(SECOND_HALF if positions is None else positions)
    values = check_floats("values", values).detach().cpu()
    if values.shape != (toks.shape[0], len(positions)):
        raise ValueError(
            f"values must have shape (batch, len(positions)) = {(toks.shape[0], len(positions))}, "
            f"got {tuple(values.shape)}"
        )
    broken = mismatch_mask(toks)[:, positions]
    return {"matched": values[~broken], "mismatched": values[broken]}


def self_attention(
    model: HookedTransformer, toks: TokensLike, layer: int, head: int, positions: Iterable[int] = VALUE_POSITIONS
) -> Float[Tensor, "batch pos"]:
    """How much each position attends to itself in head ``layer.head``."""
    positions = check_positions(positions, range(SEQ_LEN))
    pattern = attention_pattern(model, toks, layer, head)
    return pattern.diagonal(dim1=-2, dim2=-1)[:, positions]


def format_table(table: pd.DataFrame, decimals: Union[int, dict[str, int]] = 1) -> str:
    """A table's numbers rounded for printing (per column if ``decimals`` is a dict), -0.0 shown as 0.0."""
    per_column = decimals if isinstance(decimals, dict) else {c: decimals for c in table.columns}
    unknown = sorted(set(per_column) - set(table.columns))
    if unknown:
        raise ValueError(f"decimals names columns {unknown} that the table lacks; it has {list(table.columns)}")
    for column, digits in per_column.items():
        check_int("decimals", digits, 0, f" (for column {column!r})")
    rounded = table.copy().astype(object)
    for column, digits in per_column.items():
        if pd.api.types.is_float_dtype(table[column]):
            rounded[column] = [f"{round(x, digits) + 0.0:.{digits}f}" for x in table[column]]
    return rounded.to_string()
