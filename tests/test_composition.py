"""Composition scores, the random baseline, END's attention in H1.0 and key number 8."""

import pytest
import torch

from palindrome import PalindromeDataset
from palindrome.ablation import Ablation, loss_increase
from palindrome.composition import (
    all_composition_scores,
    attention_entropy,
    attention_on_mismatches,
    composition_scores,
    end_attention,
    end_queries,
    positional_key_scores,
    random_composition_scores,
)
from palindrome.constants import FIRST_HALF, SECOND_HALF


@pytest.fixture(scope="module")
def baseline():
    return random_composition_scores(n_samples=300, seed=0)


def test_key_number_3_random_baseline(baseline):
    # Random: the tolerance (stated in chapter 4) covers other seeds.
    assert baseline.mean().item() == pytest.approx(0.188, abs=0.01)
    assert baseline.std().item() == pytest.approx(0.013, abs=0.005)
    other = random_composition_scores(n_samples=300, seed=1)
    assert other.mean().item() == pytest.approx(0.188, abs=0.01)


def test_h00_composes_with_h10_through_keys_and_values(model, baseline):
    mean, std = baseline.mean().item(), baseline.std().item()
    scores = all_composition_scores(model)
    assert scores["K"][0, 0] == pytest.approx(0.325, abs=1e-3)
    assert scores["V"][0, 0] == pytest.approx(0.432, abs=1e-3)
    assert scores["K"][0, 0] > mean + 8 * std and scores["V"][0, 0] > mean + 15 * std
    others = [
        scores[kind][i, j].item()
        for kind in "QKV"
        for i in range(2)
        for j in range(2)
        if not (kind in "KV" and (i, j) == (0, 0))
    ]
    assert len(others) == 10
    assert max(others) < mean + 2 * std  # nothing else beats chance by two standard deviations
    assert (scores["Q"] < mean).all()  # no Q-composition at all


def test_key_number_8_query_ablation(model):
    ds = PalindromeDataset(100)
    mean = loss_increase(model, ds.toks, ds.is_palindrome, [Ablation(1, 0, "q", "mean")])
    zero = loss_increase(model, ds.toks, ds.is_palindrome, [Ablation(1, 0, "q", "zero")])
    # deterministic CPU floats, to rel 1e-4 (the mean-ablation effect to its sign and three digits)
    assert mean == pytest.approx(0.000461636, rel=1e-4)
    assert zero == pytest.approx(2.49088, rel=1e-4)


@pytest.fixture(scope="module")
def data():
    return PalindromeDataset(500)


def test_end_attends_to_mismatches(model, data):
    attention = end_attention(model, data.toks, layer=1, head=0)
    assert attention.shape == (500, 22)
    torch.testing.assert_close(attention.sum(-1), torch.ones(500))
    pal = data.is_palindrome.bool()
    assert attention_on_mismatches(attention, data.toks)[~pal].mean() > 0.95
    assert attention_on_mismatches(attention, data.toks, SECOND_HALF)[~pal].mean() > 0.95
    entropy = attention_entropy(attention)
    assert entropy[pal].mean() == pytest.approx(2.21, abs=0.01)
    assert entropy[~pal].mean() == pytest.approx(0.865, abs=0.01)


def test_end_query_is_nearly_constant(model, data):
    q = end_queries(model, data.toks)
    cosine = torch.cosine_similarity(q, q.mean(0, keepdim=True), dim=-1)
    assert cosine.mean() > 0.95 and cosine.min() > 0.75


def test_positional_key_scores(model, data):
    scores = positional_key_scores(model, data.toks)
    assert scores.shape == (22,)
    assert scores[list(SECOND_HALF)].mean() == pytest.approx(5.97, abs=0.05)
    assert scores[list(FIRST_HALF)].mean() == pytest.approx(-3.14, abs=0.05)
    assert [p for p in SECOND_HALF if scores[p] < 0] == [17, 19, 20]
    assert [p for p in FIRST_HALF if scores[p] > 0] == [1, 2, 4]


def test_bad_arguments(model, data):
    with pytest.raises(ValueError, match="kind must be one of"):
        composition_scores(model, "X")
    with pytest.raises(ValueError, match="writer_layer must come before"):
        composition_scores(model, "K", writer_layer=1, reader_layer=1)
    with pytest.raises(ValueError, match="layer must be an integer in 0..1"):
        composition_scores(model, "K", writer_layer=0, reader_layer=2)
    with pytest.raises(ValueError, match="head must be an integer in 0..1"):
        end_attention(model, data.toks[:2], layer=1, head=5)
    with pytest.raises(ValueError, match="n_samples"):
        random_composition_scores(n_samples=1)
    with pytest.raises(ValueError, match="one row per sequence"):
        attention_on_mismatches(torch.zeros(3, 22), data.toks[:2])
