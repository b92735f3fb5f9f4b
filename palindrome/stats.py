"""Small exact tests shared by the chapters: McNemar's test on paired counts and Holm's correction."""

from __future__ import annotations

import math
from typing import Sequence

from palindrome.tokens import check_finite, check_int

__all__ = ["holm", "mcnemar_exact"]


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
