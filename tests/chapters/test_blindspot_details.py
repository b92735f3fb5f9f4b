"""Appendix A (checks of the blind-spot map): both sides of a pair, value-pair likeness and attention by outcome."""

from __future__ import annotations

import pytest
import torch

from palindrome.chapters.blindspot_details import (
    attention_by_outcome,
    compare_sides,
    miss_rate_by_token_score,
    swapped_pair_index,
    token_score_gap,
)
from palindrome.chapters.blindspots import ordered_value_pairs, single_mismatch_sweep


@pytest.fixture(scope="module")
def small_sweep(model):
    return single_mismatch_sweep(model, n_bases=2, seed=5, progress=False)


def test_swapped_pair_index_is_an_involution():
    # a and b trading places is an involution on the pair list
    a, b = ordered_value_pairs()
    swapped = swapped_pair_index(a, b)
    assert (swapped[swapped] == torch.arange(930)).all()
    assert (a[swapped] == b).all()


def test_sides_cover_the_same_inputs(model, small_sweep):
    table = compare_sides(model, small_sweep, n_bases=1, progress=False)
    assert (table.iloc[:, 0] == table.iloc[:, 1]).all()
    assert table.iloc[:, 2].max() < 1e-4


def test_token_score_gap_and_bins(model, small_sweep):
    gap = token_score_gap(model, scale=1.0)
    assert gap.shape == (31, 31)
    assert gap.diagonal().abs().max() == 0
    assert (gap[~torch.eye(31, dtype=torch.bool)] < 0).all()  # every token prefers copies of itself
    table = miss_rate_by_token_score(small_sweep, gap, [11, 20])
    assert list(table.columns) == ["bin 1", "bin 2", "bin 3", "bin 4"] and list(table.index) == [11, 20]
    with pytest.raises(ValueError, match="n_bins must be an integer >= 2 and <= 1048576, got 1"):
        miss_rate_by_token_score(small_sweep, gap, [11], n_bins=1)
    with pytest.raises(ValueError, match="decoy must be None, True or False, got 'no'"):
        miss_rate_by_token_score(small_sweep, gap, [11], decoy="no")
    # without a decoy selection, a bin's rate is the mean over its (a, b) of the per-pair rate over bases
    i = small_sweep.index(20)
    values = gap[small_sweep.values_a, small_sweep.values_b]
    edges = torch.quantile(values, torch.linspace(0, 1, 5)[1:-1])
    bins = torch.bucketize(values, edges)
    per_pair = small_sweep.misclassified[i].float().mean(0)
    assert table.loc[20, "bin 4"] == pytest.approx(per_pair[bins == 3].mean().item())
    # with and without a decoy split the inputs: the two rates bracket the pooled one
    with_d = miss_rate_by_token_score(small_sweep, gap, [20], decoy=True)
    without = miss_rate_by_token_score(small_sweep, gap, [20], decoy=False)
    sel = (bins == 3)[None, :]
    missed, dec = small_sweep.misclassified[i], small_sweep.decoy[i]
    assert without.loc[20, "bin 4"] == pytest.approx(missed[sel & ~dec].float().mean().item())
    assert with_d.loc[20, "bin 4"] == pytest.approx(missed[sel & dec].float().mean().item())


def test_attention_by_outcome(model, small_sweep):
    table = attention_by_outcome(model, small_sweep, 20, n_bases=1)
    assert table["inputs"].sum() == 930
    with pytest.raises(ValueError, match="n_bases must be at most the sweep's 2 bases, got 3"):
        attention_by_outcome(model, small_sweep, 20, n_bases=3)
    with pytest.raises(ValueError, match="position must be one of .*got 10"):
        attention_by_outcome(model, small_sweep, 10)
