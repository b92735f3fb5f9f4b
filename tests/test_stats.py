"""The exact paired tests shared by chapters 9, 10 and 13."""

import pytest

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
