"""The generator's closed-form mismatch statistics agree with generated data."""

import math
from fractions import Fraction

import pytest
import torch

from palindrome.chapters.adversarial import HANDMADE_ADVERSARIAL
from palindrome.constants import SECOND_HALF
from palindrome.data import PalindromeDataset
from palindrome.data_distribution import (
    dataset_mismatch_pmf,
    empirical_mismatch_pmf,
    enumerated_only_blind_probability,
    mismatch_count_pmf,
    mismatch_counts,
    mismatch_probability,
    only_blind_mismatch_probability,
    only_pair_probability,
    palindrome_fraction,
    single_mismatch_fraction,
)
from palindrome.plots import mismatch_pmf_figure
from palindrome.tokens import mismatch_mask


@pytest.fixture(scope="module")
def large():
    return PalindromeDataset(100_000)


def test_pmfs_sum_to_one_and_match_the_binomial_formula():
    q = 15 / 31
    assert mismatch_probability() == pytest.approx(q)
    pmf = mismatch_count_pmf()
    assert pmf.shape == (11,)
    assert pmf.sum().item() == pytest.approx(1.0, abs=1e-12)
    exact_q = Fraction(15, 31)  # exact binomial terms: the pmf is float64 throughout, good to ~1e-15
    expected = torch.tensor(
        [float(math.comb(10, k) * exact_q**k * (1 - exact_q) ** (10 - k)) for k in range(11)], dtype=torch.float64
    )
    assert pmf.dtype == torch.float64
    torch.testing.assert_close(pmf, expected, rtol=1e-12, atol=0)
    assert dataset_mismatch_pmf().sum().item() == pytest.approx(1.0, abs=1e-12)
    assert palindrome_fraction() == pytest.approx(0.5 + 0.5 * (1 - q) ** 10)


def test_closed_form_matches_100k_generated_sequences(large):
    measured = empirical_mismatch_pmf(large.toks)
    # Binomial sampling noise on 100,000 sequences is at most ~0.0016 (1 sigma) per bin.
    assert (measured - dataset_mismatch_pmf()).abs().max().item() < 0.004
    assert measured.sum().item() == pytest.approx(1.0)
    assert measured[0].item() == pytest.approx(large.is_palindrome.float().mean().item())


def test_single_mismatch_fraction(large):
    closed = single_mismatch_fraction()
    assert closed == pytest.approx(0.5 * 10 * (15 / 31) * (16 / 31) ** 9)
    assert closed == pytest.approx(0.006288, abs=1e-6)
    counts = mismatch_counts(large.toks)
    assert int((counts == 1).sum()) == 592  # the seeded dataset
    assert (counts == 1).float().mean().item() == pytest.approx(closed, abs=0.0008)  # ~3 sigma


def test_other_sizes_follow_the_same_law():
    ds = PalindromeDataset(20_000, max_value=4, half_length=3)
    measured = empirical_mismatch_pmf(ds.toks, half_length=3, max_value=4)
    assert measured.shape == (4,)
    assert (measured - dataset_mismatch_pmf(3, 4)).abs().max().item() < 0.015


def test_mismatch_counts_counts_pairs():
    assert mismatch_counts(HANDMADE_ADVERSARIAL).tolist() == [1, 1, 1, 2]
    palindrome = [31] + list(range(10)) + list(range(9, -1, -1)) + [32]
    assert mismatch_counts(palindrome).tolist() == [0]


@pytest.mark.parametrize("kwargs", [{"half_length": 0}, {"max_value": 0}, {"half_length": True}, {"max_value": 2.5}])
def test_bad_sizes_raise(kwargs):
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        mismatch_count_pmf(**kwargs)


def test_small_generator_law_by_hand():
    # half_length 2, max_value 3: q = 1/2 * 3/4 = 3/8; a near-palindrome has 0, 1, 2 broken pairs with
    # probability (5/8)^2, 2 (3/8)(5/8), (3/8)^2 = 25/64, 30/64, 9/64; the dataset adds its palindromes to k = 0.
    assert mismatch_probability(3) == 0.375
    assert mismatch_probability(1) == 0.25  # 1/2 * 1/2
    pmf = mismatch_count_pmf(2, 3)
    assert pmf.dtype == torch.float64
    torch.testing.assert_close(pmf, torch.tensor([25, 30, 9], dtype=torch.float64) / 64, rtol=1e-12, atol=0)
    dataset = dataset_mismatch_pmf(2, 3)
    torch.testing.assert_close(dataset, torch.tensor([89, 30, 9], dtype=torch.float64) / 128, rtol=1e-12, atol=0)
    assert palindrome_fraction(2, 3) == pytest.approx(89 / 128, rel=1e-12)
    assert single_mismatch_fraction(2, 3) == pytest.approx(30 / 128, rel=1e-12)
    # half_length 1, max_value 1: q = 1/4, so the dataset is 1/2 + 1/2 * 3/4 = 7/8 palindromes.
    torch.testing.assert_close(dataset_mismatch_pmf(1, 1), torch.tensor([0.875, 0.125], dtype=torch.float64))


def _small_tokens(rows):
    """half_length 3, max_value 4: START = 5, END = 6."""
    return torch.tensor([[5, *row, 6] for row in rows])


def test_mismatch_counts_and_empirical_pmf_on_hand_built_small_sequences():
    # Pairs are (1, 6), (2, 5), (3, 4); counted by hand: none, the outer one, the middle one, all three.
    toks = _small_tokens([[0, 1, 2, 2, 1, 0], [1, 1, 2, 2, 1, 0], [0, 1, 2, 3, 1, 0], [4, 4, 4, 0, 0, 0]])
    assert mismatch_counts(toks, half_length=3, max_value=4).tolist() == [0, 1, 1, 3]
    assert mismatch_counts(toks[2], half_length=3, max_value=4).tolist() == [1]
    # Three sequences with 0, 1, 1 broken pairs: 1/3, 2/3 and two empty bins (k = 2, 3).
    measured = empirical_mismatch_pmf(toks[:3], half_length=3, max_value=4)
    assert measured.dtype == torch.float64 and measured.shape == (4,)
    torch.testing.assert_close(measured, torch.tensor([1 / 3, 2 / 3, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(
        empirical_mismatch_pmf(toks, half_length=3, max_value=4), torch.tensor([0.25, 0.5, 0.0, 0.25]).double()
    )
    with pytest.raises(ValueError, match="START"):
        mismatch_counts(toks)  # the default sizes expect START = 31


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="START"):
        mismatch_counts([0] * 22)
    with pytest.raises(ValueError, match="same length"):
        mismatch_pmf_figure(torch.zeros(11), torch.zeros(10), "title")


def test_closed_form_against_enumeration_and_sample():
    q = 15 / 31
    assert only_blind_mismatch_probability([17, 19]) == pytest.approx(0.5 * (1 - q) ** 8 * (1 - (1 - q) ** 2))
    for blind in ([17], [17, 19], [17, 19, 20], list(SECOND_HALF)):
        assert only_blind_mismatch_probability(blind) == pytest.approx(enumerated_only_blind_probability(blind))
    assert only_blind_mismatch_probability([]) == 0.0
    # small vocabulary and half length: many hits in a modest sample
    closed = only_blind_mismatch_probability([4], half_length=3, max_value=4)
    data = PalindromeDataset(20_000, max_value=4, half_length=3, seed=0)
    broken = mismatch_mask(data.toks, max_value=4)[:, 4:7]
    only = broken[:, 0] & ~broken[:, 1:].any(-1)
    assert only.float().mean().item() == pytest.approx(closed, rel=0.1)


def test_only_pair_probability_is_the_closed_form_of_one_position():
    assert only_pair_probability(20) == pytest.approx(0.000627, abs=2e-6)
    assert only_pair_probability(20) == only_blind_mismatch_probability([20])


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: only_blind_mismatch_probability([5]),
            r"positions must be distinct second-half positions 11..20, got \(5,\)",
        ),
        (
            lambda: only_blind_mismatch_probability([17, 17]),
            r"positions must be distinct second-half positions 11..20, got \(17, 17\)",
        ),
        (
            lambda: only_blind_mismatch_probability([17], half_length=0),
            "half_length must be an integer >= 1 and <= 1048576, got 0",
        ),
        *(
            (lambda position=position: only_pair_probability(position), "second-half position")
            for position in (5, 21, 0, True, 20.0)
        ),
    ],
)
def test_closed_forms_refuse_bad_positions(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_closed_forms_on_a_generator_small_enough_to_count_by_hand():
    # half_length 2, max_value 1: a slot of a near-palindrome differs from its mirror with q = 1/2 * 1/2 = 1/4
    assert only_blind_mismatch_probability([4], half_length=2, max_value=1) == 0.5 * 0.75 * 0.25
    assert only_blind_mismatch_probability([3, 4], half_length=2, max_value=1) == 0.5 * (1 - 0.75**2)
    assert enumerated_only_blind_probability([4], half_length=2, max_value=1) == 0.5 * 0.25 * 0.75
    assert enumerated_only_blind_probability([3, 4], half_length=2, max_value=1) == 0.5 * (2 * 0.25 * 0.75 + 0.25**2)
    # max_value moves q (3/8 at max_value 3) and half_length moves the slots that must stay whole
    assert only_blind_mismatch_probability([4], half_length=2, max_value=3) == 0.5 * 0.625 * 0.375
    assert enumerated_only_blind_probability([4], half_length=2, max_value=3) == pytest.approx(0.5 * 0.375 * 0.625)
    assert enumerated_only_blind_probability([5], half_length=3, max_value=1) == pytest.approx(0.5 * 0.25 * 0.75**2)
    assert enumerated_only_blind_probability([], half_length=2, max_value=1) == 0.0
