"""Path ablations (palindrome.chapters.faithfulness): sanity of the machinery, chapter 10's key numbers, and
every number the reconciliation table cites."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from palindrome import path_patching
from palindrome.ablation import Ablation, Ablator
from palindrome.book import reconciliation as rc
from palindrome.chapters import faithfulness as fa
from palindrome.constants import N_HEADS, N_LAYERS, VALUE_POSITIONS
from palindrome.data import PalindromeDataset
from palindrome.findings import slug
from palindrome.hooks import activations
from palindrome.metrics import end_logits


@pytest.fixture(scope="module")
def small():
    return PalindromeDataset(100, seed=3)


@pytest.fixture(scope="module")
def findings(chapter_findings):
    """All three modules' key findings (``rc.collect_findings``), from the session's cache."""
    return {name: chapter_findings(name) for name in rc.FINDINGS_MODULES}


# --- the machinery -------------------------------------------------------------------------------


def test_edges_and_paths():
    assert len(path_patching.EDGES) == 42 and len(set(path_patching.EDGES)) == 42
    assert len(path_patching.HYPOTHESIS) == 9
    assert path_patching.HYPOTHESIS < path_patching.EXTENDED < path_patching.ALL
    assert all(edges <= path_patching.ALL for edges in path_patching.PATHS.values())
    assert set(path_patching.path_table().index) == set(path_patching.PATHS)
    assert path_patching.expand_edges(["H0.0 -> H1.0 K", "1.0->logits"]) == {"0.0->1.0.k", "1.0->logits"}


@pytest.mark.parametrize("method", path_patching.METHODS)
def test_all_edges_live_is_the_clean_model(model, small, method):
    logits = path_patching.circuit_logits(model, small.toks, path_patching.ALL, method)
    assert (logits - end_logits(model, small.toks)).abs().max().item() < 1e-4
    assert model.cfg.use_attn_result  # the speed-up switch is restored


def test_no_edge_live_is_every_head_mean_ablated(model, small):
    heads = [Ablation(layer, head) for layer in range(N_LAYERS) for head in range(N_HEADS)]
    expected = Ablator(model, small.toks).logits(small.toks, heads)
    logits = path_patching.circuit_logits(model, small.toks, [], "mean")
    assert (logits - expected).abs().max().item() < 1e-4
    assert (logits - logits[0]).abs().max().item() < 1e-4  # the same constant guess for every input


def test_no_edge_live_resampled_is_the_model_on_borrowed_inputs(model, small):
    ablator = path_patching.PathAblator(model, small.toks, "resample")
    assert (ablator.logits([]) - end_logits(model, ablator.source)).abs().max().item() < 1e-4


@pytest.mark.parametrize("layer, head", [(0, 1), (1, 1)])
def test_removing_a_heads_outputs_is_palindrome_ablation_of_its_result(model, small, layer, head):
    expected = Ablator(model, small.toks).logits(small.toks, [Ablation(layer, head)])
    logits = path_patching.circuit_logits(model, small.toks, fa.VARIANTS[f"full - H{layer}.{head}"], "mean")
    assert (logits - expected).abs().max().item() < 1e-4


def test_replaced_edges_at_chosen_positions_only(model, small):
    """``positions`` limits a replaced edge to some sequence positions; checked against facts that need no engine."""
    ablator = path_patching.PathAblator(model, small.toks, "mean")
    clean = end_logits(model, small.toks)
    into11 = sorted(fa.H01_TO_H11)
    whole = ablator.logits(path_patching.ALL, replaced=ablator.ablated, edges=into11)
    every = ablator.logits(path_patching.ALL, replaced=ablator.ablated, edges=into11, positions=range(model.cfg.n_ctx))
    assert (every - whole).abs().max().item() < 1e-5
    assert (
        ablator.logits(path_patching.ALL - set(into11)) - whole
    ).abs().max().item() < 1e-5  # the same edges made dead
    # H1.1's query at position 20 reaches no END logit (only END's query does); its key at 20 does
    query_at_20 = ablator.logits(path_patching.ALL, replaced=ablator.ablated, edges=["0.1->1.1.q"], positions=[20])
    assert (query_at_20 - clean).abs().max().item() < 1e-5
    query_at_end = ablator.logits(path_patching.ALL, replaced=ablator.ablated, edges=["0.1->1.1.q"], positions=[21])
    assert (query_at_end - clean).abs().max().item() > 1e-2
    # by hand: H0.1's clean output with position 20 replaced by its mean there, read by H1.1 only
    by_hand = activations(model, small.toks, ["blocks.0.attn.hook_result"])["blocks.0.attn.hook_result"][
        :, :, 1
    ].clone()
    by_hand[:, 20] = ablator.ablated["0.1"][20]
    expected = ablator.logits(path_patching.ALL, replaced={"0.1": by_hand}, edges=into11)
    at_20 = ablator.logits(path_patching.ALL, replaced=ablator.ablated, edges=into11, positions=[20])
    assert (at_20 - expected).abs().max().item() < 1e-5 and (at_20 - clean).abs().max().item() > 1e-2
    with pytest.raises(ValueError, match="pass replaced and edges"):
        ablator.logits(path_patching.ALL, positions=[20])
    with pytest.raises(ValueError, match=r"positions must be a non-empty list of integers in 0\.\.21"):
        ablator.logits(path_patching.ALL, replaced=ablator.ablated, edges=into11, positions=[22])
    with pytest.raises(ValueError, match=r"missing \['0.1'\]"):
        ablator.logits(path_patching.ALL, replaced={"0.0": by_hand}, edges=into11)


def test_hard_subset_position_errors(model, small):
    """Ablating H0.1 -> H1.1 at every position by position masks is making those edges dead (same inputs and rows)."""
    n_ctx = model.cfg.n_ctx
    every = {"everywhere": (fa.H01_TO_H11, tuple(range(n_ctx)))}
    for method in path_patching.METHODS:
        masked = fa.hard_subset_position_errors(model, method, every, small.toks, n_bases=10)
        dead = fa.hard_subset_errors(
            model, method, {"x": path_patching.ALL - fa.H01_TO_H11}, small.toks, 10, progress=False
        )
        assert masked.values.tolist() == dead.values.tolist()
        assert list(masked.columns) == list(dead.columns) == list(VALUE_POSITIONS[10:])
    with pytest.raises(ValueError, match="non-empty mapping"):
        fa.hard_subset_position_errors(model, "mean", {})
    with pytest.raises(ValueError, match=r"must be an \(edges, positions\) pair"):
        fa.hard_subset_position_errors(model, "mean", {"x": fa.H01_TO_H11})


def test_misses_reading_the_mirror(model):
    """Counted against H0.0's attention pattern read independently, input by input."""
    from palindrome.chapters.blindspots import single_mismatch_sweep
    from palindrome.circuits import attention_pattern
    from palindrome.inputs import single_mismatch_tokens

    sweep = single_mismatch_sweep(model, n_bases=2, progress=False)
    counts = fa.misses_reading_the_mirror(model, sweep, 20)
    toks = single_mismatch_tokens(sweep.bases, 20).flatten(0, 1)
    missed = sweep.misclassified[sweep.index(20)].flatten()
    pattern = attention_pattern(model, toks, 0, 0)[:, 20]
    mirror = pattern[:, 1] > pattern[:, 20]
    assert counts == {
        "sweep_missed_pos_20": float(missed.sum()),
        "sweep_missed_h00_reads_mirror_pos_20": float((mirror & missed).sum()),
        "sweep_caught_pos_20": float((~missed).sum()),
        "sweep_caught_h00_reads_mirror_pos_20": float((mirror & ~missed).sum()),
    }
    assert counts["sweep_missed_pos_20"] + counts["sweep_caught_pos_20"] == 2 * 930
    assert 0 < counts["sweep_missed_h00_reads_mirror_pos_20"] < counts["sweep_missed_pos_20"]
    at_13 = fa.misses_reading_the_mirror(model, sweep, 13)
    assert set(at_13) == {k.replace("_20", "_13") for k in counts}
    with pytest.raises(ValueError, match="second-half position"):
        fa.misses_reading_the_mirror(model, sweep, 5)
    with pytest.raises(ValueError, match="SweepResult of the second side"):
        fa.misses_reading_the_mirror(model, "sweep", 20)


def test_ablated_positions_erase_the_value_slot(model):
    pos = path_patching.ablated_pos(model)
    values = list(VALUE_POSITIONS)
    assert torch.allclose(pos[values], pos[values[0]].expand(len(values), -1))
    assert torch.equal(pos[[0, -1]], model.W_pos[[0, model.cfg.n_ctx - 1]])


def test_derangement_moves_every_row():
    index = path_patching.derangement(1000, seed=5)
    assert sorted(index.tolist()) == list(range(1000))
    assert (index != torch.arange(1000)).all()
    assert torch.equal(index, path_patching.derangement(1000, seed=5))


def test_recovered_fraction():
    assert fa.recovered_fraction(clean=0.0, ablated=1.0, circuit=0.25) == pytest.approx(0.75)
    assert fa.recovered_fraction(clean=7.0, ablated=0.0, circuit=3.5) == pytest.approx(0.5)


def test_slug():
    assert slug("- H0.0 -> H1.0 K") == "minus_h0_0_to_h1_0_k"
    assert slug("+ H0.1 + H1.1") == "plus_h0_1_plus_h1_1"
    assert slug("full - H1.1") == "full_minus_h1_1"


def test_bad_inputs_raise(model, small):
    with pytest.raises(ValueError, match="unknown edge or path 'H9.9'.*paths:.*edges:"):
        path_patching.expand_edges(["H9.9"])
    with pytest.raises(ValueError, match="not the string"):
        path_patching.expand_edges("H0.1")
    with pytest.raises(ValueError, match="method must be one of"):
        path_patching.circuit_logits(model, small.toks, path_patching.HYPOTHESIS, method="zero")
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        path_patching.derangement(1)
    with pytest.raises(ValueError, match="nothing to recover"):
        fa.recovered_fraction(1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="finite"):
        fa.recovered_fraction(0.0, float("nan"), 0.5)
    with pytest.raises(ValueError, match="reserved"):
        fa.circuit_table(
            path_patching.PathAblator(model, small.toks), small.is_palindrome, {fa.CLEAN: path_patching.ALL}
        )
    with pytest.raises(ValueError, match="non-empty mapping"):
        fa.circuit_table(path_patching.PathAblator(model, small.toks), small.is_palindrome, {})
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
        path_patching.PathAblator(unsplit, small.toks)
    three_layers = SimpleNamespace(cfg=SimpleNamespace(n_layers=3, n_heads=2, attn_only=True, use_split_qkv_input=True))
    with pytest.raises(ValueError, match="2-layer, 2-head"):
        path_patching.PathAblator(three_layers, small.toks)
    no_start = small.toks.clone()
    no_start[:, 0] = 0
    with pytest.raises(ValueError, match="START"):
        path_patching.circuit_logits(model, no_start, path_patching.ALL)


# --- chapter 10's key numbers ----------------------------------------------------------------------

# (key, expected value to 5 significant digits). Losses and fractions are deterministic on the CPU and
# asserted to rel 1e-4, which is within the digits written; a rate over n inputs (n < 10,000) is then an exact count.
KEY_NUMBERS = [
    ("original500_clean_loss", 0.013713),  # key number 1
    ("clean_loss", 0.014897),
    ("clean_accuracy", 0.998),
    ("mean_ablated_loss", 5.0335),
    ("resample_ablated_loss", 3.826),
    ("mean_circuit_loss", 0.78959),
    ("resample_circuit_loss", 0.95482),
    ("mean_circuit_loss_recovered", 0.84564),
    ("resample_circuit_loss_recovered", 0.75338),
    ("mean_circuit_logit_diff_recovered", 0.69649),
    ("resample_circuit_logit_diff_recovered", 0.73143),
    ("mean_circuit_accuracy", 0.822),
    ("resample_circuit_accuracy", 0.854),
    ("original500_mean_circuit_loss_recovered", 0.83259),
    ("original500_resample_circuit_loss_recovered", 0.75227),
    ("original500_mean_circuit_logit_diff_recovered", 0.67036),
    ("original500_resample_circuit_logit_diff_recovered", 0.71731),
    ("original500_mean_circuit_accuracy", 0.794),
    ("original500_resample_circuit_accuracy", 0.862),
    # one path removed or added (loss recovered)
    ("mean_minus_positions_to_h0_0_qk_loss_recovered", 0.042234),
    ("resample_minus_tokens_to_h0_0_qk_loss_recovered", 0.072536),
    ("mean_minus_tokens_to_h0_0_v_loss_recovered", 0.41364),
    ("resample_minus_tokens_to_h0_0_v_loss_recovered", 0.71104),
    ("mean_plus_h0_0_to_h1_0_q_loss_recovered", 0.8725),
    # Q- against K-composition under mean ablation, in loss (hypothesis 0.78959): -0.13484 and +0.13474
    ("mean_plus_h0_0_to_h1_0_q_loss", 0.65475),
    ("mean_minus_h0_0_to_h1_0_k_loss", 0.92432),
    ("mean_plus_positions_to_h1_0_loss_recovered", 0.94962),
    ("mean_plus_h0_1_loss_recovered", 0.9099),
    ("resample_plus_h1_1_loss_recovered", 0.87822),
    ("resample_plus_direct_to_logits_loss_recovered", 0.75323),
    # the extended circuit and its parts
    ("mean_extended_accuracy", 0.996),
    ("resample_extended_accuracy", 0.994),
    ("mean_extended_minus_h0_1_loss_recovered", 0.94764),
    ("resample_extended_minus_h1_1_loss_recovered", 0.77901),
    ("mean_extended_minus_positions_to_h1_0_loss_recovered", 0.97561),
    # why resampling H1.1 is expensive
    ("resample_h1_1_error_rate", 0.121),
    ("resample_h1_1_borrowed_broken_rate", 0.242),
    ("resample_h1_1_borrowed_broken_given_error", 0.95868),
    ("resample_h1_1_palindromes_among_errors", 0.95868),
    # the hard subset (fraction of single-mismatch inputs called palindromes)
    ("hard_mean_full_model_pos_17", 1.0),
    ("hard_mean_full_model_pos_20", 0.06),
    ("hard_mean_hypothesis_pos_17", 0.69),
    ("hard_mean_hypothesis_pos_19", 0.69),
    ("hard_resample_hypothesis_pos_20", 0.73),
    ("hard_mean_plus_h0_1_pos_20", 0.84),
    ("hard_resample_plus_h1_1_pos_20", 0.29),
    ("hard_mean_plus_h0_1_plus_h1_1_pos_17", 0.94),
    ("hard_resample_plus_h0_1_plus_h1_1_pos_20", 0.03),
    ("hard_resample_full_minus_h1_1_pos_20", 0.77),
    # what H1.1 reads from H0.1, ablated at position 20 only or everywhere else (full model otherwise)
    ("hard_mean_full_minus_h0_1_pos_20", 0.05),
    ("hard_resample_full_minus_h0_1_pos_20", 0.36),
    ("hard_mean_h0_1_to_h1_1_at_20_only_pos_20", 0.17),
    ("hard_resample_h0_1_to_h1_1_at_20_only_pos_20", 0.38),
    ("hard_mean_h0_1_to_h1_1_except_at_20_pos_20", 0.03),
    ("hard_resample_h0_1_to_h1_1_except_at_20_pos_20", 0.05),
    ("hard_resample_h0_1_to_h1_1_at_20_only_pos_17", 0.88),
    ("hard_resample_h0_1_to_h1_1_at_20_only_pos_19", 0.85),
    # chapter 8's sweep at 20: misses and catches, and how many of each have H0.0 on the mirror more than on 20
    ("sweep_missed_pos_20", 2458.0),
    ("sweep_missed_h00_reads_mirror_pos_20", 1256.0),
    ("sweep_caught_pos_20", 27302.0),
    ("sweep_caught_h00_reads_mirror_pos_20", 5848.0),
    # the share of all single mismatches with H0.0 on the mirror more than on itself: at 20, and the largest at 11-19
    ("sweep_h00_reads_mirror_share_pos_20", 0.23871),
    ("sweep_h00_reads_mirror_share_max_other", 0.05699),
]


@pytest.mark.slow
@pytest.mark.parametrize("key, expected", KEY_NUMBERS, ids=[k for k, _ in KEY_NUMBERS])
def test_key_numbers(findings, key, expected):
    # deterministic CPU floats written to 5 significant digits: rel 1e-4 (a fraction of a count is then exact)
    assert findings["faithfulness"][key] == pytest.approx(expected, rel=1e-4, abs=1e-12)


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

# Every number the table cites: (claim, evidence label) -> expected, to 5 significant digits (asserted to rel 1e-4).
CITED = {
    (C00, "H0.0 attention to mirror from 11, palindromes"): 0.56242,
    (C00, "H0.0 attention to mirror from 12, palindromes"): 0.58031,
    (C00, "H0.0 attention to mirror from 13, palindromes"): 0.70005,
    (C00, "H0.0 attention to mirror from 14, palindromes"): 0.59096,
    (C00, "H0.0 attention to mirror from 15, palindromes"): 0.66238,
    (C00, "H0.0 attention to mirror from 16, palindromes"): 0.57346,
    (C00, "H0.0 attention to mirror from 17, palindromes"): 0.19647,
    (C00, "H0.0 attention to mirror from 18, palindromes"): 0.69195,
    (C00, "H0.0 attention to mirror from 19, palindromes"): 0.12538,
    (C00, "H0.0 attention to mirror from 20, palindromes"): 0.67135,
    (C01, "composed OV vote at 1"): 0.96062,
    (C01, "composed OV vote at 2"): 0.42148,
    (C01, "composed OV vote at 3"): -1.2959,
    (C01, "composed OV vote at 4"): 0.39189,
    (C01, "composed OV vote at 5"): -1.7326,
    (C01, "composed OV vote at 6"): -1.5856,
    (C01, "composed OV vote at 7"): -2.1289,
    (C01, "composed OV vote at 8"): -1.9714,
    (C01, "composed OV vote at 9"): -1.8237,
    (C01, "composed OV vote at 10"): -2.2243,
    (C01, "composed OV vote at 11"): 3.0236,
    (C01, "composed OV vote at 12"): 2.945,
    (C01, "composed OV vote at 13"): 4.1971,
    (C01, "composed OV vote at 14"): 3.4718,
    (C01, "composed OV vote at 15"): 2.9804,
    (C01, "composed OV vote at 16"): 3.1488,
    (C01, "composed OV vote at 17"): -0.29999,
    (C01, "composed OV vote at 18"): 3.0285,
    (C01, "composed OV vote at 19"): -1.1088,
    (C01, "composed OV vote at 20"): -3.1446,
    (C02, "circuit, loss recovered (mean)"): 0.84564,
    (C02, "circuit, loss recovered (resample)"): 0.75338,
    (C02, "without it (mean)"): 0.81879,
    (C02, "without it (resample)"): 0.56433,
    (C02, "full model, H1.0's keys mean-ablated: loss increase (200)"): 0.21214,
    (C03, "circuit, loss recovered (mean)"): 0.84564,
    (C03, "circuit, loss recovered (resample)"): 0.75338,
    (C03, "without it (mean)"): 0.69774,
    (C03, "without it (resample)"): 0.12717,
    (C04, "loss recovered (mean)"): 0.84564,
    (C04, "loss recovered (resample)"): 0.75338,
    (C04, "accuracy (mean)"): 0.822,
    (C04, "accuracy (resample)"): 0.854,
    (C04, "extended circuit, loss recovered (mean)"): 0.99883,
    (C04, "extended circuit, loss recovered (resample)"): 0.99745,
    (C05, "dataset loss, clean (500)"): 0.013713,
    (C05, "dataset loss, H1.1 mean-ablated (500)"): 0.026213,
    (C05, "loss increase, H1.1 mean-ablated (1000, seed 1)"): 0.021443,
    (C05, "loss increase, H1.1 resampled (1000, seed 1)"): 0.79277,
    (C05, "misses at 20, no ablation (100 bases)"): 0.04,
    (C05, "misses at 20, H1.1 mean-ablated (100 bases)"): 1.0,
    (C05, "H1.1 direct effect, pos-20 mismatches (300)"): 11.034,
    (C05, "H1.1 direct effect, palindromes (300)"): -1.8452,
    (C06, "loss increase, H0.1 mean-ablated (1000, seed 1)"): 0.094163,
    (C06, "loss increase, H0.1 resampled (1000, seed 1)"): 0.24173,
    (C06, "H0.1's part of H1.1's value at 20, pos-20 mismatches (300)"): 6.3699,
    (C06, "H0.1's part of H1.1's value at 20, palindromes (300)"): 1.1489,
    (C06, "dataset loss, clean (500)"): 0.013713,
    (C06, "dataset loss, H0.1 mean-ablated (500)"): 0.10291,
    (C06, "dataset loss, H0.1 mean-ablated, clean layer-1 scale (500)"): 0.019677,
    (C07, "dataset loss, clean (500)"): 0.013713,
    (C07, "dataset loss, H0.1 mean-ablated (500)"): 0.10291,
    (C07, "variability of H0.1's output"): 0.9494,
    (C07, "variability of H0.0's output"): 1.1559,
    (C08, "misses at 11"): 0.033905,
    (C08, "misses at 12"): 0.021808,
    (C08, "misses at 13"): 0.0041331,
    (C08, "misses at 14"): 0.017473,
    (C08, "misses at 15"): 0.026277,
    (C08, "misses at 16"): 0.026882,
    (C08, "misses at 17"): 1.0,
    (C08, "misses at 18"): 0.023286,
    (C08, "misses at 19"): 1.0,
    (C08, "misses at 20"): 0.082594,
    (C09, "H0.0 attention to mirror from 17, palindromes"): 0.19647,
    (C09, "H0.0 attention to mirror from 19, palindromes"): 0.12538,
    (C09, "H0.0 attention to mirror from 18, palindromes"): 0.69195,
    (C09, "H1.0 END attention on a broken 17"): 0.01472,
    (C09, "H1.0 END attention on a broken 19"): 0.0060202,
    (C10, "H1.0 END attention on a broken 20"): 0.00013153,
    (C10, "H1.1 END attention on a broken 20"): 0.82155,
    (C10, "H1.1 END attention on 20, palindromes"): 0.29657,
    (C10, "misses at 20, no ablation (100 bases)"): 0.04,
    (C10, "misses at 20, H1.1 mean-ablated (100 bases)"): 1.0,
    (C12, "H0.0 attention to mirror from 20, palindromes"): 0.67135,
    (C12, "H0.0 attention to mirror from 18, palindromes"): 0.69195,
    (C12, "H0.0 self-attention at 20, palindromes"): 0.13378,
    (C12, "H0.0 self-attention at 20, pair broken"): 0.52507,
    (C12, "H1.0 END attention on a broken 20"): 0.00013153,
    (C12, "composed OV vote at 20"): -3.1446,
    (C12, "missed at 20, Chapter 8's sweep"): 2458.0,
    (C12, "missed at 20, H0.0 at 20 on 1 more than on 20"): 1256.0,
    (C12, "caught at 20, Chapter 8's sweep"): 27302.0,
    (C12, "caught at 20, H0.0 at 20 on 1 more than on 20"): 5848.0,
    (C12, "single mismatches at 20, H0.0 on 1 more than on 20"): 0.23871,
    (C12, "same, highest at 11-19"): 0.05699,
    (C13, "H1.1 END attention on a broken 17"): 0.015215,
    (C13, "H1.1 END attention on a broken 19"): 0.020556,
    (C13, "H1.1 END attention on a broken 20"): 0.82155,
    (C14, "dataset loss, clean"): 0.013713,
    (C14, "dataset loss, H0.1 mean-ablated"): 0.10291,
    (C14, "dataset loss, H0.1 mean-ablated except at 20"): 0.013315,
    (C14, "dataset loss, H0.1 mean-ablated at 20 only"): 0.027138,
    (C14, "pos-20 accuracy, clean"): 0.93,
    (C14, "pos-20 accuracy, H0.1 mean-ablated at 20 only"): 0.86667,
    (C14, "pos-20 accuracy, H1.1 values mean-ablated at 20 only"): 0.19667,
    (C15, "loss increase, zero-ablated (500)"): 1.3532,
    (C15, "loss increase, mean-ablated (500)"): 0.089192,
    (C15, "loss increase, resampled (500)"): 0.1694,
    (C15, "layer-1 LayerNorm scale, zero-ablated / clean"): 0.85044,
    (C15, "loss, zero-ablated with clean scale"): 0.070601,
    (C15, "loss, clean (500)"): 0.013713,
    (C16, "generator inputs"): 200000.0,
    (C16, "false positives, generator inputs"): 0.002375,
    (C16, "false negatives, generator inputs"): 0.0,
    (C16, "share of false positives breaking only blind pairs"): 0.78316,
    (C16, "P(only blind pairs broken), closed form"): 0.0018471,
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
    C12: "Partly as a statement about H0.0's QK circuit",
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
        # deterministic CPU floats written to 5 significant digits: rel 1e-4 (counts and fractions of counts exact)
        assert value == pytest.approx(CITED[key], rel=1e-4, abs=1e-12), key


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
    # claim 3: a count over chapter 8's whole sweep, not "mostly"
    assert "of the 2,458 that Chapter 8's sweep misses, 1,256 (51%)" in verdicts[C12]
    assert "against 21% of the caught ones" in verdicts[C12] and "mostly" not in verdicts[C12]


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


def test_claim_3_counts_the_misses_that_read_the_mirror():
    """The row on claim 3 states the count and share of missed inputs at 20 where H0.0 reads the mirror, not
    'mostly', and follows the counts (hand-made numbers, no model)."""
    [claim] = [c for c in rc.CLAIMS if c.claim == C12]
    values = {e.label: 0.5 for e in claim.evidence} | {
        "H0.0 attention to mirror from 20, palindromes": 0.67,
        "H0.0 attention to mirror from 18, palindromes": 0.69,
        "H0.0 self-attention at 20, palindromes": 0.13,
        "H0.0 self-attention at 20, pair broken": 0.53,
        "missed at 20, Chapter 8's sweep": 400.0,
        "missed at 20, H0.0 at 20 on 1 more than on 20": 100.0,
        "caught at 20, Chapter 8's sweep": 1000.0,
        "caught at 20, H0.0 at 20 on 1 more than on 20": 600.0,
    }
    values |= {"single mismatches at 20, H0.0 on 1 more than on 20": 0.5, "same, highest at 11-19": 0.05}
    verdict = claim.verdict(values)
    # missed inputs read the mirror less often than caught ones: no per-input weak spot, the mean-based verdict stands
    assert verdict.startswith("Contradicted") and "mostly" not in verdict
    assert "of the 400 that Chapter 8's sweep misses, 100 (25%)" in verdict
    assert "against 60% of the caught ones" in verdict
    values["missed at 20, H0.0 at 20 on 1 more than on 20"] = 300.0
    verdict = claim.verdict(values)
    assert "300 (75%)" in verdict and verdict.startswith("Partly")  # misses read the mirror more, and 20 stands out
    values["same, highest at 11-19"] = 0.4  # 20 no longer stands out against the other positions
    assert claim.verdict(values).startswith("Contradicted")


@pytest.mark.slow
def test_reconciliation_without_other_modules_says_what_is_missing(findings):
    table = rc.reconciliation_table(findings={"faithfulness": findings["faithfulness"]})
    assert rc.missing_modules({"faithfulness": {}}) == ["blindspots", "backup"]
    unsettled = table[table["verdict"].str.startswith("Not settled here")]
    # the composed-OV and three composition claims rest on this chapter alone, the difference-vector row on no number
    assert len(unsettled) == len(table) - 5
    assert unsettled["evidence"].str.contains("missing").all()


def test_collect_findings_gathers_each_named_modules_key_findings(model, monkeypatch):
    """``collect_findings`` calls each named module's ``key_findings`` with the model and keys the result by the
    module's name (the session cache of ``tests/conftest.py`` gathers the same dictionaries)."""
    for name, module in rc.MODULES.items():
        monkeypatch.setattr(module, "key_findings", lambda m, name=name: {f"{name}_model_is_given": float(m is model)})
    assert rc.collect_findings(model, modules=["backup", "blindspots"]) == {
        "backup": {"backup_model_is_given": 1.0},
        "blindspots": {"blindspots_model_is_given": 1.0},
    }
    assert list(rc.collect_findings(model)) == list(rc.FINDINGS_MODULES)
