"""Path ablations (palindrome.faithfulness): sanity of the machinery, chapter 10's key numbers, and
every number the reconciliation table cites."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from palindrome import faithfulness as fa
from palindrome.ablation import Ablation, ablated_logits
from palindrome.constants import N_HEADS, N_LAYERS, VALUE_POSITIONS
from palindrome.data import PalindromeDataset
from palindrome.metrics import end_logits


@pytest.fixture(scope="module")
def small():
    return PalindromeDataset(100, seed=3)


@pytest.fixture(scope="module")
def findings(model):
    """All three modules' key findings, computed once for the key-number and reconciliation tests."""
    return fa.collect_findings(model)


# --- the machinery -------------------------------------------------------------------------------


def test_edges_and_paths():
    assert len(fa.EDGES) == 42 and len(set(fa.EDGES)) == 42
    assert len(fa.HYPOTHESIS) == 9
    assert fa.HYPOTHESIS < fa.EXTENDED < fa.ALL
    assert all(edges <= fa.ALL for edges in fa.PATHS.values())
    assert set(fa.path_table().index) == set(fa.PATHS)
    assert fa.expand_edges(["H0.0 -> H1.0 K", "1.0->logits"]) == {"0.0->1.0.k", "1.0->logits"}


@pytest.mark.parametrize("method", fa.METHODS)
def test_all_edges_live_is_the_clean_model(model, small, method):
    logits = fa.circuit_logits(model, small.toks, fa.ALL, method)
    assert (logits - end_logits(model, small.toks)).abs().max().item() < 1e-4
    assert model.cfg.use_attn_result  # the speed-up switch is restored


def test_no_edge_live_is_every_head_mean_ablated(model, small):
    heads = [Ablation(layer, head) for layer in range(N_LAYERS) for head in range(N_HEADS)]
    expected = ablated_logits(model, small.toks, heads, reference_toks=small.toks)
    logits = fa.circuit_logits(model, small.toks, [], "mean")
    assert (logits - expected).abs().max().item() < 1e-4
    assert (logits - logits[0]).abs().max().item() < 1e-4  # the same constant guess for every input


def test_no_edge_live_resampled_is_the_model_on_borrowed_inputs(model, small):
    ablator = fa.PathAblator(model, small.toks, "resample")
    assert (ablator.logits([]) - end_logits(model, ablator.source)).abs().max().item() < 1e-4


@pytest.mark.parametrize("layer, head", [(0, 1), (1, 1)])
def test_removing_a_heads_outputs_is_palindrome_ablation_of_its_result(model, small, layer, head):
    expected = ablated_logits(model, small.toks, [Ablation(layer, head)], reference_toks=small.toks)
    logits = fa.circuit_logits(model, small.toks, fa.VARIANTS[f"full - H{layer}.{head}"], "mean")
    assert (logits - expected).abs().max().item() < 1e-4


def test_ablated_positions_erase_the_value_slot(model):
    pos = fa.ablated_pos(model)
    values = list(VALUE_POSITIONS)
    assert torch.allclose(pos[values], pos[values[0]].expand(len(values), -1))
    assert torch.equal(pos[[0, -1]], model.W_pos[[0, model.cfg.n_ctx - 1]])


def test_derangement_moves_every_row():
    index = fa.derangement(1000, seed=5)
    assert sorted(index.tolist()) == list(range(1000))
    assert (index != torch.arange(1000)).all()
    assert torch.equal(index, fa.derangement(1000, seed=5))


def test_recovered_fraction():
    assert fa.recovered_fraction(clean=0.0, ablated=1.0, circuit=0.25) == pytest.approx(0.75)
    assert fa.recovered_fraction(clean=7.0, ablated=0.0, circuit=3.5) == pytest.approx(0.5)


def test_slug():
    assert fa.slug("- H0.0 -> H1.0 K") == "minus_h0_0_to_h1_0_k"
    assert fa.slug("+ H0.1 + H1.1") == "plus_h0_1_plus_h1_1"
    assert fa.slug("full - H1.1") == "full_minus_h1_1"


def test_bad_inputs_raise(model, small):
    with pytest.raises(ValueError, match="unknown edge or path 'H9.9'.*paths:.*edges:"):
        fa.expand_edges(["H9.9"])
    with pytest.raises(ValueError, match="not the string"):
        fa.expand_edges("H0.1")
    with pytest.raises(ValueError, match="method must be one of"):
        fa.circuit_logits(model, small.toks, fa.HYPOTHESIS, method="zero")
    with pytest.raises(ValueError, match="n >= 2"):
        fa.derangement(1)
    with pytest.raises(ValueError, match="nothing to recover"):
        fa.recovered_fraction(1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="finite"):
        fa.recovered_fraction(0.0, float("nan"), 0.5)
    with pytest.raises(ValueError, match="reserved"):
        fa.circuit_table(fa.PathAblator(model, small.toks), small.is_palindrome, {fa.CLEAN: fa.ALL})
    with pytest.raises(ValueError, match="non-empty mapping"):
        fa.circuit_table(fa.PathAblator(model, small.toks), small.is_palindrome, {})
    with pytest.raises(ValueError, match="value position"):
        fa.resample_error_sources(model, small.toks, small.is_palindrome, position=0)
    with pytest.raises(ValueError, match="must be among"):
        fa.collect_findings(model, modules=["nonexistent"])
    with pytest.raises(ValueError, match="needs a model or precomputed findings"):
        fa.reconciliation_table()
    with pytest.raises(ValueError, match="has no key 'nope'"):
        fa.Evidence("x", "faithfulness", "nope").value({"faithfulness": {"other": 1.0}})
    unsplit = SimpleNamespace(cfg=SimpleNamespace(n_layers=2, n_heads=2, attn_only=True, use_split_qkv_input=False))
    with pytest.raises(ValueError, match="use_split_qkv_input=True"):
        fa.PathAblator(unsplit, small.toks)
    three_layers = SimpleNamespace(cfg=SimpleNamespace(n_layers=3, n_heads=2, attn_only=True, use_split_qkv_input=True))
    with pytest.raises(ValueError, match="2-layer, 2-head"):
        fa.PathAblator(three_layers, small.toks)
    no_start = small.toks.clone()
    no_start[:, 0] = 0
    with pytest.raises(ValueError, match="START"):
        fa.circuit_logits(model, no_start, fa.ALL)


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


@pytest.mark.parametrize("key, expected, tol", KEY_NUMBERS, ids=[k for k, _, _ in KEY_NUMBERS])
def test_key_numbers(findings, key, expected, tol):
    assert findings["faithfulness"][key] == pytest.approx(expected, abs=tol)


def test_key_findings_are_floats(findings):
    assert all(isinstance(v, float) for v in findings["faithfulness"].values())


# --- the reconciliation table ------------------------------------------------------------------

MECHANISM = "H0.0 -> H1.0 (K- and V-composition) -> logits is how the model works"
K_COMP = "K-composition: H1.0 reads H0.0's output in its keys"
V_COMP = "V-composition: H1.0 reads H0.0's output in its values"
H11 = "H1.1 is not useful at all"
H01 = "H0.1 does something; what is left as further work"
WEAK = "the model is weak at positions 1, 2, 4 and their mirrors 17, 19, 20"
BOTH_20 = "H0.1 and H1.1 both cover the blind spot at position 20"
ZERO_MEAN = "mean- and zero-ablation disagree about H0.1"
QK = "H0.0's QK circuit is weak at positions 17 and 19"
REASON_20 = "position 20 is weak for a different reason than 17 and 19"

# Every number the table cites: (claim, evidence label) -> (expected, absolute tolerance).
CITED = {
    (MECHANISM, "loss recovered (mean)"): (0.8456, 2e-3),
    (MECHANISM, "loss recovered (resample)"): (0.7534, 2e-3),
    (MECHANISM, "accuracy (mean)"): (0.822, 2e-3),
    (MECHANISM, "accuracy (resample)"): (0.854, 2e-3),
    (MECHANISM, "extended circuit, loss recovered (mean)"): (0.9988, 5e-4),
    (MECHANISM, "extended circuit, loss recovered (resample)"): (0.9974, 5e-4),
    (K_COMP, "circuit, loss recovered (mean)"): (0.8456, 2e-3),
    (K_COMP, "circuit, loss recovered (resample)"): (0.7534, 2e-3),
    (K_COMP, "without it (mean)"): (0.8188, 2e-3),
    (K_COMP, "without it (resample)"): (0.5643, 2e-3),
    (V_COMP, "circuit, loss recovered (mean)"): (0.8456, 2e-3),
    (V_COMP, "circuit, loss recovered (resample)"): (0.7534, 2e-3),
    (V_COMP, "without it (mean)"): (0.6977, 2e-3),
    (V_COMP, "without it (resample)"): (0.1272, 2e-3),
    (H11, "loss increase, H1.1 mean-ablated"): (0.0214, 1e-3),
    (H11, "loss increase, H1.1 resampled"): (0.7928, 2e-3),
    (H11, "misses at 20, full model"): (0.0826, 0.01),
    (H11, "misses at 20, H1.1 mean-ablated"): (1.0, 0.01),
    (H11, "H1.1 direct effect, position-20 mismatches"): (11.034, 0.02),
    (H11, "H1.1 direct effect, palindromes"): (-1.845, 0.02),
    (H01, "loss increase, H0.1 mean-ablated"): (0.0942, 1e-3),
    (H01, "loss increase, H0.1 resampled"): (0.2417, 2e-3),
    (H01, "palindromes correct, clean"): (1.0, 0.01),
    (H01, "palindromes correct, H0.1 mean-ablated"): (0.9267, 0.01),
    (H01, "H0.1's vote through H1.1, position-20 mismatches"): (6.370, 0.02),
    (H01, "H0.1's vote through H1.1, palindromes"): (1.149, 0.02),
    (WEAK, "misses at 17"): (1.0, 0.01),
    (WEAK, "misses at 19"): (1.0, 0.01),
    (WEAK, "misses at 20"): (0.0826, 0.01),
    (BOTH_20, "misses at 20, H1.1 mean-ablated"): (1.0, 0.01),
    (BOTH_20, "misses at 20, H0.1 mean-ablated"): (0.03, 0.01),
    (BOTH_20, "misses at 20, H0.1 resampled"): (0.36, 0.011),
    (BOTH_20, "accuracy at 20, clean"): (0.93, 0.01),
    (BOTH_20, "accuracy at 20, H0.1 zero-ablated at 20"): (0.45, 0.01),
    (BOTH_20, "accuracy at 20, H0.1 -> H1.1 K and V mean-ablated"): (0.8633, 0.01),
    (ZERO_MEAN, "loss increase, zero-ablated"): (1.3532, 2e-3),
    (ZERO_MEAN, "loss increase, mean-ablated"): (0.0892, 1e-3),
    (ZERO_MEAN, "loss increase, resampled"): (0.1694, 2e-3),
    (ZERO_MEAN, "layer-1 LayerNorm scale, zero-ablated / clean"): (0.8504, 2e-3),
    (ZERO_MEAN, "loss, zero-ablated with clean scale"): (0.0706, 2e-3),
    (ZERO_MEAN, "loss, clean"): (0.013713, 1e-5),
    (QK, "H0.0 attention to mirror from 17"): (0.1965, 2e-3),
    (QK, "H0.0 attention to mirror from 19"): (0.1254, 2e-3),
    (QK, "H0.0 attention to mirror from 18"): (0.6920, 2e-3),
    (REASON_20, "H0.0 attention to mirror from 20"): (0.6713, 2e-3),
    (REASON_20, "H0.0 attention to mirror from 18"): (0.6920, 2e-3),
    (REASON_20, "composed OV vote at 20"): (-3.1446, 1e-3),
    (REASON_20, "position-20 misses, circuit"): (0.70, 0.011),
    (REASON_20, "position-20 misses, circuit + H1.1"): (0.02, 0.011),
}

VERDICTS = {
    MECHANISM: "The main mechanism, but incomplete",
    K_COMP: "Partly",
    V_COMP: "Confirmed",
    H11: "Refuted",
    H01: "Settled",
    WEAK: "Partly right. Blind: 4-17, 2-19; not blind: 1-20",
    BOTH_20: "H1.1: confirmed",
    ZERO_MEAN: "Confirmed",
    QK: "Confirmed",
    REASON_20: "Confirmed",
}


def test_every_cited_number_is_asserted(findings):
    assert fa.missing_modules(findings) == []
    cited = fa.cited_numbers(findings)
    assert set(cited) == set(CITED)
    for key, value in cited.items():
        expected, tol = CITED[key]
        assert value == pytest.approx(expected, abs=tol), key


def test_reconciliation_verdicts(findings):
    table = fa.reconciliation_table(findings=findings)
    assert list(table.columns) == ["source", "claim", "evidence", "verdict"]
    assert set(table["source"]) == {"original write-up", "other analysis"}
    verdicts = dict(zip(table["claim"], table["verdict"]))
    assert set(verdicts) == set(VERDICTS)
    for claim, start in VERDICTS.items():
        assert verdicts[claim].startswith(start), (claim, verdicts[claim])
    assert "H0.1: only as H1.1's input" in verdicts[BOTH_20]
    assert "2 jobs" in verdicts[H01]


def test_reconciliation_without_other_modules_says_what_is_missing(findings):
    table = fa.reconciliation_table(findings={"faithfulness": findings["faithfulness"]})
    assert fa.missing_modules({"faithfulness": {}}) == ["blindspots", "backup"]
    unsettled = table[table["verdict"].str.startswith("Not settled here")]
    assert len(unsettled) == len(table) - 3  # only the three composition claims rest on this chapter alone
    assert unsettled["evidence"].str.contains("missing").all()
