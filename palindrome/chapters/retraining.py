"""Chapter 13: can the blind spots be trained away? The variant runs, and the July model on its own data.

Method. Every run of ``palindrome.variant_runs`` (the recipe on the original generator, the
control, and on generators that make single-mismatch inputs common) is judged by its own roles
and blind pairs, found as chapter 11 finds them: the mirror head is the head with the highest
lambda score (``roles.mirror_scores``), the detector the one with the highest detector score, and
a pair is blind when the model misses more than half of its single-mismatch inputs (chapter 8's
inputs, here ``MAP_INPUTS`` per pair sampled with fresh bases, so the binomial standard error
applies; ``blindspots.blind_positions``' threshold). Each run is
scored on fresh inputs from the original distribution (``roles.EVAL_SIZE`` held-out sequences), and
its mirror head's positional QK circuit (chapter 2's, causal softmax, weights divided by the
layer's mean LayerNorm scale) is read at the control's blind pairs and at its own. Since one
constant scale is the approximation chapter 12 finds costliest, the head's own attention to the
mirror on natural inputs (the model's forward pass, every scale exact) is read beside it, and
``attention_verdicts`` checks that both readings give every run the same verdict.

Each variant run is compared with its seed's control at the same stage where the control has one
(``stage_control``), else at 15 epochs, on the same held-out inputs (``paired_tests``): an exact
two-sided McNemar test on the inputs exactly one of the two gets wrong, and a Wilcoxon signed-rank
test on the per-input losses (beside the share of inputs the run fits worse), each with Holm's
correction over the variant runs at ``ALPHA``. A gain or a cost is claimed only where the corrected
test rejects.

The second question is why training on 100,000 inputs never fixed the July model's blind pairs.
``july_errors`` counts the July model's errors by type on the recipe's training set
(``PalindromeDataset(100_000, seed=42)``, the recipe's seed: an inference from the recipe, since
the seed-42 replica is not the July model) and on as many fresh inputs from the same generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from plotly.subplots import make_subplots
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from palindrome.chapters.blindspots import BLIND_THRESHOLD, NATURAL_SEED, natural_sample
from palindrome.checkpoint import PathLike
from palindrome.circuits import ln_scale_stats, mirror_attention, positional_qk_circuit
from palindrome.constants import MIRROR, PALINDROME, SECOND_HALF
from palindrome.variant_runs import CONTROL, SEEDS, VARIANTS, RunRecord, load_manifest, load_run
from palindrome.data import PalindromeDataset
from palindrome.fast import fast_end_logits, num_threads
from palindrome.findings import Findings, join
from palindrome.data_distribution import mismatch_counts
from palindrome.hooks import activations
from palindrome.metrics import accuracy_from_logits, loss_from_logits
from palindrome.plots import heatmap_grid
from palindrome.inputs import broken_at_each_position_fresh, check_second_half
from palindrome.chapters.roles import EVAL_SEED, EVAL_SIZE, MIRROR_THRESHOLD, best_head, head_name, mirror_scores
from palindrome.stats import holm, mcnemar_exact  # also re-exported as retraining.holm, retraining.mcnemar_exact
from palindrome.tokens import (
    check_finite,
    check_floats,
    check_int,
    check_items,
    check_layer_head,
    check_seed,
    check_type,
    mismatch_mask,
    validate_tokens,
)
from palindrome.train import TrainConfig

_ANALYSES = "retraining.analyse_run or analyse_runs"
_RECORDS = "variant_runs.load_manifest()['runs']"

MAP_INPUTS: int = 400
"""Single-mismatch inputs per mirror pair in each run's map: chapter 8's inputs (a random palindrome, one
pair set to a != b), sampled with a fresh base each instead of enumerated over 32 bases."""
MAP_SEED: int = 13
"""Seed of the map's inputs (not used by any other chapter's probe)."""
SCALE_INPUTS: int = 200
"""Sequences whose mean LayerNorm scale divides the positional QK circuit (roles uses 1,000; the mean is stable)."""
JULY_TRAIN_SEED: int = TrainConfig.seed
"""The recipe's seed (42): the July model's training set is inferred to be PalindromeDataset(100_000, seed=42)."""
JULY_TRAIN_SIZE: int = TrainConfig.train_size
FRESH_SEED: int = NATURAL_SEED
"""Seed of the fresh sample from the same generator (chapter 8's natural sample, here 100,000 inputs)."""
ANALYSIS_THREADS: int = 1
"""Torch threads while analysing: many small forward passes, where one thread beats two on a shared 2-core machine."""
ALPHA: float = 0.05
"""Significance level of the paired tests of each run against its control (Holm's correction over the runs)."""
ERROR_TYPES: tuple[str, ...] = (
    "only blind pairs broken",
    "blind and visible pairs broken",
    "visible pairs only",
    "false negatives",
)
"""The July model's errors, by which mirror pairs the misclassified input breaks."""


@dataclass(frozen=True)
class RunAnalysis:
    """What chapter 13 measures of one run: blindness, roles, the mirror head's QK circuit, cost."""

    variant: str
    seed: int
    epochs: int
    converged: bool
    misclassified: Float[Tensor, " position"]
    standard_error: Float[Tensor, " position"]
    blind: tuple[int, ...]
    accuracy: float
    loss: float
    mirror_head: tuple[int, int]
    mirror_score: float
    mirror_attention: Float[Tensor, " position"]
    measured_attention: Float[Tensor, " position"]
    correct: Bool[Tensor, " n"]
    losses: Float[Tensor, " n"]
    n_inputs: int = MAP_INPUTS
    positions: tuple[int, ...] = SECOND_HALF

    @property
    def name(self) -> str:
        """Row label: variant, seed and, for a longer run, its epochs."""
        tail = "" if self.epochs == TrainConfig.epochs else f", {self.epochs} ep"
        return f"{self.variant} s{self.seed}{tail}"

    def miss(self, positions: Sequence[int]) -> float:
        """Mean miss rate over ``positions`` (NaN for none)."""
        return _mean_at(self.misclassified, positions)

    def attention_at(self, positions: Sequence[int], measured: bool = False) -> float:
        """Mean attention of the mirror head from ``positions`` to their mirrors (NaN for none): the positional
        circuit's, or with ``measured`` the head's own on natural inputs."""
        check_type("measured", measured, bool)
        return _mean_at(self.measured_attention if measured else self.mirror_attention, positions)

    @property
    def errors(self) -> int:
        """Misclassified inputs of the held-out set."""
        return int((~self.correct).sum())


def _mean_at(values: Tensor, positions: Sequence[int]) -> float:
    index = [SECOND_HALF.index(p) for p in positions]
    return float(values[index].mean()) if index else float("nan")


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


def mirror_head_attention(
    model: HookedTransformer, scale_toks: Int[Tensor, "batch seq"]
) -> tuple[tuple[int, int], float, Float[Tensor, " position"]]:
    """The mirror head as roles finds it, its lambda score, and its positional attention to the mirror per query
    11..20."""
    scores = mirror_scores(model, scale_toks)
    layer, head = best_head(scores)
    scale = ln_scale_stats(model, scale_toks, layer).overall_mean
    table = mirror_attention(positional_qk_circuit(model, layer, head, scale))
    return (
        (layer, head),
        float(scores[layer, head]),
        torch.tensor(table["attn_to_mirror"].to_numpy(), dtype=torch.float32),
    )


def measured_mirror_attention(
    model: HookedTransformer, layer: int, head: int, toks: Int[Tensor, "batch seq"]
) -> Float[Tensor, " position"]:
    """The head's real attention from each query 11..20 to its mirror, averaged over ``toks``: the model's own
    forward pass, so every LayerNorm scale is exact (no constant-scale or positional-only approximation)."""
    check_layer_head(model, layer, head)
    name = f"blocks.{layer}.attn.hook_pattern"
    pattern = activations(model, validate_tokens(toks), [name])[name][:, head]
    query = torch.tensor(SECOND_HALF)
    return pattern[:, query, torch.tensor([MIRROR[p] for p in SECOND_HALF])].float().mean(0).cpu()


def _check_inputs(inputs: object) -> Int[Tensor, "position n seq"]:
    if not isinstance(inputs, Tensor) or inputs.ndim != 3 or inputs.shape[0] != len(SECOND_HALF) or not inputs.shape[1]:
        raise ValueError(
            f"inputs must be a (position, n, seq) tensor of tokens with one row per second-half position "
            f"(inputs.broken_at_each_position_fresh), got {getattr(inputs, 'shape', type(inputs).__name__)}"
        )
    validate_tokens(inputs.flatten(0, 1))
    return inputs


def single_mismatch_map(
    model: HookedTransformer, inputs: Optional[Int[Tensor, "position n seq"]] = None
) -> tuple[Float[Tensor, " position"], Float[Tensor, " position"]]:
    """Per second-half position p: the fraction of inputs broken only at (21 - p, p) called palindromes, and its
    standard error."""
    inputs = broken_at_each_position_fresh(MAP_INPUTS, MAP_SEED) if inputs is None else _check_inputs(inputs)
    called = fast_end_logits(model, inputs.flatten(0, 1)).argmax(-1).cpu().view(inputs.shape[:2])
    missed = (called == PALINDROME).float().mean(-1)
    return missed, (missed * (1 - missed) / inputs.shape[1]).sqrt()


def blind_in(missed: Float[Tensor, " position"]) -> tuple[int, ...]:
    """Second-half positions whose miss rate exceeds chapter 8's threshold (``blindspots.BLIND_THRESHOLD``)."""
    missed = check_floats("missed", missed)
    if missed.shape != (len(SECOND_HALF),):
        raise ValueError(
            f"missed must hold one miss rate per second-half position ({len(SECOND_HALF)}), got shape "
            f"{tuple(missed.shape)}"
        )
    return tuple(p for p, f in zip(SECOND_HALF, missed.tolist(), strict=True) if f > BLIND_THRESHOLD)


def analyse_run(
    model: HookedTransformer,
    record: RunRecord,
    eval_set: Optional[PalindromeDataset] = None,
    scale_toks: Optional[Int[Tensor, "batch seq"]] = None,
    inputs: Optional[Int[Tensor, "position n seq"]] = None,
) -> RunAnalysis:
    """Blind pairs (with standard errors), the mirror head and its attention, accuracy and loss on fresh original
    data."""
    check_type("record", record, RunRecord, _RECORDS)
    eval_set = (
        PalindromeDataset(EVAL_SIZE, seed=EVAL_SEED)
        if eval_set is None
        else check_type("eval_set", eval_set, PalindromeDataset)
    )
    scale_toks = PalindromeDataset(SCALE_INPUTS).toks if scale_toks is None else validate_tokens(scale_toks)
    inputs = broken_at_each_position_fresh(MAP_INPUTS, MAP_SEED) if inputs is None else _check_inputs(inputs)
    missed, error = single_mismatch_map(model, inputs)
    logits = fast_end_logits(model, eval_set.toks)
    labels = eval_set.is_palindrome.to(logits.device)
    mirror, lam, attention = mirror_head_attention(model, scale_toks)
    losses = F.cross_entropy(logits.double(), labels.long(), reduction="none")
    return RunAnalysis(
        variant=record.variant,
        seed=record.seed,
        epochs=record.epochs,
        converged=record.converged,
        misclassified=missed,
        standard_error=error,
        blind=blind_in(missed),
        accuracy=accuracy_from_logits(logits, labels),
        loss=loss_from_logits(logits, labels),
        mirror_head=mirror,
        mirror_score=lam,
        mirror_attention=attention,
        measured_attention=measured_mirror_attention(model, *mirror, scale_toks),
        correct=(logits.argmax(-1) == labels).cpu(),
        losses=losses.cpu(),
        n_inputs=inputs.shape[1],
    )


def analyse_runs(directory: Optional[PathLike] = None, progress: bool = True) -> list[RunAnalysis]:
    """``analyse_run`` for every run in the variant-run manifest (shared held-out set, scale inputs and probe)."""
    manifest = load_manifest(directory)
    eval_set = PalindromeDataset(EVAL_SIZE, seed=EVAL_SEED)
    scale_toks = PalindromeDataset(SCALE_INPUTS).toks
    inputs = broken_at_each_position_fresh(MAP_INPUTS, MAP_SEED)
    results = []
    with num_threads(ANALYSIS_THREADS):
        for record in tqdm(manifest["runs"], desc="runs", unit="run", disable=not progress):
            model = load_run(record.variant, record.seed, record.epochs, directory=directory, device="cpu")
            results.append(analyse_run(model, record, eval_set, scale_toks, inputs))
    return results


def control_of(results: Sequence[RunAnalysis], run: RunAnalysis) -> RunAnalysis:
    """The control run (original generator, 15 epochs) with ``run``'s seed."""
    check_items("results", results, RunAnalysis, _ANALYSES)
    check_type("run", run, RunAnalysis, _ANALYSES)
    for r in results:
        if (r.variant, r.seed, r.epochs) == (CONTROL, run.seed, TrainConfig.epochs):
            return r
    raise ValueError(f"results hold no {CONTROL!r} 15-epoch run with seed {run.seed}")


def stage_control(results: Sequence[RunAnalysis], run: RunAnalysis) -> RunAnalysis:
    """The control with ``run``'s seed trained as long as ``run`` where that stage exists, else the 15-epoch one."""
    check_items("results", results, RunAnalysis, _ANALYSES)
    check_type("run", run, RunAnalysis, _ANALYSES)
    for r in results:
        if (r.variant, r.seed, r.epochs) == (CONTROL, run.seed, run.epochs):
            return r
    return control_of(results, run)


# --- paired tests of a run against its control ---------------------------------------------------


@dataclass(frozen=True)
class SignedRank:
    """A Wilcoxon signed-rank test of paired differences."""

    n: int
    """Non-zero differences (zeros are dropped, Wilcoxon's convention)."""
    w_plus: float
    """Sum of the ranks of |difference| over the positive differences."""
    z: float
    """Standardised W+ (tie- and continuity-corrected); positive when the differences lean positive."""
    p: float
    """Two-sided p value from the normal approximation (accurate for the thousands of inputs used here)."""


def wilcoxon_signed_rank(differences: Float[Tensor, " n"]) -> SignedRank:
    """Wilcoxon signed-rank test that paired differences are symmetric about 0 (normal approximation)."""
    d = check_floats("differences", differences).flatten().double()
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return SignedRank(n=0, w_plus=0.0, z=0.0, p=1.0)
    values, inverse, counts = torch.unique(d.abs(), sorted=True, return_inverse=True, return_counts=True)
    first = counts.cumsum(0) - counts + 1
    ranks = (first + (counts - 1) / 2).double()[inverse]  # average rank within ties
    w_plus = float(ranks[d > 0].sum())
    mean = n * (n + 1) / 4
    var = n * (n + 1) * (2 * n + 1) / 24 - float((counts.double() ** 3 - counts).sum()) / 48
    diff = w_plus - mean
    if var <= 0:
        return SignedRank(n=n, w_plus=w_plus, z=0.0, p=1.0)
    z = math.copysign(max(abs(diff) - 0.5, 0.0), diff) / math.sqrt(var)
    return SignedRank(n=n, w_plus=w_plus, z=z, p=math.erfc(abs(z) / math.sqrt(2)))


def paired_tests(results: Sequence[RunAnalysis], alpha: float = ALPHA) -> pd.DataFrame:
    """Every variant run against its seed's control at the same stage (``stage_control``) on the same held-out inputs:
    errors, discordant inputs, exact McNemar p, the Wilcoxon signed-rank test of per-input losses (with the median
    loss difference and the share of inputs the run fits worse), each Holm-corrected over the variant runs; the
    verdicts ("gain", "cost" or "none") follow the corrected tests."""
    results = check_items("results", results, RunAnalysis, _ANALYSES)
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
    results = check_items("results", results, RunAnalysis, _ANALYSES)
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
    results = check_items("results", results, RunAnalysis, _ANALYSES)
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
    results = check_items("results", results, RunAnalysis, _ANALYSES)
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
    results = check_items("results", results, RunAnalysis, _ANALYSES)
    return pd.DataFrame(
        {
            f"({MIRROR[p]},{p})": [f"{r.misclassified[i]:.3f} ± {r.standard_error[i]:.3f}" for r in results]
            for i, p in enumerate(SECOND_HALF)
        },
        index=pd.Index([r.name for r in results], name="run"),
    )


def own_blind_pairs(model: HookedTransformer) -> tuple[int, ...]:
    """A model's blind positions from the chapter's single-mismatch map (as ``analyse_run`` finds them)."""
    return blind_in(single_mismatch_map(model)[0])


def july_errors(
    model: HookedTransformer, blind: Optional[Sequence[int]] = None, size: int = JULY_TRAIN_SIZE
) -> pd.DataFrame:
    """The July model's errors by type on its (inferred) training set and on fresh inputs of the same generator."""
    with num_threads(ANALYSIS_THREADS):
        return _july_errors(model, own_blind_pairs(model) if blind is None else tuple(blind), size)


def _july_errors(model: HookedTransformer, blind: tuple[int, ...], size: int) -> pd.DataFrame:
    rows = {}
    for name, seed in (
        ("training set (seed 42, inferred)", JULY_TRAIN_SEED),
        (f"fresh (seed {FRESH_SEED})", FRESH_SEED),
    ):
        sample = natural_sample(model, check_int("size", size, 2), seed)
        counts = sample.counts(blind)
        rows[name] = {
            "inputs": int(counts["size"]),
            "inputs breaking only blind pairs": int(counts["only_blind_inputs"]),
            "errors": int(counts["false_positives"] + counts["false_negatives"]),
            ERROR_TYPES[0]: int(counts["fp_only_blind"]),
            ERROR_TYPES[1]: int(counts["fp_blind_and_other"]),
            ERROR_TYPES[2]: int(counts["fp_no_blind"]),
            ERROR_TYPES[3]: int(counts["false_negatives"]),
            "mean loss": counts["mean_loss"],
            "loss share of only-blind inputs": counts["loss_share_only_blind"],
        }
    return pd.DataFrame.from_dict(rows, orient="index")


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
    results = check_items("results", results, RunAnalysis, _ANALYSES)
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
    results = check_items("results", results, RunAnalysis, _ANALYSES)
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
    results = check_items("results", results, RunAnalysis, _ANALYSES)
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
    runs = check_items("runs", runs, RunRecord, _RECORDS)
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
