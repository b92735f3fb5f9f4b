"""The blind-spot map: how often the model misses a broken mirror pair, for every pair and every edit.

A *single-mismatch input* is a palindrome with one mirror pair (p, 21 - p) broken: the base holds
value ``a`` at both positions and one of them is set to ``b != a``. Sweeping every second-half
position p, every ordered pair (a, b) and many random base palindromes measures, per mirror pair,
the fraction of such non-palindromes the model calls palindromes. Pairs where that fraction is
large are *blind*. The module also breaks two pairs at once, counts the errors the training
distribution itself produces, and gives the closed-form chance that the data generator emits an
input whose only mismatches sit at blind positions.

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
from transformer_lens.utilities import get_act_name

from palindrome.ablation import Ablation, Ablator
from palindrome.attribution import composed_ov_circuit
from palindrome.circuits import attention_pattern, embedding_qk_circuit
from palindrome.constants import END_POS, HALF_LENGTH, MAX_VALUE, MIRROR, SECOND_HALF
from palindrome.data import PalindromeDataset
from palindrome.data_distribution import mismatch_probability
from palindrome.fast import DEFAULT_BATCH_SIZE, fast_end_logits
from palindrome.findings import Findings
from palindrome.hooks import activations
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
from palindrome.tokens import (
    MAX_SAMPLES,
    MAX_SIZE,
    TokensLike,
    check_finite,
    check_floats,
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
SIDE_CHECK_BASES: int = 8
"""Bases of the main sweep re-swept with the first-half member edited, to compare the two sides."""
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
OUTCOME_BASES: int = 3
"""Bases of the main sweep whose attention patterns are split by outcome (missed or caught)."""


def _p_palindrome(model: HookedTransformer, toks: Int[Tensor, "batch seq"], batch_size: int) -> Float[Tensor, " batch"]:
    return fast_end_logits(model, toks, batch_size=batch_size).softmax(-1)[:, 1].float().cpu()


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


def swapped_pair_index(values_a: Int[Tensor, " pair"], values_b: Int[Tensor, " pair"]) -> Int[Tensor, " pair"]:
    """For each pair (a, b), the index of (b, a) in the same list."""
    for name, v in (("values_a", values_a), ("values_b", values_b)):
        if (
            not isinstance(v, Tensor)
            or v.is_floating_point()
            or v.dtype == torch.bool
            or v.ndim != 1
            or (len(v) and int(v.min()) < 0)
        ):
            raise ValueError(f"{name} must be a 1-D tensor of values >= 0 (inputs.ordered_value_pairs), got {v!r:.60}")
    if values_a.shape != values_b.shape or not len(values_a):
        raise ValueError(
            f"values_a and values_b must list the same non-zero number of pairs, got {len(values_a)} and "
            f"{len(values_b)}"
        )
    n = int(max(values_a.max(), values_b.max())) + 1
    lookup = torch.full((n, n), -1, dtype=torch.long)
    lookup[values_a, values_b] = torch.arange(values_a.shape[0])
    swapped = lookup[values_b, values_a]
    if (swapped < 0).any():
        raise ValueError("the pairs must contain (b, a) for every (a, b)")
    return swapped


def compare_sides(
    model: HookedTransformer, sweep: SweepResult, n_bases: int = SIDE_CHECK_BASES, progress: bool = True
) -> pd.DataFrame:
    """Re-sweep the first ``n_bases`` bases of a second-side sweep editing the first-half member instead.

    Editing the mirror of p to b in a base holding a gives the same input as editing p to a in a
    base holding b, so per position the two sweeps cover the same inputs. The table shows both
    misclassified fractions and the largest |P(palindrome)| difference between identical inputs.
    """
    if not isinstance(sweep, SweepResult) or sweep.side != "second":
        raise ValueError("sweep must be a SweepResult of the second side (side='second')")
    n_bases = check_int("n_bases", n_bases, 1, maximum=MAX_SAMPLES)
    if n_bases > sweep.bases.shape[0]:
        raise ValueError(f"n_bases must be at most the sweep's {sweep.bases.shape[0]} bases, got {n_bases}")
    first = single_mismatch_sweep(model, side="first", bases=sweep.bases[:n_bases], progress=progress)
    second = sweep.p_palindrome[:, :n_bases]
    same_input = second[:, :, swapped_pair_index(sweep.values_a, sweep.values_b)]
    return pd.DataFrame(
        {
            "misclassified (second-half member edited)": (second > 0.5).flatten(1).float().mean(1).tolist(),
            "misclassified (first-half member edited)": first.misclassified_frac.tolist(),
            "max |P difference| on identical inputs": (first.p_palindrome - same_input)
            .abs()
            .flatten(1)
            .max(1)
            .values.tolist(),
        },
        index=pd.Index(SECOND_HALF, name="position"),
    )


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


def mechanism_inputs(
    n_bases: int = MECHANISM_BASES, seed: int = MECHANISM_SEED
) -> tuple[Int[Tensor, "base seq"], Int[Tensor, "position base seq"]]:
    """The chapter's inputs for attention and ablations: ``inputs.broken_at_each_position`` with its bases and seed."""
    return broken_at_each_position(n_bases, seed)


def attention_on_mismatch(
    model: HookedTransformer, n_bases: int = MECHANISM_BASES, seed: int = MECHANISM_SEED
) -> pd.DataFrame:
    """Per second-half position p: where H0.0 looks from p and how much END looks at p (H1.0, H1.1).

    Means over random palindromes ("pal") and the same palindromes with the pair at p broken ("broken"),
    plus the composed OV vote W_pos W_OV^0.0 W_OV^1.0 (W_U[:,0] - W_U[:,1]) at p.
    """
    bases, broken = mechanism_inputs(n_bases, seed)
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
    bases, broken = mechanism_inputs(n_bases, seed)
    reference = PalindromeDataset(check_int("reference_size", reference_size, 2), seed=REFERENCE_SEED).toks
    ablator = Ablator(model, reference)
    toks = torch.cat([broken.flatten(0, 1), bases])
    n = bases.shape[0]
    rows = {}
    for name, ablations in [("none", [])] + [
        (f"H{layer}.{head}", [Ablation(layer, head, "result", kind)]) for layer, head in heads
    ]:
        called_pal = ablator.logits(toks, ablations).softmax(-1)[:, 1].cpu() > 0.5
        row = called_pal[:-n].view(len(SECOND_HALF), n).float().mean(1).tolist()
        rows[name] = dict(zip(SECOND_HALF, row, strict=True)) | {
            "palindromes misclassified": 1 - called_pal[-n:].float().mean().item()
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "ablated head"
    return table


def attention_by_outcome(
    model: HookedTransformer, sweep: SweepResult, position: int, n_bases: int = OUTCOME_BASES
) -> pd.DataFrame:
    """Mean attention at a broken ``position`` for its sweep inputs split by outcome and by decoy.

    Uses the first ``n_bases`` bases of a second-side sweep (930 inputs each). Rows: "caught"/"missed"
    with or without a decoy; columns: input count, H0.0 from p to itself and to its mirror, and
    attention from END to p in H1.0 and H1.1.
    """
    if not isinstance(sweep, SweepResult) or sweep.side != "second":
        raise ValueError("sweep must be a SweepResult of the second side (side='second')")
    i = sweep.index(position)
    n_bases = check_int("n_bases", n_bases, 1, maximum=MAX_SAMPLES)
    if n_bases > sweep.bases.shape[0]:
        raise ValueError(f"n_bases must be at most the sweep's {sweep.bases.shape[0]} bases, got {n_bases}")
    toks = single_mismatch_tokens(sweep.bases[:n_bases], position).flatten(0, 1)
    missed = sweep.misclassified[i, :n_bases].flatten()
    decoy = sweep.decoy[i, :n_bases].flatten()
    names = [get_act_name("pattern", layer) for layer in (0, 1)]
    cache = activations(model, toks, names)  # one pass for both layers' patterns
    h00 = cache[names[0]][:, 0].cpu()
    h10, h11 = cache[names[1]][:, :, END_POS, position].cpu().unbind(1)
    rows = []
    for outcome, was_missed in (("caught", False), ("missed", True)):
        for has_decoy in (False, True):
            sel = (missed == was_missed) & (decoy == has_decoy)
            rows.append(
                {
                    "outcome": f"{outcome}, {'decoy' if has_decoy else 'no decoy'}",
                    "inputs": int(sel.sum()),
                    "H0.0 p->p": h00[sel, position, position].mean().item(),
                    "H0.0 p->mirror": h00[sel, position, MIRROR[position]].mean().item(),
                    "H1.0 END->p": h10[sel].mean().item(),
                    "H1.1 END->p": h11[sel].mean().item(),
                }
            )
    return pd.DataFrame(rows).set_index("outcome")


def token_score_gap(model: HookedTransformer, scale: float) -> Float[Tensor, "a b"]:
    """H0.0's token-token score of key token a for query token b minus its score for a key equal to b.

    From the embedding QK circuit (``circuits.embedding_qk_circuit``, scores through a constant
    LayerNorm ``scale``). Near 0 or positive: to H0.0, value a at the mirror looks like a copy of b.
    """
    n = model.cfg.d_vocab - 2  # value tokens only
    scores = embedding_qk_circuit(model, 0, 0, scale, pattern=False)[:n, :n]  # [query b, key a]
    return (scores - scores.diagonal()[:, None]).T


def miss_rate_by_token_score(
    sweep: SweepResult,
    gap: Float[Tensor, "a b"],
    positions: Sequence[int],
    n_bins: int = 4,
    decoy: Optional[bool] = None,
) -> pd.DataFrame:
    """Misclassified fraction per position for value pairs (a, b) binned by ``gap`` quantile (bin 1: least alike).

    ``decoy`` selects the inputs: None takes all of them, False only those without a decoy, True
    only those with one. A bin with no selected input gives NaN.
    """
    n_bins = check_int("n_bins", n_bins, 2, maximum=MAX_SIZE)
    if decoy is not None and not isinstance(decoy, bool):
        raise ValueError(f"decoy must be None, True or False, got {decoy!r}")
    if not isinstance(sweep, SweepResult):
        raise ValueError(f"sweep must be a SweepResult (single_mismatch_sweep), got {type(sweep).__name__}")
    positions = check_second_half(positions)
    gap = check_floats("gap", gap).float().cpu()
    needed = int(max(sweep.values_a.max(), sweep.values_b.max())) + 1
    if gap.ndim != 2 or min(gap.shape) < needed:
        raise ValueError(
            f"gap must be a (value, value) matrix covering values 0..{needed - 1} (token_score_gap), got shape "
            f"{tuple(gap.shape)}"
        )
    values = gap[sweep.values_a, sweep.values_b]
    edges = torch.quantile(values, torch.linspace(0, 1, n_bins + 1)[1:-1])
    bins = torch.bucketize(values, edges)
    rows = {}
    for p in positions:
        i = sweep.index(p)
        missed = sweep.misclassified[i]  # [base, pair]
        keep = torch.ones_like(missed) if decoy is None else sweep.decoy[i] == decoy
        rows[p] = {
            f"bin {k + 1}": (
                missed[keep & (bins == k)].float().mean().item() if (keep & (bins == k)).any() else float("nan")
            )
            for k in range(n_bins)
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "position"
    return table


# --- natural adversarial examples ----------------------------------------------------------------


def only_blind_mismatch_probability(
    blind: Iterable[int], half_length: int = HALF_LENGTH, max_value: int = MAX_VALUE
) -> float:
    """Closed-form chance that the data generator emits an input whose mismatches all sit at ``blind`` (>= 1).

    Half the data are near-palindromes whose second-half slots each differ from their mirror
    independently with probability q = 1/2 * max_value / (max_value + 1); with k blind slots out
    of half_length the answer is 1/2 * (1 - q)^(half_length - k) * (1 - (1 - q)^k).
    """
    half_length = check_int("half_length", half_length, 1, maximum=MAX_SIZE)
    k = len(check_second_half(blind, half_length))
    stay = 1 - mismatch_probability(check_int("max_value", max_value, 1, maximum=MAX_SIZE))
    return 0.5 * stay ** (half_length - k) * (1 - stay**k)


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


def enumerated_only_blind_probability(
    blind: Iterable[int], half_length: int = HALF_LENGTH, max_value: int = MAX_VALUE
) -> float:
    """The closed form's quantity by brute force: sum over all 2^half_length patterns of broken slots."""
    half_length = check_int("half_length", half_length, 1, maximum=MAX_SIZE)
    blind_idx = {p - half_length - 1 for p in check_second_half(blind, half_length)}
    q = mismatch_probability(check_int("max_value", max_value, 1, maximum=MAX_SIZE))
    total = 0.0
    for pattern in itertools.product((False, True), repeat=half_length):
        broken = {i for i, b in enumerate(pattern) if b}
        if broken and broken <= blind_idx:
            total += q ** len(broken) * (1 - q) ** (half_length - len(broken))
    return 0.5 * total


# --- verdict and key numbers ---------------------------------------------------------------------


def _pair(p: int) -> str:
    return f"{MIRROR[p]}-{p}"


def blind_spot_verdict(
    sweep: SweepResult,
    attention: pd.DataFrame,
    ablation: pd.DataFrame,
    threshold: float = BLIND_THRESHOLD,
) -> str:
    """The chapter's verdict as text: blindness per mirror pair, the two claims checked, and the reason."""
    blind = blind_positions(sweep, threshold)
    lines = ["misclassified fraction of single-mismatch inputs, per mirror pair (first-second):"]
    lines += [f"  {_pair(p)}: {sweep.fraction(p):.3f}" for p in sweep.positions]
    lines.append(f"blind (> {threshold}): " + (", ".join(_pair(p) for p in blind) or "none"))
    for name, claim in (
        ("original (1, 2, 4 / 17, 19, 20)", ORIGINAL_CLAIM),
        ("other analysis (17, 19)", OTHER_CLAIM_QK),
    ):
        right = [p for p in claim if p in blind]
        wrong = [p for p in claim if p not in blind]
        missed = [p for p in blind if p not in claim]
        text = f"{name}: blind as claimed {[_pair(p) for p in right]}"
        text += f"; not blind {[f'{_pair(p)} ({sweep.fraction(p):.3f})' for p in wrong]}" if wrong else ""
        text += f"; missed {[_pair(p) for p in missed]}" if missed else ""
        lines.append(text)
    others = [p for p in sweep.positions if p not in blind]
    col = "H0.0 p->mirror (pal)"
    lines.append(
        "H0.0 attention from p to its mirror on palindromes: "
        + ", ".join(f"{p}: {attention.loc[p, col]:.2f}" for p in blind)
        + f"; other positions {min(attention.loc[others, col]):.2f} to {max(attention.loc[others, col]):.2f}"
    )
    for layer_head in ("H1.0", "H1.1"):
        c = f"{layer_head} END->p (broken)"
        lines.append(
            f"{layer_head} attention from END to a broken p: "
            + ", ".join(f"{p}: {attention.loc[p, c]:.2f}" for p in sorted(set(blind) | {max(sweep.positions)}))
        )
    for head in ablation.index.drop("none"):
        weak = [p for p in sweep.positions if p not in blind and ablation.loc[head, p] > threshold]
        lines.append(
            f"mean-ablating {head} makes blind: "
            + (", ".join(f"{_pair(p)} ({ablation.loc[head, p]:.2f})" for p in weak) or "nothing")
        )
    lines += _position_20_accounts(attention, ablation, threshold)
    return "\n".join(lines)


IGNORED: float = 0.05
"""A head at END ignores a broken position when it gives it less than this much attention."""
SELF_RISE: float = 0.1
"""H0.0 notices a broken pair when its self-attention there rises by at least this much."""


def h11_covers_20(
    h10_broken: float, h11_broken: float, h11_ablated_missed: float, threshold: float = BLIND_THRESHOLD
) -> bool:
    """The other analysis's first account of 20: H1.0 ignores a broken 20, H1.1 attends to it, and without H1.1 the pair
    is blind.

    Inputs: END's attention to a broken 20 in H1.0 and H1.1, and the fraction of single mismatches
    at 20 missed with H1.1 mean-ablated; the account holds when the first is below ``IGNORED`` and
    the other two above ``threshold``. The one rule for it (chapter 8 and the reconciliation).
    """
    h10_broken, h11_broken, h11_ablated_missed, threshold = (
        check_finite(name, value)
        for name, value in (
            ("h10_broken", h10_broken),
            ("h11_broken", h11_broken),
            ("h11_ablated_missed", h11_ablated_missed),
            ("threshold", threshold),
        )
    )
    return h10_broken < IGNORED and h11_broken > threshold and h11_ablated_missed > threshold


def h00_reads_mirror_at_20(mirror_20: float, mirror_18: float, self_palindromes: float, self_broken: float) -> bool:
    """Against the other analysis's final account of 20 (a blind spot of H0.0's QK circuit there).

    True when H0.0 at 20 attends to its mirror on palindromes at least half as much as at 18 (a
    working position), and its self-attention at 20 rises by at least ``SELF_RISE`` once the pair
    breaks, as at a working position. The one rule for it (chapter 8 and the reconciliation).
    """
    mirror_20, mirror_18, self_palindromes, self_broken = (
        check_finite(name, value)
        for name, value in (
            ("mirror_20", mirror_20),
            ("mirror_18", mirror_18),
            ("self_palindromes", self_palindromes),
            ("self_broken", self_broken),
        )
    )
    return mirror_20 >= 0.5 * mirror_18 and self_broken - self_palindromes >= SELF_RISE


def _position_20_accounts(attention: pd.DataFrame, ablation: pd.DataFrame, threshold: float) -> list[str]:
    """The other analysis's two accounts of position 20 (its claims 2 and 3), each against the read-outs.

    First account: H1.0 ignores 20 and H1.1 covers it (``h11_covers_20``). Final account: 20 is a
    blind spot of H0.0's QK circuit (contradicted by ``h00_reads_mirror_at_20``). The account's own
    evidence (its "difference vectors") is not computed here, and the line says so.
    """
    p = 20
    h10, h11 = attention.loc[p, "H1.0 END->p (broken)"], attention.loc[p, "H1.1 END->p (broken)"]
    h11_ablated = ablation.loc["H1.1", p] if "H1.1" in ablation.index else float("nan")
    first = h11_covers_20(h10, h11, h11_ablated, threshold)
    mirror, self_broken = attention.loc[p, "H0.0 p->mirror (pal)"], attention.loc[p, "H0.0 p->p (broken)"]
    final_contradicted = h00_reads_mirror_at_20(
        mirror, attention.loc[18, "H0.0 p->mirror (pal)"], attention.loc[p, "H0.0 p->p (pal)"], self_broken
    )
    return [
        f"other analysis on 20, first account (H1.0 ignores 20, H1.1 covers it): "
        f"{'supported' if first else 'not supported'} (END to a broken 20: H1.0 {h10:.2f}, H1.1 {h11:.2f}; "
        f"H1.1 mean-ablated: 1-20 misclassified {h11_ablated:.2f})",
        f"other analysis on 20, final account (a blind spot of H0.0's QK circuit at 20): "
        f"{'contradicted' if final_contradicted else 'not contradicted'} (H0.0 at 20 to its mirror "
        f"{mirror:.2f} on palindromes, to itself {self_broken:.2f} when broken); "
        f"its difference vectors are not examined here",
    ]


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
