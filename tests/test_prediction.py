"""Chapter 12: the levels predict the model as the chapter says; the reconstruction is exact when refined; bad input is
refused."""

from __future__ import annotations

import re

import pytest
import torch
from transformer_lens.utilities import get_act_name

from palindrome import prediction as pr
from palindrome.blindspots import (
    blind_positions,
    pair_cells,
    pair_mismatch_sweep,
    pair_mismatch_tokens,
    single_mismatch_sweep,
)
from palindrome.constants import SECOND_HALF
from palindrome.hooks import FINAL_SCALE, cached_run, hold_scale, ln_scale_name
from palindrome.metrics import end_logits
from palindrome.model import create_model
from palindrome.probes import broken_and_bases

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def findings(model):
    return pr.key_findings(model)


def test_fully_refined_circuit_is_the_model(model):
    toks = pr.reference_data().toks[:500]
    stats = pr.reference_stats(model)
    exact = pr.circuit_logit_diff(model, toks, stats, pr.REFINEMENTS)
    assert (exact - pr.model_logit_diff(model, toks)).abs().max() < 1e-3


@pytest.mark.slow
def test_refined_circuit_meets_the_aim(findings):
    assert findings["refined_ln0"] == 1.0 and sum(findings[f"refined_{r}"] for r in pr.REFINEMENTS) == 1
    assert findings["dev_disagreement_ln0"] < 0.01 < 0.2 < findings["dev_disagreement_none"]
    assert findings["agreement_refined_set_a"] >= 0.99
    assert findings["agreement_refined_set_b"] >= 0.95
    assert findings["miss_refined_pos_17"] > 0.9 and findings["miss_refined_pos_19"] > 0.9
    ratio = findings["miss_refined_pos_20"] / findings["miss_model_pos_20"]
    assert 0.5 <= ratio <= 2
    assert findings["agreement_circuit_set_a"] < 0.9  # chapter 2's constant scale fails
    assert findings["agreement_ideal_set_d"] == 1.0 and findings["agreement_ideal_set_e"] == 0.0


@pytest.mark.slow
def test_printed_numbers(findings):
    rounded = {
        k: round(findings[k], 4)
        for k in (
            "agreement_refined_set_a",
            "agreement_refined_set_b",
            "agreement_refined_set_c",
            "agreement_refined_set_d",
            "agreement_circuit_set_a",
            "agreement_circuit_set_d",
            "agreement_words_set_a",
            "agreement_words_set_b",
        )
    }
    assert rounded == {
        "agreement_refined_set_a": 0.9985,
        "agreement_refined_set_b": 0.9807,
        "agreement_refined_set_c": 0.991,
        "agreement_refined_set_d": 0.9992,
        "agreement_circuit_set_a": 0.6658,
        "agreement_circuit_set_d": 0.335,
        "agreement_words_set_a": 0.9994,
        "agreement_words_set_b": 0.9764,
    }
    assert round(findings["miss_refined_pos_20"], 3) == 0.110 and round(findings["miss_model_pos_20"], 3) == 0.083
    assert round(findings["correlation_refined_set_a"], 3) == 0.931


@pytest.mark.slow
def test_mismatch_direction_claim_3(findings):
    well = pr.WELL_CHECKED
    assert min(findings[f"shift_cos_to_11_pos_{p}"] for p in well) > 0.9
    assert min(findings[f"difference_vector_cos_to_11_pos_{p}"] for p in well) > 0.9
    for p in (17, 19, 20):
        assert findings[f"shift_cos_to_11_pos_{p}"] < 0 and findings[f"difference_vector_cos_to_11_pos_{p}"] < 0
    assert max(findings["shift_length_pos_17"], findings["shift_length_pos_19"]) < 0.2 * findings["shift_length_pos_20"]
    assert findings["shift_length_pos_20"] > 0.8 * findings["shift_length_pos_18"]


@pytest.mark.slow
def test_steering(findings):
    for p in pr.WELL_CHECKED:
        assert findings[f"steer_add_1_pos_{p}"] >= 0.97
        assert findings[f"steer_remove_1_pos_{p}"] >= 0.7
    for p in (17, 19):
        assert findings[f"steer_add_1_pos_{p}"] == 0.0 and findings[f"steer_add_shared_1_pos_{p}"] > 0.9
    assert round(findings["steer_add_1_pos_20"], 3) == 0.470 and round(findings["steer_add_2_pos_20"], 3) == 0.940
    for p in (17, 19):  # adding the own shift does nothing; removal cannot raise misses already at 1
        assert findings[f"steer_mismatches_missed_no_edit_pos_{p}"] == 1.0
    assert (
        round(findings["steer_add_shared_1_pos_20"], 3) == 0.905
        and round(findings["steer_remove_1_pos_20"], 3) == 0.660
    )
    assert round(findings["shared_length"] / findings["shift_length_pos_19"]) == 11


@pytest.mark.slow
def test_control_and_strengths(findings):
    # A random direction as long as the shared one flips few palindromes except at 11; the shared one flips nearly all.
    random = {p: findings[f"steer_add_random_1_pos_{p}"] for p in SECOND_HALF}
    assert max(random, key=random.get) == 11 and round(random[11], 3) == 0.625
    assert max(v for p, v in random.items() if p != 11) <= 0.01
    stds = [findings[f"steer_clean_projection_std_pos_{p}"] for p in SECOND_HALF]
    assert (round(min(stds), 2), round(max(stds), 2)) == (0.19, 0.46)
    assert round(findings["shared_length"], 2) == 2.55
    assert findings["shared_length"] > 5 * max(stds)


def test_direction_and_steering_inputs_are_disjoint():
    direction, steer = pr.position_seeds(pr.DIRECTION_SEED), pr.position_seeds(pr.STEER_SEED)
    assert not set(direction.values()) & set(steer.values())
    built = torch.cat([broken_and_bases(pr.DIRECTION_BASES, direction[p], p)[1] for p in SECOND_HALF])
    edited = torch.cat([broken_and_bases(pr.STEER_BASES, steer[p], p)[1] for p in SECOND_HALF])
    assert pr.overlap(edited, built) == 0


@pytest.mark.slow
def test_side_numbers(findings):
    assert all(findings[f"dev_overlap_set_{pr.set_key(n)}"] == 0 for n in pr.INPUT_SETS)
    assert (round(findings["ln0_table_min"], 3), round(findings["ln0_table_max"], 3)) == (0.143, 0.294)
    assert round(findings["ln0_table_mean"], 3) == 0.211
    assert round(findings["model_catches_decoys"], 3) == 0.923
    assert (
        round(findings["shift_cos_to_block_min_pos_20"], 2),
        round(findings["shift_cos_to_block_max_pos_20"], 2),
    ) == (-0.85, -0.67)
    for p in (17, 19):  # no consistent shift: the mean shift is short although each input's change is not
        assert findings[f"shift_length_pos_{p}"] < 0.2 * findings[f"change_size_pos_{p}"]


@pytest.mark.slow
def test_summary_numbers(findings):
    # Every number the summary table prints is one asserted here, at the printed precision.
    f, shown = findings, pr.WELL_CHECKED + (20,)
    lengths = [f[f"shift_length_pos_{p}"] for p in shown]
    asserted = {
        f"{min(lengths):.2f}": "1.51",
        f"{f['shift_length_pos_17']:.2f}": "0.26",
        f"{f['shift_length_pos_19']:.2f}": "0.23",
        f"{f['change_size_pos_17']:.2f}": "2.56",
        f"{f['change_size_pos_19']:.2f}": "2.25",
        f"{f['shift_cos_block_min']:.2f}": "0.93",
        f"{f['shift_cos_to_shared_pos_20']:.2f}": "-0.79",
        f"{f['shared_length']:.2f}": "2.55",
        f"{min(f[f'steer_add_shared_1_pos_{p}'] for p in SECOND_HALF[:-1]):.3f}": "0.980",
        f"{f['steer_add_random_1_pos_11']:.3f}": "0.625",
        f"{f['steer_add_1_pos_20']:.3f}": "0.470",
        f"{f['miss_refined_pos_20']:.3f}": "0.110",
        f"{f['miss_model_pos_20']:.3f}": "0.083",
        f"{f['agreement_refined_set_a']:.4f}": "0.9985",
        f"{f['agreement_refined_set_b']:.4f}": "0.9807",
    }
    assert all(k == v for k, v in asserted.items()), asserted
    assert max(f[f"shift_length_pos_{p}"] for p in (17, 19)) < 0.2 * min(lengths)
    assert f["shift_cos_block_min"] >= 0.9 and f["shift_cos_to_shared_pos_20"] < -0.5
    text = " ".join(pr.summary_table(f)["chapter 12 evidence"])
    printed = set(re.findall(r"-?\d+\.\d+", text))
    assert printed == set(asserted.values()), printed ^ set(asserted.values())


@pytest.mark.slow
def test_set_b_is_chapter_8s_whole_sweep(model, findings):
    sets = pr.input_sets()
    assert sets[pr.INPUT_SETS[1]].shape == (len(SECOND_HALF), 32 * 930, 22)
    sweep = single_mismatch_sweep(model, progress=False)  # chapter 8's own function, all its bases
    for i, p in enumerate(SECOND_HALF):
        assert findings[f"miss_model_pos_{p}"] == pytest.approx(sweep.misclassified_frac[i].item(), abs=1e-4)


def test_fast_circuit_matches_the_plain_reconstruction(model):
    # The circuit level on the fast path against a direct reading of its definition (TransformerLens
    # hooks holding the three scales and the END query at their reference values).
    toks = pr.reference_data().toks[:300]
    stats = pr.reference_stats(model)
    hooks = [
        (ln_scale_name(0), hold_scale(stats.ln0_scale)),
        (ln_scale_name(1), hold_scale(stats.ln1_scale[None, :, None, None].expand(len(toks), -1, 2, 1).contiguous())),
        (FINAL_SCALE, hold_scale(torch.full((len(toks), 22, 1), stats.final_scale))),
        (get_act_name("q", 1), lambda q, hook: torch.cat([q[:, :-1], stats.end_query.expand(len(toks), 1, -1, -1)], 1)),
    ]
    with model.hooks(fwd_hooks=hooks):
        logits = end_logits(model, toks)
    plain = logits[:, 1] - logits[:, 0]
    assert (pr.circuit_logit_diff(model, toks, stats) - plain).abs().max() < 1e-3


@pytest.mark.slow
def test_steering_on_the_fast_path_is_the_hooked_edit(model, findings):
    _, bases = broken_and_bases(50, 3, 14)
    vector = torch.randn(28, generator=torch.Generator().manual_seed(0))
    logits, _ = cached_run(model, bases, (), [(pr.EDIT_HOOK, pr.add_at(14, 2.0 * vector))])
    hooked = logits[:, -1].softmax(-1)[:, 1].cpu()
    assert (pr.steered_p_palindrome(model, bases, 14, vector, 2.0) - hooked).abs().max() < 1e-4


def test_words_level_is_told_chapter_8s_blind_pairs(model):
    assert tuple(blind_positions(single_mismatch_sweep(model, n_bases=2, progress=False))) == pr.BLIND_PAIRS


def test_pair_tokens_are_the_pair_sweeps_inputs(model):
    toks = pair_mismatch_tokens(3, 1)
    sweep = pair_mismatch_sweep(model, n_bases=3, seed=1, progress=False)
    probs = pr.fast_end_logits(model, toks.flatten(0, 1)).softmax(-1)[:, 1].view(toks.shape[:2])
    i, j = SECOND_HALF.index(11), SECOND_HALF.index(17)
    cell = pair_cells().index((i, j))
    assert torch.allclose(probs[cell], sweep.p_palindrome[i, j], atol=1e-6)
    assert pair_mismatch_tokens(3, 1, distinct=True).shape[0] == 45


def test_evaluation_sets_do_not_overlap_the_reference():
    reference = pr.reference_data().toks
    for name, toks in pr.input_sets().items():
        assert pr.overlap(toks.flatten(0, -2), reference) == 0, name


def test_bad_arguments(model):
    stats = pr.reference_stats(model, pr.reference_data().toks[:50])
    expl = pr.Explanation(model, stats, ("ln0",))
    toks = pr.reference_data().toks[:4]
    with pytest.raises(ValueError, match="level must be one of"):
        expl.decisions(toks, "sentences")
    with pytest.raises(ValueError, match="only the levels"):
        expl.logit_diff(toks, "words")
    with pytest.raises(ValueError, match="unknown refinement"):
        pr.circuit_logit_diff(model, toks, stats, ["ln2"])
    with pytest.raises(ValueError, match="second-half"):
        pr.steered_p_palindrome(model, toks, 5, torch.zeros(28), 1.0)
    with pytest.raises(ValueError, match="finite"):
        pr.steered_p_palindrome(model, toks, 12, torch.zeros(28), float("nan"))
    with pytest.raises(ValueError, match="vector"):
        pr.steered_p_palindrome(model, toks, 12, torch.zeros(5), 1.0)
    with pytest.raises(ValueError, match="length must be a positive"):
        pr.random_directions(0.0, 28)
    with pytest.raises(ValueError, match="n_ctx"):
        pr.check_model(create_model(half_length=5))
    with pytest.raises(ValueError, match="n_layers"):
        pr.check_model(create_model(n_layers=1))
