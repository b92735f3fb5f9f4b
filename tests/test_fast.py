"""The fast END-logit path agrees with HookedTransformer and rejects what it cannot handle."""

from __future__ import annotations

import pytest
import torch

from palindrome import fast as fast_module
from palindrome.constants import END, SEQ_LEN, START
from palindrome.fast import (
    EndOnlyForward,
    check_architecture,
    num_threads,
    random_tokens,
)
from palindrome.metrics import end_logits
from palindrome.model import create_model
from palindrome.tokens import validate_tokens

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def toks() -> torch.Tensor:
    return random_tokens(10_000, torch.Generator().manual_seed(2023))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hooked_end_logits(model, toks: torch.Tensor) -> torch.Tensor:
    """HookedTransformer's ``model(toks)[:, -1]``, in chunks (much faster than one huge batch)."""
    with torch.inference_mode():
        return torch.cat([model(chunk)[:, -1] for chunk in toks.split(500)])


def perturbed_model(seed: int):
    """A fresh, unprocessed model with every weight, bias and LayerNorm parameter made non-trivial."""
    model = create_model(seed=seed, device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator))
    return model


def test_random_tokens_are_valid(toks):
    assert toks.shape == (10_000, SEQ_LEN)
    assert torch.equal(validate_tokens(toks), toks)
    assert (toks[:, 0] == START).all() and (toks[:, -1] == END).all()


def test_matches_hooked_transformer_on_real_checkpoint(model, toks):
    diff = (end_logits(model, toks, fast=True) - hooked_end_logits(model, toks)).abs().max().item()
    assert diff < TOLERANCE


def test_matches_hooked_transformer_on_fresh_unprocessed_model(toks):
    model = create_model(seed=7, device="cpu")
    diff = (end_logits(model, toks, fast=True) - hooked_end_logits(model, toks)).abs().max().item()
    assert diff < TOLERANCE


def test_uses_layernorm_weights_and_every_bias(toks):
    model = perturbed_model(seed=11)
    ln = model.blocks[1].ln1
    assert ln.w.sub(1).abs().min() > 0 and ln.b.abs().min() > 0  # really unprocessed
    subset = toks[:1000]
    diff = (end_logits(model, subset, fast=True) - hooked_end_logits(model, subset)).abs().max().item()
    assert diff < TOLERANCE


def test_gradients_match_hooked_transformer(toks):
    model = perturbed_model(seed=3)
    batch = toks[:256]
    labels = torch.randint(0, 2, (256,), generator=torch.Generator().manual_seed(0))

    def grads(logits: torch.Tensor) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(logits, labels).backward()
        return {
            name: (p.grad if p.grad is not None else torch.zeros_like(p)).clone()
            for name, p in model.named_parameters()
        }

    fast = grads(EndOnlyForward.from_model(model)(batch))
    hooked = grads(model(batch)[:, -1])
    for name in hooked:
        scale = max(1.0, hooked[name].abs().max().item())
        assert (fast[name] - hooked[name]).abs().max().item() < 1e-4 * scale, name


@pytest.mark.parametrize("threads", [1, 2])
def test_chunking_does_not_change_logits(model, toks, threads):
    fast = EndOnlyForward.from_model(model)
    whole = fast.end_logits(toks[:100])
    with num_threads(threads):  # 2: chunks run side by side in worker threads
        chunked = fast.end_logits(toks[:100], batch_size=7)
        assert torch.get_num_threads() == threads
    assert torch.allclose(chunked, whole, atol=1e-6)
    assert torch.get_num_threads() == 1  # restored


def test_sees_later_weight_updates(toks):
    model = create_model(seed=5, device="cpu")
    fast = EndOnlyForward.from_model(model)
    before = fast.end_logits(toks[:10])
    with torch.no_grad():
        model.unembed.b_U.add_(torch.tensor([1.0, -1.0]))
    assert torch.allclose(fast.end_logits(toks[:10]) - before, torch.tensor([1.0, -1.0]), atol=1e-5)


def test_accepts_a_single_list_sequence(model, toks):
    row = toks[0]
    assert torch.allclose(end_logits(model, row.tolist(), fast=True), end_logits(model, row[None], fast=True))


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda t: t[:, :-1], "22 tokens"),
        (lambda t: t.float(), "integers"),
        (lambda t: torch.cat([t[:, :-1], t[:, :1]], dim=1), "END"),
        (lambda t: torch.cat([t[:, -1:], t[:, 1:]], dim=1), "START"),
        (lambda t: t.index_fill(1, torch.tensor([5]), 40), "0..32"),
        (lambda t: t.index_fill(1, torch.tensor([5]), END), "values 0..30"),
        (lambda t: t[:0], "empty"),
    ],
)
def test_bad_tokens_raise_value_error(model, toks, bad, message):
    with pytest.raises(ValueError, match=message):
        end_logits(model, bad(toks[:4]), fast=True)
    with pytest.raises(ValueError, match=message):
        EndOnlyForward.from_model(model)(bad(toks[:4]))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_size_raises_value_error(model, toks, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        end_logits(model, toks[:4], batch_size=batch_size, fast=True)


@pytest.mark.parametrize("n", [0, -3, 1.5])
def test_bad_random_token_count_raises_value_error(n):
    with pytest.raises(ValueError, match="n must be"):
        random_tokens(n)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n_layers": 1}, "n_layers"), ({"normalization_type": None}, "normalization_type")],
)
def test_other_architectures_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_architecture(create_model(device="cpu", **kwargs))


@pytest.mark.parametrize("kwargs, message", [({"half_length": 5}, "n_ctx"), ({"n_layers": 1}, "n_layers")])
def test_models_of_other_sizes_are_rejected_where_the_classifier_shape_is_needed(kwargs, message):
    # The fast path itself runs any length of sequence; chapter 12's levels need the classifier's sizes.
    model = create_model(device="cpu", **kwargs)
    with pytest.raises(ValueError, match=message):
        check_architecture(model, classifier_shape=True)
    if "half_length" in kwargs:
        assert check_architecture(model) is model
    with pytest.raises(ValueError, match="classifier_shape must be"):
        check_architecture(model, classifier_shape="yes")


def test_non_models_are_rejected():
    with pytest.raises(ValueError, match="HookedTransformer"):
        EndOnlyForward.from_model(torch.nn.Linear(2, 2))


def test_inference_path_matches_the_differentiable_path(toks):
    # end_logits (bounded softmax, centred tables, folded LayerNorm) against forward (plain softmax).
    model = perturbed_model(seed=19)
    fast = EndOnlyForward.from_model(model)
    with torch.no_grad():
        plain = fast(toks[:2000])
    assert (fast.end_logits(toks[:2000]) - plain).abs().max().item() < TOLERANCE


def sharpened_model(factor: float):
    """A fresh model whose layer-0 scores are ``factor`` times larger (W_Q scaled)."""
    model = create_model(seed=23, device="cpu")
    with torch.no_grad():
        model.blocks[0].attn.W_Q.mul_(factor)
        model.blocks[0].attn.b_Q.mul_(factor)
    return model


def test_rows_far_below_their_bound_fall_back_to_plain_softmax(toks, monkeypatch):
    # With very sharp layer-0 scores, some query rows score far below the best key they could
    # have met, so exp(score - bound) would underflow: those chunks must take the plain path.
    model = sharpened_model(400.0)
    fast = EndOnlyForward.from_model(model)
    with torch.inference_mode():
        _, smallest = fast.logits_from_inference_tables(fast.inference_tables(), fast.validate(toks[:512]))
    assert smallest.item() < fast_module.MIN_NORMALISER  # the case this test is about really occurs
    calls = []
    plain_path = EndOnlyForward.logits_from_tables
    monkeypatch.setattr(EndOnlyForward, "logits_from_tables", lambda self, *a: calls.append(1) or plain_path(self, *a))
    logits = fast.end_logits(toks[:2048], batch_size=512)
    assert calls, "no chunk took the plain softmax path"
    hooked = hooked_end_logits(model, toks[:2048])
    assert torch.isfinite(logits).all()
    assert (logits - hooked).abs().max().item() < TOLERANCE * max(1.0, hooked.abs().max().item())


def test_no_fallback_for_ordinary_models(model, toks):
    fast = EndOnlyForward.from_model(model)
    with torch.inference_mode():
        _, smallest = fast.logits_from_inference_tables(fast.inference_tables(), fast.validate(toks[:2048]))
    assert smallest.item() > 1e-3  # far above MIN_NORMALISER: the bounded softmax is used as is
