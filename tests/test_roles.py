"""Role detection finds H0.0 and H1.0 in the July model wherever they sit; the replication findings hold."""

from __future__ import annotations

import math

import pytest
import torch

from palindrome.constants import SECOND_HALF
from palindrome.model import create_model
from palindrome.replicas import REPLICA_SEEDS, load_replicas
from palindrome.roles import (
    DETECTOR_THRESHOLD,
    JULY_NAME,
    MIRROR_THRESHOLD,
    analyse_model,
    analyse_models,
    blindness_figure,
    composition_threshold,
    detector_attention,
    key_findings,
    mirror_scores,
    mismatch_probe,
    rank_correlation,
    role_score_figure,
    roles_table,
    swap_heads,
)

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


def test_rank_correlation():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 1, 0, -5]) == pytest.approx(-1.0)
    assert rank_correlation([1, 2, 3, 4], [1, 100, 2, 3]) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="equal length"):
        rank_correlation([1, 2, 3], [1, 2])


def test_composition_threshold_is_above_the_baseline_mean():
    assert 0.188 + 3 * 0.012 < composition_threshold() < 0.188 + 3 * 0.016


# --- the chapter's findings (chapter 11 prints the same key_findings) ------------------------------


def test_every_replica_replicates_the_mechanism(results):
    findings = key_findings(results)
    assert findings["replicas"] == len(REPLICA_SEEDS)
    assert findings["replicas replicating"] == len(REPLICA_SEEDS)
    assert findings["replicas with roles in place"] == len(REPLICA_SEEDS)
    assert findings["min replica lambda score"] > MIRROR_THRESHOLD
    assert findings["min replica detector score"] > DETECTOR_THRESHOLD
    assert findings["min replica accuracy"] > 0.99


def test_july_row_agrees_with_earlier_chapters(results):
    july = results[0]
    assert july.name == JULY_NAME
    assert july.blind == (17, 19)  # chapter 8: pairs (4,17) and (2,19)
    assert july.misclassified[SECOND_HALF.index(17)].item() == pytest.approx(1.0)
    assert july.accuracy > 0.995


def test_blind_pairs_are_not_a_law_of_the_recipe(results):
    findings = key_findings(results)
    assert findings["replicas sharing July's blind pairs"] == 0
    # Where the detector looks less, the model misses more.
    assert findings["attention-blindness rank correlation"] < -0.5


def test_table_and_figures(results):
    table = roles_table(results)
    assert list(table.index) == [JULY_NAME] + [f"seed {s}" for s in REPLICA_SEEDS]
    assert table.loc[JULY_NAME, "mirror head"] == "0.0"
    assert table.loc[JULY_NAME, "detector head"] == "1.0"
    assert table.loc[JULY_NAME, "blind pairs"] == "(4,17), (2,19)"
    assert not table["K-comp"].isna().any()
    for fig in (role_score_figure(results), blindness_figure(results)):
        assert len(fig.data) == 2
        assert fig.data[0].z.shape[0] == len(results)
    with pytest.raises(ValueError, match="reference model"):
        key_findings(results[1:])
    with pytest.raises(ValueError, match="besides the reference"):
        key_findings(results[:1])
    assert math.isfinite(key_findings(results)["attention-blindness rank correlation"])
