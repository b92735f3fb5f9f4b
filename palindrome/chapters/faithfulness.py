"""Chapter 10: how much of the model the proposed circuit explains.

Method. The circuit is a set of edges of the residual stream (``palindrome.path_patching``, which also
says how an ablated edge is replaced): the hypothesis keeps H0.0's token and position inputs, its
K- and V-composition into H1.0 and H1.0's direct path. Every other edge is mean-ablated or
resampled, on ``PalindromeDataset(1000, seed=1)`` (and the original's ``PalindromeDataset(500)``),
and the fraction of loss and logit difference recovered is measured against the clean and fully
ablated models; then single paths are removed or added, and the circuits are scored on single
broken mirror pairs. The reconciliation sets each claim of the original write-up and of the other
analysis against named numbers of chapters 8-10 (``key_findings`` of ``blindspots``, ``backup`` and
this module) and chooses the verdict by a rule on them (``CLAIMS``).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from palindrome.ablation import Ablation, Ablator, Labels
from palindrome.attribution import composed_ov_circuit
from palindrome.chapters.blindspots import SweepResult, single_mismatch_sweep
from palindrome.constants import MIRROR, SECOND_HALF, SEQ_LEN, VALUE_POSITIONS
from palindrome.data import PalindromeDataset
from palindrome.findings import Findings, slug
from palindrome.inputs import broken_at_each_position, check_second_half_position, single_mismatch_tokens
from palindrome.metrics import accuracy_from_logits, logit_diff_from_logits, loss_from_logits, miss_rates_by_position
from palindrome.path_patching import (
    ALL,
    DEFAULT_SEED,
    EDGES,
    EXTENDED,
    EXTENSION,
    HYPOTHESIS,
    HYPOTHESIS_PATHS,
    INPUTS,
    METHODS,
    OTHER_PATHS,
    PATHS,
    PathAblator,
    check_method,
    expand_edges,
)
from palindrome.tokens import TokensLike, check_finite, mismatch_mask, validate_labels

# --- measuring circuits ------------------------------------------------------------------------

MAIN_SIZE: int = 1000
"""Size of the chapter's main evaluation batch, ``PalindromeDataset(MAIN_SIZE, seed=MAIN_SEED)``."""
MAIN_SEED: int = 1
ORIGINAL_SIZE: int = 500
"""The original write-up's evaluation batch, ``PalindromeDataset(500)`` (seed 42)."""
HARD_BASES: int = 100
"""Random palindromes per second-half position in the hard subset (10 x 100 single mismatches)."""
HARD_SEED: int = 4
CLEAN, ABLATED = "clean model", "everything ablated"
"""Row names of the two reference points in every table."""
METRICS: tuple[str, ...] = ("loss", "logit_diff", "accuracy")


def _without_outputs(head: str) -> frozenset[str]:
    return ALL - {e for e in EDGES if e.startswith(f"{head}->")}


VARIANTS: dict[str, frozenset[str]] = {
    "hypothesis": HYPOTHESIS,
    **{f"- {p}": HYPOTHESIS - PATHS[p] for p in HYPOTHESIS_PATHS},
    **{f"+ {p}": HYPOTHESIS | PATHS[p] for p in OTHER_PATHS},
    "extended": EXTENDED,
    **{f"extended - {p}": EXTENDED - PATHS[p] for p in EXTENSION},
    "full - H0.1": _without_outputs("0.1"),
    "full - H1.1": _without_outputs("1.1"),
}
"""Circuits measured by ``path_contributions``: the hypothesis, it minus or plus one path, the
extended circuit and it minus each addition, and the whole model without one head's output."""
HARD_VARIANTS: dict[str, frozenset[str]] = {
    "full model": ALL,
    "full - H0.1": VARIANTS["full - H0.1"],
    "full - H1.1": VARIANTS["full - H1.1"],
    "hypothesis": HYPOTHESIS,
    "+ H0.1": VARIANTS["+ H0.1"],
    "+ H1.1": VARIANTS["+ H1.1"],
    "+ H0.1 + H1.1": HYPOTHESIS | PATHS["H0.1"] | PATHS["H1.1"],
    "extended": EXTENDED,
}
"""Circuits compared on the hard subset."""
TARGET_POSITION: int = max(SECOND_HALF)
"""Position 20, the pair (1, 20) that H1.1 checks (chapters 9 and 10)."""
H01_TO_H11: frozenset[str] = frozenset(f"0.1->1.1.{x}" for x in INPUTS)
"""What H1.1 reads from H0.1: H0.1's output as H1.1's query, key and value input."""
POSITION_VARIANTS: dict[str, tuple[frozenset[str], tuple[int, ...]]] = {
    "H0.1 -> H1.1 at 20 only": (H01_TO_H11, (TARGET_POSITION,)),
    "H0.1 -> H1.1 except at 20": (H01_TO_H11, tuple(p for p in range(SEQ_LEN) if p != TARGET_POSITION)),
}
"""The full model with only these edges ablated, and only at these positions (compared on the hard subset): what
H1.1 reads from H0.1 at position 20 alone, and everywhere else."""


def recovered_fraction(clean: float, ablated: float, circuit: float) -> float:
    """(circuit - ablated) / (clean - ablated): 1 if the circuit matches the model, 0 if no better than ablating all."""
    clean, ablated, circuit = (
        check_finite("clean", clean),
        check_finite("ablated", ablated),
        check_finite("circuit", circuit),
    )
    if abs(clean - ablated) < 1e-12:
        raise ValueError(f"clean and ablated are equal ({clean}); there is nothing to recover")
    return (circuit - ablated) / (clean - ablated)


def end_metrics(logits: Float[Tensor, "batch 2"], labels: Labels) -> dict[str, float]:
    """Loss, logit difference and accuracy of END logits (``palindrome.metrics``)."""
    return {
        "loss": loss_from_logits(logits, labels),
        "logit_diff": logit_diff_from_logits(logits, labels),
        "accuracy": accuracy_from_logits(logits, labels),
    }


def _check_circuits(circuits: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    if not isinstance(circuits, Mapping) or not circuits:
        raise ValueError("circuits must be a non-empty mapping from names to collections of edges or paths")
    reserved = {CLEAN, ABLATED} & set(circuits)
    if reserved:
        raise ValueError(f"circuit names {sorted(reserved)} are reserved for the reference rows")
    return {name: expand_edges(keep) for name, keep in circuits.items()}


def circuit_table(
    ablator: PathAblator,
    labels: Labels,
    circuits: Mapping[str, Iterable[str]],
    progress: bool = True,
) -> pd.DataFrame:
    """One row per circuit (plus the clean and fully ablated models): END metrics and recovered fractions."""
    circuits = _check_circuits(circuits)
    labels = validate_labels(labels, ablator.toks.shape[0])
    rows = {CLEAN: end_metrics(ablator.logits(ALL), labels), ABLATED: end_metrics(ablator.logits(()), labels)}
    for name, keep in tqdm(circuits.items(), desc=f"{ablator.method} ablation", disable=not progress):
        rows[name] = end_metrics(ablator.logits(keep), labels)
    table = pd.DataFrame.from_dict(rows, orient="index")
    clean, ablated = table.loc[CLEAN], table.loc[ABLATED]
    for metric in ("loss", "logit_diff"):
        table[f"{metric}_recovered"] = [recovered_fraction(clean[metric], ablated[metric], x) for x in table[metric]]
    table.index.name = "circuit"
    return table


def path_contributions(
    model: HookedTransformer,
    toks: TokensLike,
    labels: Labels,
    method: str = "mean",
    variants: Mapping[str, Iterable[str]] = VARIANTS,
    reference_toks: Optional[TokensLike] = None,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
) -> pd.DataFrame:
    """``circuit_table`` of ``variants``, with each row's change in loss recovered relative to the hypothesis."""
    ablator = PathAblator(model, toks, method, reference_toks, seed)
    table = circuit_table(ablator, labels, variants, progress)
    if "hypothesis" in table.index:
        table["change_in_loss_recovered"] = table["loss_recovered"] - table.loc["hypothesis", "loss_recovered"]
    return table


def faithfulness_summary(
    model: HookedTransformer,
    toks: TokensLike,
    labels: Labels,
    keep: Iterable[str] = HYPOTHESIS,
    methods: Sequence[str] = METHODS,
    reference_toks: Optional[TokensLike] = None,
    seed: int = DEFAULT_SEED,
    name: str = "hypothesis",
) -> pd.DataFrame:
    """Clean, fully ablated and circuit-only (row ``name``) metrics under each method, indexed by (method, row)."""
    tables = {
        check_method(m): circuit_table(
            PathAblator(model, toks, m, reference_toks, seed), labels, {name: keep}, progress=False
        )
        for m in methods
    }
    return pd.concat(tables, names=["method"])


def hard_subset(n_bases: int = HARD_BASES, seed: int = HARD_SEED) -> Int[Tensor, "position base seq"]:
    """Single-mismatch non-palindromes: random palindromes with the mirror pair at each second-half position broken."""
    return broken_at_each_position(n_bases, seed)[1]


def hard_subset_errors(
    model: HookedTransformer,
    method: str = "mean",
    variants: Mapping[str, Iterable[str]] = HARD_VARIANTS,
    reference_toks: Optional[TokensLike] = None,
    n_bases: int = HARD_BASES,
    seed: int = HARD_SEED,
    progress: bool = True,
    partner_seed: Optional[int] = None,
) -> pd.DataFrame:
    """Fraction of single-mismatch inputs each circuit calls palindromes, per broken second-half position.

    Means (or resampled inputs) come from ``reference_toks``, by default the chapter's main batch
    of the training distribution, not from the hard inputs themselves. ``seed`` draws the hard inputs
    and, for resampling, which reference row each of them borrows from, unless ``partner_seed`` draws
    the borrowed rows instead.
    """
    variants = _check_circuits(variants)
    broken, ablator = hard_subset_ablator(model, method, reference_toks, n_bases, seed, partner_seed)
    rows = {}
    for name, keep in tqdm(variants.items(), desc=f"hard subset, {method}", disable=not progress):
        rows[name] = _called_palindrome(ablator.logits(keep), broken)
    return _hard_table(rows)


def hard_subset_ablator(
    model: HookedTransformer,
    method: str,
    reference_toks: Optional[TokensLike],
    n_bases: int,
    seed: int,
    partner_seed: Optional[int] = None,
) -> tuple[Int[Tensor, "position base seq"], PathAblator]:
    """The hard subset's broken inputs and a PathAblator over them (``partner_seed`` draws resampling partners)."""
    if reference_toks is None:
        reference_toks = main_dataset().toks
    broken = hard_subset(n_bases, seed)
    partners = seed if partner_seed is None else partner_seed
    return broken, PathAblator(model, broken.flatten(0, 1), method, reference_toks, partners)


def _called_palindrome(logits: Float[Tensor, "batch 2"], broken: Int[Tensor, "position base seq"]) -> list[float]:
    # the ablator ran on broken's inputs, flattened: its calls are the decision on them
    return miss_rates_by_position(lambda _toks: logits.argmax(-1).cpu() == 1, broken).tolist()


def _hard_table(rows: Mapping[str, list[float]]) -> pd.DataFrame:
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(SECOND_HALF))
    table.index.name = "circuit"
    table.columns.name = "broken position"
    return table


def hard_subset_position_errors(
    model: HookedTransformer,
    method: str = "mean",
    variants: Mapping[str, tuple[Iterable[str], Sequence[int]]] = POSITION_VARIANTS,
    reference_toks: Optional[TokensLike] = None,
    n_bases: int = HARD_BASES,
    seed: int = HARD_SEED,
    partner_seed: Optional[int] = None,
) -> pd.DataFrame:
    """``hard_subset_errors`` of the full model with only some edges ablated, and only at some positions.

    ``variants`` maps a row name to (edges, positions): those edges carry their ablated value (mean
    or resampled, as in ``hard_subset_errors``, with the same inputs, borrowed rows and ``partner_seed``) at
    those sequence positions only, and every other edge and position is live.
    """
    if not isinstance(variants, Mapping) or not variants:
        raise ValueError("variants must be a non-empty mapping from names to (edges, positions) pairs")
    checked = {}
    for name, spec in variants.items():
        if not isinstance(spec, (tuple, list)) or len(spec) != 2:
            raise ValueError(f"variant {name!r} must be an (edges, positions) pair, got {spec!r:.60}")
        checked[name] = (expand_edges(spec[0]), spec[1])
    broken, ablator = hard_subset_ablator(model, method, reference_toks, n_bases, seed, partner_seed)
    rows = {}
    for name, (edges, positions) in checked.items():
        logits = ablator.logits(ALL, replaced=ablator.ablated, edges=edges, positions=positions)
        rows[name] = _called_palindrome(logits, broken)
    return _hard_table(rows)


def resample_error_sources(
    model: HookedTransformer,
    toks: TokensLike,
    labels: Labels,
    keep: Iterable[str] = VARIANTS["full - H1.1"],
    position: int = max(SECOND_HALF),
    seed: int = DEFAULT_SEED,
) -> dict[str, float]:
    """Where resampling's errors come from: how often the borrowed input has the pair at ``position`` broken."""
    if isinstance(position, bool) or position not in VALUE_POSITIONS:
        raise ValueError(
            f"position must be a value position {VALUE_POSITIONS[0]}..{VALUE_POSITIONS[-1]}, got {position!r}"
        )
    ablator = PathAblator(model, toks, "resample", seed=seed)
    labels = validate_labels(labels, ablator.toks.shape[0]).cpu()
    wrong = ablator.logits(keep).argmax(-1).cpu() != labels
    if not wrong.any():
        raise ValueError(
            "the resampled circuit classifies every sequence of toks correctly, so there is no error to trace; "
            "pass a larger batch (faithfulness.main_dataset())"
        )
    borrowed_broken = mismatch_mask(ablator.source.cpu())[:, position]
    return {
        "error_rate": wrong.float().mean().item(),
        "borrowed_broken_rate": borrowed_broken.float().mean().item(),
        "borrowed_broken_given_error": borrowed_broken[wrong].float().mean().item(),
        "palindromes_among_errors": labels[wrong].float().mean().item(),
    }


def misses_reading_the_mirror(
    model: HookedTransformer, sweep: Optional[SweepResult] = None, position: int = TARGET_POSITION
) -> dict[str, float]:
    """Of the single mismatches at ``position`` in chapter 8's sweep (or ``sweep``), missed and caught: how many
    have H0.0 at ``position`` attend more to the mirror than to itself.

    Keys ``sweep_missed_pos_{p}``, ``sweep_missed_h00_reads_mirror_pos_{p}``, ``sweep_caught_pos_{p}`` and
    ``sweep_caught_h00_reads_mirror_pos_{p}`` (counts of inputs, as floats).
    """
    position = check_second_half_position(position)
    if sweep is None:
        sweep = single_mismatch_sweep(model, progress=False)
    if not isinstance(sweep, SweepResult) or sweep.side != "second":
        raise ValueError("sweep must be a SweepResult of the second side (blindspots.single_mismatch_sweep)")
    toks = single_mismatch_tokens(sweep.bases, position).flatten(0, 1).to(model.cfg.device)
    missed = sweep.misclassified[sweep.index(position)].flatten().cpu()
    name = get_act_name("pattern", 0)
    reads = []
    with torch.inference_mode():
        for chunk in toks.split(4096):
            _, cache = model.run_with_cache(chunk, names_filter=name, stop_at_layer=1)
            row = cache[name][:, 0, position].cpu()  # H0.0's attention from position, [batch, key]
            reads.append(row[:, MIRROR[position]] > row[:, position])
    mirror = torch.cat(reads)
    return {
        f"sweep_missed_pos_{position}": float(missed.sum()),
        f"sweep_missed_h00_reads_mirror_pos_{position}": float((mirror & missed).sum()),
        f"sweep_caught_pos_{position}": float((~missed).sum()),
        f"sweep_caught_h00_reads_mirror_pos_{position}": float((mirror & ~missed).sum()),
    }


# --- the chapter's key numbers -----------------------------------------------------------------


def main_dataset() -> PalindromeDataset:
    """The chapter's main evaluation batch: ``PalindromeDataset(MAIN_SIZE, seed=MAIN_SEED)``."""
    return PalindromeDataset(MAIN_SIZE, seed=MAIN_SEED)


def findings_from(
    contributions: Mapping[str, pd.DataFrame],
    original: pd.DataFrame,
    hard: Mapping[str, pd.DataFrame],
    error_sources: Mapping[str, float],
) -> dict[str, float]:
    """The named numbers the chapter's claims rest on, from already computed tables."""
    out: dict[str, float] = {}
    first = next(iter(contributions.values()))
    for metric in METRICS:
        out[f"clean_{metric}"] = float(first.loc[CLEAN, metric])
        out[f"original500_clean_{metric}"] = float(original.loc[(METHODS[0], CLEAN), metric])
    for method, table in contributions.items():
        for metric in METRICS:
            out[f"{method}_ablated_{metric}"] = float(table.loc[ABLATED, metric])
        for row in table.index.drop([CLEAN, ABLATED]):
            key = "circuit" if row == "hypothesis" else slug(row)
            for column in METRICS + ("loss_recovered", "logit_diff_recovered"):
                out[f"{method}_{key}_{column}"] = float(table.loc[row, column])
        for row in ("full - H0.1", "full - H1.1"):
            if row in table.index:
                out[f"{method}_{slug(row)}_loss_increase"] = float(table.loc[row, "loss"] - table.loc[CLEAN, "loss"])
    for (method, row), values in original.iterrows():
        if row != CLEAN:
            key = "circuit" if row == "hypothesis" else "ablated"
            for column in METRICS + ("loss_recovered", "logit_diff_recovered"):
                out[f"original500_{method}_{key}_{column}"] = float(values[column])
    for method, table in hard.items():
        for row in table.index:
            for position in table.columns:
                out[f"hard_{method}_{slug(row)}_pos_{position}"] = float(table.loc[row, position])
    for name, value in error_sources.items():
        out[f"resample_h1_1_{name}"] = float(value)
    return out


QKV_BATCH: int = 200
"""The original write-up's q/k/v ablations (chapter 7) use the first 200 sequences of PalindromeDataset(500)."""


def head_ablation_findings(model: HookedTransformer) -> dict[str, float]:
    """Whole-head numbers the reconciliation cites, and the composed OV vote per position.

    H0.1's output zero-, mean- (``palindrome.ablation``) and resample-ablated on PalindromeDataset(500);
    H1.0's keys mean-ablated on its first 200 sequences (chapter 7's batch); the composed OV vote is
    W_pos W_OV^0.0 W_OV^1.0 (W_U[:,0] - W_U[:,1]) (``palindrome.attribution``).
    """
    data = original_dataset()
    out = {
        f"original500_{kind}_h0_1_loss_increase": Ablator(model, data.toks).loss_increase(
            data.toks, data.is_palindrome, [Ablation(0, 1, "result", kind)]
        )
        for kind in ("zero", "mean")
    }
    ablator = PathAblator(model, data.toks, "resample")
    out["original500_resample_h0_1_loss_increase"] = loss_from_logits(
        ablator.logits(VARIANTS["full - H0.1"]), data.is_palindrome
    ) - loss_from_logits(ablator.logits(ALL), data.is_palindrome)
    first200 = data[:QKV_BATCH]
    out["original200_mean_h1_0_k_loss_increase"] = Ablator(model, first200[0]).loss_increase(
        *first200, [Ablation(1, 0, "k", "mean")]
    )
    votes = composed_ov_circuit(model)
    out |= {f"composed_ov_vote_pos_{p}": votes[p].item() for p in VALUE_POSITIONS}
    return out


KEYS: frozenset[str] = frozenset(
    {
        "clean_accuracy",
        "clean_loss",
        "composed_ov_vote_pos_1",
        "composed_ov_vote_pos_10",
        "composed_ov_vote_pos_11",
        "composed_ov_vote_pos_12",
        "composed_ov_vote_pos_13",
        "composed_ov_vote_pos_14",
        "composed_ov_vote_pos_15",
        "composed_ov_vote_pos_16",
        "composed_ov_vote_pos_17",
        "composed_ov_vote_pos_18",
        "composed_ov_vote_pos_19",
        "composed_ov_vote_pos_2",
        "composed_ov_vote_pos_20",
        "composed_ov_vote_pos_3",
        "composed_ov_vote_pos_4",
        "composed_ov_vote_pos_5",
        "composed_ov_vote_pos_6",
        "composed_ov_vote_pos_7",
        "composed_ov_vote_pos_8",
        "composed_ov_vote_pos_9",
        "hard_mean_full_minus_h0_1_pos_20",
        "hard_mean_full_model_pos_17",
        "hard_mean_full_model_pos_20",
        "hard_mean_h0_1_to_h1_1_at_20_only_pos_20",
        "hard_mean_h0_1_to_h1_1_except_at_20_pos_20",
        "hard_resample_full_minus_h0_1_pos_20",
        "hard_resample_h0_1_to_h1_1_at_20_only_pos_17",
        "hard_resample_h0_1_to_h1_1_at_20_only_pos_19",
        "hard_resample_h0_1_to_h1_1_at_20_only_pos_20",
        "hard_resample_h0_1_to_h1_1_except_at_20_pos_20",
        "hard_mean_hypothesis_pos_17",
        "hard_mean_hypothesis_pos_19",
        "hard_mean_plus_h0_1_plus_h1_1_pos_17",
        "hard_mean_plus_h0_1_pos_20",
        "hard_resample_full_minus_h1_1_pos_20",
        "hard_resample_hypothesis_pos_20",
        "hard_resample_plus_h0_1_plus_h1_1_pos_20",
        "hard_resample_plus_h1_1_pos_20",
        "mean_ablated_loss",
        "mean_circuit_accuracy",
        "mean_circuit_logit_diff_recovered",
        "mean_circuit_loss",
        "mean_circuit_loss_recovered",
        "mean_extended_accuracy",
        "mean_extended_loss_recovered",
        "mean_extended_minus_h0_1_loss_recovered",
        "mean_extended_minus_positions_to_h1_0_loss_recovered",
        "mean_full_minus_h0_1_loss_increase",
        "mean_full_minus_h1_1_loss_increase",
        "mean_minus_h0_0_to_h1_0_k_loss",
        "mean_minus_h0_0_to_h1_0_k_loss_recovered",
        "mean_minus_h0_0_to_h1_0_v_loss_recovered",
        "mean_minus_positions_to_h0_0_qk_loss_recovered",
        "mean_minus_tokens_to_h0_0_v_loss_recovered",
        "mean_plus_h0_0_to_h1_0_q_loss",
        "mean_plus_h0_0_to_h1_0_q_loss_recovered",
        "mean_plus_h0_1_loss_recovered",
        "mean_plus_positions_to_h1_0_loss_recovered",
        "original200_mean_h1_0_k_loss_increase",
        "original500_clean_loss",
        "original500_mean_circuit_accuracy",
        "original500_mean_circuit_logit_diff_recovered",
        "original500_mean_circuit_loss_recovered",
        "original500_mean_h0_1_loss_increase",
        "original500_resample_circuit_accuracy",
        "original500_resample_circuit_logit_diff_recovered",
        "original500_resample_circuit_loss_recovered",
        "original500_resample_h0_1_loss_increase",
        "original500_zero_h0_1_loss_increase",
        "resample_ablated_loss",
        "resample_circuit_accuracy",
        "resample_circuit_logit_diff_recovered",
        "resample_circuit_loss",
        "resample_circuit_loss_recovered",
        "resample_extended_accuracy",
        "resample_extended_loss_recovered",
        "resample_extended_minus_h1_1_loss_recovered",
        "resample_full_minus_h0_1_loss_increase",
        "resample_full_minus_h1_1_loss_increase",
        "resample_h1_1_borrowed_broken_given_error",
        "resample_h1_1_borrowed_broken_rate",
        "resample_h1_1_error_rate",
        "resample_h1_1_palindromes_among_errors",
        "resample_minus_h0_0_to_h1_0_k_loss_recovered",
        "resample_minus_h0_0_to_h1_0_v_loss_recovered",
        "resample_minus_tokens_to_h0_0_qk_loss_recovered",
        "resample_minus_tokens_to_h0_0_v_loss_recovered",
        "resample_plus_direct_to_logits_loss_recovered",
        "resample_plus_h1_1_loss_recovered",
        "sweep_caught_h00_reads_mirror_pos_20",
        "sweep_caught_pos_20",
        "sweep_h00_reads_mirror_share_max_other",
        "sweep_h00_reads_mirror_share_pos_20",
        "sweep_missed_h00_reads_mirror_pos_20",
        "sweep_missed_pos_20",
    }
)
"""The finding keys the reconciliation and the tests cite (``key_findings`` checks it computes each)."""


def key_findings(model: HookedTransformer) -> Findings:
    """This chapter's key numbers (the chapter's datasets, seeds and circuits), as floats under the declared
    ``KEYS``."""
    data = main_dataset()
    original = original_dataset()
    contributions = {m: path_contributions(model, data.toks, data.is_palindrome, m, progress=False) for m in METHODS}
    summary = faithfulness_summary(model, original.toks, original.is_palindrome)
    hard = {
        m: pd.concat(
            [
                hard_subset_errors(model, m, reference_toks=data.toks, progress=False),
                hard_subset_position_errors(model, m, reference_toks=data.toks),
            ]
        )
        for m in METHODS
    }
    sources = resample_error_sources(model, data.toks, data.is_palindrome)
    found = findings_from(contributions, summary, hard, sources) | head_ablation_findings(model)
    return Findings("faithfulness", found | mirror_reading_by_position(model), KEYS)


def original_dataset() -> PalindromeDataset:
    """The original write-up's evaluation batch: ``PalindromeDataset(ORIGINAL_SIZE)`` (seed 42)."""
    return PalindromeDataset(ORIGINAL_SIZE)


def mirror_reading_by_position(model: HookedTransformer, sweep: Optional[SweepResult] = None) -> dict[str, float]:
    """``misses_reading_the_mirror`` at every second-half position, plus the share of all single mismatches there
    with H0.0 on the mirror more than on itself (``sweep_h00_reads_mirror_share_pos_{p}``) and the largest such share
    away from 20 (``sweep_h00_reads_mirror_share_max_other``)."""
    if sweep is None:
        sweep = single_mismatch_sweep(model, progress=False)
    out: dict[str, float] = {}
    for p in SECOND_HALF:
        counts = misses_reading_the_mirror(model, sweep, p)
        out |= counts
        total = counts[f"sweep_missed_pos_{p}"] + counts[f"sweep_caught_pos_{p}"]
        reads = counts[f"sweep_missed_h00_reads_mirror_pos_{p}"] + counts[f"sweep_caught_h00_reads_mirror_pos_{p}"]
        out[f"sweep_h00_reads_mirror_share_pos_{p}"] = reads / total
    out["sweep_h00_reads_mirror_share_max_other"] = max(
        out[f"sweep_h00_reads_mirror_share_pos_{p}"] for p in SECOND_HALF if p != TARGET_POSITION
    )
    return out
