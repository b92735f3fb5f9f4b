"""Chapter 13's key numbers, asserted from the same functions the chapter calls.

What is asserted is what must hold on any machine (the runs' blind pairs, roles and accuracies to
a stated tolerance, the July model's errors by type), not the bytes of a retrained model.
"""

from __future__ import annotations

import pytest
import torch

from palindrome import blindspots as bs
from palindrome import counterfactuals as cf
from palindrome import retraining as rt
from palindrome.constants import SECOND_HALF
from palindrome.findings import FindingKeyError, MissingFindingsError
from palindrome.probes import broken_at_each_position_fresh
from palindrome.replicas import load_replica
from palindrome.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ACCURACY_TOLERANCE = 0.002
"""How far a run's accuracy on the 10,000 fresh inputs may move on another CPU (20 inputs)."""


@pytest.fixture(scope="module")
def results():
    return rt.analyse_runs(progress=False)


@pytest.fixture(scope="module")
def july_table(model):
    return rt.july_errors(model)


@pytest.fixture(scope="module")
def findings(results, july_table):
    return rt.key_findings(results, july_table)


def _run(results, variant, seed, epochs=TrainConfig.epochs):
    return next(r for r in results if (r.variant, r.seed, r.epochs) == (variant, seed, epochs))


def test_every_run_is_analysed_with_its_own_roles(results):
    manifest = cf.load_manifest()
    assert [(r.variant, r.seed, r.epochs) for r in results] == [(r.variant, r.seed, r.epochs) for r in manifest["runs"]]
    for r in results:
        assert r.mirror_head[0] == 0, r.name  # every run keeps its mirror head in layer 0
        assert r.misclassified.shape == r.standard_error.shape == (len(SECOND_HALF),)
        assert ((r.standard_error - (r.misclassified * (1 - r.misclassified) / r.n_inputs).sqrt()).abs() < 1e-6).all()


def test_the_sampled_map_finds_the_blind_pairs_chapter_8s_sweep_finds():
    # The chapter's map samples chapter 8's single-mismatch inputs with fresh bases; on the controls
    # it names the same blind pairs as chapter 8's exhaustive sweep (here over 4 bases).
    inputs = broken_at_each_position_fresh(rt.MAP_INPUTS, rt.MAP_SEED)
    for seed in cf.SEEDS:
        model = load_replica(seed, device="cpu")
        sweep = bs.single_mismatch_sweep(model, n_bases=4, progress=False)
        missed, _ = rt.single_mismatch_map(model, inputs)
        assert rt.blind_in(missed) == tuple(bs.blind_positions(sweep)), seed
        assert (missed - sweep.misclassified_frac).abs().max() < 0.1


def test_every_control_has_a_blind_pair(results, findings):
    assert findings["original__runs_with_a_blind_pair"] == len(cf.SEEDS)
    for seed in cf.SEEDS:
        control = _run(results, cf.CONTROL, seed)
        assert len(control.blind) == 1 and findings[f"original__seed_{seed}__max_miss"] > 0.95


def test_bad_inputs_are_refused(results, july_table):
    with pytest.raises(ValueError, match="inputs must be"):
        rt.single_mismatch_map(load_replica(0, device="cpu"), torch.zeros(3, 4, 22, dtype=torch.long))
    with pytest.raises(ValueError, match="no 'original' 15-epoch run"):
        rt.control_of(results[1:], results[0])
    with pytest.raises(MissingFindingsError):
        rt.key_findings([r for r in results if r.variant != "dose_05"], july_table)
    with pytest.raises(FindingKeyError):
        rt.key_findings(results, july_table)["single_mismatch__runs_with_blind_pairs"]


def test_longer_training_on_the_original_data_keeps_the_blind_pair(results, findings):
    longer_controls = [r for r in results if r.variant == cf.CONTROL and r.epochs == cf.LONG_EPOCHS]
    assert longer_controls, "the chapter's claim needs at least one control trained longer"
    for r in longer_controls:
        assert r.blind == _run(results, cf.CONTROL, r.seed).blind and float(r.misclassified.max()) > 0.95
    assert findings["longer runs whose blind pairs differ from their 15 epochs"] == 0


def test_common_single_mismatch_inputs_remove_the_blind_pairs(results, findings):
    # Single-mismatch data, or 25% of it: no run misses a pair more than half the time; dose 25%
    # seed 1 sits near the threshold at (10, 11) (its value is a borderline case on any machine).
    for variant in ("single_mismatch", "dose_25"):
        for seed in cf.SEEDS:
            r = _run(results, variant, seed)
            if (variant, seed) == ("dose_25", 1):
                assert 0.3 < r.miss(_run(results, cf.CONTROL, 1).blind) < 0.7
            else:
                assert not r.blind and float(r.misclassified.max()) < 0.1, r.name
    assert findings["single_mismatch__runs_with_a_blind_pair"] == 0
    # A 5% dose: seed 0 repaired, seed 1 mostly, seed 7 keeps (4, 17) and gains (3, 18).
    assert findings["dose_05__seed_0__max_miss"] < 0.05
    assert findings["dose_05__seed_1__miss_at_control_blind_pairs"] < 0.3
    assert _run(results, "dose_05", 7).blind == (17, 18)
    assert findings["dose_05__runs_with_a_blind_pair"] == 1
    assert findings["variant runs without a blind pair"] >= findings["variant runs"] - 2


def test_a_repaired_pair_gets_the_mirror_heads_attention(results):
    # Where the control's blind pair is repaired (seeds 0 and 7), the mirror head's positional
    # attention at that pair rises from near 0 to at least 0.15; where it stays blind it stays near 0.
    for r in results:
        control = _run(results, cf.CONTROL, r.seed)
        if r.variant == cf.CONTROL or r.seed == 1:
            continue
        repaired = r.miss(control.blind) < 0.5
        assert control.attention_at(control.blind) < 0.05
        assert (r.attention_at(control.blind) > 0.15) == repaired, r.name


def test_what_it_costs_on_the_original_distribution(results, findings):
    # Accuracies on 10,000 fresh inputs, with ACCURACY_TOLERANCE for another CPU's float noise.
    assert findings["variant runs"] == 3 * len(cf.SEEDS)
    assert findings["variant runs at least as accurate as their control"] == 7
    for r in results:
        control = _run(results, cf.CONTROL, r.seed)
        assert r.accuracy > 0.99 and abs(r.accuracy - control.accuracy) < 0.005, r.name
    worse = {r.name for r in results if r.epochs == TrainConfig.epochs and r.accuracy < control_accuracy(results, r)}
    assert worse == {"dose_05 s7", "single_mismatch s1"}
    assert all(r.accuracy >= 1 - ACCURACY_TOLERANCE for r in results if not r.blind and r.seed != 1)


def control_accuracy(results, r):
    return _run(results, cf.CONTROL, r.seed).accuracy


def test_the_july_model_never_learned_its_own_blind_training_inputs(july_table, findings):
    # Every training input that breaks only blind pairs is still missed, on its training set as on
    # fresh inputs; errors involving a visible pair are far fewer on its training set than on fresh data.
    for part in rt.JULY_SETS:
        assert findings[f"july__{part}__only_blind_pairs_broken"] == findings[f"july__{part}__only_blind_inputs"] > 100
        assert findings[f"july__{part}__false_negatives"] == 0
    visible = lambda part: (  # noqa: E731
        findings[f"july__{part}__blind_and_visible_pairs_broken"] + findings[f"july__{part}__visible_pairs_only"]
    )
    assert visible("train") <= 5 and visible("fresh") >= 10 * visible("train")
    assert july_table.iloc[0]["inputs"] == july_table.iloc[1]["inputs"] == TrainConfig.train_size
