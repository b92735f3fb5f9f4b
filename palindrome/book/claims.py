"""The published claims: each claim of the original write-up and of the other analysis, its evidence and its rule.

Each ``Claim`` names the numbers that test it (``Evidence``: a key of one chapter module's ``key_findings``)
and a verdict rule on them. The rules are written once, here, with the two position-20 rules that chapter
8's verdict text uses too; ``palindrome.book.reconciliation`` turns ``CLAIMS`` into the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from palindrome.ablation import format_loss_change
from palindrome.chapters.blindspots import BLIND_THRESHOLD
from palindrome.constants import SECOND_HALF, VALUE_POSITIONS
from palindrome.path_patching import METHODS
from palindrome.tokens import check_finite

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
                f"palindrome.chapters.{self.module}.key_findings has no key {self.key!r}; "
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


IGNORED: float = 0.05
"""A head at END ignores a broken position when it gives it less than this much attention."""
SELF_RISE: float = 0.1
"""H0.0 notices a broken pair when its self-attention there rises by at least this much."""


def _finite(**values: float) -> list[float]:
    return [check_finite(name, value) for name, value in values.items()]


def h11_covers_20(
    h10_broken: float, h11_broken: float, h11_ablated_missed: float, threshold: float = BLIND_THRESHOLD
) -> bool:
    """The other analysis's first account of 20: H1.0 ignores a broken 20 and H1.1 covers it (blind without H1.1).

    Inputs: END's attention to a broken 20 in H1.0 and H1.1, and the fraction of single mismatches at 20 missed with
    H1.1 mean-ablated; it holds when the first is below ``IGNORED`` and the other two above ``threshold``.
    """
    h10_broken, h11_broken, h11_ablated_missed, threshold = _finite(
        h10_broken=h10_broken, h11_broken=h11_broken, h11_ablated_missed=h11_ablated_missed, threshold=threshold
    )
    return h10_broken < IGNORED and h11_broken > threshold and h11_ablated_missed > threshold


def h00_reads_mirror_at_20(mirror_20: float, mirror_18: float, self_palindromes: float, self_broken: float) -> bool:
    """Against the other analysis's final account of 20 (a blind spot of H0.0's QK circuit there).

    True when H0.0 at 20 attends to its mirror on palindromes at least half as much as at 18 (a
    working position), and its self-attention at 20 rises by at least ``SELF_RISE`` once the pair
    breaks, as at a working position. The one rule for it (chapter 8's verdict and the table).
    """
    mirror_20, mirror_18, self_palindromes, self_broken = _finite(
        mirror_20=mirror_20, mirror_18=mirror_18, self_palindromes=self_palindromes, self_broken=self_broken
    )
    return mirror_20 >= 0.5 * mirror_18 and self_broken - self_palindromes >= SELF_RISE


VERDICT_KINDS: tuple[str, ...] = ("Confirmed", "Partly", "Contradicted", "Not yet examined")
"""Every verdict starts with one of these words: what the book's numbers say of the claim as stated."""
MIRROR_ATTENTION: float = 0.5
"""H0.0 'finds' a mirror when it puts at least this much attention on it (palindromes, mean over inputs)."""
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
            text += (
                f"; in the full model, mean-ablating H1.0's keys costs +{full:.3f} loss "
                "(first 200 of PalindromeDataset(500), Chapter 7)"
            )
        if len(big) == len(METHODS):
            return f"Confirmed: removing {name} from the circuit-only model loses {text}."
        if big:
            mainly = " and ".join(big)
            return f"Partly: in the circuit-only model {name} matters mainly under {mainly}; removing it loses {text}."
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
        f"Partly answered: {cost}; "
        + "; ".join(known)
        + ". What it computes elsewhere, and its resampled cost, are not explained here."
    )


def _verdict_h01_constant(v: Mapping[str, float]) -> str:
    cost = v["dataset loss, H0.1 mean-ablated (500)"] - v["dataset loss, clean (500)"]
    variability, h00 = v["variability of H0.1's output"], v["variability of H0.0's output"]
    if cost < NEGLIGIBLE / 5 and variability < 0.5:
        return (
            f"Confirmed: mean-ablating H0.1 costs {format_loss_change(cost)} loss "
            f"and its variability is {variability:.2f}."
        )
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
        return "Partly: " + (
            "H0.0's QK circuit is weak there, but H1.0 does attend."
            if qk_weak
            else "H1.0 ignores them, but H0.0 finds their mirrors."
        )
    return "Contradicted: H0.0 finds the mirrors of 17 and 19 and H1.0 attends to them."


def _verdict_20_first(v: Mapping[str, float]) -> str:
    h10, h11 = v["H1.0 END attention on a broken 20"], v["H1.1 END attention on a broken 20"]
    ablated, clean = v["misses at 20, H1.1 mean-ablated (100 bases)"], v["misses at 20, no ablation (100 bases)"]
    if h11_covers_20(h10, h11, ablated):
        return (
            f"Confirmed, and stronger: H1.0 at END gives a broken 20 {h10:.3f} of its attention, H1.1 "
            f"{h11:.2f} ({v['H1.1 END attention on 20, palindromes']:.2f} on palindromes); H1.1 does not pick up "
            f"slack but is the only layer-1 head that reads pair (1, 20): without it {ablated:.0%} of Chapter 8's 100 "
            f"single mismatches there are missed ({clean:.0%} with it)."
        )
    return f"Partly: H1.0 gives a broken 20 {h10:.3f}, H1.1 {h11:.2f}."


def _verdict_difference_vectors(v: Mapping[str, float]) -> str:
    return f"Not yet examined: the difference vectors and their cosine similarities are {DIFFERENCE_VECTORS}."


def _verdict_20_qk(v: Mapping[str, float]) -> str:
    mirror20, mirror18 = (
        v["H0.0 attention to mirror from 20, palindromes"],
        v["H0.0 attention to mirror from 18, palindromes"],
    )
    self_pal, self_broken = v["H0.0 self-attention at 20, palindromes"], v["H0.0 self-attention at 20, pair broken"]
    missed, caught = v["missed at 20, Chapter 8's sweep"], v["caught at 20, Chapter 8's sweep"]
    missed_mirror = v["missed at 20, H0.0 at 20 on 1 more than on 20"]
    caught_mirror = v["caught at 20, H0.0 at 20 on 1 more than on 20"] / max(caught, 1.0)
    share20, share_other = v["single mismatches at 20, H0.0 on 1 more than on 20"], v["same, highest at 11-19"]
    per_input = share20 > 2 * share_other and missed_mirror / max(missed, 1.0) > caught_mirror
    if h00_reads_mirror_at_20(mirror20, mirror18, self_pal, self_broken):
        return (
            f"{'Partly' if per_input else 'Contradicted'} as a statement about H0.0's QK circuit: on average H0.0 "
            f"reads the mirror of 20 (on palindromes {mirror20:.2f} on it, {mirror18:.2f} from 18; its self-attention "
            f"at 20 rises from {self_pal:.2f} to {self_broken:.2f} when the pair breaks), and H1.0 gives a broken 20 "
            f"{v['H1.0 END attention on a broken 20']:.3f} of its attention (composed vote from 20 "
            f"{v['composed OV vote at 20']:+.2f}). Per input, H0.0 at 20 attends more to the mirror than to itself on "
            f"{share20:.1%} of single mismatches there, against at most {share_other:.1%} at 11-19; of the "
            f"{missed:,.0f} that Chapter 8's sweep misses, {missed_mirror:,.0f} "
            f"({missed_mirror / max(missed, 1.0):.0%}) are such inputs, against {caught_mirror:.0%} of the caught "
            f"ones: a partial weak spot of H0.0's attention, associated with the misses (not shown to cause them). "
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
        f"here; they are {DIFFERENCE_VECTORS}. Its conclusion about H1.1 agrees with what this book measures: H1.1 at "
        "END "
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
        f"position 20 by {format_loss_change(spared)}, at position 20 alone by {format_loss_change(only)}; on Chapter "
        "9's 300 "
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


_FULL_MODEL_KEYS = _mine(
    "full model, H1.0's keys mean-ablated: loss increase (200)", "original200_mean_h1_0_k_loss_increase"
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
        "the composed circuit W_pos W_OV(0.0) W_OV(1.0) u is negative on 1-10 and positive on 11-20, except at the "
        "ends",
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
        for kind, part, extra in (("K", "keys", (_FULL_MODEL_KEYS,)), ("V", "values", ()))
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
            _backup("dataset loss, H1.1 mean-ablated (500)", "h1_1_mean__dataset__loss", ".4f"),
            _mine("loss increase, H1.1 mean-ablated (1000, seed 1)", "mean_full_minus_h1_1_loss_increase"),
            _mine("loss increase, H1.1 resampled (1000, seed 1)", "resample_full_minus_h1_1_loss_increase"),
            _blind("misses at 20, no ablation (100 bases)", "unablated_misclassified_frac_pos_20_mechanism_inputs"),
            _blind("misses at 20, H1.1 mean-ablated (100 bases)", "h11_mean_ablated_misclassified_frac_pos_20"),
            _backup("H1.1 direct effect, pos-20 mismatches (300)", "h1_1_direct_effect__pos_20_mismatches", ".2f"),
            _backup("H1.1 direct effect, palindromes (300)", "h1_1_direct_effect__palindromes", ".2f"),
        ),
        _verdict_h11,
    ),
    Claim(
        "original write-up",
        "H0.1 does something; what is left as further work",
        (
            _mine("loss increase, H0.1 mean-ablated (1000, seed 1)", "mean_full_minus_h0_1_loss_increase"),
            _mine("loss increase, H0.1 resampled (1000, seed 1)", "resample_full_minus_h0_1_loss_increase"),
            _backup(
                "H0.1's part of H1.1's value at 20, pos-20 mismatches (300)", "h1_1_vote_h0_1__pos_20_mismatches", ".2f"
            ),
            _backup("H0.1's part of H1.1's value at 20, palindromes (300)", "h1_1_vote_h0_1__palindromes", ".2f"),
            _backup("dataset loss, clean (500)", "none__dataset__loss", ".4f"),
            _backup("dataset loss, H0.1 mean-ablated (500)", "h0_1_mean__dataset__loss", ".4f"),
            _backup(
                "dataset loss, H0.1 mean-ablated, clean layer-1 scale (500)",
                "h0_1_mean_clean_scale__dataset__loss",
                ".4f",
            ),
        ),
        _verdict_h01,
    ),
    Claim(
        "original write-up",
        "mean-ablating H0.1 changes nothing, since its output is roughly the same for every input",
        (
            _backup("dataset loss, clean (500)", "none__dataset__loss", ".4f"),
            _backup("dataset loss, H0.1 mean-ablated (500)", "h0_1_mean__dataset__loss", ".4f"),
            _backup("variability of H0.1's output", "h0_1_variability", ".2f"),
            _backup("variability of H0.0's output", "h0_0_variability", ".2f"),
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
                _blind(
                    f"H0.0 attention to mirror from {p}, palindromes", f"h00_to_mirror_on_palindromes_pos_{p}", ".2f"
                )
                for p in (17, 19, 18)
            ),
            *(_blind(f"H1.0 END attention on a broken {p}", f"h10_end_to_broken_pos_{p}") for p in (17, 19)),
        ),
        _verdict_17_19,
    ),
    Claim(
        "other analysis (2)",
        "position 20 is a blind spot of H1.0, and H1.1 picks up the slack there (its first account, replaced by claim "
        "3)",
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
            _mine("missed at 20, Chapter 8's sweep", "sweep_missed_pos_20", ",.0f"),
            _mine("missed at 20, H0.0 at 20 on 1 more than on 20", "sweep_missed_h00_reads_mirror_pos_20", ",.0f"),
            _mine("caught at 20, Chapter 8's sweep", "sweep_caught_pos_20", ",.0f"),
            _mine("caught at 20, H0.0 at 20 on 1 more than on 20", "sweep_caught_h00_reads_mirror_pos_20", ",.0f"),
            _mine("single mismatches at 20, H0.0 on 1 more than on 20", "sweep_h00_reads_mirror_share_pos_20", ".3f"),
            _mine("same, highest at 11-19", "sweep_h00_reads_mirror_share_max_other", ".3f"),
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
            _backup("dataset loss, H0.1 mean-ablated", "h0_1_mean__dataset__loss", ".4f"),
            _backup("dataset loss, H0.1 mean-ablated except at 20", "h0_1_mean_all_but_20__dataset__loss", ".4f"),
            _backup("dataset loss, H0.1 mean-ablated at 20 only", "h0_1_mean_at_20_only__dataset__loss", ".4f"),
            _backup("pos-20 accuracy, clean", "none__pos_20_mismatches__accuracy"),
            _backup(
                "pos-20 accuracy, H0.1 mean-ablated at 20 only", "h0_1_mean_at_20_only__pos_20_mismatches__accuracy"
            ),
            _backup(
                "pos-20 accuracy, H1.1 values mean-ablated at 20 only",
                "h1_1_v_mean_at_20_only__pos_20_mismatches__accuracy",
            ),
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
            _backup("layer-1 LayerNorm scale, zero-ablated / clean", "h0_1_zero__ln1_scale_ratio"),
            _backup("loss, zero-ablated with clean scale", "h0_1_zero_clean_scale__dataset__loss"),
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
