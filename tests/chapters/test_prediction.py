"""Chapter 12's key numbers: the levels predict the model as the chapter says, the edits act as it says, and the
summary table prints only asserted numbers."""

from __future__ import annotations

import re

import pytest

from palindrome.chapters import explanation as ex12
from palindrome.chapters import level_calls as lc
from palindrome.chapters import prediction as pr
from palindrome.chapters import steering as steer
from palindrome.chapters.blindspots import single_mismatch_sweep
from palindrome.constants import SECOND_HALF
from palindrome.findings import slug

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def findings(model):
    return pr.key_findings(model)


@pytest.mark.slow
def test_refined_circuit_meets_the_aim(findings):
    assert findings["refined_layer0_scale"] == 1.0 and sum(findings[f"refined_{r}"] for r in ex12.REFINEMENTS) == 1
    assert findings["dev_disagreement_layer0_scale"] < 0.01 < 0.2 < findings["dev_disagreement_none"]
    assert findings["agreement_refined_set_a"] >= 0.99
    assert findings["agreement_refined_set_b"] >= 0.95
    assert findings["miss_refined_pos_17"] > 0.9 and findings["miss_refined_pos_19"] > 0.9
    ratio = findings["miss_refined_pos_20"] / findings["miss_model_pos_20"]
    assert 0.5 <= ratio <= 2
    assert findings["agreement_circuit_set_a"] < 0.9  # chapter 2's constant scale fails
    assert findings["agreement_ideal_set_d"] == 1.0 and findings["agreement_ideal_set_e"] == 0.0


@pytest.mark.slow
def test_the_aims_hold_on_the_fresh_set(findings):
    # Set (f): no level was built or chosen on it; the aims hold there too.
    others = ("reference batch", "development inputs") + lc.INPUT_SETS[:5]
    assert all(findings[f"fresh_overlap_{slug(n)}"] == 0 for n in others)
    assert findings["agreement_refined_set_f"] >= 0.95
    assert findings["miss_fresh_refined_pos_17"] > 0.9 and findings["miss_fresh_refined_pos_19"] > 0.9
    assert 0.5 <= findings["miss_fresh_refined_pos_20"] / findings["miss_fresh_model_pos_20"] <= 2
    assert round(findings["agreement_refined_set_f"], 4) == 0.9808
    assert round(findings["agreement_words_set_f"], 4) == 0.9785
    # appendix C.2: per pair and input by input
    misses = {(r, p): round(findings[f"miss_fresh_{r}_pos_{p}"], 3) for r in ("model", "refined") for p in (17, 19, 20)}
    assert misses == {
        ("model", 17): 1.0,
        ("model", 19): 1.0,
        ("model", 20): 0.074,
        ("refined", 17): 0.998,
        ("refined", 19): 0.998,
        ("refined", 20): 0.105,
    }
    overlap = {
        (label, c): findings[f"overlap_f_{label}_refined_{c}"]
        for label in ("20", "well_checked")
        for c in ("model_misses", "reproduced", "added")
    }
    assert overlap == {
        ("20", "model_misses"): 148,
        ("20", "reproduced"): 102,
        ("20", "added"): 108,
        ("well_checked", "model_misses"): 283,
        ("well_checked", "reproduced"): 225,
        ("well_checked", "added"): 165,
    }
    assert all(
        findings[f"overlap_f_{label}_words_{c}"] == 0
        for label in ("20", "well_checked")
        for c in ("reproduced", "added")
    )


@pytest.mark.slow
def test_position_scale_lies_between_the_constant_and_the_exact_scale(findings):
    # One layer-0 scale per position: most of the constant scale's damage undone, but not the aims.
    for k in "abcdf":
        assert findings[f"agreement_circuit_set_{k}"] < findings[f"agreement_position_scale_set_{k}"]
        assert findings[f"agreement_position_scale_set_{k}"] < findings[f"agreement_refined_set_{k}"]
    assert findings["agreement_position_scale_set_a"] < 0.99 and findings["agreement_position_scale_set_b"] < 0.95
    agreement = {k: round(findings[f"agreement_position_scale_set_{k}"], 4) for k in "abcdef"}
    assert agreement == {"a": 0.9585, "b": 0.9279, "c": 0.9733, "d": 0.9194, "e": 0.0, "f": 0.9299}
    misses = {p: round(findings[f"miss_position_scale_pos_{p}"], 3) for p in (17, 19, 20)}
    assert misses == {17: 0.887, 19: 0.907, 20: 0.089}
    assert round(findings["dev_disagreement_layer0_position_scale"], 4) == 0.056
    assert (round(findings["layer0_position_scale_min"], 3), round(findings["layer0_position_scale_max"], 3)) == (
        0.185,
        0.257,
    )


@pytest.mark.slow
def test_own_errors_tell_the_levels_apart(findings):
    f = findings
    for k in "abcdef":  # the ideal check reproduces none of the model's errors; no level more than all of them
        assert f[f"own_errors_ideal_set_{k}"] == 0
        assert all(f[f"own_errors_{slug(lv)}_set_{k}"] <= f[f"own_errors_model_errors_set_{k}"] for lv in ex12.LEVELS)
    # The words level reproduces exactly the model's misses at the two blind pairs of (b) (29,760 inputs each).
    per_pair = 32 * 930
    blind = sum(round(f[f"miss_model_pos_{p}"] * per_pair) for p in ex12.BLIND_PAIRS)
    assert f["own_errors_words_set_b"] == blind
    errors = {(lv, k): f[f"own_errors_{slug(lv)}_set_{k}"] for lv in ("model errors", "words", "refined") for k in "bf"}
    assert errors == {
        ("model errors", "b"): 66554,
        ("words", "b"): 59520,
        ("refined", "b"): 64765,
        ("model errors", "f"): 4431,
        ("words", "f"): 4000,
        ("refined", "f"): 4320,
    }
    assert (f["own_errors_model_errors_set_a"], f["own_errors_refined_set_a"], f["own_errors_words_set_a"]) == (
        52,
        46,
        40,
    )
    corr = {k: round(f[f"correlation_refined_set_{k}"], 3) for k in "abcdf"}
    assert corr == {"a": 0.931, "b": 0.822, "c": 0.56, "d": 0.614, "f": 0.821}


@pytest.mark.slow
def test_words_and_refined_on_the_same_inputs(findings):
    # Of the model's misses at 20 and at the seven well-checked pairs of (b): reproduced and added, per level.
    got = {
        (label, lv, c): findings[f"overlap_b_{label}_{lv}_{c}"]
        for label in ("20", "well_checked")
        for lv in ("words", "refined")
        for c in ("model_misses", "reproduced", "added")
    }
    assert got == {
        ("20", "words", "model_misses"): 2458,
        ("20", "words", "reproduced"): 0,
        ("20", "words", "added"): 0,
        ("20", "refined", "model_misses"): 2458,
        ("20", "refined", "reproduced"): 1725,
        ("20", "refined", "added"): 1561,
        ("well_checked", "words", "model_misses"): 4576,
        ("well_checked", "words", "reproduced"): 0,
        ("well_checked", "words", "added"): 0,
        ("well_checked", "refined", "model_misses"): 4576,
        ("well_checked", "refined", "reproduced"): 3591,
        ("well_checked", "refined", "added"): 2401,
    }
    # the model's misses at 20 are its miss rate there times the 29,760 inputs of the pair
    assert findings["overlap_b_20_refined_model_misses"] == round(findings["miss_model_pos_20"] * 32 * 930)


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
    well = ex12.WELL_CHECKED
    assert min(findings[f"shift_cos_to_11_pos_{p}"] for p in well) > 0.9
    assert min(findings[f"difference_vector_cos_to_11_pos_{p}"] for p in well) > 0.9
    for p in (17, 19, 20):
        assert findings[f"shift_cos_to_11_pos_{p}"] < 0 and findings[f"difference_vector_cos_to_11_pos_{p}"] < 0
    assert max(findings["shift_length_pos_17"], findings["shift_length_pos_19"]) < 0.2 * findings["shift_length_pos_20"]
    assert findings["shift_length_pos_20"] > 0.8 * findings["shift_length_pos_18"]


@pytest.mark.slow
def test_steering(findings):
    for p in ex12.WELL_CHECKED:
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
    # 100 random directions as long as the shared one: median flip rate 0 everywhere; the shared one beats every draw
    # except one at 18.
    f = findings
    for p in SECOND_HALF:
        assert f[f"random_random_median_pos_{p}"] == 0.0
        assert f[f"random_shared_pos_{p}"] == f[f"steer_add_shared_1_pos_{p}"]
        assert f[f"random_random_max_pos_{p}"] >= f[f"random_random_95th_percentile_pos_{p}"]
    beaten = {p: f[f"random_draws_flipping_at_least_as_many_pos_{p}"] for p in SECOND_HALF}
    assert beaten == {p: (1 if p == 18 else 0) for p in SECOND_HALF}
    largest = {p: round(f[f"random_random_max_pos_{p}"], 3) for p in (17, 19, 20)}
    assert largest == {17: 0.685, 19: 0.22, 20: 0.825}
    stds = [findings[f"steer_clean_projection_std_pos_{p}"] for p in SECOND_HALF]
    assert (round(min(stds), 2), round(max(stds), 2)) == (0.19, 0.46)
    assert round(findings["shared_length"], 2) == 2.55
    assert findings["shared_length"] > 5 * max(stds)


@pytest.mark.slow
def test_each_layer_1_head_is_credited_by_an_edit_with_it_held_clean(findings):
    f = findings
    for p in SECOND_HALF:  # H1.0 reads the shared direction wherever it is added (17, 19, 20 too); H1.1 does not
        assert f[f"head_add_shared_1_h1_0_output_clean_pos_{p}"] == 0.0
        assert f[f"head_add_shared_1_h1_1_output_clean_pos_{p}"] >= f[f"head_add_shared_1_none_pos_{p}"]
    # 20's own shift is read by H1.1 alone
    assert f["head_add_1_h1_1_output_clean_pos_20"] == 0.0
    assert f["head_add_1_h1_0_output_clean_pos_20"] == f["head_add_1_none_pos_20"] == f["steer_add_1_pos_20"]
    assert round(f["head_add_1_h1_0_output_clean_pos_20"], 3) == 0.47
    # appendix C.3: the pattern and the values of H1.0 each carry the shared direction's effect
    attention = {p: f[f"head_add_shared_1_h1_0_attention_clean_pos_{p}"] for p in SECOND_HALF}
    values = {p: f[f"head_add_shared_1_h1_0_values_clean_pos_{p}"] for p in SECOND_HALF}
    assert max(attention, key=attention.get) == 12 and round(attention[12], 3) == 0.205
    assert max(values, key=values.get) == 18 and round(values[18], 3) == 0.545
    at_20 = [round(f[f"head_add_shared_1_h1_1_{part}_clean_pos_20"], 3) for part in steer.HELD_PARTS]
    own_20 = [round(f[f"head_add_1_h1_0_{part}_clean_pos_20"], 3) for part in steer.HELD_PARTS]
    assert (min(at_20), max(at_20), min(own_20), max(own_20)) == (0.92, 0.95, 0.42, 0.47)
    assert all(f[f"head_add_1_h1_1_{part}_clean_pos_20"] == 0.0 for part in steer.HELD_PARTS)


@pytest.mark.slow
def test_where_the_levels_go_wrong(findings):
    # Appendix C.1's counts on (b) follow from the own errors and miss rates: a level disagrees with the model on the
    # model's misses it does not reproduce, plus the misses it adds.
    per_pair, f = 32 * 930, findings
    wrong = {}
    for level in ("words", "circuit", "position scale", "refined"):
        key = slug(level)
        missed_by_model = f["own_errors_model_errors_set_b"] - f[f"own_errors_{key}_set_b"]
        level_misses = sum(round(f[f"miss_{key}_pos_{p}"] * per_pair) for p in SECOND_HALF)
        added = level_misses - f[f"own_errors_{key}_set_b"]
        wrong[level] = (missed_by_model + added, missed_by_model)
    assert wrong == {
        "words": (7034, 7034),
        "circuit": (53206, 50528),
        "position scale": (21470, 9150),
        "refined": (5751, 1789),
    }


@pytest.mark.slow
def test_side_numbers(findings):
    assert all(findings[f"dev_overlap_set_{lc.set_key(n)}"] == 0 for n in lc.INPUT_SETS)
    assert (round(findings["layer0_scale_table_min"], 3), round(findings["layer0_scale_table_max"], 3)) == (
        0.143,
        0.294,
    )
    assert round(findings["layer0_scale_table_mean"], 3) == 0.211
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
    f, shown = findings, ex12.WELL_CHECKED + (20,)
    lengths = [f[f"shift_length_pos_{p}"] for p in shown]
    asserted = {
        f"{min(lengths):.2f}": "1.51",
        f"{f['shift_length_pos_17']:.2f}": "0.26",
        f"{f['shift_length_pos_19']:.2f}": "0.23",
        f"{f['change_size_pos_17']:.2f}": "2.56",
        f"{f['change_size_pos_19']:.2f}": "2.25",
        f"{f['projection_mean_cosine_pos_17']:.2f}": "-0.05",
        f"{f['projection_mean_cosine_pos_19']:.2f}": "-0.05",
        f"{max(f[f'head_add_shared_1_h1_0_attention_clean_pos_{p}'] for p in SECOND_HALF):.3f}": "0.205",
        f"{max(f[f'head_add_shared_1_h1_0_values_clean_pos_{p}'] for p in SECOND_HALF):.3f}": "0.545",
        f"{f['shift_cos_block_min']:.2f}": "0.93",
        f"{f['shift_cos_to_shared_pos_20']:.2f}": "-0.79",
        f"{f['shared_length']:.2f}": "2.55",
        f"{min(f[f'steer_add_shared_1_pos_{p}'] for p in SECOND_HALF):.3f}": "0.905",
        f"{max(f[f'head_add_shared_1_h1_0_output_clean_pos_{p}'] for p in SECOND_HALF):.3f}": "0.000",
        f"{max(f[f'random_random_median_pos_{p}'] for p in SECOND_HALF):.3f}": "0.000",
        f"{f['steer_add_1_pos_20']:.3f}": "0.470",
        f"{f['head_add_1_h1_1_output_clean_pos_20']:.3f}": "0.000",
        f"{f['miss_refined_pos_20']:.3f}": "0.110",
        f"{f['miss_model_pos_20']:.3f}": "0.083",
        f"{f['agreement_refined_set_a']:.4f}": "0.9985",
        f"{f['agreement_refined_set_b']:.4f}": "0.9807",
        f"{f['agreement_refined_set_f']:.4f}": "0.9808",
    }
    assert all(k == v for k, v in asserted.items()), asserted
    assert max(f[f"shift_length_pos_{p}"] for p in (17, 19)) < 0.2 * min(lengths)
    assert f["shift_cos_block_min"] >= 0.9 and f["shift_cos_to_shared_pos_20"] < -0.5
    text = " ".join(pr.summary_table(f)["chapter 12 evidence"])
    printed = set(re.findall(r"(?<![\w.])-?\d+\.\d+", text))  # decimals, not head names such as H1.0
    as_many = max(f[f"random_draws_flipping_at_least_as_many_pos_{p}"] for p in SECOND_HALF)
    assert f"at most {as_many:.0f} flips as many" in text and as_many == 1 and steer.RANDOM_DRAWS == 100
    assert all(f[f"subspace_draws_falling_as_far_pos_{p}"] == 0 for p in SECOND_HALF)  # "none lowers ... as far"
    assert printed == set(asserted.values()), printed ^ set(asserted.values())


@pytest.mark.slow
def test_set_b_is_chapter_8s_whole_sweep(model, findings):
    sets = lc.input_sets()
    assert sets[lc.INPUT_SETS[1]].shape == (len(SECOND_HALF), 32 * 930, 22)
    sweep = single_mismatch_sweep(model, progress=False)  # chapter 8's own function, all its bases
    for i, p in enumerate(SECOND_HALF):
        assert findings[f"miss_model_pos_{p}"] == pytest.approx(sweep.misclassified_frac[i].item(), abs=1e-4)


@pytest.mark.slow
def test_errors_added_and_paired_tests(findings):
    f = findings
    for k in "abcdef":  # disagreements = the model's errors a level does not reproduce + the errors it adds
        n = {"a": 20000, "b": 297600, "c": 22500, "d": 5000, "e": 4, "f": 20000}[k]
        for lv in ex12.LEVELS:
            wrong = round((1 - f[f"agreement_{slug(lv)}_set_{k}"]) * n)
            assert (
                wrong
                == f[f"own_errors_model_errors_set_{k}"]
                - f[f"own_errors_{slug(lv)}_set_{k}"]
                + f[f"added_errors_{slug(lv)}_set_{k}"]
            )
    added = {
        (lv, k): f[f"added_errors_{slug(lv)}_set_{k}"] for lv in ("words", "words + decoys", "refined") for k in "abf"
    }
    assert added == {
        ("words", "a"): 0,
        ("words", "b"): 0,
        ("words", "f"): 0,
        ("words + decoys", "a"): 244,
        ("words + decoys", "b"): 54956,
        ("words + decoys", "f"): 3820,
        ("refined", "a"): 24,
        ("refined", "b"): 3962,
        ("refined", "f"): 273,
    }
    paired = {
        (k, g): (f[f"paired_{k}_{g}_only_words_agrees"], f[f"paired_{k}_{g}_only_refined_agrees"])
        for k in "bf"
        for g in ("20", "well_checked")
    }
    assert paired == {("b", "20"): (1561, 1725), ("b", "well_checked"): (2401, 3591), ("f", "20"): (108, 102),
                      ("f", "well_checked"): (165, 225)}  # fmt: skip
    p = {(k, g): f[f"paired_{k}_{g}_p_exact_mcnemar"] for k in "bf" for g in ("20", "well_checked")}
    assert round(p[("b", "20")], 3) == 0.004 and round(p[("f", "20")], 2) == 0.73
    assert p[("b", "well_checked")] < 1e-50 and round(p[("f", "well_checked")], 3) == 0.003
    # chance: the model's misses times the refined circuit's miss rate at the same inputs
    assert f["paired_b_20_by_chance"] == pytest.approx(f["paired_b_20_model_misses"] * f["miss_refined_pos_20"])
    assert round(f["paired_b_20_by_chance"]) == 271 and round(f["paired_f_20_by_chance"]) == 16
    assert f["paired_b_20_refined_reproduces"] > 6 * f["paired_b_20_by_chance"]


@pytest.mark.slow
def test_position_scale_share_class_correlation_and_aims(findings):
    f = findings
    share = {k: round(100 * f[f"gap_closed_agreement_set_{k}"]) for k in "abcdf"}
    assert share == {"a": 88, "b": 67, "c": 9, "d": 88, "f": 65}
    corr_share = {k: round(100 * f[f"gap_closed_correlation_set_{k}"]) for k in "abcdf"}
    assert corr_share == {"a": 58, "b": 30, "c": 45, "d": 10, "f": 30}
    assert "correlation_refined_set_e" not in f  # four inputs get no correlation
    within = {c: round(f[f"class_correlation_refined_{c}"], 3) for c in ("palindromes", "non_palindromes")}
    assert within == {"palindromes": 0.608, "non_palindromes": 0.241}
    assert all(f[f"aim_refined_set_{k}_{slug(a)}"] == 1.0 for k in "bf" for a in lc.AIMS)
    assert f["aim_position_scale_set_b_blind_pairs_0_9"] == 0.0 and f["aim_position_scale_set_f_blind_pairs_0_9"] == 1.0
    assert f["aim_position_scale_set_b_weak_pair_within_x2"] == 1.0 and f["aim_circuit_set_b_weak_pair_within_x2"] == 0


@pytest.mark.slow
def test_occurring_scales_and_per_input_projections(findings):
    f = findings
    assert (round(f["layer0_occurring_scale_min"], 3), round(f["layer0_occurring_scale_max"], 3)) == (0.143, 0.283)
    assert f["layer0_occurring_scale_max"] < f["layer0_scale_table_max"]
    means = {p: round(f[f"projection_projection_mean_pos_{p}"], 2) for p in SECOND_HALF}
    assert (min(means[p] for p in ex12.WELL_CHECKED), max(means[p] for p in ex12.WELL_CHECKED)) == (1.69, 3.36)
    assert (means[17], means[19], means[20]) == (-0.11, -0.14, -1.2)
    assert all(f[f"projection_share_the_edit_pos_{p}"] == 0.0 for p in (17, 19, 20))
    cos = {p: round(f[f"projection_mean_cosine_pos_{p}"], 2) for p in (17, 19)}
    assert cos == {17: -0.05, 19: -0.05}


@pytest.mark.slow
def test_random_directions_inside_h00s_output_space(findings):
    # Drawn where the shared direction lives, random directions can match its flip rate at 11-18 (a ceiling), but none
    # lowers the logit difference as far, at any position.
    f = findings
    for p in SECOND_HALF:
        assert f[f"subspace_shared_flips_pos_{p}"] == f[f"steer_add_shared_1_pos_{p}"]
        assert f[f"subspace_draws_falling_as_far_pos_{p}"] == 0
        assert f[f"subspace_random_fall_max_pos_{p}"] < f[f"subspace_shared_logit_fall_pos_{p}"]
    matched = {p: f[f"subspace_draws_flipping_as_many_pos_{p}"] for p in SECOND_HALF}
    assert max(matched.values()) == 8 and matched[19] == matched[20] == 0
    assert round(f["subspace_random_max_pos_19"], 3) == 0.785 and round(f["subspace_random_max_pos_20"], 3) == 0.79
