"""Paired tests shared by the chapters: exact McNemar on paired counts, Holm's correction, Wilcoxon signed ranks.

Method. McNemar's p is the exact binomial tail on the discordant counts (integers, so no float underflow); Holm's
correction steps down over sorted p values and is kept monotone; the signed-rank test drops zero differences, gives
tied magnitudes their mean rank, and reads a tie- and continuity-corrected normal approximation (accurate for the
thousands of paired inputs the chapters test)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from palindrome.tokens import check_finite, check_floats, check_int

__all__ = ["SignedRank", "holm", "mcnemar_exact", "wilcoxon_signed_rank"]


def mcnemar_exact(only_run: int, only_control: int) -> float:
    """Two-sided exact McNemar p value from the discordant counts: twice the Binomial(n, 1/2) tail at the smaller
    count, n = only_run + only_control, capped at 1 (1 when no input is discordant)."""
    b, c = check_int("only_run", only_run, 0), check_int("only_control", only_control, 0)
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p values (step-down, kept monotone, capped at 1), in the order given; reject where <= alpha."""
    if isinstance(pvalues, (str, bytes)) or not isinstance(pvalues, Sequence) or not pvalues:
        raise ValueError(f"pvalues must be a non-empty list of p values, got {pvalues!r:.80}")
    values = [check_finite("pvalues", p) for p in pvalues]
    if any(not 0 <= p <= 1 for p in values):
        raise ValueError(f"pvalues must lie in [0, 1], got {values}")
    m, adjusted, running = len(values), [0.0] * len(values), 0.0
    for rank, i in enumerate(sorted(range(m), key=values.__getitem__)):
        running = max(running, min(1.0, (m - rank) * values[i]))
        adjusted[i] = running
    return adjusted


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
