"""Path ablations (palindrome.faithfulness): sanity of the machinery, chapter 10's key numbers, and
every number the reconciliation table cites."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from palindrome import faithfulness as fa
from palindrome import paths
from palindrome import reconciliation as rc
from palindrome.ablation import Ablation, Ablator
from palindrome.constants import N_HEADS, N_LAYERS, VALUE_POSITIONS
from palindrome.data import PalindromeDataset
from palindrome.findings import slug
from palindrome.metrics import end_logits


@pytest.fixture(scope="module")
def small():
    return PalindromeDataset(100, seed=3)


@pytest.fixture(scope="module")
def findings(model):
    """All three modules' key findings, computed once for the key-number and reconciliation tests."""
    return rc.collect_findings(model)


# --- the machinery -------------------------------------------------------------------------------


def test_edges_and_paths():
    assert len(paths.EDGES) == 42 and len(set(paths.EDGES)) == 42
    assert len(paths.HYPOTHESIS) == 9
    assert paths.HYPOTHESIS < paths.EXTENDED < paths.ALL
    assert all(edges <= paths.ALL for edges in paths.PATHS.values())
    assert set(paths.path_table().index) == set(paths.PATHS)
    assert paths.expand_edges(["H0.0 -> H1.0 K", "1.0->logits"]) == {"0.0->1.0.k", "1.0->logits"}


@pytest.mark.parametrize("method", paths.METHODS)
def test_all_edges_live_is_the_clean_model(model, small, method):
    logits = paths.circuit_logits(model, small.toks, paths.ALL, method)
    assert (logits - end_logits(model, small.toks)).abs().max().item() < 1e-4
    assert model.cfg.use_attn_result  # the speed-up switch is restored


def test_no_edge_live_is_every_head_mean_ablated(model, small):
    heads = [Ablation(layer, head) for layer in range(N_LAYERS) for head in range(N_HEADS)]
    expected = Ablator(model, small.toks).logits(small.toks, heads)
    logits = paths.circuit_logits(model, small.toks, [], "mean")
    assert (logits - expected).abs().max().item() < 1e-4
    assert (logits - logits[0]).abs().max().item() < 1e-4  # the same constant guess for every input


def test_no_edge_live_resampled_is_the_model_on_borrowed_inputs(model, small):
    ablator = paths.PathAblator(model, small.toks, "resample")
    assert (ablator.logits([]) - end_logits(model, ablator.source)).abs().max().item() < 1e-4


@pytest.mark.parametrize("layer, head", [(0, 1), (1, 1)])
def test_removing_a_heads_outputs_is_palindrome_ablation_of_its_result(model, small, layer, head):
    expected = Ablator(model, small.toks).logits(small.toks, [Ablation(layer, head)])
    logits = paths.circuit_logits(model, small.toks, fa.VARIANTS[f"full - H{layer}.{head}"], "mean")
    assert (logits - expected).abs().max().item() < 1e-4


def test_ablated_positions_erase_the_value_slot(model):
    pos = paths.ablated_pos(model)
    values = list(VALUE_POSITIONS)
    assert torch.allclose(pos[values], pos[values[0]].expand(len(values), -1))
    assert torch.equal(pos[[0, -1]], model.W_pos[[0, model.cfg.n_ctx - 1]])


def test_derangement_moves_every_row():
    index = paths.derangement(1000, seed=5)
    assert sorted(index.tolist()) == list(range(1000))
    assert (index != torch.arange(1000)).all()
    assert torch.equal(index, paths.derangement(1000, seed=5))


def test_recovered_fraction():
    assert fa.recovered_fraction(clean=0.0, ablated=1.0, circuit=0.25) == pytest.approx(0.75)
    assert fa.recovered_fraction(clean=7.0, ablated=0.0, circuit=3.5) == pytest.approx(0.5)


def test_slug():
    assert slug("- H0.0 -> H1.0 K") == "minus_h0_0_to_h1_0_k"
    assert slug("+ H0.1 + H1.1") == "plus_h0_1_plus_h1_1"
    assert slug("full - H1.1") == "full_minus_h1_1"


def test_bad_inputs_raise(model, small):
    with pytest.raises(ValueError, match="unknown edge or path 'H9.9'.*paths:.*edges:"):
        paths.expand_edges(["H9.9"])
    with pytest.raises(ValueError, match="not the string"):
        paths.expand_edges("H0.1")
    with pytest.raises(ValueError, match="method must be one of"):
        paths.circuit_logits(model, small.toks, paths.HYPOTHESIS, method="zero")
    with pytest.raises(ValueError, match="n >= 2"):
        paths.derangement(1)
    with pytest.raises(ValueError, match="nothing to recover"):
        fa.recovered_fraction(1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="finite"):
        fa.recovered_fraction(0.0, float("nan"), 0.5)
    with pytest.raises(ValueError, match="reserved"):
        fa.circuit_table(paths.PathAblator(model, small.toks), small.is_palindrome, {fa.CLEAN: paths.ALL})
    with pytest.raises(ValueError, match="non-empty mapping"):
        fa.circuit_table(paths.PathAblator(model, small.toks), small.is_palindrome, {})
    with pytest.raises(ValueError, match="value position"):
        fa.resample_error_sources(model, small.toks, small.is_palindrome, position=0)
    with pytest.raises(ValueError, match="must be among"):
        rc.collect_findings(model, modules=["nonexistent"])
    with pytest.raises(ValueError, match="needs a model or precomputed findings"):
        rc.reconciliation_table()
    with pytest.raises(ValueError, match="has no key 'nope'"):
        rc.Evidence("x", "faithfulness", "nope").value({"faithfulness": {"other": 1.0}})
    unsplit = SimpleNamespace(cfg=SimpleNamespace(n_layers=2, n_heads=2, attn_only=True, use_split_qkv_input=False))
    with pytest.raises(ValueError, match="use_split_qkv_input=True"):
        paths.PathAblator(unsplit, small.toks)
    three_layers = SimpleNamespace(cfg=SimpleNamespace(n_layers=3, n_heads=2, attn_only=True, use_split_qkv_input=True))
    with pytest.raises(ValueError, match="2-layer, 2-head"):
        paths.PathAblator(three_layers, small.toks)
    no_start = small.toks.clone()
    no_start[:, 0] = 0
    with pytest.raises(ValueError, match="START"):
        paths.circuit_logits(model, no_start, paths.ALL)


# --- chapter 10's key numbers ----------------------------------------------------------------------

# (key, expected value, absolute tolerance). Losses and fractions are deterministic on the CPU; the
# tolerances leave room for another device's float rounding (one example in 100 for hard-subset rates).
KEY_NUMBERS = [
    ("original500_clean_loss", 0.013713, 1e-5),  # key number 1
    ("clean_loss", 0.01494, 5e-4),
    ("clean_accuracy", 0.998, 1e-3),
    ("mean_ablated_loss", 5.0335, 2e-3),
    ("resample_ablated_loss", 3.8260, 2e-3),
    ("mean_circuit_loss", 0.7896, 2e-3),
    ("resample_circuit_loss", 0.9548, 2e-3),
    ("mean_circuit_loss_recovered", 0.8456, 2e-3),
    ("resample_circuit_loss_recovered", 0.7534, 2e-3),
    ("mean_circuit_logit_diff_recovered", 0.6965, 2e-3),
    ("resample_circuit_logit_diff_recovered", 0.7314, 2e-3),
    ("mean_circuit_accuracy", 0.822, 2e-3),
    ("resample_circuit_accuracy", 0.854, 2e-3),
    ("original500_mean_circuit_loss_recovered", 0.8326, 2e-3),
    ("original500_resample_circuit_loss_recovered", 0.7523, 2e-3),
    ("original500_mean_circuit_logit_diff_recovered", 0.6704, 2e-3),
    ("original500_resample_circuit_logit_diff_recovered", 0.7173, 2e-3),
    ("original500_mean_circuit_accuracy", 0.794, 2e-3),
    ("original500_resample_circuit_accuracy", 0.862, 2e-3),
    # one path removed or added (loss recovered)
    ("mean_minus_positions_to_h0_0_qk_loss_recovered", 0.0422, 2e-3),
    ("resample_minus_tokens_to_h0_0_qk_loss_recovered", 0.0725, 2e-3),
    ("mean_minus_tokens_to_h0_0_v_loss_recovered", 0.4136, 2e-3),
    ("resample_minus_tokens_to_h0_0_v_loss_recovered", 0.7110, 2e-3),
    ("mean_plus_h0_0_to_h1_0_q_loss_recovered", 0.8725, 2e-3),
    ("mean_plus_positions_to_h1_0_loss_recovered", 0.9496, 2e-3),
    ("mean_plus_h0_1_loss_recovered", 0.9099, 2e-3),
    ("resample_plus_h1_1_loss_recovered", 0.8782, 2e-3),
    ("resample_plus_direct_to_logits_loss_recovered", 0.7532, 2e-3),
    # the extended circuit and its parts
    ("mean_extended_accuracy", 0.996, 2e-3),
    ("resample_extended_accuracy", 0.994, 2e-3),
    ("mean_extended_minus_h0_1_loss_recovered", 0.948, 2e-3),
    ("resample_extended_minus_h1_1_loss_recovered", 0.779, 2e-3),
    ("mean_extended_minus_positions_to_h1_0_loss_recovered", 0.976, 2e-3),
    # why resampling H1.1 is expensive
    ("resample_h1_1_error_rate", 0.121, 2e-3),
    ("resample_h1_1_borrowed_broken_rate", 0.242, 2e-3),
    ("resample_h1_1_borrowed_broken_given_error", 0.9587, 2e-3),
    ("resample_h1_1_palindromes_among_errors", 0.9587, 2e-3),
    # the hard subset (fraction of single-mismatch inputs called palindromes)
    ("hard_mean_full_model_pos_17", 1.0, 0.011),
    ("hard_mean_full_model_pos_20", 0.06, 0.011),
    ("hard_mean_hypothesis_pos_17", 0.69, 0.011),
    ("hard_mean_hypothesis_pos_19", 0.69, 0.011),
    ("hard_resample_hypothesis_pos_20", 0.73, 0.011),
    ("hard_mean_plus_h0_1_pos_20", 0.84, 0.011),
    ("hard_resample_plus_h1_1_pos_20", 0.29, 0.011),
    ("hard_mean_plus_h0_1_plus_h1_1_pos_17", 0.94, 0.011),
    ("hard_resample_plus_h0_1_plus_h1_1_pos_20", 0.03, 0.011),
    ("hard_resample_full_minus_h1_1_pos_20", 0.77, 0.011),
]


@pytest.mark.slow
@pytest.mark.parametrize("key, expected, tol", KEY_NUMBERS, ids=[k for k, _, _ in KEY_NUMBERS])
def test_key_numbers(findings, key, expected, tol):
    assert findings["faithfulness"][key] == pytest.approx(expected, abs=tol)


@pytest.mark.slow
def test_key_findings_are_floats(findings):
    assert all(isinstance(v, float) for v in findings["faithfulness"].values())


# --- the reconciliation table ------------------------------------------------------------------

# The claims, in the table's order (rc.CLAIMS).
C00 = "H0.0's QK circuit: positions 11-20 attend to their mirror 21-i (the lambda pattern), except at 17 and 19"
C01 = "the composed circuit W_pos W_OV(0.0) W_OV(1.0) u is negative on 1-10 and positive on 11-20, except at the ends"
C02 = "K-composition: H1.0 reads H0.0's output in its keys"
C03 = "V-composition: H1.0 reads H0.0's output in its values"
C04 = "H0.0 -> H1.0 (K- and V-composition) -> logits is how the model works"
C05 = "H1.1 is not useful at all"
C06 = "H0.1 does something; what is left as further work"
C07 = "mean-ablating H0.1 changes nothing, since its output is roughly the same for every input"
C08 = "the model is weak at positions 1, 2, 4 and their mirrors 17, 19, 20"
C09 = "at 17 and 19 H0.0's positional attention fails, and H1.0 at END never attends to them"
C10 = "position 20 is a blind spot of H1.0, and H1.1 picks up the slack there (its first account, replaced by claim 3)"
C11 = "the difference vectors of all second-half positions but 17, 19 and 20 share one direction"
C12 = "so position 20 is a blind spot of H0.0's QK circuit, not of H1.0"
C13 = "through the difference vectors, H1.0 composes everywhere but 17, 19, 20, and H1.1 compensates at 20 only"
C14 = "targeted mean ablations show that both H0.1 and H1.1 compensate for the blind spot at 20"
C15 = "mean- and zero-ablation disagree about H0.1"
C16 = "the generator's own inputs are sometimes adversarial, mostly by breaking only 17 and 19"

# Every number the table cites: (claim, evidence label) -> (expected, absolute tolerance).
CITED = {
    (C00, "H0.0 attention to mirror from 11, palindromes"): (0.56242, 0.002),
    (C00, "H0.0 attention to mirror from 12, palindromes"): (0.58031, 0.002),
    (C00, "H0.0 attention to mirror from 13, palindromes"): (0.70005, 0.002),
    (C00, "H0.0 attention to mirror from 14, palindromes"): (0.59096, 0.002),
    (C00, "H0.0 attention to mirror from 15, palindromes"): (0.66238, 0.002),
    (C00, "H0.0 attention to mirror from 16, palindromes"): (0.57346, 0.002),
    (C00, "H0.0 attention to mirror from 17, palindromes"): (0.19647, 0.002),
    (C00, "H0.0 attention to mirror from 18, palindromes"): (0.69195, 0.002),
    (C00, "H0.0 attention to mirror from 19, palindromes"): (0.12538, 0.002),
    (C00, "H0.0 attention to mirror from 20, palindromes"): (0.67135, 0.002),
    (C01, "composed OV vote at 1"): (0.96062, 0.002),
    (C01, "composed OV vote at 2"): (0.42148, 0.002),
    (C01, "composed OV vote at 3"): (-1.2959, 0.002),
    (C01, "composed OV vote at 4"): (0.39189, 0.002),
    (C01, "composed OV vote at 5"): (-1.7326, 0.02),
    (C01, "composed OV vote at 6"): (-1.5856, 0.02),
    (C01, "composed OV vote at 7"): (-2.1289, 0.02),
    (C01, "composed OV vote at 8"): (-1.9714, 0.02),
    (C01, "composed OV vote at 9"): (-1.8237, 0.02),
    (C01, "composed OV vote at 10"): (-2.2243, 0.02),
    (C01, "composed OV vote at 11"): (3.0236, 0.02),
    (C01, "composed OV vote at 12"): (2.945, 0.02),
    (C01, "composed OV vote at 13"): (4.1971, 0.02),
    (C01, "composed OV vote at 14"): (3.4718, 0.02),
    (C01, "composed OV vote at 15"): (2.9804, 0.02),
    (C01, "composed OV vote at 16"): (3.1488, 0.02),
    (C01, "composed OV vote at 17"): (-0.29999, 0.002),
    (C01, "composed OV vote at 18"): (3.0285, 0.02),
    (C01, "composed OV vote at 19"): (-1.1088, 0.002),
    (C01, "composed OV vote at 20"): (-3.1446, 0.02),
    (C02, "circuit, loss recovered (mean)"): (0.84564, 0.002),
    (C02, "circuit, loss recovered (resample)"): (0.75338, 0.002),
    (C02, "without it (mean)"): (0.81879, 0.002),
    (C02, "without it (resample)"): (0.56433, 0.002),
    (C02, "full model, H1.0's keys mean-ablated: loss increase (200)"): (0.21214, 0.002),
    (C03, "circuit, loss recovered (mean)"): (0.84564, 0.002),
    (C03, "circuit, loss recovered (resample)"): (0.75338, 0.002),
    (C03, "without it (mean)"): (0.69774, 0.002),
    (C03, "without it (resample)"): (0.12717, 0.002),
    (C04, "loss recovered (mean)"): (0.84564, 0.002),
    (C04, "loss recovered (resample)"): (0.75338, 0.002),
    (C04, "accuracy (mean)"): (0.822, 0.002),
    (C04, "accuracy (resample)"): (0.854, 0.002),
    (C04, "extended circuit, loss recovered (mean)"): (0.99883, 0.002),
    (C04, "extended circuit, loss recovered (resample)"): (0.99745, 0.002),
    (C05, "dataset loss, clean (500)"): (0.013713, 0.0005),
    (C05, "dataset loss, H1.1 mean-ablated (500)"): (0.026213, 0.0005),
    (C05, "loss increase, H1.1 mean-ablated (1000, seed 1)"): (0.021443, 0.0005),
    (C05, "loss increase, H1.1 resampled (1000, seed 1)"): (0.79277, 0.002),
    (C05, "misses at 20, no ablation (100 bases)"): (0.04, 0.0005),
    (C05, "misses at 20, H1.1 mean-ablated (100 bases)"): (1.0, 0.002),
    (C05, "H1.1 direct effect, pos-20 mismatches (300)"): (11.034, 0.02),
    (C05, "H1.1 direct effect, palindromes (300)"): (-1.8452, 0.02),
    (C06, "loss increase, H0.1 mean-ablated (1000, seed 1)"): (0.094163, 0.002),
    (C06, "loss increase, H0.1 resampled (1000, seed 1)"): (0.24173, 0.002),
    (C06, "H0.1's part of H1.1's value at 20, pos-20 mismatches (300)"): (6.3699, 0.02),
    (C06, "H0.1's part of H1.1's value at 20, palindromes (300)"): (1.1489, 0.002),
    (C06, "dataset loss, clean (500)"): (0.013713, 0.0005),
    (C06, "dataset loss, H0.1 mean-ablated (500)"): (0.10291, 0.002),
    (C06, "dataset loss, H0.1 mean-ablated, clean layer-1 scale (500)"): (0.019677, 0.0005),
    (C07, "dataset loss, clean (500)"): (0.013713, 0.0005),
    (C07, "dataset loss, H0.1 mean-ablated (500)"): (0.10291, 0.002),
    (C07, "variability of H0.1's output"): (0.9494, 0.002),
    (C07, "variability of H0.0's output"): (1.1559, 0.002),
    (C08, "misses at 11"): (0.033905, 0.0005),
    (C08, "misses at 12"): (0.021808, 0.0005),
    (C08, "misses at 13"): (0.0041331, 0.0005),
    (C08, "misses at 14"): (0.017473, 0.0005),
    (C08, "misses at 15"): (0.026277, 0.0005),
    (C08, "misses at 16"): (0.026882, 0.0005),
    (C08, "misses at 17"): (1.0, 0.002),
    (C08, "misses at 18"): (0.023286, 0.0005),
    (C08, "misses at 19"): (1.0, 0.002),
    (C08, "misses at 20"): (0.082594, 0.002),
    (C09, "H0.0 attention to mirror from 17, palindromes"): (0.19647, 0.002),
    (C09, "H0.0 attention to mirror from 19, palindromes"): (0.12538, 0.002),
    (C09, "H0.0 attention to mirror from 18, palindromes"): (0.69195, 0.002),
    (C09, "H1.0 END attention on a broken 17"): (0.01472, 0.0005),
    (C09, "H1.0 END attention on a broken 19"): (0.0060202, 0.0005),
    (C10, "H1.0 END attention on a broken 20"): (0.00013153, 0.0005),
    (C10, "H1.1 END attention on a broken 20"): (0.82155, 0.002),
    (C10, "H1.1 END attention on 20, palindromes"): (0.29657, 0.002),
    (C10, "misses at 20, no ablation (100 bases)"): (0.04, 0.0005),
    (C10, "misses at 20, H1.1 mean-ablated (100 bases)"): (1.0, 0.002),
    (C12, "H0.0 attention to mirror from 20, palindromes"): (0.67135, 0.002),
    (C12, "H0.0 attention to mirror from 18, palindromes"): (0.69195, 0.002),
    (C12, "H0.0 self-attention at 20, palindromes"): (0.13378, 0.002),
    (C12, "H0.0 self-attention at 20, pair broken"): (0.52507, 0.002),
    (C12, "H1.0 END attention on a broken 20"): (0.00013153, 0.0005),
    (C12, "composed OV vote at 20"): (-3.1446, 0.02),
    (C13, "H1.1 END attention on a broken 17"): (0.015215, 0.0005),
    (C13, "H1.1 END attention on a broken 19"): (0.020556, 0.0005),
    (C13, "H1.1 END attention on a broken 20"): (0.82155, 0.002),
    (C14, "dataset loss, clean"): (0.013713, 0.0005),
    (C14, "dataset loss, H0.1 mean-ablated"): (0.10291, 0.002),
    (C14, "dataset loss, H0.1 mean-ablated except at 20"): (0.013315, 0.0005),
    (C14, "dataset loss, H0.1 mean-ablated at 20 only"): (0.027138, 0.0005),
    (C14, "pos-20 accuracy, clean"): (0.93, 0.002),
    (C14, "pos-20 accuracy, H0.1 mean-ablated at 20 only"): (0.86667, 0.002),
    (C14, "pos-20 accuracy, H1.1 values mean-ablated at 20 only"): (0.19667, 0.002),
    (C15, "loss increase, zero-ablated (500)"): (1.3532, 0.002),
    (C15, "loss increase, mean-ablated (500)"): (0.089192, 0.002),
    (C15, "loss increase, resampled (500)"): (0.1694, 0.002),
    (C15, "layer-1 LayerNorm scale, zero-ablated / clean"): (0.85044, 0.002),
    (C15, "loss, zero-ablated with clean scale"): (0.070601, 0.002),
    (C15, "loss, clean (500)"): (0.013713, 0.0005),
    (C16, "generator inputs"): (200000.0, 0.5),
    (C16, "false positives, generator inputs"): (0.002375, 0.0002),
    (C16, "false negatives, generator inputs"): (0.0, 0.0005),
    (C16, "share of false positives breaking only blind pairs"): (0.78316, 0.002),
    (C16, "P(only blind pairs broken), closed form"): (0.0018471, 1e-05),
}

# How each verdict starts.
VERDICTS = {
    C00: "Confirmed",
    C01: "Confirmed",
    C02: "Partly",
    C03: "Confirmed",
    C04: "Partly",
    C05: "Contradicted",
    C06: "Partly answered",
    C07: "Contradicted",
    C08: "Partly",
    C09: "Confirmed",
    C10: "Confirmed",
    C11: "Not yet examined",
    C12: "Contradicted as a statement about H0.0's QK circuit",
    C13: "Not yet examined",
    C14: "Partly",
    C15: "Confirmed",
    C16: "Confirmed",
}


@pytest.mark.slow
def test_every_cited_number_is_asserted(findings):
    assert rc.missing_modules(findings) == []
    cited = rc.cited_numbers(findings)
    assert set(cited) == set(CITED)
    for key, value in cited.items():
        expected, tol = CITED[key]
        assert value == pytest.approx(expected, abs=tol), key


@pytest.mark.slow
def test_reconciliation_verdicts(findings):
    table = rc.reconciliation_table(findings=findings)
    assert list(table.columns) == ["source", "claim", "evidence", "verdict"]
    # the other analysis's claims are numbered as in its own account (FINDINGS.md), each at least once
    assert set(table["source"]) == {"original write-up"} | {f"other analysis ({n})" for n in range(1, 8)}
    verdicts = dict(zip(table["claim"], table["verdict"], strict=True))
    assert set(verdicts) == set(VERDICTS)
    for claim, start in VERDICTS.items():
        assert verdicts[claim].startswith(start), (claim, verdicts[claim])
    assert all(v.startswith(rc.VERDICT_KINDS) for v in verdicts.values())
    # the rows on the other analysis's difference vectors give no verdict on them
    assert "not yet examined" in verdicts[C11].lower() and "not computed" in verdicts[C13]
    # a same-input comparison: H1.1's ablation against the unablated model on the ablation test's inputs
    assert "4% to 100% (same inputs)" in verdicts[C05]


@pytest.mark.slow
def test_verdict_rules_follow_the_numbers(findings):
    """Changing a number the rule reads changes the verdict: the rules are not fixed strings."""
    flipped = {m: dict(v) for m, v in findings.items()}
    flipped["blindspots"]["h00_to_self_broken_pos_20"] = flipped["blindspots"]["h00_to_self_on_palindromes_pos_20"]
    flipped["blindspots"]["h00_to_mirror_on_palindromes_pos_20"] = 0.1
    verdicts = dict(zip(*[rc.reconciliation_table(findings=flipped)[c] for c in ("claim", "verdict")], strict=True))
    assert verdicts[C12].startswith("Partly")
    assert verdicts[C00].startswith("Partly") and "0.10 at 20" in verdicts[C00]
    flipped["blindspots"]["misclassified_frac_pos_20"] = 0.01
    verdicts = dict(zip(*[rc.reconciliation_table(findings=flipped)[c] for c in ("claim", "verdict")], strict=True))
    assert verdicts[C08].startswith("Partly") and "not weaker than the rest: 1-20" in verdicts[C08]


@pytest.mark.slow
def test_reconciliation_without_other_modules_says_what_is_missing(findings):
    table = rc.reconciliation_table(findings={"faithfulness": findings["faithfulness"]})
    assert rc.missing_modules({"faithfulness": {}}) == ["blindspots", "backup"]
    unsettled = table[table["verdict"].str.startswith("Not settled here")]
    # the composed-OV and three composition claims rest on this chapter alone, the difference-vector row on no number
    assert len(unsettled) == len(table) - 5
    assert unsettled["evidence"].str.contains("missing").all()
