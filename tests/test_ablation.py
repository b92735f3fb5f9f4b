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
# Deterministic CPU floats, written to 6 significant digits and asserted to rel 1e-4: the small ones
# (1.6e-4, 1.2e-4, 9.7e-4, -4.7e-5) are asserted to their sign and their first three digits.
KEY_NUMBER_7 = {
    "q": [1.28965, 0.00382022, 0.000157144, 0.000120283],
    "k": [0.943367, 0.0279339, 0.212144, 0.000973705],
    "v": [0.907761, 0.00284897, 0.679784, -0.0000472071],
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
        assert tables[act].flatten().tolist() == pytest.approx(expected, rel=1e-4), act


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
    # Both classes are called non-palindromes; each class mean is pinned, so swapping them fails.
    assert effect.p_palindrome_on_palindromes == pytest.approx(0.000692744, rel=1e-4)
    assert effect.p_palindrome_on_non_palindromes == pytest.approx(0.00124351, rel=1e-4)
    assert effect.loss_increase == pytest.approx(3.87319, rel=1e-4)


def test_ablation_effect_without_ablations_is_the_clean_model_by_hand(model):
    # No ablation: the class means are the plain softmax means over each class, computed here by hand.
    ds = PalindromeDataset(100)
    effect = ablation_effect(model, ds.toks, ds.is_palindrome, [])
    p = end_logits(model, ds.toks).softmax(-1)[:, 1]
    on_pal = p[ds.is_palindrome == 1].sum().item() / int(ds.is_palindrome.sum())
    on_non = p[ds.is_palindrome == 0].sum().item() / int((ds.is_palindrome == 0).sum())
    assert on_pal > 0.99 and on_non < 0.001  # the clean model separates the classes
    assert effect.p_palindrome_on_palindromes == pytest.approx(on_pal, rel=1e-5)
    assert effect.p_palindrome_on_non_palindromes == pytest.approx(on_non, rel=1e-5)
    assert effect.accuracy == 1.0 and effect.loss_increase == 0.0


def test_loss_increase_keeps_its_sign(model):
    # A loss increase is ablated loss minus clean loss: given a clean loss 0.5 above the real one, it is -0.5.
    ds = PalindromeDataset(40)
    logits = end_logits(model, ds.toks)
    clean = torch.nn.functional.cross_entropy(logits, ds.is_palindrome).item()
    ablation = [Ablation(1, 1, "v", "mean")]
    ablated = torch.nn.functional.cross_entropy(ablated_logits(model, ds.toks, ablation), ds.is_palindrome).item()
    assert loss_increase(model, ds.toks, ds.is_palindrome, [], clean_loss=clean + 0.5) == pytest.approx(-0.5, rel=1e-5)
    assert loss_increase(model, ds.toks, ds.is_palindrome, ablation) == pytest.approx(
        ablated - clean, rel=1e-4, abs=1e-9
    )
    effect = ablation_effect(model, ds.toks, ds.is_palindrome, ablation, clean_loss=ablated + 0.25)
    assert effect.loss_increase == pytest.approx(-0.25, rel=1e-5)


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
