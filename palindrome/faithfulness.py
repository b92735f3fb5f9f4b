"""Chapter 10: how much of the model the proposed circuit explains, and the reconciliation of the published claims.

Method. The circuit is a set of edges of the residual stream (``palindrome.paths``, which also
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

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from palindrome import backup, blindspots
from palindrome.ablation import Ablation, Ablator, Labels, format_loss_change
from palindrome.attribution import composed_ov_circuit
from palindrome.blindspots import BLIND_THRESHOLD, mechanism_inputs
from palindrome.constants import SECOND_HALF, VALUE_POSITIONS
from palindrome.data import PalindromeDataset
from palindrome.metrics import accuracy_from_logits, logit_diff_from_logits, loss_from_logits
from palindrome.paths import (  # the path-patching engine; re-exported for chapter 10's ``fa.`` namespace
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
    RECEIVERS,
    SENDERS,
    ablated_pos,
    ablated_values,
    check_method,
    circuit_hooks,
    circuit_logits,
    derangement,
    expand_edges,
    path_table,
    resample_tokens,
    source_tokens,
)
from palindrome.tokens import TokensLike, mismatch_mask, validate_labels, validate_tokens

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


def recovered_fraction(clean: float, ablated: float, circuit: float) -> float:
    """(circuit - ablated) / (clean - ablated): 1 if the circuit matches the model, 0 if no better than ablating all."""
    values = torch.tensor([clean, ablated, circuit], dtype=torch.float64)
    if not torch.isfinite(values).all():
        raise ValueError(f"clean, ablated and circuit must be finite numbers, got {values.tolist()}")
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
        table[f"{metric}_recovered"] = [
            recovered_fraction(clean[metric], ablated[metric], x) for x in table[metric]
        ]
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
    return mechanism_inputs(n_bases, seed)[1]


def hard_subset_errors(
    model: HookedTransformer,
    method: str = "mean",
    variants: Mapping[str, Iterable[str]] = HARD_VARIANTS,
    reference_toks: Optional[TokensLike] = None,
    n_bases: int = HARD_BASES,
    seed: int = HARD_SEED,
    progress: bool = True,
) -> pd.DataFrame:
    """Fraction of single-mismatch inputs each circuit calls palindromes, per broken second-half position.

    Means (or resampled inputs) come from ``reference_toks``, by default the chapter's main batch
    of the training distribution, not from the hard inputs themselves. ``seed`` draws both the hard
    inputs and, for resampling, which reference row each of them borrows from.
    """
    variants = _check_circuits(variants)
    if reference_toks is None:
        reference_toks = main_dataset().toks
    broken = hard_subset(n_bases, seed)
    ablator = PathAblator(model, broken.flatten(0, 1), method, reference_toks, seed)
    rows = {}
    for name, keep in tqdm(variants.items(), desc=f"hard subset, {method}", disable=not progress):
        called_palindrome = ablator.logits(keep).argmax(-1).cpu() == 1
        rows[name] = called_palindrome.view(broken.shape[:2]).float().mean(1).tolist()
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(SECOND_HALF))
    table.index.name = "circuit"
    table.columns.name = "broken position"
    return table


def resample_error_sources(
    model: HookedTransformer,
    toks: TokensLike,
    labels: Labels,
    keep: Iterable[str] = VARIANTS["full - H1.1"],
    position: int = max(SECOND_HALF),
    seed: int = DEFAULT_SEED,
) -> dict[str, float]:
    """Where resampling's errors come from: how often the borrowed input has the pair at ``position`` broken."""
    if position not in VALUE_POSITIONS:
        raise ValueError(f"position must be a value position {VALUE_POSITIONS[0]}..{VALUE_POSITIONS[-1]}, got {position!r}")
    ablator = PathAblator(model, toks, "resample", seed=seed)
    labels = validate_labels(labels, ablator.toks.shape[0]).cpu()
    wrong = ablator.logits(keep).argmax(-1).cpu() != labels
    borrowed_broken = mismatch_mask(ablator.source.cpu())[:, position]
    return {
        "error_rate": wrong.float().mean().item(),
        "borrowed_broken_rate": borrowed_broken.float().mean().item(),
        "borrowed_broken_given_error": borrowed_broken[wrong].float().mean().item() if wrong.any() else float("nan"),
        "palindromes_among_errors": labels[wrong].float().mean().item() if wrong.any() else float("nan"),
    }


# --- the chapter's key numbers -----------------------------------------------------------------


def main_dataset() -> PalindromeDataset:
    """The chapter's main evaluation batch: ``PalindromeDataset(MAIN_SIZE, seed=MAIN_SEED)``."""
    return PalindromeDataset(MAIN_SIZE, seed=MAIN_SEED)


def slug(name: str) -> str:
    """A circuit or path name as a key fragment: "- H0.0 -> H1.0 K" -> "minus_h0_0_to_h1_0_k"."""
    text = name.strip()
    if text[:2] in ("- ", "+ "):
        text = ("minus " if text[0] == "-" else "plus ") + text[2:]
    text = text.replace("->", " to ").replace(" + ", " plus ").replace(" - ", " minus ")
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


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
    H1.0's keys mean-ablated on its first 200 sequences (chapter 7's batch); the composed OV vote is W_pos W_OV^0.0 W_OV^1.0 (W_U[:,0] - W_U[:,1]) (``palindrome.attribution``).
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


def key_findings(model: HookedTransformer) -> dict[str, float]:
    """This chapter's key numbers (the chapter's datasets, seeds and circuits), as floats."""
    data = main_dataset()
    original = original_dataset()
    contributions = {
        m: path_contributions(model, data.toks, data.is_palindrome, m, progress=False) for m in METHODS
    }
    summary = faithfulness_summary(model, original.toks, original.is_palindrome)
    hard = {m: hard_subset_errors(model, m, reference_toks=data.toks, progress=False) for m in METHODS}
    sources = resample_error_sources(model, data.toks, data.is_palindrome)
    return findings_from(contributions, summary, hard, sources) | head_ablation_findings(model)


def original_dataset() -> PalindromeDataset:
    """The original write-up's evaluation batch: ``PalindromeDataset(ORIGINAL_SIZE)`` (seed 42)."""
    return PalindromeDataset(ORIGINAL_SIZE)


# --- reconciling the claims ----------------------------------------------------------------------

FINDINGS_MODULES: tuple[str, ...] = ("faithfulness", "blindspots", "backup")
"""Modules whose ``key_findings(model)`` the reconciliation table draws on (chapters 10, 8 and 9)."""
NEGLIGIBLE: float = 0.05
"""A change in loss, or in the fraction of loss recovered, below this counts as negligible."""
DISAGREE_RATIO: float = 3.0
"""Two ablations of the same head disagree when one costs this many times more loss than the other."""

Findings = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class Evidence:
    """One number a verdict rests on: ``findings[module][key]``, shown as ``label`` with format ``fmt``."""

    label: str
    module: str
    key: str
    fmt: str = ".3f"

    def value(self, findings: Findings) -> Optional[float]:
        """The number, or None when its module's findings are missing."""
        if self.module not in findings:
            return None
        if self.key not in findings[self.module]:
            raise ValueError(
                f"palindrome.{self.module}.key_findings has no key {self.key!r}; "
                f"it has {sorted(findings[self.module])}"
            )
        return float(findings[self.module][self.key])


@dataclass(frozen=True)
class Claim:
    """A claim of the original write-up or of the other analysis, the numbers that test it, and a verdict rule."""

    source: str
    claim: str
    evidence: tuple[Evidence, ...]
    verdict: Callable[[Mapping[str, float]], str]


def _mine(label: str, key: str, fmt: str = ".3f") -> Evidence:
    return Evidence(label, "faithfulness", key, fmt)


def _blind(label: str, key: str, fmt: str = ".3f") -> Evidence:
    return Evidence(label, "blindspots", key, fmt)


def _backup(label: str, key: str, fmt: str = ".3f") -> Evidence:
    return Evidence(label, "backup", key, fmt)


VERDICT_KINDS: tuple[str, ...] = ("Confirmed", "Partly", "Contradicted", "Not yet examined")
"""Every verdict starts with one of these words: what the book's numbers say of the claim as stated."""
MIRROR_ATTENTION: float = 0.5
"""H0.0 'finds' a mirror when it puts at least this much attention on it (palindromes, mean over inputs)."""
IGNORED: float = 0.05
"""A head at END 'ignores' a broken position when it puts less than this much attention on it."""
DIFFERENCE_VECTORS = "not examined in this book yet"
"""What the rows that rest on the other analysis's difference vectors say instead of a verdict."""


def _verdict_mechanism(v: Mapping[str, float]) -> str:
    low = min(v["loss recovered (mean)"], v["loss recovered (resample)"])
    high = max(v["loss recovered (mean)"], v["loss recovered (resample)"])
    extended = min(v["extended circuit, loss recovered (mean)"], v["extended circuit, loss recovered (resample)"])
    if low >= 1 - NEGLIGIBLE:
        return f"Confirmed: the circuit alone recovers at least {low:.1%} of the loss."
    return (
        f"Partly: it is the main mechanism, but alone it recovers {low:.0%} to {high:.0%} of the loss; "
        f"adding H0.1, H1.1 and positions into H1.0 recovers at least {extended:.1%}."
    )


def _verdict_path(name: str) -> Callable[[Mapping[str, float]], str]:
    def verdict(v: Mapping[str, float]) -> str:
        drops = {m: v[f"circuit, loss recovered ({m})"] - v[f"without it ({m})"] for m in METHODS}
        big = [m for m, d in drops.items() if d >= 2 * NEGLIGIBLE]
        text = ", ".join(f"{d:.2f} ({m})" for m, d in drops.items()) + " of the loss recovered"
        full = v.get("full model, H1.0's keys mean-ablated: loss increase (200)")
        if full is not None:  # all of H1.0's keys, not only what H0.0 contributes to them
            text += f"; in the full model, mean-ablating H1.0's keys costs +{full:.3f} loss (first 200 of PalindromeDataset(500), Chapter 7)"
        if len(big) == len(METHODS):
            return f"Confirmed: removing {name} from the circuit-only model loses {text}."
        if big:
            return f"Partly: in the circuit-only model {name} matters mainly under {' and '.join(big)}; removing it loses {text}."
        return f"Contradicted: removing {name} loses only {text}."

    return verdict


def _verdict_lambda(v: Mapping[str, float]) -> str:
    found = {p: v[f"H0.0 attention to mirror from {p}, palindromes"] for p in SECOND_HALF}
    misses = [p for p, a in found.items() if a < MIRROR_ATTENTION]
    hits = [a for p, a in found.items() if p not in misses]
    text = (
        f"on palindromes (tokens matching too) H0.0 puts {min(hits):.2f} to {max(hits):.2f} on the mirror at "
        f"{len(hits)} of {len(found)} positions"
    )
    if not misses:
        return f"Confirmed: {text}."
    low = " and ".join(f"{found[p]:.2f} at {p}" for p in misses)
    if set(misses) <= {17, 19}:
        return f"Confirmed, with the exceptions the original names: {text}, only {low}."
    return f"Partly: {text}, only {low}."


def _verdict_composed_ov(v: Mapping[str, float]) -> str:
    votes = {p: v[f"composed OV vote at {p}"] for p in VALUE_POSITIONS}
    wrong = [p for p, x in votes.items() if (x > 0) != (p in SECOND_HALF)]
    right = len(votes) - len(wrong)
    text = f"the sign is right (negative on 1-10, positive on 11-20) at {right} of {len(votes)} positions"
    exceptions = ", ".join(f"{p} ({votes[p]:+.2f})" for p in wrong)
    if not wrong:
        return f"Confirmed: {text}."
    if all(p <= 4 or p >= 17 for p in wrong):  # the claim's "except at the ends"
        return f"Confirmed: {text}; it is wrong only near the ends, at {exceptions}."
    return f"Partly: {text}; wrong at {exceptions}."


def _verdict_h11(v: Mapping[str, float]) -> str:
    clean, ablated = v["misses at 20, no ablation (100 bases)"], v["misses at 20, H1.1 mean-ablated (100 bases)"]
    original = v["dataset loss, H1.1 mean-ablated (500)"] - v["dataset loss, clean (500)"]
    if ablated > BLIND_THRESHOLD > clean or v["loss increase, H1.1 resampled (1000, seed 1)"] >= NEGLIGIBLE:
        return (
            f"Contradicted, although the measurement behind it holds: mean-ablating H1.1 costs only "
            f"+{original:.3f} loss on the original's PalindromeDataset(500) "
            f"(+{v['loss increase, H1.1 mean-ablated (1000, seed 1)']:.3f} on PalindromeDataset(1000, seed=1)), yet "
            f"on Chapter 8's 100 single mismatches of pair (1, 20) it raises the misses from {clean:.0%} to "
            f"{ablated:.0%} (same inputs); on Chapter 9's 300 position-20 "
            f"mismatches its direct effect is {v['H1.1 direct effect, pos-20 mismatches (300)']:+.1f} "
            f"({v['H1.1 direct effect, palindromes (300)']:+.1f} on their palindromes); resampling it costs "
            f"+{v['loss increase, H1.1 resampled (1000, seed 1)']:.2f} loss."
        )
    return "Confirmed: neither ablation nor the position-20 test finds a use for H1.1."


def _verdict_h01(v: Mapping[str, float]) -> str:
    cost = (
        f"removing its output costs +{v['loss increase, H0.1 mean-ablated (1000, seed 1)']:.3f} (mean) and "
        f"+{v['loss increase, H0.1 resampled (1000, seed 1)']:.3f} (resampled) loss on PalindromeDataset(1000, seed=1)"
    )
    if v["loss increase, H0.1 mean-ablated (1000, seed 1)"] < NEGLIGIBLE / 5:
        return f"Contradicted: {cost}."
    known = []
    on_mismatch = v["H0.1's part of H1.1's value at 20, pos-20 mismatches (300)"]
    on_palindrome = v["H0.1's part of H1.1's value at 20, palindromes (300)"]
    if on_mismatch - on_palindrome >= 1:
        known.append(
            f"at position 20 its output feeds H1.1's check (H0.1's part of H1.1's value at 20, per unit of attention, "
            f"along the non-palindrome direction: {on_mismatch:+.2f} on Chapter 9's 300 position-20 mismatches, "
            f"{on_palindrome:+.2f} on their palindromes)"
        )
    clean = v["dataset loss, clean (500)"]
    ablated = v["dataset loss, H0.1 mean-ablated (500)"] - clean
    held = v["dataset loss, H0.1 mean-ablated, clean layer-1 scale (500)"] - clean
    if ablated > 0 and held <= ablated / 2:
        known.append(
            f"on PalindromeDataset(500) its mean-ablation cost falls from +{ablated:.3f} to +{held:.3f} when layer "
            f"1's LayerNorm scale is held at its clean value"
        )
    return (
        f"Partly answered: {cost}; " + "; ".join(known)
        + ". What it computes elsewhere, and its resampled cost, are not explained here."
    )


def _verdict_h01_constant(v: Mapping[str, float]) -> str:
    cost = v["dataset loss, H0.1 mean-ablated (500)"] - v["dataset loss, clean (500)"]
    variability, h00 = v["variability of H0.1's output"], v["variability of H0.0's output"]
    if cost < NEGLIGIBLE / 5 and variability < 0.5:
        return f"Confirmed: mean-ablating H0.1 costs {format_loss_change(cost)} loss and its variability is {variability:.2f}."
    return (
        f"Contradicted: on PalindromeDataset(500) mean-ablating H0.1 costs +{cost:.3f} loss (clean "
        f"{v['dataset loss, clean (500)']:.3f}), and its output is far from constant: its variability (std over "
        f"inputs / norm of the mean, pooled over positions) is {variability:.2f}, against {h00:.2f} for H0.0 "
        f"(Chapter 9)."
    )


def _verdict_weak_positions(v: Mapping[str, float]) -> str:
    misses = {p: v[f"misses at {p}"] for p in SECOND_HALF}
    named = (17, 19, 20)
    worst_other = max(m for p, m in misses.items() if p not in named)
    blind = [p for p in named if misses[p] > BLIND_THRESHOLD]
    weak = [p for p in named if p not in blind and misses[p] > worst_other]
    fine = [p for p in named if p not in blind + weak]
    parts = []
    if blind:
        parts.append("blind: " + ", ".join(f"{21 - p}-{p} ({misses[p]:.0%} missed)" for p in blind))
    if weak:
        parts.append(
            "weak but not blind: "
            + ", ".join(f"{21 - p}-{p} ({misses[p]:.1%} missed, {1 - misses[p]:.1%} caught)" for p in weak)
        )
    parts.append(f"every other pair at most {worst_other:.1%} missed (Chapter 8's sweep)")
    if fine:
        parts.append("not weaker than the rest: " + ", ".join(f"{21 - p}-{p}" for p in fine))
    kind = "Confirmed" if len(blind) == len(named) else "Partly"
    return f"{kind}: " + "; ".join(parts) + ". Positions 1, 2 and 4 are the same three checks seen from the first half."


def _verdict_17_19(v: Mapping[str, float]) -> str:
    mirror = {p: v[f"H0.0 attention to mirror from {p}, palindromes"] for p in (17, 18, 19)}
    qk_weak = all(mirror[p] < 0.5 * mirror[18] for p in (17, 19))
    ignored = all(v[f"H1.0 END attention on a broken {p}"] < IGNORED for p in (17, 19))
    if qk_weak and ignored:
        return (
            f"Confirmed: on palindromes (tokens matching too) H0.0 puts only {mirror[17]:.2f} (17) and "
            f"{mirror[19]:.2f} (19) on the mirror, against {mirror[18]:.2f} from 18 (the positional circuit alone, "
            f"Chapter 2, is weaker still there); H1.0 at END gives a broken 17 or 19 at most "
            f"{max(v['H1.0 END attention on a broken 17'], v['H1.0 END attention on a broken 19']):.3f}."
        )
    if qk_weak or ignored:
        return "Partly: " + ("H0.0's QK circuit is weak there, but H1.0 does attend." if qk_weak else "H1.0 ignores them, but H0.0 finds their mirrors.")
    return "Contradicted: H0.0 finds the mirrors of 17 and 19 and H1.0 attends to them."


def _verdict_20_first(v: Mapping[str, float]) -> str:
    h10, h11 = v["H1.0 END attention on a broken 20"], v["H1.1 END attention on a broken 20"]
    ablated, clean = v["misses at 20, H1.1 mean-ablated (100 bases)"], v["misses at 20, no ablation (100 bases)"]
    if h10 < IGNORED and h11 > 0.5 and ablated > BLIND_THRESHOLD:
        return (
            f"Confirmed, and stronger: H1.0 at END gives a broken 20 {h10:.3f} of its attention, H1.1 "
            f"{h11:.2f} ({v['H1.1 END attention on 20, palindromes']:.2f} on palindromes); H1.1 does not pick up "
            f"slack but is the only layer-1 head that reads pair (1, 20): without it {ablated:.0%} of Chapter 8's 100 "
            f"single mismatches there are missed ({clean:.0%} with it)."
        )
    return f"Partly: H1.0 gives a broken 20 {h10:.3f}, H1.1 {h11:.2f}."


def _verdict_difference_vectors(v: Mapping[str, float]) -> str:
    return (
        f"Not yet examined: the difference vectors and their cosine similarities are {DIFFERENCE_VECTORS}."
    )


def _verdict_20_qk(v: Mapping[str, float]) -> str:
    mirror20, mirror18 = v["H0.0 attention to mirror from 20, palindromes"], v["H0.0 attention to mirror from 18, palindromes"]
    self_pal, self_broken = v["H0.0 self-attention at 20, palindromes"], v["H0.0 self-attention at 20, pair broken"]
    if mirror20 >= 0.5 * mirror18 and self_broken - self_pal >= 2 * NEGLIGIBLE:
        return (
            f"Contradicted as a statement about H0.0's QK circuit: on palindromes H0.0 puts {mirror20:.2f} on the "
            f"mirror of 20 ({mirror18:.2f} from 18), and its self-attention at 20 rises from {self_pal:.2f} to "
            f"{self_broken:.2f} when the pair breaks. On average what fails at 20 comes after H0.0's attention: H1.0 "
            f"gives a broken 20 {v['H1.0 END attention on a broken 20']:.3f} of its attention, and what H0.0 writes "
            f"from 20 would vote 'palindrome' through H1.0 (composed vote {v['composed OV vote at 20']:+.2f}); the "
            f"mismatches at 20 that are still missed are mostly ones where H0.0 keeps reading the mirror (appendix A). "
            f"Whether that is the difference-vector effect the claim describes is {DIFFERENCE_VECTORS}."
        )
    return (
        f"Partly: H0.0 puts {mirror20:.2f} on the mirror of 20 ({mirror18:.2f} from 18) and its self-attention "
        f"moves from {self_pal:.2f} to {self_broken:.2f}; the difference vectors are {DIFFERENCE_VECTORS}."
    )


def _verdict_composition_dv(v: Mapping[str, float]) -> str:
    at20 = v["H1.1 END attention on a broken 20"]
    at17_19 = max(v["H1.1 END attention on a broken 17"], v["H1.1 END attention on a broken 19"])
    return (
        f"Not yet examined: the keys and votes of the difference vectors (and the 0.373 scaling) are not computed "
        f"here; they are {DIFFERENCE_VECTORS}. Its conclusion about H1.1 agrees with what this book measures: H1.1 at END "
        f"gives a broken 20 {at20:.2f} of its attention and a broken 17 or 19 at most {at17_19:.3f}."
    )


def _verdict_targeted(v: Mapping[str, float]) -> str:
    clean = v["dataset loss, clean"]
    whole = v["dataset loss, H0.1 mean-ablated"] - clean
    spared = v["dataset loss, H0.1 mean-ablated except at 20"] - clean
    only = v["dataset loss, H0.1 mean-ablated at 20 only"] - clean
    acc = v["pos-20 accuracy, clean"]
    pattern = spared < NEGLIGIBLE / 5 < whole
    h11_needed = v["pos-20 accuracy, H1.1 values mean-ablated at 20 only"] < 0.5 * acc
    h01_helps = acc - v["pos-20 accuracy, H0.1 mean-ablated at 20 only"] >= NEGLIGIBLE
    text = (
        f"on PalindromeDataset(500), mean-ablating H0.1 changes the loss by {format_loss_change(whole)}, sparing "
        f"position 20 by {format_loss_change(spared)}, at position 20 alone by {format_loss_change(only)}; on Chapter 9's 300 "
        f"position-20 mismatches (accuracy {acc:.3f}), mean-ablating H1.1's "
        f"values at 20 alone gives {v['pos-20 accuracy, H1.1 values mean-ablated at 20 only']:.3f} and H0.1's "
        f"output at 20 alone {v['pos-20 accuracy, H0.1 mean-ablated at 20 only']:.3f}"
    )
    if pattern and h11_needed and h01_helps:
        return (
            f"Partly: the H0.1 half of its pattern reproduces ({text}). Its H1.1 ablations of the dataset loss are "
            f"not repeated here; on position-20 mismatches H1.1 is the check itself, and H0.1 helps it, so 'both "
            f"compensate' overstates H0.1."
        )
    return f"Contradicted: {text}."


def _verdict_zero_mean(v: Mapping[str, float]) -> str:
    zero, mean = v["loss increase, zero-ablated (500)"], v["loss increase, mean-ablated (500)"]
    if zero < DISAGREE_RATIO * max(mean, 1e-9) and mean < DISAGREE_RATIO * max(zero, 1e-9):
        return f"Contradicted: zero- and mean-ablation cost {zero:.3f} and {mean:.3f}."
    text = f"Confirmed: zero-ablation costs {zero / max(mean, 1e-9):.0f} times what mean-ablation does."
    if v["layer-1 LayerNorm scale, zero-ablated / clean"] < 1 - NEGLIGIBLE:
        text += (
            f" Zeroing H0.1 shrinks layer 1's LayerNorm scale to "
            f"{v['layer-1 LayerNorm scale, zero-ablated / clean']:.2f} of its clean value; with the scale held, the "
            f"zero-ablated model's loss is {v['loss, zero-ablated with clean scale']:.3f} "
            f"(clean {v['loss, clean (500)']:.3f})."
        )
    return text + f" Resampling H0.1 costs +{v['loss increase, resampled (500)']:.3f}."


def _verdict_natural(v: Mapping[str, float]) -> str:
    share = v["share of false positives breaking only blind pairs"]
    kind = "Confirmed" if share > 0.5 else "Partly"
    negatives = int(v["false negatives, generator inputs"])
    return (
        f"{kind}, on a larger sample: on {int(v['generator inputs']):,} inputs the model calls "
        f"{v['false positives, generator inputs']:.2%} of them palindromes wrongly and "
        f"{'no palindrome' if negatives == 0 else f'{negatives} palindromes'} a non-palindrome; {share:.0%} of the "
        f"false positives break "
        f"only the blind pairs. An input breaks only blind pairs with probability "
        f"{v['P(only blind pairs broken), closed form']:.5f} (closed form; the quantity its exercise asks for)."
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "original write-up",
        "H0.0's QK circuit: positions 11-20 attend to their mirror 21-i (the lambda pattern), except at 17 and 19",
        tuple(
            _blind(f"H0.0 attention to mirror from {p}, palindromes", f"h00_to_mirror_on_palindromes_pos_{p}", ".2f")
            for p in SECOND_HALF
        ),
        _verdict_lambda,
    ),
    Claim(
        "original write-up",
        "the composed circuit W_pos W_OV(0.0) W_OV(1.0) u is negative on 1-10 and positive on 11-20, except at the ends",
        tuple(_mine(f"composed OV vote at {p}", f"composed_ov_vote_pos_{p}", ".2f") for p in VALUE_POSITIONS),
        _verdict_composed_ov,
    ),
    *(
        Claim(
            "original write-up",
            f"{kind}-composition: H1.0 reads H0.0's output in its {part}",
            (
                _mine("circuit, loss recovered (mean)", "mean_circuit_loss_recovered"),
                _mine("circuit, loss recovered (resample)", "resample_circuit_loss_recovered"),
                _mine("without it (mean)", f"mean_minus_h0_0_to_h1_0_{kind.lower()}_loss_recovered"),
                _mine("without it (resample)", f"resample_minus_h0_0_to_h1_0_{kind.lower()}_loss_recovered"),
                *extra,
            ),
            _verdict_path(f"{kind}-composition"),
        )
        for kind, part, extra in (
            ("K", "keys", (_mine("full model, H1.0's keys mean-ablated: loss increase (200)", "original200_mean_h1_0_k_loss_increase"),)),
            ("V", "values", ()),
        )
    ),
    Claim(
        "original write-up",
        "H0.0 -> H1.0 (K- and V-composition) -> logits is how the model works",
        (
            _mine("loss recovered (mean)", "mean_circuit_loss_recovered"),
            _mine("loss recovered (resample)", "resample_circuit_loss_recovered"),
            _mine("accuracy (mean)", "mean_circuit_accuracy"),
            _mine("accuracy (resample)", "resample_circuit_accuracy"),
            _mine("extended circuit, loss recovered (mean)", "mean_extended_loss_recovered", ".4f"),
            _mine("extended circuit, loss recovered (resample)", "resample_extended_loss_recovered", ".4f"),
        ),
        _verdict_mechanism,
    ),
    Claim(
        "original write-up",
        "H1.1 is not useful at all",
        (
            _backup("dataset loss, clean (500)", "none__dataset__loss", ".4f"),
            _backup("dataset loss, H1.1 mean-ablated (500)", "H11_mean__dataset__loss", ".4f"),
            _mine("loss increase, H1.1 mean-ablated (1000, seed 1)", "mean_full_minus_h1_1_loss_increase"),
            _mine("loss increase, H1.1 resampled (1000, seed 1)", "resample_full_minus_h1_1_loss_increase"),
            _blind("misses at 20, no ablation (100 bases)", "unablated_misclassified_frac_pos_20_mechanism_inputs"),
            _blind("misses at 20, H1.1 mean-ablated (100 bases)", "h11_mean_ablated_misclassified_frac_pos_20"),
            _backup("H1.1 direct effect, pos-20 mismatches (300)", "H11_DLA__pos_20_mismatches", ".2f"),
            _backup("H1.1 direct effect, palindromes (300)", "H11_DLA__palindromes", ".2f"),
        ),
        _verdict_h11,
    ),
    Claim(
        "original write-up",
        "H0.1 does something; what is left as further work",
        (
            _mine("loss increase, H0.1 mean-ablated (1000, seed 1)", "mean_full_minus_h0_1_loss_increase"),
            _mine("loss increase, H0.1 resampled (1000, seed 1)", "resample_full_minus_h0_1_loss_increase"),
            _backup("H0.1's part of H1.1's value at 20, pos-20 mismatches (300)", "H11_vote_H01__pos_20_mismatches", ".2f"),
            _backup("H0.1's part of H1.1's value at 20, palindromes (300)", "H11_vote_H01__palindromes", ".2f"),
            _backup("dataset loss, clean (500)", "none__dataset__loss", ".4f"),
            _backup("dataset loss, H0.1 mean-ablated (500)", "H01_mean__dataset__loss", ".4f"),
            _backup("dataset loss, H0.1 mean-ablated, clean layer-1 scale (500)", "H01_mean_clean_scale__dataset__loss", ".4f"),
        ),
        _verdict_h01,
    ),
    Claim(
        "original write-up",
        "mean-ablating H0.1 changes nothing, since its output is roughly the same for every input",
        (
            _backup("dataset loss, clean (500)", "none__dataset__loss", ".4f"),
            _backup("dataset loss, H0.1 mean-ablated (500)", "H01_mean__dataset__loss", ".4f"),
            _backup("variability of H0.1's output", "H01_variability", ".2f"),
            _backup("variability of H0.0's output", "H00_variability", ".2f"),
        ),
        _verdict_h01_constant,
    ),
    Claim(
        "original write-up",
        "the model is weak at positions 1, 2, 4 and their mirrors 17, 19, 20",
        tuple(_blind(f"misses at {p}", f"misclassified_frac_pos_{p}") for p in SECOND_HALF),
        _verdict_weak_positions,
    ),
    Claim(
        "other analysis (1)",
        "at 17 and 19 H0.0's positional attention fails, and H1.0 at END never attends to them",
        (
            *(
                _blind(f"H0.0 attention to mirror from {p}, palindromes", f"h00_to_mirror_on_palindromes_pos_{p}", ".2f")
                for p in (17, 19, 18)
            ),
            *(_blind(f"H1.0 END attention on a broken {p}", f"h10_end_to_broken_pos_{p}") for p in (17, 19)),
        ),
        _verdict_17_19,
    ),
    Claim(
        "other analysis (2)",
        "position 20 is a blind spot of H1.0, and H1.1 picks up the slack there (its first account, replaced by claim 3)",
        (
            _blind("H1.0 END attention on a broken 20", "h10_end_to_broken_pos_20"),
            _blind("H1.1 END attention on a broken 20", "h11_end_to_broken_pos_20", ".2f"),
            _blind("H1.1 END attention on 20, palindromes", "h11_end_to_palindromes_pos_20", ".2f"),
            _blind("misses at 20, no ablation (100 bases)", "unablated_misclassified_frac_pos_20_mechanism_inputs"),
            _blind("misses at 20, H1.1 mean-ablated (100 bases)", "h11_mean_ablated_misclassified_frac_pos_20"),
        ),
        _verdict_20_first,
    ),
    Claim(
        "other analysis (3)",
        "the difference vectors of all second-half positions but 17, 19 and 20 share one direction",
        (),
        _verdict_difference_vectors,
    ),
    Claim(
        "other analysis (3)",
        "so position 20 is a blind spot of H0.0's QK circuit, not of H1.0",
        (
            _blind("H0.0 attention to mirror from 20, palindromes", "h00_to_mirror_on_palindromes_pos_20", ".2f"),
            _blind("H0.0 attention to mirror from 18, palindromes", "h00_to_mirror_on_palindromes_pos_18", ".2f"),
            _blind("H0.0 self-attention at 20, palindromes", "h00_to_self_on_palindromes_pos_20", ".2f"),
            _blind("H0.0 self-attention at 20, pair broken", "h00_to_self_broken_pos_20", ".2f"),
            _blind("H1.0 END attention on a broken 20", "h10_end_to_broken_pos_20"),
            _blind("composed OV vote at 20", "composed_ov_vote_pos_20", ".2f"),
        ),
        _verdict_20_qk,
    ),
    Claim(
        "other analysis (4)",
        "through the difference vectors, H1.0 composes everywhere but 17, 19, 20, and H1.1 compensates at 20 only",
        tuple(_blind(f"H1.1 END attention on a broken {p}", f"h11_end_to_broken_pos_{p}") for p in (17, 19, 20)),
        _verdict_composition_dv,
    ),
    Claim(
        "other analysis (5)",
        "targeted mean ablations show that both H0.1 and H1.1 compensate for the blind spot at 20",
        (
            _backup("dataset loss, clean", "none__dataset__loss", ".4f"),
            _backup("dataset loss, H0.1 mean-ablated", "H01_mean__dataset__loss", ".4f"),
            _backup("dataset loss, H0.1 mean-ablated except at 20", "H01_mean_all_but_20__dataset__loss", ".4f"),
            _backup("dataset loss, H0.1 mean-ablated at 20 only", "H01_mean_at_20_only__dataset__loss", ".4f"),
            _backup("pos-20 accuracy, clean", "none__pos_20_mismatches__accuracy"),
            _backup("pos-20 accuracy, H0.1 mean-ablated at 20 only", "H01_mean_at_20_only__pos_20_mismatches__accuracy"),
            _backup("pos-20 accuracy, H1.1 values mean-ablated at 20 only", "H11_v_mean_at_20_only__pos_20_mismatches__accuracy"),
        ),
        _verdict_targeted,
    ),
    Claim(
        "other analysis (6)",
        "mean- and zero-ablation disagree about H0.1",
        (
            _mine("loss increase, zero-ablated (500)", "original500_zero_h0_1_loss_increase"),
            _mine("loss increase, mean-ablated (500)", "original500_mean_h0_1_loss_increase"),
            _mine("loss increase, resampled (500)", "original500_resample_h0_1_loss_increase"),
            _backup("layer-1 LayerNorm scale, zero-ablated / clean", "H01_zero__ln1_scale_ratio"),
            _backup("loss, zero-ablated with clean scale", "H01_zero_clean_scale__dataset__loss"),
            _backup("loss, clean (500)", "none__dataset__loss"),
        ),
        _verdict_zero_mean,
    ),
    Claim(
        "other analysis (7)",
        "the generator's own inputs are sometimes adversarial, mostly by breaking only 17 and 19",
        (
            _blind("generator inputs", "natural_sample_size", ".0f"),
            _blind("false positives, generator inputs", "natural_false_positive_rate", ".4f"),
            _blind("false negatives, generator inputs", "natural_false_negatives", ".0f"),
            _blind("share of false positives breaking only blind pairs", "natural_fp_share_only_blind"),
            _blind("P(only blind pairs broken), closed form", "p_only_blind_closed_form", ".5f"),
        ),
        _verdict_natural,
    ),
)
"""Every claim the reconciliation table settles, in the order it shows them."""


def collect_findings(
    model: HookedTransformer, modules: Sequence[str] = FINDINGS_MODULES
) -> dict[str, dict[str, float]]:
    """``key_findings(model)`` of each module named in ``modules`` (chapters 10, 8 and 9)."""
    unknown = [m for m in modules if m not in FINDINGS_MODULES]
    if unknown:
        raise ValueError(f"modules must be among {FINDINGS_MODULES}, got {unknown}")
    compute = {"faithfulness": key_findings, "blindspots": blindspots.key_findings, "backup": backup.key_findings}
    return {name: compute[name](model) for name in modules}


def missing_modules(findings: Findings) -> list[str]:
    """The modules of ``FINDINGS_MODULES`` whose key findings ``findings`` lacks."""
    return [m for m in FINDINGS_MODULES if m not in findings]


def cited_numbers(findings: Findings) -> dict[tuple[str, str], float]:
    """Every number the reconciliation table cites, keyed by (claim, evidence label); missing ones are left out."""
    out = {}
    for claim in CLAIMS:
        for e in claim.evidence:
            value = e.value(findings)
            if value is not None:
                out[(claim.claim, e.label)] = value
    return out


def reconciliation_table(
    model: Optional[HookedTransformer] = None, findings: Optional[Findings] = None
) -> pd.DataFrame:
    """Each claim of the original write-up and of the other analysis, the numbers that test it, and the verdict.

    Pass ``findings`` (from ``collect_findings``) to reuse computed numbers; otherwise they are computed
    from ``model``. A claim whose numbers come from a missing module says so instead of a verdict.
    """
    if findings is None:
        if model is None:
            raise ValueError("reconciliation_table needs a model or precomputed findings")
        findings = collect_findings(model)
    rows = []
    for claim in CLAIMS:
        values = {e.label: e.value(findings) for e in claim.evidence}
        evidence = "; ".join(
            f"{e.label}: " + (f"{values[e.label]:{e.fmt}}" if values[e.label] is not None else f"missing (palindrome.{e.module})")
            for e in claim.evidence
        )
        absent = sorted({e.module for e in claim.evidence if values[e.label] is None})
        if absent:
            verdict = "Not settled here: needs " + ", ".join(f"palindrome.{m}.key_findings" for m in absent)
        else:
            verdict = claim.verdict(values)
        rows.append({"source": claim.source, "claim": claim.claim, "evidence": evidence, "verdict": verdict})
    return pd.DataFrame(rows)
