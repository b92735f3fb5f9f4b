"""The hooks infrastructure: cached runs and the LayerNorm-scale hook."""

from __future__ import annotations

import pytest
import torch
from transformer_lens.utilities import get_act_name

from palindrome import hooks
from palindrome.data import PalindromeDataset
from palindrome.metrics import end_logits


@pytest.fixture(scope="module")
def toks():
    return PalindromeDataset(20).toks


def test_cached_run_returns_the_logits_and_only_the_named_activations(model, toks):
    names = [get_act_name("pattern", 0), hooks.ln_scale_name(1)]
    logits, cache = hooks.cached_run(model, toks, names)
    assert list(cache) == names
    torch.testing.assert_close(logits[:, -1], end_logits(model, toks))
    assert cache[names[0]].shape == (20, 2, 22, 22)


def test_cached_run_rejects_unknown_hook_names(model, toks):
    with pytest.raises(ValueError, match="no hook point"):
        hooks.activations(model, toks, ["blocks.0.attn.hook_banana"])


def test_holding_a_scale_at_its_clean_value_changes_nothing(model, toks):
    name = hooks.ln_scale_name(1)
    clean_logits, clean = hooks.cached_run(model, toks, [name])
    held, _ = hooks.cached_run(model, toks, [], [(name, hooks.hold_scale(clean[name]))])
    torch.testing.assert_close(held, clean_logits)


def test_holding_a_scale_at_a_constant_sets_it(model, toks):
    name = hooks.ln_scale_name(0)
    constant = hooks.activations(model, toks, [name], [(name, hooks.hold_scale(2.5))])[name]
    assert torch.all(constant == 2.5)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), True, "1", torch.tensor([1.0, 0.0])])
def test_hold_scale_rejects_non_positive_or_non_finite_scales(bad):
    with pytest.raises(ValueError, match="scale must"):
        hooks.hold_scale(bad)


def test_hold_scale_rejects_a_tensor_of_the_wrong_shape(model, toks):
    name = hooks.ln_scale_name(1)
    with pytest.raises(ValueError, match="hook's shape"):
        hooks.cached_run(model, toks, [], [(name, hooks.hold_scale(torch.ones(3)))])
