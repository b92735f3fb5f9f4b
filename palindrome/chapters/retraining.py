"""Chapter 13's verdicts: each run on another data generator against its seed's control, tested in pairs.

Method. The runs of ``palindrome.variant_runs`` are analysed by ``run_analysis`` (each by its own roles and blind
pairs). Each variant run is compared with its seed's control at the same stage where the control has one
(``run_analysis.stage_control``), else at 15 epochs, on the same held-out inputs (``paired_tests``): an exact
two-sided McNemar test on the inputs exactly one of the two gets wrong, and a Wilcoxon signed-rank test on the
per-input losses (beside the share of inputs the run fits worse), each with Holm's correction over the variant runs
at ``ALPHA``. A gain or a cost is claimed only where the corrected test rejects. ``attention_verdicts`` checks that
the two readings of the mirror head's attention give every run the same verdict; the tables, figures and key numbers
(with the July model's errors on its own training data from ``training_errors``) follow.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from palindrome.chapters.roles import EVAL_SIZE, MIRROR_THRESHOLD, head_name
from palindrome.chapters.run_analysis import (
    ANALYSES_SOURCE,
    RECORDS_SOURCE,
    RunAnalysis,
    control_of,
    stage_control,
)
from palindrome.chapters.training_errors import ERROR_TYPES, JULY_TRAIN_SIZE
from palindrome.constants import MIRROR, SECOND_HALF
from palindrome.data import PalindromeDataset
from palindrome.data_distribution import mismatch_counts
from palindrome.findings import Findings, join
from palindrome.inputs import check_second_half
from palindrome.plots import heatmap_grid
from palindrome.stats import (  # also re-exported as retraining.holm, retraining.mcnemar_exact
    holm,
    mcnemar_exact,
    wilcoxon_signed_rank,
)
from palindrome.tokens import (
    check_finite,
    check_int,
    check_items,
    check_seed,
    check_type,
    mismatch_mask,
)
from palindrome.train import TrainConfig
from palindrome.variant_runs import CONTROL, SEEDS, VARIANTS, RunRecord

ALPHA: float = 0.05
"""Significance level of the paired tests of each run against its control (Holm's correction over the runs)."""


def generator_table(seed: int = 0, size: int = JULY_TRAIN_SIZE) -> pd.DataFrame:
    """Per variant: the training set's share of palindromes and of single-mismatch inputs, overall and at 17 and 19."""
    rows = {}
    for variant, (generator, share) in VARIANTS.items():
        data = PalindromeDataset(check_int("size", size, 2), seed=check_seed(seed), generator=generator, share=share)
        single = mismatch_counts(data.toks) == 1
        broken = mismatch_mask(data.toks)
        rows[variant] = {
            "generator": generator if share is None else f"{generator} {share:.0%}",
            "palindromes": data.is_palindrome.float().mean().item(),
            "exactly one pair broken": single.float().mean().item(),
            **{f"only ({MIRROR[p]},{p}) broken": (single & broken[:, p]).float().mean().item() for p in (17, 19)},
        }
    return pd.DataFrame.from_dict(rows, orient="index")


# --- paired tests of a run against its control ---------------------------------------------------


def paired_tests(results: Sequence[RunAnalysis], alpha: float = ALPHA) -> pd.DataFrame:
    """Every variant run against its seed's control at the same stage (``stage_control``) on the same held-out inputs:
    errors, discordant inputs, exact McNemar p, the Wilcoxon signed-rank test of per-input losses (with the median
    loss difference and the share of inputs the run fits worse), each Holm-corrected over the variant runs; the
    verdicts ("gain", "cost" or "none") follow the corrected tests."""
    results = check_items("results", results, RunAnalysis, ANALYSES_SOURCE)
    alpha = check_finite("alpha", alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rows = []
    for r in results:
        if r.variant == CONTROL:
            continue
        control = stage_control(results, r)
        if r.correct.shape != control.correct.shape:
            raise ValueError(f"{r.name} and its control were scored on different held-out sets; analyse them together")
        only_run = int((~r.correct & control.correct).sum())
        only_control = int((r.correct & ~control.correct).sum())
        differences = r.losses - control.losses
        rank = wilcoxon_signed_rank(differences)
        rows.append(
            {
                "run": r.name,
                "control": control.name,
                "errors": r.errors,
                "control errors": control.errors,
                "only run wrong": only_run,
                "only control wrong": only_control,
                "p McNemar": mcnemar_exact(only_run, only_control),
                "mean loss": r.loss,
                "control mean loss": control.loss,
                "loss z": rank.z,
                "median loss difference": float(differences.median()),
                "share fit worse": float((differences > 0).double().mean()),
                "p Wilcoxon": rank.p,
            }
        )
    if not rows:
        raise ValueError("results hold no variant run, only controls: nothing to compare")
    table = pd.DataFrame(rows).set_index("run")
    for test, kind in (("McNemar", "accuracy"), ("Wilcoxon", "loss")):
        table[f"p {test} (Holm)"] = holm(table[f"p {test}"].tolist())
        significant = table[f"p {test} (Holm)"] <= alpha
        if test == "McNemar":
            costly = table["only run wrong"] > table["only control wrong"]
        else:
            costly = table["loss z"] > 0
        table[f"{kind} verdict"] = ["cost" if c else "gain" for c in costly]
        table.loc[~significant, f"{kind} verdict"] = "none"
    return table


ATTENTION_RISE: float = 5.0
"""A run's mirror head serves its control's blind pair anew when it attends there at least this many times as much
as the control's mirror head does."""


def final_stages(results: Sequence[RunAnalysis]) -> list[RunAnalysis]:
    """Each (variant, seed)'s longest run: its first converged stage, or its last (``variant_runs.STAGES``)."""
    results = check_items("results", results, RunAnalysis, ANALYSES_SOURCE)
    last: dict[tuple[str, int], RunAnalysis] = {}
    for r in results:
        if (r.variant, r.seed) not in last or r.epochs > last[r.variant, r.seed].epochs:
            last[r.variant, r.seed] = r
    return list(last.values())


def attention_verdicts(results: Sequence[RunAnalysis], measured: bool = False) -> dict[str, bool]:
    """Per run, the chapter's two readings of mirror attention at the control's blind pairs: for a control, whether
    they are its mirror head's least-attended pairs; for any other run, whether its head attends there at least
    ``ATTENTION_RISE`` times as much as the control's. By the positional circuit (constant layer-0 scale), or with
    ``measured`` by the head's own attention on natural inputs (every LayerNorm scale exact)."""
    results = check_items("results", results, RunAnalysis, ANALYSES_SOURCE)
    check_type("measured", measured, bool)
    verdicts = {}
    for r in results:
        control = control_of(results, r)
        attention = r.attention_at(control.blind, measured)
        if r is control:
            values = r.measured_attention if measured else r.mirror_attention
            verdicts[r.name] = attention <= float(values.min())
        else:
            verdicts[r.name] = attention >= ATTENTION_RISE * control.attention_at(control.blind, measured)
    return verdicts


def blind_label(positions: Sequence[int]) -> str:
    """Mirror pairs of second-half positions as text: (17, 19) -> "(4,17), (2,19)"; "none" for none."""
    positions = check_second_half(positions)
    return ", ".join(f"({MIRROR[p]},{p})" for p in positions) or "none"


def runs_table(results: Sequence[RunAnalysis]) -> pd.DataFrame:
    """One row per run: convergence, blind pairs, misses at the control's blind pairs, roles, QK attention, cost."""
    results = check_items("results", results, RunAnalysis, ANALYSES_SOURCE)
    rows = []
    for r in results:
        control = control_of(results, r)
        rows.append(
            {
                "run": r.name,
                "converged": r.converged,
                "blind pairs": blind_label(r.blind),
                "max miss": float(r.misclassified.max()),
                "control's blind pairs": blind_label(control.blind),
                "miss there": r.miss(control.blind),
                "mirror head": head_name(r.mirror_head),
                "lambda": r.mirror_score,
                "mirror attn there": r.attention_at(control.blind),
                "control's mirror attn there": control.attention_at(control.blind),
                "accuracy": r.accuracy,
                "loss": r.loss,
            }
        )
    return pd.DataFrame(rows).set_index("run")


def miss_table(results: Sequence[RunAnalysis]) -> pd.DataFrame:
    """Miss rate ± standard error (over bases) per run and mirror pair, as text."""
    results = check_items("results", results, RunAnalysis, ANALYSES_SOURCE)
    return pd.DataFrame(
        {
            f"({MIRROR[p]},{p})": [f"{r.misclassified[i]:.3f} ± {r.standard_error[i]:.3f}" for r in results]
            for i, p in enumerate(SECOND_HALF)
        },
        index=pd.Index([r.name for r in results], name="run"),
    )


# --- key numbers ---------------------------------------------------------------------------------

RUN_METRICS: tuple[str, ...] = (
    "blind pairs",
    "max miss",
    "miss at control blind pairs",
    "accuracy",
    "loss",
    "converged",
    "mirror attention at control blind pairs",
    "measured mirror attention at control blind pairs",
    "errors",
)
PAIRED_METRICS: tuple[str, ...] = (
    "only run wrong",
    "only control wrong",
    "p mcnemar holm",
    "loss z",
    "p wilcoxon holm",
)
"""Per-run keys of the paired tests (every run but the 15-epoch controls)."""
SUMMARY_METRICS: tuple[str, ...] = ("runs with a blind pair", "min accuracy", "max loss", "runs not converged")
JULY_SETS: tuple[str, ...] = ("train", "fresh")
JULY_METRICS: tuple[str, ...] = ("errors", "only blind inputs", *ERROR_TYPES, "loss share of only blind inputs")

KEYS: tuple[str, ...] = (
    *(join(v, f"seed {s}", m) for v in VARIANTS for s in SEEDS for m in RUN_METRICS),
    *(join(v, m) for v in VARIANTS for m in SUMMARY_METRICS),
    *(join("july", part, m) for part in JULY_SETS for m in JULY_METRICS),
    "longer runs",
    "longer runs with a blind pair",
    "longer runs not converged",
    "runs",
    "runs whose mirror head is their control's",
    "runs whose mirror head is below chapter 11's threshold",
    "longer runs whose blind pairs differ from their 15 epochs",
    "variant runs",
    "variant runs without a blind pair",
    "final variant runs",
    "final variant runs without a blind pair",
    "final variant runs not converged",
    "final control runs not converged",
    "final control runs with a blind pair",
    "seeds whose control keeps its blind pair",
    "variant runs at those seeds",
    "variant runs at those seeds without a blind pair",
    "seeds whose control converged with its blind pair",
    "variant runs at those converged seeds",
    "variant runs at those converged seeds without a blind pair",
    "max miss at those converged seeds",
    "compared runs",
    *(join("compared runs", kind, verdict) for kind in ("accuracy", "loss") for verdict in ("gain", "cost", "none")),
    "runs whose attention verdict depends on the measure",
)
"""Every key ``key_findings`` returns (longer runs add ``<variant>__seed_<s>__e<epochs>__<metric>`` keys, and every run
but the 15-epoch controls its ``PAIRED_METRICS``)."""


def key_findings(results: Sequence[RunAnalysis], july: pd.DataFrame) -> Findings:
    """The chapter's asserted numbers: per run, per variant, and the July model's errors on train vs fresh."""
    results = check_items("results", results, RunAnalysis, ANALYSES_SOURCE)
    check_type("july", july, pd.DataFrame, "retraining.july_errors(model)")
    need = {"errors", "inputs breaking only blind pairs", "loss share of only-blind inputs", *ERROR_TYPES}
    if len(july) != len(JULY_SETS) or not need <= set(july.columns):
        raise ValueError(
            f"july must be july_errors' table: {len(JULY_SETS)} rows with columns {sorted(need)}, got {july.shape}"
        )
    values: dict[str, float] = {}
    for r in results:
        control = control_of(results, r)
        prefix = (
            (r.variant, f"seed {r.seed}")
            if r.epochs == TrainConfig.epochs
            else (r.variant, f"seed {r.seed}", f"e{r.epochs}")
        )
        for metric, value in (
            ("blind pairs", len(r.blind)),
            ("max miss", float(r.misclassified.max())),
            ("miss at control blind pairs", r.miss(control.blind)),
            ("accuracy", r.accuracy),
            ("loss", r.loss),
            ("converged", int(r.converged)),
            ("mirror attention at control blind pairs", r.attention_at(control.blind)),
            ("measured mirror attention at control blind pairs", r.attention_at(control.blind, measured=True)),
            ("errors", r.errors),
        ):
            values[join(*prefix, metric)] = value
    short = [r for r in results if r.epochs == TrainConfig.epochs]
    for variant in VARIANTS:
        runs = [r for r in short if r.variant == variant]
        values[join(variant, "runs with a blind pair")] = sum(bool(r.blind) for r in runs)
        values[join(variant, "min accuracy")] = min((r.accuracy for r in runs), default=float("nan"))
        values[join(variant, "max loss")] = max((r.loss for r in runs), default=float("nan"))
        values[join(variant, "runs not converged")] = sum(not r.converged for r in runs)
    variants = [r for r in short if r.variant != CONTROL]
    values["variant runs"] = len(variants)
    values["variant runs without a blind pair"] = sum(not r.blind for r in variants)
    final = final_stages(results)
    values["final variant runs"] = sum(r.variant != CONTROL for r in final)
    values["final variant runs without a blind pair"] = sum(r.variant != CONTROL and not r.blind for r in final)
    values["final variant runs not converged"] = sum(r.variant != CONTROL and not r.converged for r in final)
    values["final control runs not converged"] = sum(r.variant == CONTROL and not r.converged for r in final)
    values["final control runs with a blind pair"] = sum(r.variant == CONTROL and bool(r.blind) for r in final)
    # The rarity test holds only where the control, trained to its last stage, still has its blind pair.
    kept = {r.seed for r in final if r.variant == CONTROL and r.blind}
    values["seeds whose control keeps its blind pair"] = len(kept)
    values["variant runs at those seeds"] = sum(r.seed in kept for r in variants)
    values["variant runs at those seeds without a blind pair"] = sum(r.seed in kept and not r.blind for r in variants)
    # Only a control that converged with its blind pair tests rarity; seed 7's had not converged by its last stage.
    settled = {r.seed for r in final if r.variant == CONTROL and r.blind and r.converged}
    at_settled = [r for r in variants if r.seed in settled]
    values["seeds whose control converged with its blind pair"] = len(settled)
    values["variant runs at those converged seeds"] = len(at_settled)
    values["variant runs at those converged seeds without a blind pair"] = sum(not r.blind for r in at_settled)
    values["max miss at those converged seeds"] = max(
        (r.miss(control_of(results, r).blind) for r in at_settled), default=float("nan")
    )
    paired = paired_tests(results)
    values["compared runs"] = len(paired)
    for kind in ("accuracy", "loss"):
        for verdict in ("gain", "cost", "none"):
            values[join("compared runs", kind, verdict)] = int((paired[f"{kind} verdict"] == verdict).sum())
    by_name = {r.name: r for r in results}
    for name, row in paired.iterrows():
        r = by_name[name]
        prefix = (r.variant, f"seed {r.seed}") + (() if r.epochs == TrainConfig.epochs else (f"e{r.epochs}",))
        for metric, column in zip(
            PAIRED_METRICS,
            ("only run wrong", "only control wrong", "p McNemar (Holm)", "loss z", "p Wilcoxon (Holm)"),
            strict=True,
        ):
            values[join(*prefix, metric)] = float(row[column])
    circuit, measured = attention_verdicts(results, False), attention_verdicts(results, True)
    values["runs whose attention verdict depends on the measure"] = sum(circuit[k] != measured[k] for k in circuit)
    values["runs"] = len(results)
    values["runs whose mirror head is their control's"] = sum(
        r.mirror_head == control_of(results, r).mirror_head for r in results
    )
    values["runs whose mirror head is below chapter 11's threshold"] = sum(
        r.mirror_score < MIRROR_THRESHOLD for r in results
    )
    longer = [r for r in results if r.epochs != TrainConfig.epochs]
    values["longer runs not converged"] = sum(not r.converged for r in longer)
    values["longer runs"] = len(longer)
    values["longer runs with a blind pair"] = sum(bool(r.blind) for r in longer)
    values["longer runs whose blind pairs differ from their 15 epochs"] = sum(
        r.blind != next(s.blind for s in short if (s.variant, s.seed) == (r.variant, r.seed)) for r in longer
    )
    for part, (_, row) in zip(JULY_SETS, july.iterrows(), strict=True):
        values[join("july", part, "errors")] = int(row["errors"])
        values[join("july", part, "only blind inputs")] = int(row["inputs breaking only blind pairs"])
        for kind in ERROR_TYPES:
            values[join("july", part, kind)] = int(row[kind])
        values[join("july", part, "loss share of only blind inputs")] = float(row["loss share of only-blind inputs"])
    return Findings("retraining", values, KEYS)


# --- figures -------------------------------------------------------------------------------------


def blindness_figure(results: Sequence[RunAnalysis]) -> go.Figure:
    """Per run and mirror pair: the miss rate, and the mirror head's positional attention to the mirror."""
    results = check_items("results", results, RunAnalysis, ANALYSES_SOURCE)
    names = [r.name for r in results]
    return heatmap_grid(
        {
            "miss rate (single-mismatch inputs)": torch.stack([r.misclassified for r in results]),
            "mirror head: positional attention to the mirror": torch.stack([r.mirror_attention for r in results]),
        },
        "Do the blind pairs vanish? One row per run",
        x=[f"({MIRROR[p]},{p})" for p in SECOND_HALF],
        y=names,
        midpoint=None,
        colorbar_title="fraction",
        spacing=0.16,
        width=1000,
        height=170 + 28 * len(names),
    )


def cost_figure(results: Sequence[RunAnalysis]) -> go.Figure:
    """Per run: error rate and loss on fresh inputs of the original distribution (log scales).

    A run without an error is drawn at the floor 1/EVAL_SIZE (hatched), since 0 has no place on a log axis.
    """
    results = check_items("results", results, RunAnalysis, ANALYSES_SOURCE)
    names = [r.name for r in results]
    floor = 1 / EVAL_SIZE
    colors = {v: c for v, c in zip(VARIANTS, ("#495057", "#1c7ed6", "#7048e8", "#e8590c"), strict=True)}
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=[
            f"error rate (1 - accuracy; hatched: no error, drawn at 1/{EVAL_SIZE:,})",
            "cross-entropy loss",
        ],
    )
    errors = [1 - r.accuracy for r in results]
    for col, values in enumerate((errors, [r.loss for r in results]), start=1):
        hatch = ["/" if col == 1 and e <= 0 else "" for e in errors]
        fig.add_trace(
            go.Bar(
                x=names,
                y=[max(v, floor) if col == 1 else v for v in values],
                marker=dict(color=[colors[r.variant] for r in results], pattern=dict(shape=hatch)),
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(type="log", row=1, col=col)
    fig.update_layout(
        title=f"What does it cost? {EVAL_SIZE:,} fresh inputs from the original generator", height=420, width=1000
    )
    return fig


def curves_figure(runs: Sequence[RunRecord]) -> go.Figure:
    """Validation loss after every epoch of every run (each on its own generator's validation set)."""
    runs = check_items("runs", runs, RunRecord, RECORDS_SOURCE)
    colors = {v: c for v, c in zip(VARIANTS, ("#495057", "#1c7ed6", "#7048e8", "#e8590c"), strict=True)}
    fig = go.Figure()
    for r in runs:
        fig.add_trace(
            go.Scatter(
                x=[p["epoch"] for p in r.curve],
                y=r.val_losses,
                mode="lines",
                name=f"{r.variant} s{r.seed}" + ("" if r.epochs == TrainConfig.epochs else f" ({r.epochs} ep)"),
                line=dict(color=colors[r.variant], dash="solid" if r.epochs == TrainConfig.epochs else "dot"),
            )
        )
    fig.update_yaxes(type="log", title="validation loss")
    fig.update_xaxes(title="epoch")
    fig.update_layout(title="Validation curves (each run on 5,000 inputs of its own generator)", height=420)
    return fig
