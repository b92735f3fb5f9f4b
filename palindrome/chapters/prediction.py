"""Chapter 12's key numbers: the named findings of the explanation's levels and of the edits, and the one-page summary.

Method. The levels and their reference statistics are in ``explanation``, the input sets and the
scoring of every level on them in ``level_calls``, the mismatch directions and their edits in
``steering``; this module joins their results into the chapter's ``Findings`` (``findings_from``, from
already computed results, or ``key_findings``, which computes them with the chapter's fixed inputs and
seeds) under the declared ``KEYS``, and prints the algorithm on one page (``summary_table``).
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from palindrome.chapters.explanation import (
    CIRCUIT_LEVELS,
    LEVELS,
    POSITION_SCALE,
    REFINEMENTS,
    WELL_CHECKED,
    Explanation,
    approximation_costs,
    check_costs,
    choose_refinement,
    layer0_scale_table,
    occurring_scale_range,
    reference_stats,
)
from palindrome.chapters.level_calls import (
    AIMS,
    INPUT_SETS,
    OVERLAP_POSITIONS,
    OVERLAP_SETS,
    PAIRED,
    LevelCalls,
    added_errors,
    aim_table,
    class_correlation,
    decoy_catch_rate,
    development_overlaps,
    fresh_overlaps,
    gap_closed,
    input_sets,
    miss_overlap,
    own_errors,
    paired_comparison,
    score,
    set_key,
)
from palindrome.chapters.steering import (
    HEAD_EDITS,
    HELD_PARTS,
    RANDOM_DRAWS,
    STRENGTHS,
    MismatchDirections,
    cosine_matrix,
    difference_vectors,
    head_edit_table,
    mismatch_directions,
    projection_table,
    random_control_table,
    random_edit_effects,
    random_flip_rates,
    shared_direction,
    steering_table,
    subspace_control_table,
)
from palindrome.constants import N_HEADS, SECOND_HALF
from palindrome.fast import check_architecture
from palindrome.findings import Findings, slug
from palindrome.tokens import check_floats, check_type

COMPARED: tuple[int, ...] = (17, 19, 20)
"""The positions whose shifts are compared with the block of ``WELL_CHECKED`` positions."""


def direction_stats(directions: MismatchDirections) -> dict[str, float]:
    """The shared direction's length, cosines within the well-checked block and from ``COMPARED`` to it, per-input
    change sizes."""
    check_type("directions", directions, MismatchDirections, "steering.mismatch_directions(model)")
    shared = shared_direction(directions)
    out = {"shared_length": shared.norm().item()}
    block = [directions.positions.index(p) for p in WELL_CHECKED]
    cos_all = directions.cosine()
    within = cos_all[block][:, block]
    out["shift_cos_block_min"] = within[~torch.eye(len(block), dtype=torch.bool)].min().item()
    for p in COMPARED:
        to_block = cos_all[directions.positions.index(p), block]
        out[f"shift_cos_to_block_min_pos_{p}"], out[f"shift_cos_to_block_max_pos_{p}"] = (
            to_block.min().item(),
            to_block.max().item(),
        )
    to_shared = F.normalize(directions.shift, dim=-1) @ F.normalize(shared, dim=0)
    for i, p in enumerate(directions.positions):
        out[f"change_size_pos_{p}"] = directions.change_size[i].item()
        out[f"shift_cos_to_shared_pos_{p}"] = to_shared[i].item()
    return out


def findings_from(
    expl: Explanation,
    costs: pd.Series,
    scores: LevelCalls,
    directions: MismatchDirections,
    differences: Float[Tensor, "position d_model"],
    steering: pd.DataFrame,
    overlaps: Mapping[str, int],
    layer0_table: Float[Tensor, "seq vocab"],
    fresh: Mapping[str, int],
    random_table: pd.DataFrame,
    head_table: pd.DataFrame,
    subspace_table: pd.DataFrame,
) -> dict[str, float]:
    """The named numbers of the chapter, from already computed results (``fresh``: ``fresh_overlaps``;
    ``subspace_table``: ``subspace_control_table``)."""
    check_type("expl", expl, Explanation, "explanation.explanation(model)")
    check_costs(costs)
    check_type("scores", scores, LevelCalls, "level_calls.score(expl)")
    check_type("directions", directions, MismatchDirections, "steering.mismatch_directions(model)")
    differences, layer0_table = check_floats("differences", differences), check_floats("layer0_table", layer0_table)
    check_type("steering", steering, pd.DataFrame, "steering.steering_table(model, directions)")
    if not set(directions.positions) <= set(steering.index):
        raise ValueError(
            f"steering must have a row per position {directions.positions} (steering_table), got {list(steering.index)}"
        )
    for arg, value, source in (("overlaps", overlaps, "development_overlaps()"), ("fresh", fresh, "fresh_overlaps()")):
        if not isinstance(value, Mapping):
            raise ValueError(f"{arg} must be a dict of set names to counts ({source}), got {type(value).__name__}")
    out: dict[str, float] = {f"refined_{r}": float(r in expl.refined) for r in REFINEMENTS}
    out |= {f"fresh_overlap_{slug(k)}": float(v) for k, v in fresh.items()}
    out |= _comparison_findings(scores) | _edit_findings(random_table, head_table)
    out |= {f"dev_overlap_set_{set_key(k)}": float(v) for k, v in overlaps.items()}
    out |= {
        "layer0_scale_table_min": layer0_table.min().item(),
        "layer0_scale_table_max": layer0_table.max().item(),
        "layer0_scale_table_mean": layer0_table.mean().item(),
        "layer0_position_scale_min": expl.stats.layer0_scale_by_position.min().item(),
        "layer0_position_scale_max": expl.stats.layer0_scale_by_position.max().item(),
        "model_catches_decoys": decoy_catch_rate(scores),
    }
    out |= direction_stats(directions) | _referee_findings(scores, directions, layer0_table, subspace_table)
    out |= {f"dev_disagreement_{slug(k)}": float(v) for k, v in costs.items()}
    agreement, corr, misses = scores.agreement(), scores.correlation(), scores.miss_rates()
    for level in LEVELS:
        for name in INPUT_SETS:
            out[f"agreement_{slug(level)}_set_{set_key(name)}"] = float(agreement.loc[level, name])
    for level in CIRCUIT_LEVELS:
        for name in corr.columns:
            out[f"correlation_{slug(level)}_set_{set_key(name)}"] = float(corr.loc[level, name])
    for prefix, table in (("miss", misses), ("miss_fresh", scores.miss_rates(INPUT_SETS[5]))):
        for row in table.index:
            for p in table.columns:
                out[f"{prefix}_{slug(row)}_pos_{p}"] = float(table.loc[row, p])
    cos, dv_cos = directions.cosine(), cosine_matrix(differences)
    for i, p in enumerate(directions.positions):
        out[f"shift_length_pos_{p}"] = directions.shift[i].norm().item()
        out[f"shift_cos_to_11_pos_{p}"] = cos[0, i].item()
        out[f"difference_vector_cos_to_11_pos_{p}"] = dv_cos[0, i].item()
        for column in steering.columns:
            out[f"steer_{slug(column)}_pos_{p}"] = float(steering.loc[p, column])
    return out


def _comparison_findings(scores: LevelCalls) -> dict[str, float]:
    """The model's own errors each level reproduces (every set), and ``miss_overlap`` at 20 and the well-checked
    pairs."""
    check_type("scores", scores, LevelCalls, "level_calls.score(expl)")
    errors = own_errors(scores)
    out = {
        f"own_errors_{slug(row)}_set_{set_key(name)}": float(errors.loc[row, name])
        for row in errors.index
        for name in errors.columns
    }
    for name in OVERLAP_SETS:
        for label, positions in OVERLAP_POSITIONS.items():
            table = miss_overlap(scores, positions, name=name)
            for level in table.index:
                for column in table.columns:
                    key = f"overlap_{set_key(name)}_{label}_{slug(level)}_{slug(column)}"
                    out[key] = float(table.loc[level, column])
    return out


def _referee_findings(
    scores: LevelCalls,
    directions: MismatchDirections,
    layer0_table: Float[Tensor, "seq vocab"],
    subspace_table: pd.DataFrame,
) -> dict[str, float]:
    """Errors added, paired tests, the position scale's share of the gap, within-class correlations, aims, occurring
    layer-0 scales, per-input projections and the random control inside H0.0's output space."""
    check_type("subspace_table", subspace_table, pd.DataFrame, "steering.subspace_control_table(effects)")
    if any(p not in subspace_table.index for p in SECOND_HALF) or list(subspace_table.columns) != list(
        _SUBSPACE_COLUMNS
    ):
        raise ValueError("subspace_table must be subspace_control_table(effects) with a row per second-half position")
    out: dict[str, float] = {}
    added = added_errors(scores)
    out |= {f"added_errors_{slug(lv)}_set_{set_key(n)}": float(added.loc[lv, n]) for lv in LEVELS for n in INPUT_SETS}
    for name in OVERLAP_SETS:
        table = paired_comparison(scores, name)
        out |= {
            f"paired_{set_key(name)}_{label}_{slug(c)}": float(table.loc[label, c])
            for label in table.index
            for c in table.columns
        }
    for measure, table in (("agreement", scores.agreement()), ("correlation", scores.correlation())):
        out |= {f"gap_closed_{measure}_set_{set_key(n)}": float(v) for n, v in gap_closed(table).items()}
    within = class_correlation(scores)
    out |= {f"class_correlation_{slug(lv)}_{slug(c)}": float(within.loc[lv, c]) for lv in within.index for c in within}
    aims = aim_table(scores)
    out |= {f"aim_{slug(lv)}_set_{k}_{slug(a)}": float(aims.loc[lv, (k, a)]) for lv in aims.index for k, a in aims}
    out["layer0_occurring_scale_min"], out["layer0_occurring_scale_max"] = occurring_scale_range(layer0_table)
    projections = projection_table(directions)
    out |= {
        f"projection_{slug(c)}_pos_{p}": float(projections.loc[p, c]) for p in projections.index for c in projections
    }
    out |= {f"subspace_{slug(c)}_pos_{p}": float(subspace_table.loc[p, c]) for p in SECOND_HALF for c in subspace_table}
    return out


def _edit_findings(random_table: pd.DataFrame, head_table: pd.DataFrame) -> dict[str, float]:
    """The random-direction control (``random_control_table``) and the edits with one layer-1 head held clean
    (``head_edit_table``), per position."""
    check_type("random_table", random_table, pd.DataFrame, "steering.random_control_table(steering, rates)")
    check_type("head_table", head_table, pd.DataFrame, "steering.head_edit_table(model, directions)")
    missing = [p for p in SECOND_HALF if p not in random_table.index or p not in head_table.index]
    if missing or not isinstance(head_table.columns, pd.MultiIndex):
        raise ValueError(
            "random_table and head_table must have a row per second-half position (random_control_table, "
            f"head_edit_table); missing {missing}"
        )
    out = {}
    for p in SECOND_HALF:
        out |= {f"random_{slug(c)}_pos_{p}": float(random_table.loc[p, c]) for c in random_table.columns}
        out |= {
            f"head_{slug(edit)}_{slug(held)}_pos_{p}": float(head_table.loc[p, (edit, held)])
            for edit, held in head_table.columns
        }
    return out


def key_findings(model: HookedTransformer) -> Findings:
    """The chapter's key numbers (its fixed inputs and seeds), under the declared ``KEYS``."""
    stats = reference_stats(check_architecture(model, classifier_shape=True))
    costs = approximation_costs(model, stats)
    expl = Explanation(model, stats, choose_refinement(costs))
    directions = mismatch_directions(model)
    sets = input_sets()
    steering = steering_table(model, directions, progress=False)
    return Findings(
        "prediction",
        findings_from(
            expl,
            costs,
            score(expl, sets, progress=False),
            directions,
            difference_vectors(model, stats),
            steering,
            development_overlaps(sets),
            layer0_scale_table(model),
            fresh_overlaps(sets),
            random_control_table(steering, random_flip_rates(model, directions)),
            head_edit_table(model, directions),
            subspace_control_table(random_edit_effects(model, directions)),
        ),
        KEYS,
    )


_STEER_COLUMNS = (
    "palindromes called non-palindromes, no edit",
    "mismatches missed, no edit",
    *(f"{k} {s:g}" for s in STRENGTHS for k in ("add", "remove")),
    "add shared 1",
    "clean projection std",
)

_RANDOM_COLUMNS = (
    "shared",
    "random min",
    "random median",
    "random 95th percentile",
    "random max",
    "draws flipping at least as many",
)

_PAIRED_COLUMNS = (
    f"only {PAIRED[0]} agrees",
    f"only {PAIRED[1]} agrees",
    "p (exact McNemar)",
    "model misses",
    f"{PAIRED[1]} reproduces",
    "by chance",
)

_PROJECTION_COLUMNS = (
    "projection mean",
    "projection median",
    "share >= half the edit",
    "share >= the edit",
    "mean cosine",
)

_SUBSPACE_COLUMNS = (
    "shared flips",
    "random 95th percentile",
    "random max",
    "draws flipping as many",
    "shared logit fall",
    "random fall 95th percentile",
    "random fall max",
    "draws falling as far",
)

KEYS: frozenset[str] = frozenset(
    [f"refined_{r}" for r in REFINEMENTS]
    + [f"dev_overlap_set_{set_key(n)}" for n in INPUT_SETS]
    + [
        "layer0_scale_table_min",
        "layer0_scale_table_max",
        "layer0_scale_table_mean",
        "layer0_position_scale_min",
        "layer0_position_scale_max",
        "model_catches_decoys",
        "shared_length",
        "shift_cos_block_min",
    ]
    + [f"shift_cos_to_block_{m}_pos_{p}" for m in ("min", "max") for p in COMPARED]
    + [f"dev_disagreement_{slug(k)}" for k in ("none", *REFINEMENTS, POSITION_SCALE, "all")]
    + [f"agreement_{slug(lv)}_set_{set_key(n)}" for lv in LEVELS for n in INPUT_SETS]
    + [f"correlation_{slug(lv)}_set_{set_key(n)}" for lv in CIRCUIT_LEVELS for n in INPUT_SETS if n != INPUT_SETS[4]]
    + [f"{m}_{slug(r)}_pos_{p}" for m in ("miss", "miss_fresh") for r in ("model",) + LEVELS[1:] for p in SECOND_HALF]
    + [f"own_errors_{slug(r)}_set_{set_key(n)}" for r in ("model errors",) + LEVELS for n in INPUT_SETS]
    + [
        f"overlap_{set_key(n)}_{label}_{slug(lv)}_{slug(c)}"
        for n in OVERLAP_SETS
        for label in OVERLAP_POSITIONS
        for lv in LEVELS[1:]
        for c in ("model misses", "reproduced", "added")
    ]
    + [f"fresh_overlap_{slug(n)}" for n in ("reference batch", "development inputs") + INPUT_SETS[:5]]
    + [f"random_{slug(c)}_pos_{p}" for c in _RANDOM_COLUMNS for p in SECOND_HALF]
    + [
        f"head_{slug(e)}_{slug(h)}_pos_{p}"
        for e in HEAD_EDITS
        for h in ("none",) + tuple(f"H1.{i} {part} clean" for i in range(N_HEADS) for part in HELD_PARTS)
        for p in SECOND_HALF
    ]
    + [
        f"{k}_pos_{p}"
        for k in (
            "shift_length",
            "change_size",
            "shift_cos_to_11",
            "shift_cos_to_shared",
            "difference_vector_cos_to_11",
        )
        for p in SECOND_HALF
    ]
    + [f"steer_{slug(c)}_pos_{p}" for c in _STEER_COLUMNS for p in SECOND_HALF]
    + [f"added_errors_{slug(lv)}_set_{set_key(n)}" for lv in LEVELS for n in INPUT_SETS]
    + [
        f"paired_{set_key(n)}_{label}_{slug(c)}"
        for n in OVERLAP_SETS
        for label in OVERLAP_POSITIONS
        for c in _PAIRED_COLUMNS
    ]
    + [f"gap_closed_agreement_set_{set_key(n)}" for n in INPUT_SETS]
    + [f"gap_closed_correlation_set_{set_key(n)}" for n in INPUT_SETS if n != INPUT_SETS[4]]
    + [f"class_correlation_{slug(lv)}_{c}" for lv in CIRCUIT_LEVELS for c in ("palindromes", "non_palindromes")]
    + [f"aim_{slug(lv)}_set_{set_key(n)}_{slug(a)}" for lv in CIRCUIT_LEVELS for n in OVERLAP_SETS for a in AIMS]
    + ["layer0_occurring_scale_min", "layer0_occurring_scale_max"]
    + [f"projection_{slug(c)}_pos_{p}" for c in _PROJECTION_COLUMNS for p in SECOND_HALF]
    + [f"subspace_{slug(c)}_pos_{p}" for c in _SUBSPACE_COLUMNS for p in SECOND_HALF]
)
"""Every key ``key_findings`` returns."""


def summary_table(findings: Findings) -> pd.DataFrame:
    """The algorithm on one page: per head, its QK and OV roles, the positions it covers and the chapter-12 numbers
    behind them."""
    check_type("findings", findings, Findings, "prediction.key_findings(model)")
    f = findings
    well = "11-16, 18"
    shown = WELL_CHECKED + (20,)
    as_many = max(f[f"random_draws_flipping_at_least_as_many_pos_{p}"] for p in SECOND_HALF)
    median = max(f[f"random_random_median_pos_{p}"] for p in SECOND_HALF)

    def held(part: str) -> str:
        return f"{max(f[f'head_add_shared_1_h1_0_{part}_clean_pos_{p}'] for p in SECOND_HALF):.3f}"

    rows = [
        (
            "H0.0",
            "a second-half position reads its mirror (and earlier copies of its own token)",
            "writes a mismatch shift when the pair is broken; at 17 and 19 each input's change is nearly orthogonal "
            "to the shared direction",
            f"{well}, 20; almost nothing along the shared direction at 17, 19",
            f"mean shift length {min(f[f'shift_length_pos_{p}'] for p in shown):.2f} or more at {well}, 20; "
            f"{f['shift_length_pos_17']:.2f} at 17 and {f['shift_length_pos_19']:.2f} at 19, where each input's own "
            f"change averages {f['change_size_pos_17']:.2f} and {f['change_size_pos_19']:.2f} long, with mean cosine "
            f"{f['projection_mean_cosine_pos_17']:.2f} and {f['projection_mean_cosine_pos_19']:.2f} to the shared "
            "direction",
        ),
        (
            "H0.0",
            "",
            "the shift is shared by the seven well-checked positions; 20's is roughly opposite",
            f"{well} (shared); 20 (opposite)",
            f"pairwise cosine {f['shift_cos_block_min']:.2f} or more within {well}; 20's shift has cosine "
            f"{f['shift_cos_to_shared_pos_20']:.2f} with the shared direction",
        ),
        (
            "H1.0",
            "END attends to positions carrying the shared shift (K-composition)",
            "moves it into the not-palindrome direction (V-composition)",
            "any position with the shift; at 17, 19 and 20 only by edits",
            f"the shared direction (length {f['shared_length']:.2f}) added to palindromes flips at least "
            f"{min(f[f'steer_add_shared_1_pos_{p}'] for p in SECOND_HALF):.3f} of them at 11-20; with H1.0's output "
            f"held clean at most {held('output')}, its attention at most {held('attention')}, its values at most "
            f"{held('values')} (appendix C); of {RANDOM_DRAWS} random directions of that length at most {as_many:.0f} "
            f"flips as many at a position (median {median:.3f}); of {RANDOM_DRAWS} drawn in H0.0's output space none "
            "lowers the logit difference as far",
        ),
        (
            "H1.1",
            "END attends to position 20",
            "votes not palindrome on 20's own shift",
            "20",
            f"adding 20's shift flips {f['steer_add_1_pos_20']:.3f} of palindromes, "
            f"{f['head_add_1_h1_1_output_clean_pos_20']:.3f} with H1.1's output held clean; refined circuit misses "
            f"{f['miss_refined_pos_20']:.3f} at 20 (model {f['miss_model_pos_20']:.3f})",
        ),
        (
            "refined circuit (all heads)",
            "exact layer-0 scale; constant layer-1 and final scales, mean END query",
            "summed votes",
            "every pair but 17 and 19",
            f"agrees with the model on {f['agreement_refined_set_a']:.4f} "
            f"of natural inputs, {f['agreement_refined_set_b']:.4f} of single mismatches, "
            f"{f['agreement_refined_set_f']:.4f} of fresh ones",
        ),
    ]
    return pd.DataFrame(rows, columns=["head", "QK circuit", "OV circuit", "positions", "chapter 12 evidence"])
