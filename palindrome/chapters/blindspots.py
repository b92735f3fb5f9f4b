"""The blind-spot map: how often the model misses a broken mirror pair, for every pair and every edit.

A *single-mismatch input* is a palindrome with one mirror pair (p, 21 - p) broken: the base holds
value ``a`` at both positions and one of them is set to ``b != a``. Sweeping every second-half
position p, every ordered pair (a, b) and many random base palindromes measures, per mirror pair,
the fraction of such non-palindromes the model calls palindromes. Pairs where that fraction is
large are *blind*. The module also breaks two pairs at once, reads attention and head ablations
on single mismatches to explain the map, counts the errors the training distribution itself
produces, and gives ``key_findings``, the named numbers the chapter's verdicts rest on (the
verdict text is ``palindrome.book.reconciliation.blind_spot_verdict``; the closed-form chance of
an only-blind input is ``palindrome.data_distribution.only_blind_mismatch_probability``).

All sweeps run on the fast END-logit path (``palindrome.fast``); the attention read-outs and
ablations that explain the map use the HookedTransformer itself.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from palindrome.ablation import Ablation, Ablator
from palindrome.attribution import composed_ov_circuit
from palindrome.circuits import attention_pattern
from palindrome.constants import END_POS, MIRROR, SECOND_HALF
from palindrome.data import PalindromeDataset
from palindrome.data_distribution import only_blind_mismatch_probability
from palindrome.fast import DEFAULT_BATCH_SIZE
from palindrome.findings import Findings
from palindrome.inputs import (
    break_pairs,
    broken_at_each_position,
    check_palindromes,
    check_second_half,
    check_side,
    decoy_mask,
    ordered_value_pairs,
    random_palindromes,
    single_mismatch_tokens,
)
from palindrome.metrics import PALINDROMES_ROW, end_logits, miss_rates_by_position
from palindrome.tokens import (
    MAX_SAMPLES,
    TokensLike,
    check_finite,
    check_int,
    check_layer_head,
    check_seed,
    mismatch_mask,
)

# --- the chapter's fixed parameters (key_findings uses exactly these) -------------------------
N_BASES: int = 32
"""Random base palindromes per (position, a, b) in the single-mismatch sweep: 10 x 930 x 32 = 297,600 inputs."""
SWEEP_SEED: int = 0
PAIR_BASES: int = 500
"""Random bases per pair of broken mirror pairs (55 cells, diagonal included)."""
PAIR_SEED: int = 1
MECHANISM_BASES: int = 100
"""Random bases per position for the attention read-out and the head ablations (HookedTransformer)."""
MECHANISM_SEED: int = 2
REFERENCE_SIZE: int = 2000
"""Size of the reference batch (training distribution) whose means mean-ablation substitutes."""
REFERENCE_SEED: int = 3
NATURAL_SIZE: int = 200_000
"""Inputs drawn from the training distribution to count natural adversarial examples."""
NATURAL_SEED: int = 1
EPOCH_SIZE: int = 100_000
"""Sequences per training epoch, for the expected count of only-blind inputs."""
BLIND_THRESHOLD: float = 0.5
"""A mirror pair is blind when more than this fraction of its single-mismatch inputs are misclassified."""
ORIGINAL_CLAIM: tuple[int, ...] = (17, 19, 20)
"""Second-half positions the original write-up calls weak (with their mirrors 4, 2 and 1)."""
OTHER_CLAIM_QK: tuple[int, ...] = (17, 19)
"""Positions the other analysis blames on H0.0's QK circuit; it treats position 20 separately."""
ABLATED_HEADS: tuple[tuple[int, int], ...] = ((0, 1), (1, 1))
"""The two heads outside the proposed circuit, ablated one at a time to see which positions they cover."""


def _p_palindrome(model: HookedTransformer, toks: Int[Tensor, "batch seq"], batch_size: int) -> Float[Tensor, " batch"]:
    return end_logits(model, toks, batch_size=batch_size, fast=True).softmax(-1)[:, 1].float().cpu()


# --- the single-mismatch sweep -------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    """P(palindrome) of every single-mismatch input: one row per second-half position, base and (a, b)."""

    side: str
    bases: Int[Tensor, "base seq"]
    values_a: Int[Tensor, " pair"]
    values_b: Int[Tensor, " pair"]
    p_palindrome: Float[Tensor, "position base pair"]
    decoy: Bool[Tensor, "position base pair"]
    positions: tuple[int, ...] = SECOND_HALF

    def index(self, position: int) -> int:
        """Row of ``position`` in the per-position tensors (ValueError if it was not swept)."""
        if position not in self.positions:
            raise ValueError(f"position must be one of {self.positions}, got {position!r}")
        return self.positions.index(position)

    @property
    def misclassified(self) -> Bool[Tensor, "position base pair"]:
        """Called a palindrome (P > 0.5): every swept input is a non-palindrome."""
        return self.p_palindrome > 0.5

    @property
    def misclassified_frac(self) -> Float[Tensor, " position"]:
        """Fraction of each position's single-mismatch inputs that the model calls palindromes."""
        return self.misclassified.flatten(1).float().mean(1)

    @property
    def n_inputs(self) -> int:
        """Number of inputs swept."""
        return self.p_palindrome.numel()

    def fraction(self, position: int) -> float:
        """Misclassified fraction at one second-half position."""
        return self.misclassified_frac[self.index(position)].item()

    def standard_error(self) -> Float[Tensor, " position"]:
        """Binomial standard error of each misclassified fraction (treating inputs as independent).

        The inputs are not independent: all (a, b) of one base share its other values. See
        ``clustered_standard_error`` for the error over bases.
        """
        f = self.misclassified_frac
        return (f * (1 - f) / self.p_palindrome[0].numel()).sqrt()

    def base_fractions(self) -> Float[Tensor, "position base"]:
        """Misclassified fraction of each base's (a, b) inputs, per position."""
        return self.misclassified.float().mean(-1)

    def clustered_standard_error(self) -> Float[Tensor, " position"]:
        """Standard error of each misclassified fraction with the inputs clustered by base.

        Every base contributes the same number of (a, b) inputs, so the misclassified fraction is
        the mean of the per-base fractions; its standard error is their standard deviation over
        the bases (denominator n - 1) divided by sqrt(n). Needs at least two bases.
        """
        per_base = self.base_fractions()
        n = per_base.shape[1]
        if n < 2:
            raise ValueError(f"a standard error over bases needs at least 2 bases, got {n}")
        return per_base.std(1) / n**0.5

    def quantiles(self, qs: Sequence[float] = (0.01, 0.25, 0.5, 0.75, 0.99)) -> Float[Tensor, "position q"]:
        """Quantiles of P(palindrome) at each position."""
        qs = torch.tensor(list(qs), dtype=torch.float32)
        if qs.numel() == 0 or (qs < 0).any() or (qs > 1).any():
            raise ValueError(f"quantiles must be a non-empty list of numbers in [0, 1], got {qs.tolist()}")
        return torch.quantile(self.p_palindrome.flatten(1), qs, dim=1).T

    def rate_matrix(self, position: int) -> Float[Tensor, "a b"]:
        """Misclassified fraction over bases for each (a, b): rows a (unedited member), columns b; NaN diagonal."""
        n = int(max(self.values_a.max(), self.values_b.max())) + 1
        matrix = torch.full((n, n), float("nan"))
        matrix[self.values_a, self.values_b] = self.misclassified[self.index(position)].float().mean(0)
        return matrix

    def swap_disagreement(self) -> Float[Tensor, " position"]:
        """Fraction of (base, a, b) whose verdict changes when a and b trade places within the pair."""
        n = int(max(self.values_a.max(), self.values_b.max())) + 1
        grid = torch.zeros(len(self.positions), self.bases.shape[0], n, n, dtype=torch.bool)
        grid[:, :, self.values_a, self.values_b] = self.misclassified
        differ = grid != grid.transpose(-1, -2)
        return differ[:, :, self.values_a, self.values_b].flatten(1).float().mean(1)

    def table(self) -> pd.DataFrame:
        """Per position: misclassified fraction, median P(palindrome), and the role of decoys.

        "share of misses with a decoy" is the fraction of the position's misclassified inputs that
        have a decoy (0 when nothing is misclassified).
        """
        mis = self.misclassified.flatten(1)
        decoy = self.decoy.flatten(1)
        rows = []
        for i, position in enumerate(self.positions):
            rows.append(
                {
                    "position": position,
                    "mirror": MIRROR[position],
                    "misclassified": mis[i].float().mean().item(),
                    "median P(palindrome)": self.p_palindrome[i].median().item(),
                    "decoy fraction": decoy[i].float().mean().item(),
                    "misclassified | decoy": mis[i][decoy[i]].float().mean().item(),
                    "misclassified | no decoy": mis[i][~decoy[i]].float().mean().item(),
                    "share of misses with a decoy": (mis[i] & decoy[i]).sum().item() / max(mis[i].sum().item(), 1),
                }
            )
        return pd.DataFrame(rows).set_index("position")


def single_mismatch_sweep(
    model: HookedTransformer,
    n_bases: int = N_BASES,
    seed: int = SWEEP_SEED,
    side: str = "second",
    bases: Optional[TokensLike] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> SweepResult:
    """Every ordered (a, b) at every second-half mirror pair of ``n_bases`` random palindromes (or ``bases``)."""
    side = check_side(side)
    if bases is None:
        n_bases = check_int("n_bases", n_bases, 1, maximum=MAX_SAMPLES)
        bases = random_palindromes(n_bases, torch.Generator().manual_seed(check_seed(seed)))
    bases = check_palindromes(bases)
    a, b = ordered_value_pairs()
    probs, decoys = [], []
    for position in tqdm(SECOND_HALF, desc=f"single mismatches ({side} side)", disable=not progress):
        toks = single_mismatch_tokens(bases, position, side)  # [base, pair, seq]
        flat = toks.flatten(0, 1)
        probs.append(_p_palindrome(model, flat, batch_size).view(toks.shape[:2]))
        decoys.append(decoy_mask(flat, position).view(toks.shape[:2]))
    return SweepResult(side, bases, a, b, torch.stack(probs), torch.stack(decoys))


def blind_positions(result: SweepResult, threshold: float = BLIND_THRESHOLD) -> list[int]:
    """Second-half positions whose misclassified fraction exceeds ``threshold``."""
    if not isinstance(result, SweepResult):
        raise ValueError(f"result must be a SweepResult, got {type(result).__name__}")
    threshold = check_finite("threshold", threshold, " in [0, 1)")
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must lie in [0, 1), got {threshold}")
    return [p for p, f in zip(result.positions, result.misclassified_frac.tolist(), strict=True) if f > threshold]


# --- two broken pairs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PairSweepResult:
    """P(palindrome) with mirror pairs p and q both broken (p == q: one broken pair), per random base."""

    p_palindrome: Float[Tensor, "position position base"]
    positions: tuple[int, ...] = SECOND_HALF

    @property
    def misclassified_frac(self) -> Float[Tensor, "position position"]:
        """Symmetric matrix of misclassified fractions; the diagonal breaks one pair."""
        return (self.p_palindrome > 0.5).float().mean(-1)

    def fraction(self, p: int, q: int) -> float:
        """Misclassified fraction with the pairs at second-half positions p and q broken."""
        if p not in self.positions or q not in self.positions:
            raise ValueError(f"p and q must be in {self.positions}, got {p!r}, {q!r}")
        return self.misclassified_frac[self.positions.index(p), self.positions.index(q)].item()


def pair_cells() -> list[tuple[int, int]]:
    """The cells (i, j), i <= j, of the pair sweep: indices into ``SECOND_HALF`` of the two broken pairs (i == j:
    one)."""
    return list(itertools.combinations_with_replacement(range(len(SECOND_HALF)), 2))


def pair_mismatch_tokens(
    n_bases: int = PAIR_BASES, seed: int = PAIR_SEED, distinct: bool = False
) -> Int[Tensor, "cell base seq"]:
    """The pair sweep's inputs: per cell of ``pair_cells()``, the random bases with both pairs broken (``distinct``: i <
    j only)."""
    n_bases = check_int("n_bases", n_bases, 1, maximum=MAX_SAMPLES)
    generator = torch.Generator().manual_seed(check_seed(seed))
    bases = random_palindromes(n_bases, generator)
    cells = pair_cells()
    toks = torch.stack([break_pairs(bases, sorted({SECOND_HALF[i], SECOND_HALF[j]}), generator) for i, j in cells])
    if distinct:
        toks = toks[torch.tensor([i != j for i, j in cells])]
    return toks


def pair_mismatch_sweep(
    model: HookedTransformer,
    n_bases: int = PAIR_BASES,
    seed: int = PAIR_SEED,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> PairSweepResult:
    """Break every unordered pair of second-half mirror pairs (random replacement values) on random palindromes."""
    n_bases, batch_size = check_int("n_bases", n_bases, 1, maximum=MAX_SAMPLES), check_int("batch_size", batch_size, 1)
    cells = pair_cells()
    toks = pair_mismatch_tokens(n_bases, seed)  # [cell, base, seq]
    flat = toks.flatten(0, 1)
    chunks = flat.split(batch_size)
    probs = torch.cat(
        [_p_palindrome(model, c, batch_size) for c in tqdm(chunks, desc="pairs of mismatches", disable=not progress)]
    ).view(len(cells), n_bases)
    matrix = torch.zeros(len(SECOND_HALF), len(SECOND_HALF), n_bases)
    for (i, j), row in zip(cells, probs, strict=True):
        matrix[i, j] = matrix[j, i] = row
    return PairSweepResult(matrix)


# --- why: attention and ablations on single mismatches ------------------------------------------


def per_position_mismatches(
    n_bases: int = MECHANISM_BASES, seed: int = MECHANISM_SEED
) -> tuple[Int[Tensor, "base seq"], Int[Tensor, "position base seq"]]:
    """The chapter's random palindromes and, per second-half position, the same ones broken there (for attention and
    ablations): ``inputs.broken_at_each_position`` with its bases and seed."""
    return broken_at_each_position(n_bases, seed)


def attention_on_mismatch(
    model: HookedTransformer, n_bases: int = MECHANISM_BASES, seed: int = MECHANISM_SEED
) -> pd.DataFrame:
    """Per second-half position p: where H0.0 looks from p and how much END looks at p (H1.0, H1.1).

    Means over random palindromes ("pal") and the same palindromes with the pair at p broken ("broken"),
    plus the composed OV vote W_pos W_OV^0.0 W_OV^1.0 (W_U[:,0] - W_U[:,1]) at p.
    """
    bases, broken = per_position_mismatches(n_bases, seed)
    toks = torch.cat([bases, broken.flatten(0, 1)])
    n = bases.shape[0]
    patterns = {
        name: attention_pattern(model, toks, layer, head)
        for name, (layer, head) in {"h00": (0, 0), "h10": (1, 0), "h11": (1, 1)}.items()
    }
    votes = composed_ov_circuit(model)
    rows = []
    for i, p in enumerate(SECOND_HALF):
        pal, brk = slice(0, n), slice(n * (i + 1), n * (i + 2))
        h00, h10, h11 = patterns["h00"], patterns["h10"], patterns["h11"]
        rows.append(
            {
                "position": p,
                "mirror": MIRROR[p],
                "H0.0 p->mirror (pal)": h00[pal, p, MIRROR[p]].mean().item(),
                "H0.0 p->mirror (broken)": h00[brk, p, MIRROR[p]].mean().item(),
                "H0.0 p->p (pal)": h00[pal, p, p].mean().item(),
                "H0.0 p->p (broken)": h00[brk, p, p].mean().item(),
                "H1.0 END->p (pal)": h10[pal, END_POS, p].mean().item(),
                "H1.0 END->p (broken)": h10[brk, END_POS, p].mean().item(),
                "H1.1 END->p (pal)": h11[pal, END_POS, p].mean().item(),
                "H1.1 END->p (broken)": h11[brk, END_POS, p].mean().item(),
                "composed OV vote": votes[p].item(),
            }
        )
    return pd.DataFrame(rows).set_index("position")


def ablation_blindness(
    model: HookedTransformer,
    heads: Sequence[tuple[int, int]] = ABLATED_HEADS,
    kind: str = "mean",
    n_bases: int = MECHANISM_BASES,
    seed: int = MECHANISM_SEED,
    reference_size: int = REFERENCE_SIZE,
) -> pd.DataFrame:
    """Misclassified fraction of random single mismatches per position, clean and with each head's output ablated.

    Rows: "none" and "H{layer}.{head}"; columns: second-half positions; a last column "palindromes
    misclassified" gives the error rate on the unedited bases. Mean-ablation substitutes the mean
    over ``PalindromeDataset(reference_size, seed=REFERENCE_SEED)``.
    """
    for layer, head in heads:
        check_layer_head(model, layer, head)
    bases, broken = per_position_mismatches(n_bases, seed)
    reference = PalindromeDataset(check_int("reference_size", reference_size, 2), seed=REFERENCE_SEED).toks
    ablator = Ablator(model, reference)
    rows = {}
    for name, ablations in [("none", [])] + [
        (f"H{layer}.{head}", [Ablation(layer, head, "result", kind)]) for layer, head in heads
    ]:

        def decide(toks: Tensor, ablations: list[Ablation] = ablations) -> Tensor:
            return ablator.logits(toks, ablations).softmax(-1)[:, 1].cpu() > 0.5

        rates = miss_rates_by_position(decide, broken, bases)
        rows[name] = rates.rename({PALINDROMES_ROW: "palindromes misclassified"}).to_dict()
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "ablated head"
    return table


# --- natural adversarial examples ----------------------------------------------------------------


@dataclass(frozen=True)
class NaturalSample:
    """The model's P(palindrome) on a sample of the training distribution, with each input's broken pairs."""

    p_palindrome: Float[Tensor, " batch"]
    labels: Int[Tensor, " batch"]
    broken: Bool[Tensor, "batch position"]
    positions: tuple[int, ...] = SECOND_HALF

    @property
    def adversarial_rate(self) -> float:
        """Natural adversarial rate: the share of the sample's non-palindromes that the model calls palindromes."""
        non_palindromes = self.labels == 0
        if not non_palindromes.any():
            raise ValueError("the sample holds no non-palindrome, so its adversarial rate is undefined")
        return (self.p_palindrome[non_palindromes] > 0.5).float().mean().item()

    def only_at(self, positions: Iterable[int]) -> Bool[Tensor, " batch"]:
        """Inputs with at least one broken pair, every one of them at ``positions``."""
        keep = torch.tensor([p in set(check_second_half(positions)) for p in self.positions])
        return self.broken.any(-1) & ~(self.broken & ~keep).any(-1)

    def counts(self, blind: Iterable[int]) -> dict[str, float]:
        """Errors by type, and how many inputs (and false positives) break only pairs at ``blind``."""
        called = (self.p_palindrome > 0.5).long()
        fp = (called == 1) & (self.labels == 0)
        fn = (called == 0) & (self.labels == 1)
        only = self.only_at(blind)
        if not only.any():
            raise ValueError(
                f"no input of this sample breaks only pairs at {sorted(set(blind))}, so their error rate is "
                f"undefined; draw a larger sample (natural_sample's default size is {NATURAL_SIZE})"
            )
        blind_mask = torch.tensor([p in set(blind) for p in self.positions])
        touches_blind = (self.broken & blind_mask).any(-1)
        prob_true = torch.where(self.labels == 1, self.p_palindrome, 1 - self.p_palindrome).double()
        loss = -prob_true.clamp_min(1e-12).log()
        return {
            "size": float(self.labels.shape[0]),
            "non_palindromes": float((self.labels == 0).sum()),
            "false_positives": float(fp.sum()),
            "false_negatives": float(fn.sum()),
            "only_blind_inputs": float(only.sum()),
            "only_blind_frac": only.float().mean().item(),
            "only_blind_misclassified_frac": fp[only].float().mean().item(),
            "fp_only_blind": float((fp & only).sum()),
            "fp_blind_and_other": float((fp & touches_blind & ~only).sum()),
            "fp_no_blind": float((fp & ~touches_blind).sum()),
            "mean_loss": loss.mean().item(),
            "loss_share_only_blind": (loss[only].sum() / loss.sum()).item(),
        }

    def false_positive_patterns(self, top: int = 10) -> pd.DataFrame:
        """The most common sets of broken second-half positions among false positives."""
        top = check_int("top", top, 1)
        fp = (self.p_palindrome > 0.5) & (self.labels == 0)
        weights = 2 ** torch.arange(len(self.positions))
        codes, counts = torch.unique((self.broken[fp].long() * weights).sum(-1), return_counts=True)
        order = counts.argsort(descending=True)[:top]
        rows = [
            {
                "broken positions": ", ".join(str(p) for i, p in enumerate(self.positions) if int(codes[k]) >> i & 1),
                "false positives": int(counts[k]),
            }
            for k in order.tolist()
        ]
        return pd.DataFrame(rows)


def natural_sample(
    model: HookedTransformer,
    size: int = NATURAL_SIZE,
    seed: int = NATURAL_SEED,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> NaturalSample:
    """P(palindrome) on ``PalindromeDataset(size, seed=seed)`` (the training distribution), via the fast path."""
    data = PalindromeDataset(size, seed=seed)
    broken = mismatch_mask(data.toks)[:, list(SECOND_HALF)]
    return NaturalSample(_p_palindrome(model, data.toks, batch_size), data.is_palindrome, broken)


def natural_adversarial_counts(
    model: HookedTransformer,
    size: int = NATURAL_SIZE,
    seed: int = NATURAL_SEED,
    blind: Iterable[int] = OTHER_CLAIM_QK,
) -> dict[str, float]:
    """Misclassified training-distribution inputs by type and by where their pairs are broken."""
    return natural_sample(model, size, seed).counts(check_second_half(blind))


# --- key numbers ---------------------------------------------------------------------------------


ATTENTION_FINDINGS: dict[str, str] = {
    "h00_to_self_on_palindromes": "H0.0 p->p (pal)",
    "h00_to_self_broken": "H0.0 p->p (broken)",
    "h10_end_to_palindromes": "H1.0 END->p (pal)",
    "h10_end_to_broken": "H1.0 END->p (broken)",
    "h11_end_to_palindromes": "H1.1 END->p (pal)",
    "h11_end_to_broken": "H1.1 END->p (broken)",
    "composed_ov_vote": "composed OV vote",
}
"""Finding key (without ``_pos_{p}``) -> column of ``attention_on_mismatch``, reported for every second-half p."""


def findings_from(
    sweep: SweepResult,
    pairs: PairSweepResult,
    natural: NaturalSample,
    attention: pd.DataFrame,
    ablation: pd.DataFrame,
    threshold: float = BLIND_THRESHOLD,
) -> dict[str, float]:
    """The named numbers this chapter's verdicts rest on, from already computed results."""
    blind = blind_positions(sweep, threshold)
    closed = only_blind_mismatch_probability(blind)
    counts = natural.counts(blind)
    se_over_bases = sweep.clustered_standard_error()
    out: dict[str, float] = {}
    for p in sweep.positions:
        out[f"misclassified_frac_pos_{p}"] = sweep.fraction(p)
        out[f"is_blind_pos_{p}"] = float(p in blind)
        out[f"h00_to_mirror_on_palindromes_pos_{p}"] = float(attention.loc[p, "H0.0 p->mirror (pal)"])
        out[f"misclassified_frac_se_over_bases_pos_{p}"] = float(se_over_bases[sweep.index(p)])
        for key, column in ATTENTION_FINDINGS.items():
            out[f"{key}_pos_{p}"] = float(attention.loc[p, column])
    out["n_blind_positions"] = float(len(blind))
    out["pair_misclassified_17_19"] = pairs.fraction(17, 19)
    out["h11_mean_ablated_misclassified_frac_pos_20"] = float(ablation.loc["H1.1", 20])
    out["h01_mean_ablated_misclassified_frac_pos_20"] = float(ablation.loc["H0.1", 20])
    out["unablated_misclassified_frac_pos_20_mechanism_inputs"] = float(ablation.loc["none", 20])
    out["p_only_blind_closed_form"] = closed
    out["p_only_blind_sample"] = counts["only_blind_frac"]
    out["expected_only_blind_per_epoch"] = closed * EPOCH_SIZE
    out["natural_false_positive_rate"] = counts["false_positives"] / counts["size"]
    out["natural_sample_size"] = float(counts["size"])
    out["natural_false_negatives"] = float(counts["false_negatives"])
    out["natural_fp_share_only_blind"] = counts["fp_only_blind"] / max(counts["false_positives"], 1.0)
    out["only_blind_misclassified_frac"] = counts["only_blind_misclassified_frac"]
    out["natural_loss_share_only_blind"] = counts["loss_share_only_blind"]
    return out


KEYS: frozenset[str] = frozenset(
    [
        f"{name}_pos_{p}"
        for p in SECOND_HALF
        for name in (
            "misclassified_frac",
            "is_blind",
            "h00_to_mirror_on_palindromes",
            "misclassified_frac_se_over_bases",
            *ATTENTION_FINDINGS,
        )
    ]
    + [
        "n_blind_positions",
        "pair_misclassified_17_19",
        "h11_mean_ablated_misclassified_frac_pos_20",
        "h01_mean_ablated_misclassified_frac_pos_20",
        "unablated_misclassified_frac_pos_20_mechanism_inputs",
        "p_only_blind_closed_form",
        "p_only_blind_sample",
        "expected_only_blind_per_epoch",
        "natural_false_positive_rate",
        "natural_sample_size",
        "natural_false_negatives",
        "natural_fp_share_only_blind",
        "only_blind_misclassified_frac",
        "natural_loss_share_only_blind",
    ]
)
"""Every key ``key_findings`` returns (``findings_from`` checks that it computes each)."""


def key_findings(model: HookedTransformer) -> Findings:
    """This chapter's key numbers (fixed seeds, the chapter's parameters), as floats, in well under 10 s."""
    return Findings(
        "blindspots",
        findings_from(
            single_mismatch_sweep(model, progress=False),
            pair_mismatch_sweep(model, progress=False),
            natural_sample(model),
            attention_on_mismatch(model),
            ablation_blindness(model),
        ),
        KEYS,
    )
