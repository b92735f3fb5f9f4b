"""Key numbers of chapter 8 (the blind-spot map), asserted through the functions the chapter calls."""

from __future__ import annotations

import pytest
import torch

from palindrome.chapters.blindspots import (
    N_BASES,
    SweepResult,
    ablation_blindness,
    blind_positions,
    break_pairs,
    natural_adversarial_counts,
    ordered_value_pairs,
    per_position_mismatches,
    random_palindromes,
    single_mismatch_sweep,
    single_mismatch_tokens,
)
from palindrome.constants import MIRROR, SECOND_HALF
from palindrome.metrics import p_palindrome
from palindrome.tokens import is_palindrome, mismatch_mask

# Misclassified inputs per second-half position in the chapter's sweep (32 bases, seed 0): exact counts out of
# 32 x 930 = 29,760 inputs each. No input of the sweep has |logit difference| < 1e-4 (the smallest is 2e-4, at 12),
# so no count can move on another CPU's rounding: they are asserted exactly.
N_PER_POSITION = 29_760
EXPECTED_MISSES = {11: 1009, 12: 649, 13: 123, 14: 520, 15: 782, 16: 800, 17: 29_760, 18: 693, 19: 29_760, 20: 2458}


@pytest.fixture(scope="module")
def findings(chapter_findings):
    return chapter_findings("blindspots")


@pytest.fixture(scope="module")
def small_sweep(model):
    return single_mismatch_sweep(model, n_bases=2, seed=5, progress=False)


@pytest.mark.slow
def test_blind_positions_and_fractions(findings):
    for p, expected in EXPECTED_MISSES.items():
        assert findings[f"misclassified_frac_pos_{p}"] * N_PER_POSITION == pytest.approx(expected, abs=0.01), p
        assert findings[f"is_blind_pos_{p}"] == float(p in (17, 19))
    assert findings["n_blind_positions"] == 2.0
    assert findings["pair_misclassified_17_19"] == 1.0


@pytest.mark.slow
def test_mechanism_numbers(findings):
    for p in (17, 19):  # H0.0 barely looks at the mirror of a blind position, even in palindromes
        assert findings[f"h00_to_mirror_on_palindromes_pos_{p}"] < 0.25
    for p in set(SECOND_HALF) - {17, 19}:
        assert findings[f"h00_to_mirror_on_palindromes_pos_{p}"] > 0.5
    assert findings["h11_mean_ablated_misclassified_frac_pos_20"] > 0.95
    assert findings["h01_mean_ablated_misclassified_frac_pos_20"] < 0.2
    # position 20: H0.0 works (attends to itself once broken), H1.0 ignores it, H1.1 reads it
    assert findings["h00_to_self_broken_pos_20"] > 0.5
    assert findings["h10_end_to_broken_pos_20"] < 0.01
    assert findings["h11_end_to_broken_pos_20"] > 0.8
    assert findings["unablated_misclassified_frac_pos_20_mechanism_inputs"] == pytest.approx(0.04, abs=0.005)


@pytest.mark.slow
def test_standard_error_over_bases(findings):
    # inputs share their base: the error over the 32 bases is far larger than the binomial one
    assert findings["misclassified_frac_se_over_bases_pos_20"] == pytest.approx(0.0127, abs=0.0005)
    assert findings["misclassified_frac_se_over_bases_pos_17"] == 0.0


def test_clustered_standard_error_by_hand(small_sweep):
    per_base = small_sweep.base_fractions()
    assert per_base.shape == (10, 2)
    assert torch.allclose(per_base.mean(1), small_sweep.misclassified_frac)
    expected = (per_base[:, 0] - per_base[:, 1]).abs() / 2  # two bases: std / sqrt(2) = |difference| / 2
    assert torch.allclose(small_sweep.clustered_standard_error(), expected, atol=1e-6)
    one = SweepResult(
        "second",
        small_sweep.bases[:1],
        small_sweep.values_a,
        small_sweep.values_b,
        small_sweep.p_palindrome[:, :1],
        small_sweep.decoy[:, :1],
    )
    with pytest.raises(ValueError, match="needs at least 2 bases, got 1"):
        one.clustered_standard_error()


def test_decoy_share_of_misses(small_sweep):
    table = small_sweep.table()
    for i, p in enumerate(SECOND_HALF):
        mis, decoy = small_sweep.misclassified[i].flatten(), small_sweep.decoy[i].flatten()
        expected = (mis & decoy).sum().item() / max(mis.sum().item(), 1)
        assert table.loc[p, "share of misses with a decoy"] == pytest.approx(expected)


@pytest.mark.slow
def test_natural_adversarial_numbers(findings):
    assert findings["natural_false_negatives"] == 0.0
    assert findings["natural_false_positive_rate"] == pytest.approx(475 / 200_000, abs=1e-6)
    assert findings["natural_fp_share_only_blind"] == pytest.approx(372 / 475, abs=1e-6)
    assert findings["only_blind_misclassified_frac"] == 1.0
    assert findings["natural_loss_share_only_blind"] == pytest.approx(0.75, abs=0.01)
    assert findings["p_only_blind_sample"] == pytest.approx(findings["p_only_blind_closed_form"], rel=0.1)
    assert findings["expected_only_blind_per_epoch"] == pytest.approx(184.7, abs=0.1)
    assert all(isinstance(v, float) for v in findings.values())


def test_sweep_matches_hooked_transformer(model, small_sweep):
    every = 5  # every 5th (a, b) pair of both bases: 372 inputs per position on the slow path
    for p in (11, 17, 20):
        toks = single_mismatch_tokens(small_sweep.bases, p)[:, ::every]
        slow = p_palindrome(model, toks.flatten(0, 1)).view(toks.shape[:2]).cpu()
        fast = small_sweep.p_palindrome[small_sweep.index(p), :, ::every]
        assert torch.allclose(fast, slow, atol=1e-4)


def test_sweep_inputs(small_sweep):
    a, b = ordered_value_pairs()
    assert a.shape == (930,) and (a != b).all()
    toks = single_mismatch_tokens(small_sweep.bases, 13, side="first")
    assert (toks[:, :, 13] == a).all() and (toks[:, :, MIRROR[13]] == b).all()
    flat = toks.flatten(0, 1)
    assert (mismatch_mask(flat).sum(-1) == 2).all()  # exactly one broken pair, both members flagged
    assert small_sweep.p_palindrome.shape == (10, 2, 930)
    assert small_sweep.fraction(17) == 1.0 and small_sweep.fraction(19) == 1.0
    assert blind_positions(small_sweep) == [17, 19]


def test_ablation_blindness_by_hand(model):
    # The clean row: per position, the share of the broken bases the model calls palindromes (P > 0.5), computed here
    # without miss_rates_by_position; the last column is the share of the unbroken bases it does not.
    table = ablation_blindness(model, heads=[(1, 1)], n_bases=4, reference_size=20)
    bases, broken = per_position_mismatches(4)
    called = p_palindrome(model, broken.flatten(0, 1)).cpu().view(len(SECOND_HALF), 4) > 0.5
    for i, p in enumerate(SECOND_HALF):
        assert table.loc["none", p] == pytest.approx(called[i].float().mean().item(), abs=1e-6)
    on_bases = (p_palindrome(model, bases).cpu() > 0.5).float().mean().item()
    assert table.loc["none", "palindromes misclassified"] == pytest.approx(1 - on_bases, abs=1e-6)
    assert list(table.index) == ["none", "H1.1"] and list(table.columns) == [*SECOND_HALF, "palindromes misclassified"]


def test_random_palindromes_and_break_pairs():
    g = torch.Generator().manual_seed(0)
    bases = random_palindromes(50, g)
    assert is_palindrome(bases).all()
    broken = break_pairs(bases, [12, 20], g)
    assert (mismatch_mask(broken)[:, [9, 12, 1, 20]]).all()
    assert mismatch_mask(broken).sum(-1).eq(4).all()


def test_natural_counts_small(model):
    counts = natural_adversarial_counts(model, size=2000, seed=0)
    assert counts["false_negatives"] == 0.0
    assert counts["fp_only_blind"] == counts["only_blind_inputs"]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: random_palindromes(0), "n must be an integer >= 1"),
        (lambda m: ordered_value_pairs(0), "max_value must be an integer >= 1"),
        (
            lambda m: single_mismatch_tokens(random_palindromes(2), 10),
            r"positions must be distinct second-half positions 11..20, got \(10,\)",
        ),
        (
            lambda m: single_mismatch_tokens(random_palindromes(2), 21),
            r"positions must be distinct second-half positions 11..20, got \(21,\)",
        ),
        (
            lambda m: single_mismatch_tokens(random_palindromes(2), 15, side="middle"),
            "side must be one of .*got 'middle'",
        ),
        (
            lambda m: single_mismatch_tokens(torch.tensor([[31] + list(range(20)) + [32]]), 15),
            "bases must all be palindromes; sequence 0 is not",
        ),
        (lambda m: break_pairs(random_palindromes(2), []), "positions must name at least one second-half position"),
        (
            lambda m: break_pairs(random_palindromes(2), [12, 12]),
            r"positions must be distinct second-half positions 11..20, got \(12, 12\)",
        ),
        (lambda m: single_mismatch_sweep(m, n_bases=0, progress=False), "n_bases must be an integer >= 1"),
        (
            lambda m: single_mismatch_sweep(m, n_bases=1, side="both", progress=False),
            "side must be one of .*got 'both'",
        ),
        (lambda m: blind_positions("not a sweep"), "result must be a SweepResult, got str"),
        (lambda m: natural_adversarial_counts(m, size=3), "size must be a positive even integer"),
        (
            lambda m: natural_adversarial_counts(m, size=10, blind=[3]),
            r"positions must be distinct second-half positions 11..20, got \(3,\)",
        ),
    ],
)
def test_value_errors(model, call, match):
    with pytest.raises(ValueError, match=match):
        call(model)


def test_result_accessors_validate(small_sweep):
    with pytest.raises(ValueError, match="position must be one of .*got 10"):
        small_sweep.fraction(10)
    with pytest.raises(ValueError, match=r"quantiles must be a non-empty list of numbers in \[0, 1\], got \[1.5\]"):
        small_sweep.quantiles([1.5])
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\), got 1.0"):
        blind_positions(small_sweep, threshold=1.0)
    assert isinstance(small_sweep, SweepResult) and N_BASES == 32


def test_misclassified_is_p_above_one_half_by_hand():
    # A hand-made sweep of one position, one base, four pairs: an input is called a palindrome when P > 0.5.
    a, b = torch.tensor([0, 1, 0, 2]), torch.tensor([1, 0, 2, 0])
    p = torch.tensor([[[0.505, 0.5, 0.4999, 0.9]]])
    sweep = SweepResult("second", random_palindromes(1), a, b, p, torch.zeros(1, 1, 4, dtype=torch.bool), (20,))
    assert sweep.misclassified.tolist() == [[[True, False, False, True]]]
    assert sweep.fraction(20) == 0.5 and sweep.n_inputs == 4
    assert sweep.base_fractions().tolist() == [[0.5]]


def _hand_sweep() -> SweepResult:
    # Two positions x two bases x three ordered pairs (a, b) = (0, 1), (1, 0), (0, 2), every P chosen by hand.
    a, b = torch.tensor([0, 1, 0]), torch.tensor([1, 0, 2])
    p = torch.tensor(
        [
            [[0.9, 0.1, 0.6], [0.2, 0.7, 0.3]],  # position 11: misses (1,0,1) and (0,1,0)
            [[0.1, 0.2, 0.3], [0.4, 0.45, 0.8]],  # position 20: misses (0,0,0) and (0,0,1)
        ]
    )
    decoy = torch.tensor([[[True, False, False], [False, True, False]], [[False] * 3, [False, False, True]]])
    return SweepResult("second", random_palindromes(2), a, b, p, decoy, (11, 20))


def test_sweep_result_statistics_by_hand():
    sweep = _hand_sweep()
    assert sweep.index(20) == 1 and sweep.n_inputs == 12
    with pytest.raises(ValueError, match=r"position must be one of \(11, 20\), got 12"):
        sweep.index(12)
    assert sweep.misclassified_frac.tolist() == pytest.approx([3 / 6, 1 / 6])
    assert sweep.fraction(11) == pytest.approx(0.5) and sweep.fraction(20) == pytest.approx(1 / 6)
    # Binomial error over the 6 inputs of each position; clustered error over the 2 bases' fractions.
    assert sweep.standard_error().tolist() == pytest.approx([(0.25 / 6) ** 0.5, (5 / 36 / 6) ** 0.5])
    torch.testing.assert_close(sweep.base_fractions(), torch.tensor([[2 / 3, 1 / 3], [0.0, 1 / 3]]))
    sd = torch.tensor([2 / 3, 1 / 3]).std().item(), torch.tensor([0.0, 1 / 3]).std().item()
    assert sweep.clustered_standard_error().tolist() == pytest.approx([sd[0] / 2**0.5, sd[1] / 2**0.5])
    one_base = SweepResult(
        "second",
        sweep.bases[:1],
        sweep.values_a,
        sweep.values_b,
        sweep.p_palindrome[:, :1],
        sweep.decoy[:, :1],
        (11, 20),
    )
    with pytest.raises(ValueError, match="needs at least 2 bases, got 1"):
        one_base.clustered_standard_error()
    one_position = SweepResult(
        "second", sweep.bases, sweep.values_a, sweep.values_b, sweep.p_palindrome[1:], sweep.decoy[1:], (20,)
    )
    assert one_position.standard_error().tolist() == pytest.approx([(5 / 36 / 6) ** 0.5])


def test_sweep_result_quantiles_rates_and_swaps_by_hand():
    sweep = _hand_sweep()
    q = sweep.quantiles((0.0, 0.5, 1.0))
    assert q.shape == (2, 3)
    torch.testing.assert_close(q, torch.tensor([[0.1, 0.45, 0.9], [0.1, 0.35, 0.8]]))
    assert sweep.quantiles().shape == (2, 5)
    for bad in ((), (-0.1,), (1.5, 0.5)):
        with pytest.raises(ValueError, match=r"quantiles must be a non-empty list of numbers in \[0, 1\]"):
            sweep.quantiles(bad)
    rates = sweep.rate_matrix(11)  # rows a, columns b, mean over the two bases, NaN where no pair was swept
    assert rates.shape == (3, 3)
    assert rates[0, 1].item() == pytest.approx(0.5) and rates[1, 0].item() == pytest.approx(0.5)
    assert rates[0, 2].item() == pytest.approx(0.5)
    assert torch.isnan(rates[2, 0]) and torch.isnan(rates[0, 0]) and torch.isnan(rates[1, 2])
    assert sweep.rate_matrix(20)[0, 2].item() == pytest.approx(0.5) and sweep.rate_matrix(20)[1, 0].item() == 0.0
    # (0, 1) and (1, 0) are each other's swap; (0, 2) has no swapped partner in this sweep, so its verdict is
    # compared with "not swept" (False). Position 11: base 0 -> (1 vs 0 differ, 0 vs 1 differ, 1 vs 0 differ),
    # base 1 -> (0 vs 1, 1 vs 0, 0 vs 0); position 20: base 0 -> none; base 1 -> only (0, 2).
    assert sweep.swap_disagreement().tolist() == pytest.approx([5 / 6, 1 / 6])


def test_sweep_result_table_by_hand():
    table = _hand_sweep().table()
    assert list(table.index) == [11, 20] and table.loc[11, "mirror"] == 10 and table.loc[20, "mirror"] == 1
    row = table.loc[11]
    assert row["misclassified"] == pytest.approx(0.5) and row["median P(palindrome)"] == pytest.approx(0.3)
    assert row["decoy fraction"] == pytest.approx(2 / 6)
    assert row["misclassified | decoy"] == pytest.approx(1.0) and row["misclassified | no decoy"] == pytest.approx(
        1 / 4
    )
    assert row["share of misses with a decoy"] == pytest.approx(2 / 3)
    row = table.loc[20]
    assert row["misclassified | decoy"] == pytest.approx(1.0) and row["misclassified | no decoy"] == pytest.approx(0.0)
    assert row["share of misses with a decoy"] == pytest.approx(1.0)


def test_sweep_arguments_bases_and_progress(model, capsys):
    from palindrome.inputs import random_palindromes as draw
    from palindrome.tokens import MAX_SAMPLES

    with pytest.raises(
        ValueError, match=rf"^n_bases must be an integer >= 1 and <= {MAX_SAMPLES}, got {MAX_SAMPLES + 1}$"
    ):
        single_mismatch_sweep(model, n_bases=MAX_SAMPLES + 1, progress=False)
    # The bases are the seed's own draw (the same generator random_palindromes gets from the seed by hand).
    sweep = single_mismatch_sweep(model, n_bases=1, seed=7, progress=False)
    assert torch.equal(sweep.bases, draw(1, torch.Generator().manual_seed(7)))
    assert not capsys.readouterr().err  # progress=False: no bar
    single_mismatch_sweep(model, n_bases=1, seed=7, side="first")  # the bar is on by default and names the side
    err = capsys.readouterr().err
    assert "single mismatches (first side)" in err and "10/10" in err
