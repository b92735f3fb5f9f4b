"""The processed weights satisfy FINDINGS.md's invariants and reproduce key numbers 1 and 6."""

import einops
import pytest
import torch

from palindrome import PalindromeDataset, create_model, evaluate
from palindrome.adversarial import HANDMADE_ADVERSARIAL, handmade_adversarial_probs
from palindrome.tokens import is_palindrome


def _zero(x):
    torch.testing.assert_close(x, torch.zeros_like(x), atol=1e-6, rtol=0)


def test_architecture(model):
    cfg = model.cfg
    assert (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head) == (2, 2, 28, 14)
    assert (cfg.n_ctx, cfg.d_vocab, cfg.d_vocab_out, cfg.attn_only) == (22, 33, 2, True)
    assert cfg.use_attn_result and cfg.use_split_qkv_input and cfg.normalization_type == "LN"


def test_processed_weight_invariants(model):
    for ln in [model.blocks[0].ln1, model.blocks[1].ln1, model.ln_final]:
        torch.testing.assert_close(ln.w, torch.ones_like(ln.w))
        _zero(ln.b)
    _zero(einops.reduce(model.W_U, "d_model d_vocab -> d_model", "mean"))
    _zero(einops.reduce(model.W_U, "d_model d_vocab -> d_vocab", "mean"))
    _zero(einops.reduce(model.W_O, "layer head d_head d_model -> layer head d_head", "mean"))
    _zero(einops.reduce(model.b_O, "layer d_model -> layer", "mean"))
    _zero(einops.reduce(model.W_E, "token d_model -> token", "mean"))
    _zero(einops.reduce(model.W_pos, "position d_model -> position", "mean"))
    _zero(model.b_V)


def test_processing_does_not_change_the_function(model, checkpoint_path):
    raw = create_model(device="cpu")
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    raw.load_state_dict({k: v for k, v in state.items() if k in dict(raw.named_parameters())}, strict=False)
    toks = PalindromeDataset(200).toks
    with torch.inference_mode():
        a = raw(toks)[:, -1].log_softmax(-1)
        b = model(toks)[:, -1].log_softmax(-1)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_key_number_1_loss_on_500(model):
    ds = PalindromeDataset(500)
    metrics = evaluate(model, ds.toks, ds.is_palindrome)
    assert metrics.loss == pytest.approx(0.013713, abs=5e-6)
    assert metrics.accuracy == pytest.approx(0.998)
    assert metrics.logit_diff > 5


def test_key_number_6_handmade_adversarial(model):
    assert is_palindrome(HANDMADE_ADVERSARIAL).tolist() == [0, 0, 0, 0]
    probs = handmade_adversarial_probs(model)
    assert [round(p, 3) for p in probs.tolist()] == [0.997, 0.998, 0.981, 0.997]


def test_metrics_on_hand_built_logits():
    # Three END logit pairs with hand-computed answers: the metrics are read at the last position of a 3-d input.
    from palindrome import metrics

    logits = torch.tensor([[0.0, 2.0], [1.0, 0.0], [0.5, 0.5]])
    labels = [1, 1, 0]
    assert metrics.logit_diff_from_logits(logits, labels) == pytest.approx((2.0 - 1.0 + 0.0) / 3)
    assert metrics.accuracy_from_logits(logits, labels) == pytest.approx(
        2 / 3
    )  # a tie is class 0: argmax takes the first
    expected = (
        torch.log1p(torch.exp(torch.tensor(-2.0)))
        + torch.log1p(torch.exp(torch.tensor(1.0)))
        + torch.log(torch.tensor(2.0))
    ) / 3
    assert metrics.loss_from_logits(logits, labels) == pytest.approx(expected.item(), rel=1e-6)
    three_d = torch.stack([torch.full_like(logits, 9.0), logits], dim=1)  # (batch, seq=2, 2): only the last counts
    assert metrics.accuracy_from_logits(three_d, labels) == pytest.approx(2 / 3)
    for bad, match in [
        (torch.zeros(3, 3), r"shape \(batch, 2\) or \(batch, seq, 2\), got \(3, 3\)"),
        (torch.zeros(3), r"got \(3,\)"),
        (torch.tensor([[0.0, float("nan")]] * 3), "NaN or inf here means the model or its inputs are broken"),
    ]:
        with pytest.raises(ValueError, match=match):
            metrics.loss_from_logits(bad, labels)


def test_metrics_of_the_model_agree_with_evaluate(model):
    from palindrome import metrics

    ds = PalindromeDataset(64, seed=3)
    whole = evaluate(model, ds.toks, ds.is_palindrome)
    assert metrics.logit_diff(model, ds.toks, ds.is_palindrome) == whole.logit_diff
    assert metrics.accuracy(model, ds.toks, ds.is_palindrome) == whole.accuracy
    assert metrics.cross_entropy(model, ds.toks, ds.is_palindrome) == whole.loss
    p = metrics.p_palindrome(model, ds.toks)
    assert torch.equal(p, metrics.end_logits(model, ds.toks).softmax(-1)[:, 1])
    assert whole.accuracy == ((p > 0.5).long() == ds.is_palindrome).float().mean().item()
