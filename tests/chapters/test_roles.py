"""Role detection finds H0.0 and H1.0 in the July model wherever they sit; the replication findings hold."""

from __future__ import annotations

import math

import pytest
import torch

from palindrome.chapters.roles import (
    DETECTOR_CHANCE,
    DETECTOR_THRESHOLD,
    JULY_NAME,
    MIRROR_CHANCE,
    MIRROR_THRESHOLD,
    TOKEN_CHANCE,
    analyse_model,
    analyse_models,
    blindness_figure,
    composition_threshold,
    detector_attention,
    end_attention_profile,
    key_findings,
    mirror_scores,
    mismatch_probe,
    rank_correlation,
    role_score_figure,
    roles_table,
    same_values_in_halves,
    shuffled_half_decoys,
    swap_heads,
    token_match_scores,
)
from palindrome.constants import SECOND_HALF
from palindrome.data import PalindromeDataset
from palindrome.model import create_model
from palindrome.replicas import REPLICA_SEEDS, load_replicas
from palindrome.tokens import is_palindrome

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def probe():
    return mismatch_probe(50)


@pytest.fixture(scope="module")
def results(model):
    models = {JULY_NAME: model}
    models.update({f"seed {s}": m for s, m in load_replicas(device="cpu").items()})
    return analyse_models(models, progress=False)


def test_july_model_roles_are_the_books_heads(model, probe):
    mirror = mirror_scores(model)
    detector = detector_attention(model, probe).mean(-1)
    assert mirror.shape == detector.shape == (2, 2)
    assert divmod(int(mirror.argmax()), 2) == (0, 0)
    assert divmod(int(detector.argmax()), 2) == (1, 0)
    assert mirror[0, 0] > MIRROR_THRESHOLD > mirror.flatten()[1:].max()
    assert detector[1, 0] > DETECTOR_THRESHOLD
    # Layer-0 heads cannot see a mismatch at END: they stay near uniform (2/22).
    assert detector[0].max() < 0.2


@pytest.mark.slow
@pytest.mark.parametrize("layer, mirror, detector", [(0, (0, 1), (1, 0)), (1, (0, 0), (1, 1))])
def test_detection_follows_the_heads_when_they_are_relabelled(model, probe, layer, mirror, detector):
    before = analyse_model(model, "original", probe=probe, threshold=0.3)
    after = analyse_model(swap_heads(model, layer), "swapped", probe=probe, threshold=0.3)
    assert after.mirror_head == mirror and after.detector_head == detector
    assert after.mirror_score == pytest.approx(before.mirror_score, abs=1e-5)
    assert after.detector_score == pytest.approx(before.detector_score, abs=1e-5)
    assert after.mirror_to_detector == pytest.approx(before.mirror_to_detector, abs=1e-5)
    assert after.blind == before.blind
    assert after.replicates and before.replicates


def test_an_untrained_model_has_no_roles(probe):
    fresh = analyse_model(create_model(seed=0, device="cpu"), "untrained", probe=probe, threshold=0.3)
    assert not fresh.roles_in_place and not fresh.replicates
    assert fresh.mirror_score < MIRROR_THRESHOLD
    assert fresh.detector_score < DETECTOR_THRESHOLD
    assert 0.4 < fresh.accuracy < 0.6


def test_detector_attention_checks_its_probe(model):
    with pytest.raises(ValueError, match="probe must be"):
        detector_attention(model, mismatch_probe(4)[:3])
    with pytest.raises(ValueError, match="layer"):
        swap_heads(model, 2)


def test_end_attention_profile_sums_to_one_and_gives_the_detector_attention(model, probe):
    profile = end_attention_profile(model, probe)
    assert profile.shape == (2, 2, len(SECOND_HALF), 22)
    assert torch.allclose(profile.sum(-1), torch.ones(2, 2, len(SECOND_HALF)), atol=1e-5)
    i = SECOND_HALF.index(17)
    expected = profile[:, :, i, 17] + profile[:, :, i, 4]
    assert torch.allclose(detector_attention(model, probe)[:, :, i], expected)


def test_token_match_scores_read_chapter_2s_token_circuit(model):
    scores = token_match_scores(model)
    assert scores.shape == (2,)
    assert scores[0] == pytest.approx(0.44, abs=0.01)  # chapter 2: diagonal mean 0.44
    assert scores[1] < 3 * TOKEN_CHANCE
    assert TOKEN_CHANCE == pytest.approx(1 / 33)


def test_same_values_in_halves():
    decoys = shuffled_half_decoys(200, seed=1)
    assert same_values_in_halves(decoys).all()
    data = PalindromeDataset(500)
    same = same_values_in_halves(data.toks)
    assert same[data.is_palindrome.bool()].all()
    assert not same[~data.is_palindrome.bool()].any()


def test_chance_levels():
    assert MIRROR_CHANCE == pytest.approx(sum(1 / (p + 1) for p in range(11, 21)) / 10)
    assert DETECTOR_CHANCE == pytest.approx(2 / 22)
    assert MIRROR_THRESHOLD == pytest.approx(3 * MIRROR_CHANCE)


def test_shuffled_half_decoys_keep_the_values_but_not_the_order():
    toks = shuffled_half_decoys(500, seed=1)
    assert toks.shape == (500, 22)
    assert not is_palindrome(toks).any()
    first, second = toks[:, 1:11].sort(-1).values, toks[:, 11:21].sort(-1).values
    assert torch.equal(first, second)
    assert torch.equal(toks, shuffled_half_decoys(500, seed=1))
    with pytest.raises(ValueError, match="n"):
        shuffled_half_decoys(0)


def test_rank_correlation():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 1, 0, -5]) == pytest.approx(-1.0)
    assert rank_correlation([1, 2, 3, 4], [1, 100, 2, 3]) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="equal length"):
        rank_correlation([1, 2, 3], [1, 2])


def test_composition_threshold_is_above_the_baseline_mean():
    assert 0.188 + 3 * 0.012 < composition_threshold() < 0.188 + 3 * 0.016


# --- the chapter's findings (chapter 11 prints the same key_findings) ------------------------------


@pytest.mark.slow
def test_nine_of_eleven_replicas_replicate_the_mechanism(results):
    findings = key_findings(results)
    assert findings["replicas"] == len(REPLICA_SEEDS) == 11
    assert findings["replicas replicating"] == 9
    assert findings["replicas with roles in place"] == 9
    assert findings["replicating replicas with V-composition above baseline"] == 8
    assert findings["replicas with two detector heads"] == 2
    # The detector score averages over ten pairs, so it misses heads that check one or two:
    # the July model's H1.1 (pair (1, 20) only, chapter 9) and seed 3's H1.1.
    assert findings["replicas with a partial detector"] == 1
    assert findings["min replica accuracy"] > 0.99
    by_name = {r.name: r for r in results}
    # The two that do not: seed 8 only on the lambda score, seed 42 on both roles.
    assert by_name["seed 8"].detector_head[0] == 1 and by_name["seed 8"].detector_score > DETECTOR_THRESHOLD
    assert by_name["seed 8"].mirror_score < MIRROR_THRESHOLD
    assert by_name["seed 42"].detector_heads == ()
    assert by_name["seed 42"].mirror_score < MIRROR_THRESHOLD
    assert by_name["seed 3"].partial_detectors() == {(1, 1): (19, 20)}
    assert by_name["seed 42"].partial_detectors() == {}
    # Head indices do not replicate: each role lands on both heads of its layer across seeds.
    replicating = [r for r in results if r.replicates]
    assert {r.mirror_head for r in replicating} == {(0, 0), (0, 1)}
    assert {r.detector_head for r in replicating} == {(1, 0), (1, 1)}


@pytest.mark.slow
def test_only_the_model_without_the_circuit_is_fooled_by_shuffled_halves(results):
    findings = key_findings(results)
    assert findings["replicas fooled by shuffles (> 0.05)"] == 1
    assert findings["max fooled by shuffles, replicating replicas"] == 0.0
    assert [r.name for r in results if r.fooled_by_shuffles > 0.05] == ["seed 42"]
    assert 0.3 < results[-1].fooled_by_shuffles < 0.6


@pytest.mark.slow
def test_july_row_agrees_with_earlier_chapters(results):
    july = results[0]
    assert july.name == JULY_NAME
    assert july.blind == (17, 19)  # chapter 8: pairs (4,17) and (2,19)
    assert july.misclassified[SECOND_HALF.index(17)].item() == pytest.approx(1.0)
    assert july.accuracy > 0.995
    assert july.partial_detectors() == {(1, 1): (20,)}


@pytest.mark.slow
def test_blind_pairs_are_not_a_law_of_the_recipe(results):
    findings = key_findings(results)
    assert findings["replicas with a blind pair"] == 5
    assert findings["replicas with the July blind pairs"] == 0
    # Where the detector looks less, the model misses more.
    assert findings["attention-blindness rank correlation"] < -0.5


@pytest.mark.slow
def test_table_and_figures(results):
    table = roles_table(results)
    assert list(table.index) == [JULY_NAME] + [f"seed {s}" for s in REPLICA_SEEDS]
    assert table.loc[JULY_NAME, "mirror head"] == "0.0"
    assert table.loc[JULY_NAME, "detector head"] == "1.0"
    assert table.loc[JULY_NAME, "blind pairs"] == "(4,17), (2,19)"
    # K-comp is defined only for a layer-0 mirror and a layer-1 detector: not for seed 42.
    assert table["K-comp"].isna().tolist() == [name == "seed 42" for name in table.index]
    for fig in (role_score_figure(results), blindness_figure(results)):
        assert len(fig.data) == 2
        assert fig.data[0].z.shape[0] == len(results)
    with pytest.raises(ValueError, match="reference model"):
        key_findings(results[1:])
    with pytest.raises(ValueError, match="besides the reference"):
        key_findings(results[:1])
    assert math.isfinite(key_findings(results)["attention-blindness rank correlation"])
