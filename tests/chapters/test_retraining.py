"""Chapter 13's key numbers, asserted from the same functions the chapter calls.

What is asserted is what must hold on any machine (the runs' blind pairs, roles and accuracies to
a stated tolerance, the July model's errors by type), not the bytes of a retrained model.
"""

from __future__ import annotations

import pytest
import torch

from palindrome import stats
from palindrome import variant_runs as vr
from palindrome.chapters import blindspots as bs
from palindrome.chapters import retraining as rt
from palindrome.chapters import run_analysis as ra
from palindrome.chapters import training_errors as te
from palindrome.chapters.roles import MIRROR_THRESHOLD
from palindrome.constants import SECOND_HALF
from palindrome.findings import FindingKeyError, MissingFindingsError
from palindrome.inputs import broken_at_each_position_fresh
from palindrome.replicas import load_replica
from palindrome.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def results():
    return ra.analyse_runs(progress=False)


@pytest.fixture(scope="module")
def july_table(model):
    return te.july_errors(model)


@pytest.fixture(scope="module")
def findings(results, july_table):
    return rt.key_findings(results, july_table)


def _run(results, variant, seed, epochs=TrainConfig.epochs):
    return next(r for r in results if (r.variant, r.seed, r.epochs) == (variant, seed, epochs))


@pytest.mark.slow
def test_every_run_is_analysed_with_its_own_roles(results):
    manifest = vr.load_manifest()
    assert [(r.variant, r.seed, r.epochs) for r in results] == [(r.variant, r.seed, r.epochs) for r in manifest["runs"]]
    for r in results:
        assert r.mirror_head[0] == 0, r.name  # every run keeps its mirror head in layer 0
        assert r.misclassified.shape == r.standard_error.shape == (len(SECOND_HALF),)
        assert ((r.standard_error - (r.misclassified * (1 - r.misclassified) / r.n_inputs).sqrt()).abs() < 1e-6).all()


def test_the_sampled_map_finds_the_blind_pairs_chapter_8s_sweep_finds():
    # The chapter's map samples chapter 8's single-mismatch inputs with fresh bases; on the controls
    # it names the same blind pairs as chapter 8's exhaustive sweep (here over 4 bases).
    inputs = broken_at_each_position_fresh(ra.MAP_INPUTS, ra.MAP_SEED)
    for seed in vr.SEEDS:
        model = load_replica(seed, device="cpu")
        sweep = bs.single_mismatch_sweep(model, n_bases=4, progress=False)
        missed, _ = ra.single_mismatch_map(model, inputs)
        assert ra.blind_in(missed) == tuple(bs.blind_positions(sweep)), seed
        # Seed 9's misses depend strongly on the base (at (10, 11): 0.26 on the map's 400 fresh bases, 0.48 on the
        # sweep's 4), so its rates agree only loosely; the blind pair itself is the same.
        assert (missed - sweep.misclassified_frac).abs().max() < (0.25 if seed == 9 else 0.1), seed


@pytest.mark.slow
def test_every_control_has_a_blind_pair(results, findings):
    assert findings["original__runs_with_a_blind_pair"] == len(vr.SEEDS)
    for seed in vr.SEEDS:
        control = _run(results, vr.CONTROL, seed)
        assert findings[f"original__seed_{seed}__max_miss"] > 0.9
        # Seed 9's control is retrained here (its replica was made on another CPU): (7, 14) as in chapter 11, and
        # (9, 12) just over the threshold.
        assert control.blind == ((12, 14) if seed == 9 else tuple(bs.blind_positions(_replica_sweep(seed))))


def _replica_sweep(seed):
    return bs.single_mismatch_sweep(load_replica(seed, device="cpu"), n_bases=4, progress=False)


@pytest.mark.slow
def test_bad_inputs_are_refused(results, july_table):
    with pytest.raises(ValueError, match="inputs must be"):
        ra.single_mismatch_map(load_replica(0, device="cpu"), torch.zeros(3, 4, 22, dtype=torch.long))
    with pytest.raises(ValueError, match="no 'original' 15-epoch run"):
        ra.control_of(results[1:], results[0])
    with pytest.raises(ValueError, match="no variant run, only controls"):
        rt.paired_tests([r for r in results if r.variant == vr.CONTROL])
    with pytest.raises(MissingFindingsError, match="computed no value for its declared finding"):
        rt.key_findings([r for r in results if r.variant != "dose_05"], july_table)
    with pytest.raises(FindingKeyError, match="has no finding 'single_mismatch__runs_with_blind_pairs'"):
        rt.key_findings(results, july_table)["single_mismatch__runs_with_blind_pairs"]


@pytest.mark.slow
def test_longer_training_on_the_original_data_keeps_seed_7s_blind_pair_not_seed_9s(results, findings):
    # Item 4 of issue 23: seed 7's control keeps (4, 17) at 30 epochs, its last stage (made before the 60-epoch
    # stage), where the rule does not call it converged; seed 9's control, blind at 15 epochs before it had
    # converged, loses both its pairs by 30 epochs.
    longer = {(r.seed, r.epochs): r for r in results if r.variant == vr.CONTROL and r.epochs > TrainConfig.epochs}
    assert set(longer) == {(7, 30), (9, 30), (9, 60)}
    assert not longer[7, 30].converged and vr.run_record(vr.CONTROL, 7, 30).max_epochs == 30
    for (seed, _), r in longer.items():
        control = _run(results, vr.CONTROL, seed)
        if seed == 7:
            assert r.blind == control.blind == (17,) and float(r.misclassified.max()) > 0.95, r.name
        else:
            assert not control.converged and not r.blind and r.miss(control.blind) < 0.2, r.name
    assert findings["longer runs whose blind pairs differ from their 15 epochs"] == sum(seed == 9 for seed, _ in longer)
    assert findings["seeds whose control keeps its blind pair"] == 3
    # Referee 13 item 3: only seeds 0 and 1 have a control that converged with its blind pair; there every variant
    # run at 15 epochs lost it, the worst (dose 25% seed 1) just under the threshold.
    assert findings["seeds whose control converged with its blind pair"] == 2
    assert (
        findings["variant runs at those converged seeds"]
        == findings["variant runs at those converged seeds without a blind pair"]
        == 6
    )
    worst = findings["max miss at those converged seeds"]
    assert worst == findings["dose_25__seed_1__miss_at_control_blind_pairs"] and 0.45 < worst < bs.BLIND_THRESHOLD


@pytest.mark.slow
def test_common_single_mismatch_inputs_remove_the_blind_pairs(results, findings):
    # Single-mismatch data, or 25% of it: no run misses a pair more than half the time; dose 25%
    # seed 1 sits near the threshold at (10, 11) (its value is a borderline case on any machine).
    for variant in ("single_mismatch", "dose_25"):
        for seed in vr.SEEDS:
            r = _run(results, variant, seed)
            if (variant, seed) == ("dose_25", 1):
                assert 0.3 < r.miss(_run(results, vr.CONTROL, 1).blind) < 0.7
            else:
                assert not r.blind and float(r.misclassified.max()) < 0.1, r.name
    assert findings["single_mismatch__runs_with_a_blind_pair"] == 0
    # A 5% dose: seed 0 repaired, seed 1 mostly, seed 7 keeps (4, 17) and gains (3, 18).
    assert findings["dose_05__seed_0__max_miss"] < 0.05
    assert findings["dose_05__seed_1__miss_at_control_blind_pairs"] < 0.3
    assert _run(results, "dose_05", 7).blind == (17, 18)
    assert findings["dose_05__runs_with_a_blind_pair"] == 1
    assert findings["variant runs without a blind pair"] >= findings["variant runs"] - 2


@pytest.mark.slow
def test_a_repaired_pair_gets_the_mirror_heads_attention(results, findings):
    # Seeds 0 and 7: the control's blind pair is its mirror head's least-attended pair, and a variant repairs it
    # exactly when its head attends there at least ATTENTION_RISE times as much. Seeds 1 and 9 repair their pair
    # without that rise. Both readings of the attention (positional circuit at one constant scale; the head's own
    # attention on natural inputs, exact scales) give every run the same verdict.
    for measured in (False, True):
        verdicts = rt.attention_verdicts(results, measured)
        for r in results:
            control = _run(results, vr.CONTROL, r.seed)
            repaired = r.miss(control.blind) < bs.BLIND_THRESHOLD
            if r.seed in (0, 7):
                assert verdicts[r.name] == (r is control or repaired), (r.name, measured)
            elif r.variant != vr.CONTROL:
                assert not verdicts[r.name], (r.name, measured)
        assert verdicts["original s1"] and not verdicts["original s9"]
    assert findings["runs whose attention verdict depends on the measure"] == 0
    assert all(r.attention_at(_run(results, vr.CONTROL, 9).blind) > 0.3 for r in results if r.seed == 9)


@pytest.mark.slow
def test_what_it_costs_on_the_original_distribution(results, findings):
    # Each run against its control on the same 10,000 fresh inputs: exact McNemar on the discordant inputs and
    # Wilcoxon on the per-input losses, Holm-corrected; the verdicts follow the corrected p values.
    assert findings["variant runs"] == 3 * len(vr.SEEDS)
    tests = rt.paired_tests(results)
    assert len(tests) == findings["compared runs"] == sum(r.variant != vr.CONTROL for r in results)
    for name, row in tests.iterrows():
        r = next(x for x in results if x.name == name)
        control = ra.stage_control(results, r)
        assert r.variant != vr.CONTROL and control.variant == vr.CONTROL and row["control"] == control.name
        # The same stage wherever the control has one (referee 13 item 1), else the 15-epoch control.
        stages = {x.epochs for x in results if (x.variant, x.seed) == (vr.CONTROL, r.seed)}
        assert control.epochs == (r.epochs if r.epochs in stages else TrainConfig.epochs), name
        worse = float(((r.losses - control.losses) > 0).double().mean())
        assert row["share fit worse"] == pytest.approx(worse)
        assert row["errors"] - row["control errors"] == row["only run wrong"] - row["only control wrong"]
        assert (row["errors"], row["control errors"]) == (r.errors, control.errors)
        assert row["p McNemar (Holm)"] >= row["p McNemar"] and row["p Wilcoxon (Holm)"] >= row["p Wilcoxon"]
        significant = row["p McNemar (Holm)"] <= rt.ALPHA
        assert (row["accuracy verdict"] != "none") == significant
        if significant:
            assert (row["accuracy verdict"] == "gain") == (row["only control wrong"] > row["only run wrong"])
        assert r.losses.mean().item() == pytest.approx(r.loss, rel=1e-3, abs=1e-7)
    for kind in ("accuracy", "loss"):
        counts = [findings[f"compared_runs__{kind}__{v}"] for v in ("gain", "cost", "none")]
        assert sum(counts) == len(tests)
    # No run is less accurate than its control by the test; the runs that gained are those whose control erred
    # often enough for McNemar to see it (seed 0's control makes too few errors).
    assert findings["compared_runs__accuracy__cost"] == 0
    assert all(r.accuracy > 0.99 for r in results)


@pytest.mark.slow
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


# --- what the chapter's conclusion cites --------------------------------------------------------
# These numbers are computed from the shipped (sha256-verified) checkpoint files, not from training
# on this machine, so they are pinned at the precision the chapter prints them.


@pytest.mark.slow
def test_the_conclusions_counts(findings):
    assert findings["variant runs"] == 12
    assert findings["variant runs without a blind pair"] == 11
    assert findings["seeds whose control keeps its blind pair"] == 3  # seed 9's control loses its pairs by 30
    assert (findings["variant runs at those seeds"], findings["variant runs at those seeds without a blind pair"]) == (
        9,
        8,
    )
    assert findings["final variant runs without a blind pair"] == 11
    assert findings["longer runs"] == 16
    assert findings["longer runs with a blind pair"] == 1  # seed 7's control at 30 epochs
    assert findings["longer runs whose blind pairs differ from their 15 epochs"] == 2  # seed 9's control at 30, 60
    not_converged = {v: findings[f"{v}__runs_not_converged"] for v in vr.VARIANTS}
    assert not_converged == {"original": 2, "dose_05": 3, "dose_25": 3, "single_mismatch": 4}
    finals = vr.final_runs(vr.load_manifest()["runs"])
    unfinished = {(r.variant, r.seed, r.epochs) for r in finals if not r.converged}
    assert unfinished == {
        ("original", 7, 30),
        ("original", 9, 60),
        ("dose_05", 0, 30),
        ("dose_25", 0, 30),
        ("dose_25", 9, 60),
        ("single_mismatch", 0, 30),
    }


@pytest.mark.slow
def test_the_borderline_run_is_stated_as_borderline(results):
    # dose 25% seed 1 sits at the blind threshold: the chapter says 0.495 +- 0.025,
    # not "no blind pair" as a robust fact.
    r = _run(results, "dose_25", 1)
    i = SECOND_HALF.index(11)
    assert round(float(r.misclassified[i]), 3) == 0.495 and round(float(r.standard_error[i]), 3) == 0.025
    assert abs(float(r.misclassified[i]) - bs.BLIND_THRESHOLD) < 2 * float(r.standard_error[i])


@pytest.mark.slow
def test_the_rule_passes_two_runs_it_should_not_have(results):
    # The chapter states the convergence rule's weakness: these two passed and were not trained longer.
    for variant, seed in (("dose_25", 1), ("dose_05", 7)):
        assert _run(results, variant, seed).converged
        assert not any((r.variant, r.seed) == (variant, seed) and r.epochs != TrainConfig.epochs for r in results)
    runs = {(r.variant, r.seed, r.epochs): r for r in vr.load_manifest()["runs"]}
    falling = runs[("dose_25", 1, TrainConfig.epochs)].val_losses[8:]
    assert all(b < a for a, b in zip(falling, falling[1:], strict=False))  # falls every epoch from the 9th to the 15th
    flat = runs[("dose_05", 7, TrainConfig.epochs)].val_losses[-7:]
    assert max(flat) - min(flat) < 0.005 and round(sum(flat) / len(flat), 3) in (0.036, 0.037)


@pytest.mark.slow
def test_every_run_puts_its_best_mirror_score_on_its_controls_head(results, findings):
    assert findings["runs whose mirror head is their control's"] == findings["runs"] == len(results)
    assert {r.mirror_head for r in results if r.seed != 9} == {(0, 1)}
    assert {r.mirror_head for r in results if r.seed == 9} == {(0, 0)}
    below = {r.name for r in results if r.mirror_score < MIRROR_THRESHOLD}
    assert below == {"dose_25 s1", "single_mismatch s1", "single_mismatch s1, 30 ep"}
    assert findings["runs whose mirror head is below chapter 11's threshold"] == 3
    # Seed 1's whole positional mirror pattern weakened in those three runs, not only at (10, 11).
    control = _run(results, vr.CONTROL, 1)
    assert round(float(control.mirror_attention.mean()), 3) == 0.242
    assert [round(float(r.mirror_attention.mean()), 3) for r in results if r.name in below] == [0.116, 0.113, 0.100]
    assert all(r.attention_at(control.blind) < 0.07 for r in results if r.seed == 1)


@pytest.mark.slow
def test_the_paired_verdicts_the_chapter_cites(results, findings):
    # Pinned from the shipped (sha256-verified) files, at the precision the chapter prints: against the control at
    # the same stage, 6 of 25 variant runs more accurate by McNemar with Holm's correction, none less. Three runs
    # fit nearly every input worse; single-mismatch seed 1 at 30 epochs leans to "cost" fitting under half worse.
    tests = rt.paired_tests(results)
    assert findings["compared runs"] == len(tests) == 25
    assert (findings["compared_runs__accuracy__gain"], findings["compared_runs__accuracy__cost"]) == (6, 0)
    assert set(tests.index[tests["share fit worse"] > 0.95]) == {"dose_05 s7", "dose_25 s1", "single_mismatch s1"}
    row = tests.loc["single_mismatch s1, 30 ep"]
    assert row["loss verdict"] == "cost" and row["share fit worse"] < 0.5
    assert findings["compared_runs__loss__none"] == 1
    # A run without errors against a 7-error stage of the control: significant alone, not after Holm.
    row = tests.loc["dose_25 s9, 30 ep"]
    assert (row["only run wrong"], row["only control wrong"]) == (0, 7) and row["p McNemar"] == rt.mcnemar_exact(0, 7)
    assert row["p McNemar"] < rt.ALPHA < row["p McNemar (Holm)"]
    row = tests.loc["single_mismatch s1"]
    assert (row["errors"], row["control errors"], row["accuracy verdict"]) == (24, 16, "none")
    gains = set(tests.index[tests["accuracy verdict"] == "gain"])
    assert not any(name.endswith("s0") or " s0," in name for name in gains)  # seed 0's control: only 6 errors
    assert _run(results, vr.CONTROL, 0).errors == 6
    row = tests.loc["dose_05 s7"]
    assert (row["errors"], row["control errors"], row["only run wrong"], row["only control wrong"]) == (22, 14, 12, 4)
    assert row["accuracy verdict"] == "none"
    means = {name: round(float(tests.loc[name, "mean loss"]), 4) for name in ("dose_05 s7", "dose_25 s1")}
    assert means == {"dose_05 s7": 0.0151, "dose_25 s1": 0.0112}
    assert round(float(tests.loc["single_mismatch s1, 30 ep", "mean loss"]), 4) == 0.0037


@pytest.mark.slow
def test_the_july_models_training_set_numbers(findings):
    assert findings["july__train__only_blind_inputs"] == findings["july__train__only_blind_pairs_broken"] == 180
    train_visible = (
        findings["july__train__blind_and_visible_pairs_broken"] + findings["july__train__visible_pairs_only"]
    )
    fresh_visible = (
        findings["july__fresh__blind_and_visible_pairs_broken"] + findings["july__fresh__visible_pairs_only"]
    )
    assert (train_visible, fresh_visible) == (2, 53)
    assert round(findings["july__train__loss_share_of_only_blind_inputs"], 3) == 0.806


def test_the_generator_table_the_conclusion_cites():
    table = rt.generator_table()
    assert round(float(table.loc["original", "only (4,17) broken"]), 4) == 0.0006
    assert round(float(table.loc["single_mismatch", "exactly one pair broken"]), 4) == 0.4992


# --- the paired tests (item 1 of issue 23): checked against hand values and exact enumeration ----------------


def test_retraining_reexports_the_paired_tests():
    assert rt.mcnemar_exact is stats.mcnemar_exact and rt.holm is stats.holm
