"""Ablation hooks: key number 7, head-ablation tables, reproducibility and bad input."""

import pytest
import torch

from palindrome import PalindromeDataset
from palindrome.ablation import (
    Ablation,
    Ablator,
    ablated_logits,
    ablation_effect,
    ablation_hook,
    format_loss_change,
    head_ablation_table,
    loss_increase,
    qkv_ablation_table,
)
from palindrome.constants import END_POS, FIRST_HALF
from palindrome.metrics import end_logits

# Key number 7: mean-ablating q / k / v of heads 0.0, 0.1, 1.0, 1.1 (first 200 of PalindromeDataset(500)).
KEY_NUMBER_7 = {
    "q": [1.2897, 0.0038, 0.00016, 0.00012],
    "k": [0.9434, 0.0279, 0.2121, 0.00097],
    "v": [0.9078, 0.0028, 0.6798, -0.00005],
}


@pytest.fixture(scope="module")
def first_200():
    return PalindromeDataset(500)[:200]


def test_key_number_7_qkv_mean_ablation(model, first_200):
    toks, labels = first_200
    tables = qkv_ablation_table(model, toks, labels, "mean", progress=False)
    assert set(tables) == {"q", "k", "v"}
    for act, expected in KEY_NUMBER_7.items():
        assert tables[act].shape == (2, 2)
        assert tables[act].flatten().tolist() == pytest.approx(expected, abs=1e-4), act


def test_head_ablation_table_shape_and_sign(model, first_200):
    toks, labels = first_200
    mean = head_ablation_table(model, toks, labels, "mean", progress=False)
    assert mean.shape == (2, 2) and mean.device.type == "cpu"
    assert mean[0, 0] > 1 and mean[1, 0] > 1  # H0.0 and H1.0 carry the computation
    assert 0 < mean[0, 1] < 0.2 and abs(mean[1, 1]) < 0.05
    zero = head_ablation_table(model, toks, labels, "zero", progress=False)
    assert zero[0, 1] > 0.5  # zero and mean ablation disagree about H0.1


def test_zeroing_queries_or_keys_is_the_same(model, first_200):
    toks, labels = first_200
    q = loss_increase(model, toks, labels, [Ablation(0, 0, "q", "zero")])
    k = loss_increase(model, toks, labels, [Ablation(0, 0, "k", "zero")])
    assert q == pytest.approx(k, abs=1e-6)


def test_positions_restrict_the_ablation(model):
    toks = PalindromeDataset(40).toks
    # A layer-1 head's output only matters at END: ablating it there is ablating it everywhere.
    everywhere = ablated_logits(model, toks, [Ablation(1, 0, "result", "mean")])
    at_end = ablated_logits(model, toks, [Ablation(1, 0, "result", "mean", (END_POS,))])
    torch.testing.assert_close(everywhere, at_end)
    elsewhere = ablated_logits(model, toks, [Ablation(1, 0, "result", "zero", FIRST_HALF)])
    torch.testing.assert_close(elsewhere, end_logits(model, toks))


def test_random_ablation_is_reproducible(model):
    toks = PalindromeDataset(40).toks
    ablation = [Ablation(0, 0, "result", "random")]
    a = Ablator(model, seed=3).logits(toks, ablation)
    torch.testing.assert_close(a, Ablator(model, seed=3).logits(toks, ablation))
    assert not torch.allclose(a, Ablator(model, seed=4).logits(toks, ablation))
    ablator = Ablator(model, seed=3)  # every run draws the same noise afresh
    torch.testing.assert_close(ablator.logits(toks, ablation), ablator.logits(toks, ablation))


def test_reference_mean(model):
    ds = PalindromeDataset(40)
    ablation = [Ablation(1, 0, "q", "mean")]
    own = ablated_logits(model, ds.toks, ablation)
    torch.testing.assert_close(own, Ablator(model, ds.toks).logits(ds.toks, ablation))
    other = Ablator(model, PalindromeDataset(40, seed=1).toks).logits(ds.toks, ablation)
    assert not torch.allclose(own, other)


def test_ablation_effect(model):
    ds = PalindromeDataset(100)
    effect = ablation_effect(model, ds.toks, ds.is_palindrome, [Ablation(1, 0, "result", "mean")])
    assert effect.accuracy == pytest.approx(0.5)
    assert effect.p_palindrome_on_palindromes < 0.05 and effect.p_palindrome_on_non_palindromes < 0.05
    assert effect.loss_increase > 1


def test_format_loss_change():
    assert format_loss_change(0.00016) == "~0"
    assert format_loss_change(-0.00005) == "~0"
    assert format_loss_change(0.00097) == "+0.001"
    assert format_loss_change(-0.0015, 2) == "~0"
    assert format_loss_change(0.0124996, 3, significant=True) == "+0.0125"
    assert format_loss_change(3.2354, 3, significant=True) == "+3.24"


@pytest.mark.parametrize(
    "ablation, match",
    [
        (lambda: Ablation(2, 0), "layer must be an integer in 0..1"),
        (lambda: Ablation(0, 5), "head must be an integer in 0..1"),
        (lambda: Ablation(0, 0, kind="banana"), "kind must be one of"),
        (lambda: Ablation(0, 0, activation="x"), "activation must be one of"),
        (lambda: Ablation(0, 0, positions=(22,)), "positions must lie in 0..21"),
        (lambda: Ablation(0, 0, positions=(-1,)), "positions must be"),
    ],
)
def test_bad_ablations(model, ablation, match):
    toks = PalindromeDataset(4).toks
    with pytest.raises(ValueError, match=match):
        ablated_logits(model, toks, [ablation()])


def test_bad_table_and_hook_arguments(model):
    ds = PalindromeDataset(4)
    with pytest.raises(ValueError, match="kind must be one of"):
        head_ablation_table(model, ds.toks, ds.is_palindrome, "banana")
    with pytest.raises(ValueError, match="activation must be one of"):
        head_ablation_table(model, ds.toks, ds.is_palindrome, "mean", activation="x")
    with pytest.raises(ValueError, match="kind must be one of"):
        ablation_hook("banana", 0)
    with pytest.raises(ValueError, match="reference mean only applies"):
        ablation_hook("zero", 0, reference=torch.zeros(22, 14))
    with pytest.raises(ValueError, match="ablations must be a list of Ablation objects"):
        ablated_logits(model, ds.toks, [("result", 0, 0)])
