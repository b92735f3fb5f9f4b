"""Chapter 9 (the backup heads): key numbers from chapters.backup.key_findings, consistency checks, bad input."""

from __future__ import annotations

import pytest
import torch

from palindrome.ablation import Ablator, head_ablations
from palindrome.attribution import direct_effect
from palindrome.chapters.backup import (
    EDGE_SETS,
    POS20_SCALE_SETTINGS,
    TARGET_POSITION,
    TARGET_SIZE,
    all_positions_but,
    edge_ablation_accuracy,
    held_scale_table,
    mean_ablation_reference,
    measure,
    per_position_accuracy,
    per_position_table,
    pos20_mismatch_pairs,
    scale_mechanism,
    target_readouts,
    targeted_settings,
    value_votes,
    whole_head_settings,
)
from palindrome.chapters.blindspots import per_position_mismatches
from palindrome.circuits import attention_to
from palindrome.constants import END_POS, MIRROR, SECOND_HALF, SEQ_LEN
from palindrome.inputs import position_mismatch_batch
from palindrome.metrics import end_logits
from palindrome.tokens import is_palindrome, mismatch_mask

ACC = 1e-3  # accuracies over 300 inputs are multiples of 1/300: exact on CPU, tolerance for float noise


@pytest.fixture(scope="module")
def findings(chapter_findings):
    return chapter_findings("backup")


@pytest.fixture(scope="module")
def runner(model):
    return Ablator(model, mean_ablation_reference().toks)


@pytest.fixture(scope="module")
def target():
    return pos20_mismatch_pairs()


# --- key numbers -----------------------------------------------------------------------------


@pytest.mark.slow
def test_findings_are_named_floats(findings):
    assert findings and all(isinstance(k, str) and isinstance(v, float) for k, v in findings.items())


EXPECTED: list[tuple[str, float, float]] = [
    # (1, 20) is checked by H1.1 alone: ablating it misses every pos-20 mismatch, spares palindromes
    ("none__pos_20_mismatches__accuracy", 0.930, ACC),
    ("h1_1_mean__pos_20_mismatches__accuracy", 0.0, ACC),
    ("h1_1_zero__pos_20_mismatches__accuracy", 0.0, ACC),
    ("h1_1_mean__pos_20_mismatches__p_palindrome", 0.974, 2e-3),
    ("h1_1_mean__palindromes__accuracy", 1.0, ACC),
    ("none__per_position_20", 0.96, 0.005),
    ("h1_1_mean__per_position_20", 0.0, 0.005),
    ("only_pair_20_fraction", 0.000627, 2e-6),
    # mean vs zero ablation of H0.1 on the dataset
    ("none__dataset__loss", 0.013713, 1e-5),
    ("h0_1_mean__dataset__loss", 0.1029, 5e-4),
    ("h0_1_zero__dataset__loss", 1.3669, 2e-3),
    ("h1_1_mean__dataset__loss", 0.0262, 5e-4),
    ("h0_1_zero__dataset__accuracy", 0.640, ACC),
    ("h0_1_zero__palindromes__accuracy", 0.240, ACC),
    # H0.1 is not constant; it acts through the layer-1 LayerNorm scale
    ("h0_1_variability", 0.949, 0.005),
    ("h0_0_variability", 1.156, 0.005),
    ("h1_1_variability", 0.276, 0.005),
    ("h0_1_zero__ln1_scale_ratio", 0.850, 0.003),
    ("h0_1_mean__ln1_scale_ratio", 0.936, 0.003),
    ("h0_1_zero__h1_0_end_attention_tv", 0.277, 0.005),
    ("h0_1_zero_clean_scale__dataset__accuracy", 0.976, ACC),
    ("h0_1_zero_clean_scale__dataset__loss", 0.0706, 1e-3),
    ("h0_1_mean_clean_scale__dataset__loss", 0.0197, 5e-4),
    # H0.1 helps H1.1 at 20, which only a position-20 ablation shows
    ("h0_1_mean__pos_20_mismatches__accuracy", 0.940, ACC),
    ("h0_1_mean_at_20_only__pos_20_mismatches__accuracy", 0.867, ACC),
    ("h0_1_mean_all_but_20__pos_20_mismatches__accuracy", 0.963, ACC),
    ("h0_1_zero_at_20_only__pos_20_mismatches__accuracy", 0.450, ACC),
    ("h0_1_zero_at_20_only__palindromes__accuracy", 1.0, ACC),
    ("h0_1_zero_all_but_20__palindromes__accuracy", 0.207, ACC),
    ("edges_h0_1_to_h1_1_key_and_value_mean__pos_20_mismatches__accuracy", 0.863, ACC),
    ("edges_h0_0_to_h1_1_key_and_value_mean__pos_20_mismatches__accuracy", 0.767, ACC),
    ("edges_h0_1_to_h1_0_key_and_value_mean__pos_20_mismatches__accuracy", 0.933, ACC),
    ("h1_1_k_mean_at_20_only__pos_20_mismatches__accuracy", 0.323, ACC),
    ("h1_1_v_mean_at_20_only__pos_20_mismatches__accuracy", 0.197, ACC),
    # read-outs at position 20
    ("h0_1_positional_20_to_1", 0.522, 0.002),
    ("h0_1_positional_20_to_20", 0.399, 0.002),
    ("h0_1_positional_mirror_elsewhere_max", 0.166, 0.002),
    ("h0_1_same_token_score", -1.459, 0.005),
    ("h0_0_same_token_score", 4.065, 0.005),
    ("h0_1_own_token_lowest", 27 / 31, 1e-6),
    ("h0_1_20_to_1__palindromes", 0.226, 0.002),
    ("h0_1_20_to_1__pos_20_mismatches", 0.502, 0.002),
    ("h0_0_20_to_1__palindromes", 0.669, 0.002),
    ("h1_0_end_to_20__pos_20_mismatches", 0.0, 0.002),
    ("h1_1_end_to_20__palindromes", 0.294, 0.002),
    ("h1_1_end_to_20__pos_20_mismatches", 0.813, 0.002),
    ("h1_1_direct_effect__palindromes", -1.85, 0.02),
    ("h1_1_direct_effect__pos_20_mismatches", 11.03, 0.05),
    ("h1_1_vote_h0_1__pos_20_mismatches", 6.37, 0.02),
    ("h1_1_vote_h0_0__palindromes", -2.78, 0.02),
]


@pytest.mark.slow
@pytest.mark.parametrize("key,expected,tol", EXPECTED, ids=[k for k, _, _ in EXPECTED])
def test_key_number(findings, key, expected, tol):
    assert findings[key] == pytest.approx(expected, abs=tol)


@pytest.mark.slow
def test_h11_matters_at_no_other_position(findings):
    for p in SECOND_HALF:
        if p != TARGET_POSITION:
            assert findings[f"h1_1_mean__per_position_{p}"] >= findings[f"none__per_position_{p}"] - 0.011


# --- consistency -----------------------------------------------------------------------------


def test_inputs_break_exactly_one_pair(target):
    broken, bases = target
    assert broken.shape == bases.shape == (TARGET_SIZE, SEQ_LEN)
    assert is_palindrome(bases).all() and not is_palindrome(broken).any()
    mask = mismatch_mask(broken)
    assert mask[:, TARGET_POSITION].all() and mask[:, MIRROR[TARGET_POSITION]].all()
    assert mask.sum(-1).eq(2).all()
    assert torch.equal(broken[:, :TARGET_POSITION], bases[:, :TARGET_POSITION])
    other = position_mismatch_batch(50, 13, torch.Generator().manual_seed(0))
    assert mismatch_mask(other)[:, 13].all() and mismatch_mask(other).sum(-1).eq(2).all()


def test_runner_no_ablation_and_full_positions_are_consistent(model, runner, target):
    broken = target[0][:50]
    clean = end_logits(model, broken)
    torch.testing.assert_close(runner.logits(broken, []), clean, atol=1e-4, rtol=1e-4)
    # a layer-1 head's output away from END never reaches the logits
    at_20 = runner.logits(broken, head_ablations([(1, 1)], "mean", positions=[TARGET_POSITION]))
    torch.testing.assert_close(at_20, clean, atol=1e-4, rtol=1e-4)
    # ablating at every position listed = ablating everywhere; at 20 plus elsewhere = everywhere
    everywhere = runner.logits(broken, head_ablations([(0, 1)], "zero"))
    listed = runner.logits(broken, head_ablations([(0, 1)], "zero", positions=range(SEQ_LEN)))
    split = runner.logits(
        broken,
        head_ablations([(0, 1)], "zero", positions=[TARGET_POSITION])
        + head_ablations([(0, 1)], "zero", positions=all_positions_but(TARGET_POSITION)),
    )
    torch.testing.assert_close(listed, everywhere)
    torch.testing.assert_close(split, everywhere)


def test_scale_mechanism_without_ablation_is_neutral(runner):
    data = mean_ablation_reference()
    m = scale_mechanism(runner, data.toks[:50], data.is_palindrome[:50], {"none": []})["none"]
    torch.testing.assert_close(m.scale_ratio, torch.ones(SEQ_LEN))
    assert all(tv == pytest.approx(0.0, abs=1e-6) for tv in m.end_attention_tv.values())
    assert m.clean_scale.loss == pytest.approx(m.clean.loss, abs=1e-6)


def test_readouts_agree_with_single_functions(model, target):
    broken, _ = target
    toks = broken[:20]
    table = target_readouts(model, toks)
    torch.testing.assert_close(
        torch.tensor(table["H1.1 END->20"].to_numpy()), attention_to(model, toks, 1, 1, END_POS, 20)
    )
    torch.testing.assert_close(torch.tensor(table["H1.1 direct effect"].to_numpy()), direct_effect(model, toks, 1, 1))
    assert {"H1.0 direct effect", "H1.1 direct effect"} <= set(table.columns)
    votes = value_votes(model, toks, TARGET_POSITION, head=1)
    torch.testing.assert_close(torch.tensor(table["H1.1 vote H0.1"].to_numpy()), votes["H0.1"])


def test_per_position_accuracy_shape(model):
    acc = per_position_accuracy(model, [], n_per_position=5)
    assert acc.shape == (len(SECOND_HALF),) and ((acc >= 0) & (acc <= 1)).all()


def test_per_position_table_by_hand(model, runner):
    # Without ablations the table is the fast path's accuracy per broken position (argmax: not a palindrome), and on
    # the unbroken bases the share called palindromes, computed here without miss_rates_by_position.
    table = per_position_table(runner, {"none": [], "H1.1 mean": head_ablations([(1, 1)], "mean")}, 5, 7)
    bases, broken = per_position_mismatches(5, 7)
    called = end_logits(model, broken.flatten(0, 1), fast=True).argmax(-1).cpu().view(len(SECOND_HALF), 5) == 1
    for i, p in enumerate(SECOND_HALF):
        assert table.loc["none", p] == pytest.approx(1 - called[i].float().mean().item(), abs=1e-6)
    on_bases = (end_logits(model, bases, fast=True).argmax(-1).cpu() == 1).float().mean().item()
    assert table.loc["none", "palindromes"] == pytest.approx(on_bases, abs=1e-6)
    assert list(table.columns) == [*SECOND_HALF, "palindromes"] and table.index.name == "ablation"


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("position", [5, 21, 0, True, 20.0])
def test_positions_must_be_second_half(position):
    with pytest.raises(ValueError, match="second-half position"):
        position_mismatch_batch(10, position)


def test_bad_arguments(model, runner, target):
    broken, _ = target
    with pytest.raises(ValueError, match="n must be"):
        position_mismatch_batch(0, 20)
    with pytest.raises(ValueError, match="position must be an integer >= 0 and <= 21, got 22"):
        all_positions_but(SEQ_LEN)
    with pytest.raises(ValueError, match="head must be"):
        value_votes(model, broken, 20, head=2)
    with pytest.raises(ValueError, match="position must be an integer >= 0 and <= 21, got 22"):
        value_votes(model, broken, SEQ_LEN)
    with pytest.raises(ValueError, match="non-empty"):
        per_position_table(runner, {})
    with pytest.raises(ValueError, match="edge names"):
        edge_ablation_accuracy(model, broken, torch.zeros(len(broken), dtype=torch.long), {"x": ["0.1->9.9.k"]})
    with pytest.raises(ValueError, match="per_position_settings"):
        measure(model, ["H2.0 mean"])
    with pytest.raises(ValueError, match="whole_settings"):
        measure(model, whole_settings=["both median"])
    assert set(EDGE_SETS) >= {"H0.1 -> H1.1 key and value"}


@pytest.mark.slow
def test_pos20_accuracy_with_the_layer1_scale_held(model, runner, target):
    """Referee of issue 23 (items 1, 5, 8): the pos-20 batch under H0.1's ablations and edge cuts, with the layer-1
    scale held at each input's clean value, paired with the clean model."""
    broken, _ = target
    settings = whole_head_settings() | targeted_settings()
    table = held_scale_table(
        model,
        runner,
        broken,
        torch.zeros(len(broken), dtype=torch.long),
        {k: settings[k] for k in POS20_SCALE_SETTINGS},
    )
    held = table["acc held"].round(3).to_dict()
    assert held["H0.1 mean"] == 0.647 and held["H0.1 zero"] == 0.533
    assert held["H0.1 mean at 20 only"] == 0.6 and held["H0.1 mean all but 20"] == 0.943
    assert held["H0.1 zero at 20 only"] == 0.193
    assert held["edges H0.1 -> H1.1 key"] == 0.767 and held["edges H0.0 -> H1.1 key and value"] == 0.487
    assert table.loc["H0.1 mean", "scale at 20"] == pytest.approx(0.838, abs=5e-4)
    counts = table[["only clean", "only ablated", "only clean held", "only ablated held"]].astype(int)
    assert counts.loc["H0.1 mean all but 20"].tolist() == [0, 10, 2, 6]
    assert counts.loc["edges H0.1 -> H1.1 key"].tolist()[:2] == [13, 6]
    assert table.loc["edges H0.1 -> H1.1 key", "p"] == pytest.approx(0.167, abs=5e-4)
    assert table.loc["edges H0.1 -> H1.1 value", "p"] == pytest.approx(0.013, abs=5e-4)
