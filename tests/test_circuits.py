"""H0.0's QK circuit (key number 2, the lambda), LayerNorm-scale statistics and weight invariants."""

import pytest
import torch

from palindrome.circuits import (
    REPEATED_TOKENS,
    TOLERANCE,
    attention_from_embeddings,
    attention_pattern,
    attention_to,
    attention_to_equal_tokens,
    constant_scale_effect,
    diagonal_argmax_fraction,
    diagonal_argmax_rows,
    embedding_qk_circuit,
    layer0_scale,
    ln_scale_stats,
    mirror_attention,
    mirror_attention_by_match,
    nonpal_direction,
    ov_circuit,
    positional_qk_circuit,
    processed_weight_deviations,
    qk_circuit,
    same_token_is_row_minimum,
    same_token_score,
)
from palindrome.data import PalindromeDataset
from palindrome.model import create_model


@pytest.fixture(scope="module")
def data():
    return PalindromeDataset(1000)


@pytest.fixture(scope="module")
def stats(model, data):
    return ln_scale_stats(model, data.toks, 0)


def test_head_matrices(model):
    torch.testing.assert_close(nonpal_direction(model), model.W_U[:, 0] - model.W_U[:, 1])
    torch.testing.assert_close(ov_circuit(model, 1, 0).AB, model.W_V[1, 0] @ model.W_O[1, 0])
    torch.testing.assert_close(qk_circuit(model, 0, 1).AB, model.W_Q[0, 1] @ model.W_K[0, 1].T)


def test_ln_scale_stats(stats):
    assert stats.overall_mean == pytest.approx(0.2138, abs=5e-4)
    assert stats.max_cv == pytest.approx(0.116, abs=0.002)
    # START and END are fixed tokens at fixed positions: their scale never varies.
    assert stats.cv[0].item() == pytest.approx(0.0, abs=1e-4)
    assert stats.cv[-1].item() == pytest.approx(0.0, abs=1e-4)
    assert 0.18 < stats.mean.min().item() and stats.mean.max().item() < 0.26


def test_constant_scale_effect(model, data, stats):
    effect = constant_scale_effect(model, data.toks, 0, 0, stats.overall_mean)
    assert effect.mean_tv == pytest.approx(0.116, abs=0.002)
    assert effect.argmax_agreement == pytest.approx(0.897, abs=0.002)


def test_key_number_2_token_circuit_is_diagonal(model, stats):
    circuit = embedding_qk_circuit(model, 0, 0, stats.overall_mean)
    assert circuit.shape == (33, 33)
    torch.testing.assert_close(circuit.sum(-1), torch.ones(33))
    assert diagonal_argmax_fraction(circuit[:31]) == 1.0
    assert int(diagonal_argmax_rows(circuit[:31]).sum()) == 31
    # A row's argmax does not depend on the constant scale.
    assert diagonal_argmax_fraction(embedding_qk_circuit(model, 0, 0, 1.0)[:31]) == 1.0


def test_lambda_of_position_circuit(model, stats):
    circuit = positional_qk_circuit(model, 0, 0, stats.overall_mean)
    assert torch.equal(circuit.triu(1), torch.zeros_like(circuit))  # causal
    table = mirror_attention(circuit)
    assert table.index[table.mirror_is_top_earlier].tolist() == [11, 13, 14, 15, 16, 18, 20]
    assert table.loc[17, "attn_to_mirror"] < 0.1 and table.loc[19, "attn_to_mirror"] < 0.1
    assert table.loc[17, "attn_to_self"] > table.loc[17, "attn_to_top_earlier"]
    assert table.loc[19, "attn_to_self"] > table.loc[19, "attn_to_top_earlier"]


def test_real_mirror_attention_has_gaps_at_17_and_19(model, data):
    table = mirror_attention_by_match(model, data.toks, 0, 0)
    others = table.drop(index=[17, 19])
    assert others.matched_to_mirror.min() > 0.5
    assert table.loc[17, "matched_to_mirror"] == pytest.approx(0.193, abs=0.005)
    assert table.loc[19, "matched_to_mirror"] == pytest.approx(0.124, abs=0.005)
    assert table.mismatched_to_mirror.max() < 0.21
    assert (table.n_matched + table.n_mismatched == 1000).all()


def test_repeated_tokens_need_positions(model):
    without = attention_from_embeddings(model, REPEATED_TOKENS, 0, use_positions=False)[0]
    with_pos = attention_from_embeddings(model, REPEATED_TOKENS, 0, use_positions=True)[0]
    torch.testing.assert_close(with_pos, attention_pattern(model, REPEATED_TOKENS, 0, 0)[0], atol=1e-5, rtol=0)
    even = attention_to_equal_tokens(without, REPEATED_TOKENS, 18)
    assert even.index.tolist() == [3, 8, 13, 18]
    assert even.to_numpy() == pytest.approx([0.25] * 4, abs=0.02)
    assert attention_to_equal_tokens(with_pos, REPEATED_TOKENS, 18)[3] > 0.7
    assert attention_to_equal_tokens(with_pos, REPEATED_TOKENS, 13)[8] > 0.7


def test_processed_weight_invariants(model):
    deviations = processed_weight_deviations(model)
    assert len(deviations) == 11
    assert max(deviations.values()) < TOLERANCE


def test_invariant_check_detects_raw_weights():
    deviations = processed_weight_deviations(create_model(device="cpu"))
    assert deviations["W_E mean over d_model"] > TOLERANCE


@pytest.mark.parametrize(
    "layer, head, message",
    [(2, 0, r"layer .* 0\.\.1"), (-1, 0, r"layer .* 0\.\.1"), (0, 2, r"head .* 0\.\.1"), (0, True, r"head .* 0\.\.1")],
)
def test_bad_layer_or_head_raise(model, layer, head, message):
    for fn in (ov_circuit, qk_circuit):
        with pytest.raises(ValueError, match=message):
            fn(model, layer, head)
    with pytest.raises(ValueError, match=message):
        embedding_qk_circuit(model, layer, head, 0.2)
    with pytest.raises(ValueError, match=message):
        positional_qk_circuit(model, layer, head, 0.2)


def test_bad_arguments_raise(model):
    with pytest.raises(ValueError, match=r"layer .* 0\.\.1"):
        ln_scale_stats(model, REPEATED_TOKENS, 5)
    with pytest.raises(ValueError, match="at least 2 sequences"):
        ln_scale_stats(model, REPEATED_TOKENS, 0)
    with pytest.raises(ValueError, match=r"head .* 0\.\.1"):
        attention_from_embeddings(model, REPEATED_TOKENS, 3, use_positions=True)
    with pytest.raises(ValueError, match="scale must be a positive"):
        embedding_qk_circuit(model, 0, 0, 0.0)
    with pytest.raises(ValueError, match="START"):
        attention_pattern(model, [0] * 22, 0, 0)
    with pytest.raises(ValueError, match="square"):
        mirror_attention(torch.zeros(22, 21))
    with pytest.raises(ValueError, match="at least as many columns"):
        diagonal_argmax_rows(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"query must be an integer >= 0 and <= 21 \(a position\)"):
        attention_to_equal_tokens(torch.zeros(22, 22), REPEATED_TOKENS, 22)


# --- attention between two positions and same-token scores (moved from chapter 9's module) ------------------------


def test_attention_to_reads_the_pattern(model, data):
    toks = data.toks[:10]
    pattern = attention_pattern(model, toks, 1, 1)
    torch.testing.assert_close(attention_to(model, toks, 1, 1, 21, 20), pattern[:, 21, 20])
    with pytest.raises(ValueError, match="causal"):
        attention_to(model, toks, 1, 1, 5, 20)
    with pytest.raises(ValueError, match="dest must be an integer >= 0 and <= 21, got 22"):
        attention_to(model, toks, 1, 1, 22, 0)
    with pytest.raises(ValueError, match="layer must be"):
        attention_to(model, toks, 2, 0, 21, 20)


def test_same_token_scores_by_hand(model, data):
    scale = layer0_scale(model, data.toks)
    assert scale == pytest.approx(ln_scale_stats(model, data.toks, 0).overall_mean, rel=1e-3)
    scores = embedding_qk_circuit(model, 0, 0, scale, pattern=False)[:31, :31]
    others = (scores.sum(-1) - scores.diagonal()) / 30
    assert same_token_score(model, 0, 0, scale) == pytest.approx((scores.diagonal() - others).mean().item(), rel=1e-5)
    lowest = (scores.argmin(-1) == torch.arange(31)).float().mean().item()
    assert same_token_is_row_minimum(model, 0, 0, scale) == pytest.approx(lowest)
