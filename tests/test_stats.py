"""The paired tests shared by chapters 9, 10, 12 and 13."""

import pytest
import torch

from palindrome import stats


def test_mcnemar_is_the_exact_two_sided_binomial_test():
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(0, 6) == stats.mcnemar_exact(6, 0) == 2 / 2**6  # all 6 discordant inputs on one side
    assert stats.mcnemar_exact(1, 8) == 2 * (1 + 9) / 2**9
    assert stats.mcnemar_exact(5, 5) == 1.0  # capped: the two tails overlap
    assert stats.mcnemar_exact(0, 5) > 0.05 > stats.mcnemar_exact(0, 6)  # 5 one-sided inputs cannot reach 0.05
    # chapter 12's largest split: exact integers, so p far below float precision is still a positive number
    assert 0 < stats.mcnemar_exact(3591, 2401) < 1e-40
    with pytest.raises(ValueError, match="only_run"):
        stats.mcnemar_exact(-1, 3)


def test_holm_steps_down_and_stays_monotone():
    assert stats.holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert stats.holm([0.5, 0.6]) == [1.0, 1.0]
    assert stats.holm([0.0]) == [0.0]
    with pytest.raises(ValueError, match="pvalues"):
        stats.holm([0.5, 1.5])
    with pytest.raises(ValueError, match="pvalues"):
        stats.holm([])


def _exact_signed_rank_p(w_plus: float, n: int) -> float:
    counts = [1] + [0] * (n * (n + 1) // 2)  # distribution of W+ under the null, no ties
    for rank in range(1, n + 1):
        for w in range(len(counts) - 1, rank - 1, -1):
            counts[w] += counts[w - rank]
    w = round(w_plus)
    return min(1.0, 2 * min(sum(counts[: w + 1]), sum(counts[w:])) / 2**n)


def test_wilcoxon_signed_rank_matches_exact_enumeration():
    generator = torch.Generator().manual_seed(0)
    for shift in (0.0, 0.3, 0.8, -0.8):
        d = torch.randn(20, generator=generator, dtype=torch.float64) + shift
        test = stats.wilcoxon_signed_rank(d)
        ranks = d.abs().argsort().argsort() + 1
        assert test.n == 20 and test.w_plus == float(ranks[d > 0].sum())
        assert test.p == pytest.approx(_exact_signed_rank_p(test.w_plus, 20), abs=0.01), shift
        assert (test.z > 0) == (test.w_plus > 20 * 21 / 4)
    # zeros are dropped, ties share their mean rank: |d| = 1, 1, 2 -> ranks 1.5, 1.5, 3
    tied = stats.wilcoxon_signed_rank(torch.tensor([0.0, 1.0, -1.0, 2.0]))
    assert tied.n == 3 and tied.w_plus == 4.5
    assert stats.wilcoxon_signed_rank(torch.zeros(5)).p == 1.0
