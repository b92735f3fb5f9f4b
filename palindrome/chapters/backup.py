"""The backup heads: chapter 9's measurements of what H0.1 and H1.1 do where a published claim says they matter.

Whole-dataset ablations hardly register H1.1 and disagree about H0.1 (zero ablation costs far
more than mean ablation). A published analysis claims both heads cover the mirror pair (1, 20).
This module tests that on *single-mismatch inputs*: random palindromes with only one mirror pair
broken. It holds the chapter's inputs (``pos20_mismatch_pairs``, and ``mean_ablation_reference``
whose per-position means mean-ablation substitutes), its ablation settings (scored with
``palindrome.ablation.score_table``), the zero-ablation mechanism (through the layer-1 LayerNorm
scale, ``palindrome.hooks.hold_scale``), the read-outs at position 20 (attention, each layer-1
head's direct effect on the logit difference, ``palindrome.attribution.direct_effect``, and what
H1.1 reads there split by residual component) and ``key_findings``, the named numbers the
chapter's verdicts rest on.

Unless a function says otherwise, "mean" ablation substitutes the mean over ``PalindromeDataset(500)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from palindrome.ablation import (
    Ablation,
    AblationScores,
    Ablator,
    Labels,
    check_ablations,
    end_logits_under,
    head_ablations,
    score_table,
    scores_from_logits,
)
from palindrome.attribution import direct_effect_from_cache, variability_table
from palindrome.chapters.blindspots import MECHANISM_BASES, MECHANISM_SEED
from palindrome.circuits import (
    layer0_scale,
    nonpal_direction,
    ov_circuit,
    positional_qk_circuit,
    same_token_is_row_minimum,
    same_token_score,
)
from palindrome.constants import END_POS, MIRROR, SECOND_HALF
from palindrome.data import PalindromeDataset
from palindrome.data_distribution import only_pair_probability
from palindrome.findings import Findings, join
from palindrome.hooks import FINAL_SCALE, activations, hold_scale, ln_scale_name
from palindrome.inputs import broken_and_bases, broken_at_each_position, check_second_half_position
from palindrome.metrics import accuracy_from_logits, miss_rates_by_position
from palindrome.path_patching import ALL as ALL_EDGES
from palindrome.path_patching import PathAblator
from palindrome.stats import mcnemar_exact
from palindrome.tokens import MAX_SIZE, TokensLike, check_int, check_layer_head, validate_labels, validate_tokens

# --- the chapter's fixed parameters (key_findings uses exactly these) -------------------------
TARGET_POSITION: int = 20
"""The second-half member of the mirror pair (1, 20) that the backup claim is about."""
HEADS_UNDER_TEST: tuple[tuple[int, int], ...] = ((0, 1), (1, 1))
"""The two heads outside the proposed circuit."""
REFERENCE_SIZE: int = 500
"""Mean-ablation substitutes means over ``PalindromeDataset(REFERENCE_SIZE)`` (seed 42, the original's batch)."""
TARGET_SIZE: int = 300
"""Random base palindromes in the targeted batch; the same bases are also broken at ``TARGET_POSITION``."""
TARGET_SEED: int = 0
GRID_BASES: int = MECHANISM_BASES
"""Random bases per position in the per-position sweep: the inputs chapter 8 explains its map with."""
GRID_SEED: int = MECHANISM_SEED
COMPONENT_NAMES: tuple[str, ...] = ("embed", "pos_embed", "H0.0", "H0.1")
"""Residual components a layer-1 head reads at a position (layer 0's output bias is constant and left out)."""


# --- inputs --------------------------------------------------------------------------------------


def mean_ablation_reference(size: int = REFERENCE_SIZE) -> PalindromeDataset:
    """The batch whose per-position means mean-ablation substitutes: ``PalindromeDataset(size)``."""
    return PalindromeDataset(check_int("size", size, 2))


def pos20_mismatch_pairs(
    n: int = TARGET_SIZE, seed: int = TARGET_SEED, position: int = TARGET_POSITION
) -> tuple[Int[Tensor, "n seq"], Int[Tensor, "n seq"]]:
    """The chapter's paired batches ``(pos-20 mismatches, their palindromes)``: ``inputs.broken_and_bases`` with its
    size, seed and position."""
    return broken_and_bases(n, seed, position)


def all_positions_but(position: int, seq_len: int = END_POS + 1) -> tuple[int, ...]:
    """Every position 0..seq_len-1 except ``position`` (to ablate a head everywhere but there)."""
    seq_len = check_int("seq_len", seq_len, 2, maximum=MAX_SIZE)
    position = check_int("position", position, 0, maximum=seq_len - 1)
    return tuple(p for p in range(seq_len) if p != position)


def whole_head_settings() -> dict[str, list[Ablation]]:
    """No ablation, and each head under test (and both) mean- or zero-ablated at every position."""
    settings: dict[str, list[Ablation]] = {"none": []}
    for kind in ("mean", "zero"):
        settings[f"H0.1 {kind}"] = head_ablations([(0, 1)], kind)
        settings[f"H1.1 {kind}"] = head_ablations([(1, 1)], kind)
        settings[f"both {kind}"] = head_ablations(HEADS_UNDER_TEST, kind)
    return settings


def targeted_settings(position: int = TARGET_POSITION) -> dict[str, list[Ablation]]:
    """H0.1's output ablated only at ``position`` or everywhere but there, by mean and by zero."""
    others = all_positions_but(check_second_half_position(position))
    settings: dict[str, list[Ablation]] = {}
    for kind in ("mean", "zero"):
        settings[f"H0.1 {kind} at {position} only"] = head_ablations([(0, 1)], kind, positions=[position])
        settings[f"H0.1 {kind} all but {position}"] = head_ablations([(0, 1)], kind, positions=others)
    return settings


def h11_input_settings(position: int = TARGET_POSITION) -> dict[str, list[Ablation]]:
    """H1.1's output at ``position`` only (never read), and its key or value mean-ablated at ``position`` or
    elsewhere."""
    others = all_positions_but(check_second_half_position(position))
    settings = {f"H1.1 output mean at {position} only": head_ablations([(1, 1)], "mean", positions=[position])}
    for act in ("k", "v"):
        settings[f"H1.1 {act} mean at {position} only"] = head_ablations([(1, 1)], "mean", act, [position])
        settings[f"H1.1 {act} mean all but {position}"] = head_ablations([(1, 1)], "mean", act, others)
    return settings


# --- accuracy per broken position ------------------------------------------------------------------


def per_position_table(
    ablator: Ablator,
    settings: Mapping[str, Sequence[Ablation]],
    n_per_position: int = GRID_BASES,
    seed: int = GRID_SEED,
) -> pd.DataFrame:
    """Accuracy on single-mismatch inputs broken at each position 11..20 (same random bases), per setting.

    Rows are setting names, columns the broken second-half positions, then "palindromes" (the
    unbroken bases): ``metrics.miss_rates_by_position`` as accuracies.
    """
    if not settings:
        raise ValueError("settings must be a non-empty mapping of name -> list of Ablation")
    bases, broken = broken_at_each_position(check_int("n_per_position", n_per_position, 1), seed)
    rows = {}
    for name, ablations in settings.items():
        ablations = check_ablations(ablations)

        def decide(toks: Tensor, ablations: list[Ablation] = ablations) -> Tensor:
            return (end_logits_under(ablator, toks, ablations).argmax(-1) == 1).cpu()

        rows[name] = miss_rates_by_position(decide, broken, bases, accuracy=True).tolist()
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(SECOND_HALF) + ["palindromes"])
    table.index.name = "ablation"
    return table


def per_position_accuracy(
    model: HookedTransformer,
    ablations: Sequence[Ablation],
    n_per_position: int = GRID_BASES,
    seed: int = GRID_SEED,
    reference_toks: Optional[TokensLike] = None,
) -> Float[Tensor, " position"]:
    """Accuracy on single mismatches at each second-half position 11..20 under ``ablations``."""
    reference = mean_ablation_reference().toks if reference_toks is None else reference_toks
    table = per_position_table(Ablator(model, reference), {"x": check_ablations(ablations)}, n_per_position, seed)
    return torch.tensor(table.loc["x", list(SECOND_HALF)].to_numpy(dtype=float), dtype=torch.float32)


# --- why zero and mean ablation disagree ---------------------------------------------------------


@dataclass(frozen=True)
class ScaleMechanism:
    """What an ablation does to layer 1: its LayerNorm scale, its END attention, and the logits without the scale
    change."""

    scale_ratio: Float[Tensor, " seq"]
    """Mean over inputs of (ablated / clean) layer-1 ln1 scale, per position."""
    end_attention_tv: dict[str, float]
    """Mean total-variation distance between clean and ablated END attention, per layer-1 head ("H1.0", "H1.1")."""
    clean: AblationScores
    ablated: AblationScores
    clean_scale: AblationScores
    """The ablated model with the layer-1 ln1 scale held at its clean value."""


def scale_mechanism(
    ablator: Ablator, toks: TokensLike, labels: Labels, settings: Mapping[str, Sequence[Ablation]]
) -> dict[str, ScaleMechanism]:
    """For each named setting, how its ablations act through the layer-1 LayerNorm scale (one clean pass, two per
    setting)."""
    if not settings:
        raise ValueError("settings must be a non-empty mapping of name -> list of Ablation")
    toks = validate_tokens(toks)
    labels = validate_labels(labels, toks.shape[0]).to(ablator.model.cfg.device)
    scale, pattern = ln_scale_name(1), get_act_name("pattern", 1)
    clean_logits, clean = ablator.run(toks, [], [scale, pattern])
    keep_clean = hold_scale(clean[scale])

    out = {}
    for name, ablations in settings.items():
        logits, ablated = ablator.run(toks, check_ablations(ablations), [scale, pattern])
        fixed_logits, _ = ablator.run(toks, ablations, extra_hooks=[(scale, keep_clean)])
        tv = 0.5 * (clean[pattern][:, :, -1] - ablated[pattern][:, :, -1]).abs().sum(-1).mean(0)
        out[name] = ScaleMechanism(
            scale_ratio=(ablated[scale] / clean[scale])[:, :, 0, 0].mean(0).cpu(),
            end_attention_tv={f"H1.{h}": tv[h].item() for h in range(tv.shape[0])},
            clean=scores_from_logits(clean_logits, labels),
            ablated=scores_from_logits(logits, labels),
            clean_scale=scores_from_logits(fixed_logits, labels),
        )
    return out


# --- read-outs -----------------------------------------------------------------------------------


def _votes(model: HookedTransformer, cache: Mapping[str, Tensor], position: int, head: int) -> dict[str, Tensor]:
    result0 = cache[get_act_name("result", 0)][:, position]
    embed = cache[get_act_name("embed")][:, position]
    parts = {
        "embed": embed,
        "pos_embed": cache[get_act_name("pos_embed")][:, position].expand_as(embed),
        "H0.0": result0[:, 0],
        "H0.1": result0[:, 1],
    }
    scale_in = cache[ln_scale_name(1)][:, position, head]  # [batch, 1]
    scale_out = cache[FINAL_SCALE][:, -1]  # [batch, 1]
    readout = ov_circuit(model, 1, head).AB @ nonpal_direction(model)
    # LayerNorm centres each vector before dividing by the scale; the processed weights are centred already.
    return {
        name: ((((x - x.mean(-1, keepdim=True)) / scale_in) @ readout) / scale_out[:, 0]).cpu()
        for name, x in parts.items()
    }


def value_votes(
    model: HookedTransformer, toks: TokensLike, position: int, head: int = 1
) -> dict[str, Float[Tensor, " batch"]]:
    """Per residual component at ``position``: the logit difference layer-1 head ``head`` adds per unit of END attention
    there.

    vote(c) = LN1(c) @ W_OV^{1.head} @ (W_U[:,0] - W_U[:,1]) / (final LN scale at END), with
    LN1(c) the component centred and divided by the layer-1 ln1 scale at ``position``. Positive
    votes push towards "not palindrome". Keys: ``COMPONENT_NAMES``.
    """
    check_layer_head(model, 1, head)
    position = check_int("position", position, 0, maximum=model.cfg.n_ctx - 1)
    names = [get_act_name("embed"), get_act_name("pos_embed"), get_act_name("result", 0), ln_scale_name(1), FINAL_SCALE]
    return _votes(model, activations(model, toks, names), position, head)


def target_readouts(model: HookedTransformer, toks: TokensLike, position: int = TARGET_POSITION) -> pd.DataFrame:
    """Per sequence, from one forward pass: the attention, attribution and value votes the chapter reads at
    ``position``.

    Columns: layer-0 attention from ``position`` to its mirror and to itself (H0.0, H0.1), END's
    attention to ``position`` (H1.0, H1.1), the direct effect on the logit difference
    (``attribution.direct_effect``; columns "H1.h direct effect") of H1.0 and H1.1, and H1.1's
    value vote per residual component at ``position``.
    """
    position = check_second_half_position(position)
    mirror = MIRROR[position]
    names = [
        get_act_name("embed"),
        get_act_name("pos_embed"),
        get_act_name("result", 0),
        get_act_name("result", 1),
        get_act_name("pattern", 0),
        get_act_name("pattern", 1),
        ln_scale_name(1),
        FINAL_SCALE,
    ]
    cache = activations(model, toks, names)
    p0, p1 = cache[names[4]].cpu(), cache[names[5]].cpu()
    columns = {}
    for head in range(model.cfg.n_heads):
        columns[f"H0.{head} {position}->{mirror}"] = p0[:, head, position, mirror]
        columns[f"H0.{head} {position}->{position}"] = p0[:, head, position, position]
    for head in range(model.cfg.n_heads):
        columns[f"H1.{head} END->{position}"] = p1[:, head, -1, position]
        columns[f"H1.{head} direct effect"] = direct_effect_from_cache(model, cache, 1, head)
    for name, vote in _votes(model, cache, position, 1).items():
        columns[f"H1.1 vote {name}"] = vote
    return pd.DataFrame({k: v.numpy() for k, v in columns.items()})


def readout_summary(
    model: HookedTransformer, batches: Mapping[str, TokensLike], position: int = TARGET_POSITION
) -> pd.DataFrame:
    """Means of ``target_readouts`` per batch: rows read-outs, columns batch names."""
    if not batches:
        raise ValueError("batches must be a non-empty mapping of name -> tokens")
    return pd.DataFrame({name: target_readouts(model, toks, position).mean() for name, toks in batches.items()})


def h01_qk_numbers(model: HookedTransformer, scale: float, position: int = TARGET_POSITION) -> dict[str, float]:
    """H0.1's positional attention from ``position`` (to its mirror, itself, the largest other key), its
    largest positional attention from another second-half position to that position's mirror, and
    both layer-0 same-token scores."""
    position = check_second_half_position(position)
    mirror = MIRROR[position]
    pattern = positional_qk_circuit(model, 0, 1, scale)
    row = pattern[position]
    others = [p for p in range(position) if p != mirror]
    return {
        f"H0.1 positional {position}->{mirror}": row[mirror].item(),
        f"H0.1 positional {position}->{position}": row[position].item(),
        f"H0.1 positional {position}->largest other": row[others].max().item(),
        "H0.1 positional mirror elsewhere max": max(pattern[p, MIRROR[p]].item() for p in SECOND_HALF if p != position),
        "H0.0 same-token score": same_token_score(model, 0, 0, scale),
        "H0.1 same-token score": same_token_score(model, 0, 1, scale),
        "H0.1 own token lowest": same_token_is_row_minimum(model, 0, 1, scale),
    }


EDGE_SETS: dict[str, tuple[str, ...]] = {
    "H0.1 -> H1.1 key": ("0.1->1.1.k",),
    "H0.1 -> H1.1 value": ("0.1->1.1.v",),
    "H0.1 -> H1.1 key and value": ("0.1->1.1.k", "0.1->1.1.v"),
    "H0.0 -> H1.1 key and value": ("0.0->1.1.k", "0.0->1.1.v"),
    "H0.1 -> H1.0 key and value": ("0.1->1.0.k", "0.1->1.0.v"),
}
"""Edges into H1.1 from each layer-0 head, and H0.1's into H1.0 (the other reader of position 20),
mean-ablated in ``edge_ablation_accuracy``."""


def edge_ablation_accuracy(
    model: HookedTransformer,
    toks: TokensLike,
    labels: Labels,
    edge_sets: Mapping[str, Sequence[str]] = EDGE_SETS,
    reference_toks: Optional[TokensLike] = None,
) -> pd.Series:
    """Accuracy with only the named edges (such as "0.1->1.1.k") mean-ablated, per set (``path_patching``)."""
    if not edge_sets:
        raise ValueError("edge_sets must be a non-empty mapping of name -> list of edge names")
    for name, edges in edge_sets.items():
        unknown = [e for e in edges if e not in ALL_EDGES]
        if isinstance(edges, str) or unknown or not edges:
            raise ValueError(
                f"edge set {name!r} must be a non-empty list of edge names such as '0.1->1.1.k', got {edges!r}"
            )
    toks = validate_tokens(toks)
    labels = validate_labels(labels, toks.shape[0])
    reference = mean_ablation_reference().toks if reference_toks is None else reference_toks
    ablator = PathAblator(model, toks, "mean", reference)
    return pd.Series(
        {
            name: accuracy_from_logits(ablator.logits(ALL_EDGES - set(edges)), labels)
            for name, edges in edge_sets.items()
        },
        name="accuracy",
    )


# --- the chapter's key numbers -------------------------------------------------------------------


@dataclass
class BackupResults:
    """Everything the chapter measures, as computed by ``measure`` (the notebook shows each piece)."""

    whole: pd.DataFrame
    targeted: pd.DataFrame
    h11_inputs: pd.DataFrame
    per_position: pd.DataFrame
    mechanism: dict[str, ScaleMechanism]
    variability: pd.DataFrame
    readouts: pd.DataFrame
    edges: pd.Series
    """Accuracy on position-20 mismatches with only some edges into H1.1 mean-ablated (``EDGE_SETS``)."""
    qk: dict[str, float]
    """``h01_qk_numbers``."""


PER_POSITION_SETTINGS: tuple[str, ...] = ("none", "H0.1 mean", "H1.1 mean", "H0.1 zero", "H1.1 zero")
"""Whole-head settings the chapter sweeps per broken position."""
KEY_PER_POSITION: tuple[str, ...] = ("none", "H1.1 mean")
"""The subset ``key_findings`` sweeps per position (enough for its verdicts, and faster)."""
KEY_WHOLE: tuple[str, ...] = ("none", "H0.1 mean", "H1.1 mean", "H0.1 zero", "H1.1 zero")
"""The whole-head settings ``key_findings`` scores (the chapter also ablates both heads together)."""


def measure(
    model: HookedTransformer,
    per_position_settings: Sequence[str] = PER_POSITION_SETTINGS,
    whole_settings: Optional[Sequence[str]] = None,
) -> BackupResults:
    """Run every measurement of the chapter with its fixed parameters (the notebook runs the same steps one by one).

    ``whole_settings`` and ``per_position_settings`` name the ``whole_head_settings`` to score on
    the three batches (None: all) and per broken position.
    """
    reference = mean_ablation_reference()
    ablator = Ablator(model, reference.toks)
    broken, bases = pos20_mismatch_pairs()
    zeros, ones = torch.zeros(broken.shape[0], dtype=torch.long), torch.ones(bases.shape[0], dtype=torch.long)
    batches = {
        "pos-20 mismatches": (broken, zeros),
        "palindromes": (bases, ones),
        "dataset": (reference.toks, reference.is_palindrome),
    }
    whole = whole_head_settings()
    scored = list(whole) if whole_settings is None else list(whole_settings)
    for name, chosen in (("per_position_settings", per_position_settings), ("whole_settings", scored)):
        unknown = [n for n in chosen if n not in whole]
        if unknown:
            raise ValueError(f"{name} must name whole-head settings {list(whole)}, got {unknown}")
    return BackupResults(
        whole=score_table(ablator, batches, {n: whole[n] for n in scored}),
        targeted=score_table(ablator, batches, targeted_settings()),
        h11_inputs=score_table(ablator, {"pos-20 mismatches": (broken, zeros)}, h11_input_settings()),
        per_position=per_position_table(ablator, {n: whole[n] for n in per_position_settings}),
        mechanism=scale_mechanism(
            ablator, reference.toks, reference.is_palindrome, {k: whole[k] for k in ("H0.1 mean", "H0.1 zero")}
        ),
        variability=variability_table(model, reference.toks),
        readouts=readout_summary(model, {"palindromes": bases, "pos-20 mismatches": broken}),
        edges=edge_ablation_accuracy(model, broken, zeros, EDGE_SETS, reference.toks),
        qk=h01_qk_numbers(model, layer0_scale(model, reference.toks)),
    )


def findings_from(results: BackupResults) -> dict[str, float]:
    """The named numbers the chapter's verdicts rest on, from ``measure``'s results (keys: ``findings.join`` of the
    labels)."""
    out: dict[str, float] = {}
    for table in (results.whole, results.targeted, results.h11_inputs):
        for setting, row in table.iterrows():
            for (batch, metric), value in row.items():
                if metric != "loss" or batch == "dataset":
                    out[join(setting, batch, metric)] = float(value)
    for setting, row in results.per_position.iterrows():
        for position, value in row.items():
            out[join(setting, f"per position {position}")] = float(value)
    for setting, m in results.mechanism.items():
        out[join(setting, "ln1 scale ratio")] = m.scale_ratio[1:].mean().item()
        for head, tv in m.end_attention_tv.items():
            out[join(setting, f"{head} END attention tv")] = tv
        out[join(f"{setting} clean scale", "dataset", "accuracy")] = m.clean_scale.accuracy
        out[join(f"{setting} clean scale", "dataset", "loss")] = m.clean_scale.loss
    for head, value in results.variability.loc["pooled 1..END"].items():
        out[join(f"{head} variability")] = float(value)
    for readout, row in results.readouts.iterrows():
        for batch, value in row.items():
            out[join(readout, batch)] = float(value)
    for name, value in results.edges.items():
        out[join(f"edges {name} mean", "pos-20 mismatches", "accuracy")] = float(value)
    for name, value in results.qk.items():
        out[join(name)] = value
    out["only_pair_20_fraction"] = only_pair_probability(TARGET_POSITION)
    return out


KEYS: frozenset[str] = frozenset(
    {
        "none__pos_20_mismatches__accuracy",
        "none__palindromes__accuracy",
        "none__dataset__accuracy",
        "none__dataset__loss",
        "none__per_position_20",
        "h0_1_mean__pos_20_mismatches__accuracy",
        "h0_1_mean__palindromes__accuracy",
        "h0_1_mean__dataset__loss",
        "h0_1_zero__pos_20_mismatches__accuracy",
        "h0_1_zero__palindromes__accuracy",
        "h0_1_zero__dataset__accuracy",
        "h0_1_zero__dataset__loss",
        "h1_1_mean__pos_20_mismatches__accuracy",
        "h1_1_mean__palindromes__accuracy",
        "h1_1_mean__dataset__loss",
        "h1_1_mean__per_position_20",
        "h1_1_zero__pos_20_mismatches__accuracy",
        "h0_1_mean_at_20_only__pos_20_mismatches__accuracy",
        "h0_1_mean_at_20_only__dataset__loss",
        "h0_1_mean_all_but_20__pos_20_mismatches__accuracy",
        "h0_1_mean_all_but_20__dataset__loss",
        "h0_1_zero_at_20_only__pos_20_mismatches__accuracy",
        "h0_1_zero_at_20_only__palindromes__accuracy",
        "h0_1_zero_all_but_20__palindromes__accuracy",
        "h1_1_k_mean_at_20_only__pos_20_mismatches__accuracy",
        "h1_1_v_mean_at_20_only__pos_20_mismatches__accuracy",
        "h0_1_mean__ln1_scale_ratio",
        "h0_1_zero__ln1_scale_ratio",
        "h0_1_zero__h1_0_end_attention_tv",
        "h0_1_mean_clean_scale__dataset__loss",
        "h0_1_zero_clean_scale__dataset__accuracy",
        "h0_1_zero_clean_scale__dataset__loss",
        "h0_0_variability",
        "h0_1_variability",
        "h0_0_20_to_1__palindromes",
        "h0_1_20_to_1__palindromes",
        "h0_1_20_to_1__pos_20_mismatches",
        "h1_0_end_to_20__pos_20_mismatches",
        "h1_1_end_to_20__palindromes",
        "h1_1_end_to_20__pos_20_mismatches",
        "h1_1_direct_effect__palindromes",
        "h1_1_direct_effect__pos_20_mismatches",
        "h1_1_vote_h0_0__palindromes",
        "h1_1_vote_h0_1__palindromes",
        "h1_1_vote_h0_1__pos_20_mismatches",
        "edges_h0_0_to_h1_1_key_and_value_mean__pos_20_mismatches__accuracy",
        "edges_h0_1_to_h1_0_key_and_value_mean__pos_20_mismatches__accuracy",
        "edges_h0_1_to_h1_1_key_and_value_mean__pos_20_mismatches__accuracy",
        "only_pair_20_fraction",
    }
)
"""The finding keys the book, the reconciliation and the tests cite (``key_findings`` checks it computes each)."""


def key_findings(model: HookedTransformer) -> Findings:
    """This chapter's key numbers (fixed seeds, the chapter's parameters), as floats under the declared ``KEYS``."""
    return Findings("backup", findings_from(measure(model, KEY_PER_POSITION, KEY_WHOLE)), KEYS)


# --- the pos-20 batch with the layer-1 scale held (referee of issue 23) -------------------------------


POS20_SCALE_SETTINGS: tuple[str, ...] = (
    "H0.1 mean",
    "H0.1 zero",
    "H0.1 mean at 20 only",
    "H0.1 mean all but 20",
    "H0.1 zero at 20 only",
)
"""H0.1 ablations scored on the pos-20 batch with and without the layer-1 LayerNorm scale held."""


def held_scale_table(
    model: HookedTransformer,
    ablator: Ablator,
    toks: TokensLike,
    labels: Labels,
    settings: Mapping[str, Sequence[Ablation]],
    edge_sets: Mapping[str, Sequence[str]] = EDGE_SETS,
    reference_toks: Optional[TokensLike] = None,
) -> pd.DataFrame:
    """Accuracy under each head ablation and each mean-ablated edge set, as measured and with the layer-1 scale held
    at each input's clean value, with paired counts against the clean model (right only clean, right only ablated)
    and the exact McNemar p; ``scale at 20`` is the LayerNorm scale of H1.1's value input at position 20 over its
    clean value."""
    if not settings or not edge_sets:
        raise ValueError("settings and edge_sets must be non-empty mappings of names to ablations / edge names")
    toks = validate_tokens(toks)
    labels = validate_labels(labels, toks.shape[0]).cpu()
    name = ln_scale_name(1)
    clean_logits, clean = ablator.run(toks, [], [name])
    held = [(name, hold_scale(clean[name]))]
    right = clean_logits.argmax(-1).cpu() == labels
    reference = mean_ablation_reference().toks if reference_toks is None else reference_toks
    paths = PathAblator(model, toks, "mean", reference)
    rows = {}

    def row(measured: Tensor, fixed: Tensor, ratio: float) -> dict[str, float]:
        out = {"scale at 20": ratio}
        for label, logits in (("", measured), (" held", fixed)):
            ok = logits.argmax(-1).cpu() == labels
            a, b = int((right & ~ok).sum()), int((~right & ok).sum())
            out |= {f"acc{label}": ok.float().mean().item(), f"only clean{label}": a, f"only ablated{label}": b}
            out[f"p{label}"] = mcnemar_exact(a, b)
        return out

    for setting, ablations in settings.items():
        logits, cache = ablator.run(toks, check_ablations(ablations), [name])
        fixed, _ = ablator.run(toks, ablations, extra_hooks=held)
        ratio = (cache[name] / clean[name])[:, TARGET_POSITION, 1, 0].mean().item()
        rows[setting] = row(logits, fixed, ratio)
    for setting, edges in edge_sets.items():
        keep, seen = ALL_EDGES - set(edges), []

        def record(value: Tensor, hook: object, store: list[Tensor] = seen) -> Tensor:
            store.append(value.detach().clone())
            return value

        logits = paths.logits(keep, extra_hooks=[(name, record)])
        ratio = (seen[-1] / clean[name])[:, TARGET_POSITION, 1, 0].mean().item()
        rows[f"edges {setting}"] = row(logits, paths.logits(keep, extra_hooks=held), ratio)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "ablation"
    return table
