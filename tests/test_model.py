"""The processed weights satisfy FINDINGS.md's invariants and reproduce key numbers 1 and 6."""

import math

import einops
import pytest
import torch

from palindrome import PalindromeDataset, create_model, evaluate
from palindrome.chapters.adversarial import HANDMADE_ADVERSARIAL, handmade_adversarial_probs
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
    # Four END logit pairs with hand-computed answers. Row by row (label: correct - incorrect, argmax right?):
    # (0, 2) 1: +2 yes; (1, 0) 0: +1 yes; (0.5, 0.5) 0: 0 yes (a tie is class 0); (4, 0) 1: -4 no.
    from palindrome import metrics

    logits = torch.tensor([[0.0, 2.0], [1.0, 0.0], [0.5, 0.5], [4.0, 0.0]])
    labels = [1, 0, 0, 1]
    assert metrics.logit_diff_from_logits(logits, labels) == pytest.approx((2.0 + 1.0 + 0.0 - 4.0) / 4)
    assert metrics.accuracy_from_logits(logits, labels) == pytest.approx(3 / 4)
    # cross-entropy of a row = log(1 + exp(incorrect - correct))
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0)) + math.log(2.0) + math.log1p(math.exp(4.0))) / 4
    assert metrics.loss_from_logits(logits, labels) == pytest.approx(expected, rel=1e-6)
    assert metrics.loss_from_logits(torch.tensor([[3, 3]]), torch.tensor([1])) == pytest.approx(math.log(2.0))
    # (batch, seq=3, 2): only the last position counts; the middle one holds the pairs swapped (accuracy 1/2 there)
    three_d = torch.stack([torch.full_like(logits, 9.0), logits.flip(-1), logits], dim=1)
    assert metrics.accuracy_from_logits(three_d, labels) == pytest.approx(3 / 4)
    assert metrics.logit_diff_from_logits(three_d, labels) == pytest.approx(-1 / 4)
    assert metrics.loss_from_logits(three_d, labels) == pytest.approx(expected, rel=1e-6)


def test_metrics_refuse_bad_logits_and_labels_with_the_whole_message():
    from palindrome import metrics

    labels = [1, 0, 0]
    broken = r"logits must be finite; NaN or inf here means the model or its inputs are broken; it holds NaN or inf"
    for bad, message in [
        (torch.zeros(3, 3), r"logits must have shape \(batch, 2\) or \(batch, seq, 2\), got \(3, 3\)"),
        (torch.zeros(3), r"logits must have shape \(batch, 2\) or \(batch, seq, 2\), got \(3,\)"),
        (torch.zeros(3, 2, 2, 2), r"logits must have shape \(batch, 2\) or \(batch, seq, 2\), got \(3, 2, 2, 2\)"),
        (torch.tensor([[0.0, float("nan")]] * 3), broken + r" \(shape \(3, 2\)\)"),
        (torch.full((3, 4, 2), float("-inf")), broken + r" \(shape \(3, 4, 2\)\)"),
        (
            "logits",
            r"logits must be a tensor or \(nested\) list of numbers; NaN or inf here means the model or its "
            r"inputs are broken, got 'logits' \(str\)",
        ),
        (torch.zeros(2, 2), r"got 3 labels for 2 sequences; they must match"),
    ]:
        for metric in (metrics.loss_from_logits, metrics.logit_diff_from_logits, metrics.accuracy_from_logits):
            with pytest.raises(ValueError, match=f"^{message}$"):
                metric(bad, labels)
    for metric in (metrics.loss_from_logits, metrics.logit_diff_from_logits, metrics.accuracy_from_logits):
        with pytest.raises(ValueError, match=r"^labels must be 0 \(not palindrome\) or 1 \(palindrome\)$"):
            metric(torch.zeros(2, 2), [0, 2])


class _FakeModel:
    """A model on the meta device whose logits at END are zeros: it records the tokens it was given."""

    cfg = type("Cfg", (), {"device": torch.device("meta")})()

    def __call__(self, toks):
        self.seen = toks
        return torch.zeros(toks.shape[0], toks.shape[1], 2, device=toks.device)


def test_end_logits_sends_the_tokens_to_the_models_device():
    from palindrome import metrics
    from palindrome.constants import END, START

    fake = _FakeModel()
    seq = [START] + [0] * 20 + [END]
    assert metrics.end_logits(fake, seq).shape == (1, 2)
    assert fake.seen.device.type == "meta" and fake.seen.shape == (1, 22)


def test_metrics_of_the_model_agree_with_evaluate(model):
    from palindrome import metrics

    ds = PalindromeDataset(64, seed=3)
    whole = evaluate(model, ds.toks, ds.is_palindrome)
    assert metrics.logit_diff(model, ds.toks, ds.is_palindrome) == whole.logit_diff
    assert metrics.accuracy(model, ds.toks, ds.is_palindrome) == whole.accuracy
    assert metrics.cross_entropy(model, ds.toks, ds.is_palindrome) == whole.loss
    p = metrics.p_palindrome(model, ds.toks)
    with torch.inference_mode():
        at_end = model(ds.toks)[:, 21]  # the END position, read from the model directly
    assert torch.equal(metrics.end_logits(model, ds.toks), at_end)
    # P(palindrome) = 1 / (1 + exp(logit_not - logit_palindrome)), the two-class softmax written out
    torch.testing.assert_close(p, 1 / (1 + torch.exp(at_end[:, 0] - at_end[:, 1])))
    assert whole.accuracy == ((p > 0.5).long() == ds.is_palindrome).float().mean().item()
