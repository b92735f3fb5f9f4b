"""Key numbers of the direct-logit-attribution and V-composition chapters (3 and 5)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from palindrome.attribution import (
    COMPONENTS,
    by_half,
    component_attribution,
    component_separation,
    composed_ov_circuit,
    decomposition_error,
    direct_effect,
    direct_effect_from_cache,
    final_ln_scale,
    final_ln_scale_stats,
    format_table,
    h00_output_attribution,
    h00_value_attribution,
    head_outputs,
    ln_rescaling_error,
    output_variability,
    residual_components,
    self_attention,
    separation_auc,
    sign_agreement,
    split_by_mismatch,
    value_attribution_std,
    variability_table,
    weak_positions,
)
from palindrome.circuits import nonpal_direction
from palindrome.constants import FIRST_HALF, SECOND_HALF, SEQ_LEN
from palindrome.data import PalindromeDataset
from palindrome.metrics import end_logits


@pytest.fixture(scope="module")
def data100():
    return PalindromeDataset(100)


def test_components_sum_to_resid_post(model, data100):
    parts, names = residual_components(model, data100.toks[:8])
    assert names == list(COMPONENTS)
    assert parts.shape == (len(COMPONENTS), 8, SEQ_LEN, model.cfg.d_model)
    assert decomposition_error(model, data100.toks) < 1e-4


def test_final_layernorm_only_rescales(model, data100):
    assert ln_rescaling_error(model, data100.toks) < 1e-4
    assert sign_agreement(model, data100.toks) == 1.0
    stats = final_ln_scale_stats(model, data100.toks, data100.is_palindrome)
    assert list(stats.index) == ["palindrome", "non-palindrome", "all"]
    assert stats.loc["non-palindrome", "mean"] > 2 * stats.loc["palindrome", "mean"]


def test_h10_carries_the_verdict(model, data100):
    attribution = component_attribution(model, data100.toks)
    assert attribution.shape == (len(COMPONENTS), 100)
    table = component_separation(model, data100.toks, data100.is_palindrome)
    assert table.loc["H1.0", "AUC"] > 0.99
    assert 0.6 < table.loc["H1.1", "AUC"] < 0.9
    for name in ("embed", "pos_embed", "b_O"):  # constant at END
        assert table.loc[name, "AUC"] == 0.5
    assert table.loc["H1.0", "mean (non-palindrome)"] == pytest.approx(17.6, abs=0.1)


def test_value_attribution_key_numbers(model, data100):
    # FINDINGS #4 and #5
    assert h00_value_attribution(model, data100.toks[2], [13]).item() == pytest.approx(20.1647, abs=1e-3)
    assert value_attribution_std(model, data100.toks) == pytest.approx(1.6622, abs=1e-3)
    assert h00_value_attribution(model, data100.toks).shape == (100, 20)


def test_composed_circuit_sign_pattern(model):
    circuit = composed_ov_circuit(model)
    assert circuit.shape == (SEQ_LEN,)
    weak = weak_positions(circuit)
    assert weak == (1, 2, 4, 17, 19, 20)
    assert all(circuit[p] < 0 for p in FIRST_HALF if p not in weak)
    assert all(circuit[p] > 0 for p in SECOND_HALF if p not in weak)


def test_mismatch_mechanism(model, data100):
    self_attn = split_by_mismatch(self_attention(model, data100.toks, 0, 0, SECOND_HALF), data100.toks)
    assert self_attn["mismatched"].mean() > self_attn["matched"].mean() + 0.2
    strong = [p for p in SECOND_HALF if p not in (17, 19, 20)]
    votes = split_by_mismatch(h00_output_attribution(model, data100.toks, strong), data100.toks, strong)
    assert (votes["mismatched"] > 0).float().mean() > 0.95
    assert votes["matched"].mean() < 0


def test_helpers():
    assert separation_auc(torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0, 0, 1])) == 1.0
    assert separation_auc(torch.tensor([1.0, 1.0]), torch.tensor([0, 1])) == 0.5
    halves = by_half(torch.arange(SEQ_LEN).float(), range(SEQ_LEN))
    assert set(halves) == {"first half", "second half", "START/END"}
    assert halves["first half"][1] == 1 and halves["first half"][11].isnan()
    text = format_table(pd.DataFrame({"x": [-0.00001, 1.26]}), 1)
    assert "-0.0" not in text and "1.3" in text


def test_bad_inputs(model, data100):
    with pytest.raises(ValueError, match="positions"):
        h00_value_attribution(model, data100.toks, [0, 22])
    with pytest.raises(ValueError, match="positions"):
        split_by_mismatch(torch.zeros(100, 1), data100.toks, [0])
    with pytest.raises(ValueError, match="shape"):
        split_by_mismatch(torch.zeros(100, 3), data100.toks)
    with pytest.raises(ValueError, match="at least 2"):
        value_attribution_std(model, data100.toks[:1])
    with pytest.raises(ValueError, match="one value per position"):
        weak_positions(torch.zeros(5))
    with pytest.raises(ValueError, match="fraction"):
        weak_positions(torch.zeros(SEQ_LEN), fraction=1.5)
    with pytest.raises(ValueError, match="layer"):
        composed_ov_circuit(model, first=(2, 0))
    with pytest.raises(ValueError, match="earlier layer"):
        composed_ov_circuit(model, first=(1, 0), second=(1, 1))
    with pytest.raises(ValueError, match="head"):
        self_attention(model, data100.toks, 0, 2)
    with pytest.raises(ValueError, match="palindrome and one non-palindrome"):
        separation_auc(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        component_separation(model, data100.toks, data100.is_palindrome[:5])
    with pytest.raises(ValueError, match="START"):
        component_attribution(model, torch.zeros(1, SEQ_LEN, dtype=torch.long))
    with pytest.raises(ValueError, match="columns"):
        format_table(pd.DataFrame({"x": [1.0]}), {"y": 1})


# --- direct effects and head-output variability (moved from chapter 9's module) -----------------------------------


def test_direct_effects_of_all_components_add_up_to_the_logit_difference(model, data100):
    toks = data100.toks[:20]
    logits = end_logits(model, toks)
    heads = sum(direct_effect(model, toks, layer, head) for layer in range(2) for head in range(2))
    parts, _ = residual_components(model, toks)
    others = torch.cat([parts[:2], parts[-1:]])[:, :, -1] @ nonpal_direction(model)
    scale = final_ln_scale(model, toks)
    bias = (model.b_U[0] - model.b_U[1]).item()
    total = heads + others.sum(0).cpu() / scale + bias
    torch.testing.assert_close(total, (logits[:, 0] - logits[:, 1]).cpu(), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="cache lacks"):
        direct_effect_from_cache(model, {}, 1, 1)


def test_variability_of_identical_inputs_is_zero(model, data100):
    same = data100.toks[:1].repeat(3, 1)
    assert output_variability(model, same, 0, 1)[1:].abs().max() < 1e-4
    outputs = head_outputs(model, same)
    assert set(outputs) == {(0, 0), (0, 1), (1, 0), (1, 1)} and outputs[(0, 1)].shape == (3, SEQ_LEN, 28)
    table = variability_table(model, data100.toks[:10])
    assert list(table.columns) == ["H0.0", "H0.1", "H1.0", "H1.1"] and table.index[-1] == "pooled 1..END"
    with pytest.raises(ValueError, match="at least 2"):
        output_variability(model, same[:1], 0, 1)
