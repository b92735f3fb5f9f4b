"""Per-position miss rates (``metrics.miss_rates_by_position``): by hand, and a wrong decision rule caught."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from palindrome.constants import SECOND_HALF
from palindrome.inputs import broken_at_each_position
from palindrome.metrics import PALINDROMES_ROW, miss_rates_by_position


def _called_if_value_at_20_is_even(toks: torch.Tensor) -> torch.Tensor:
    """A stand-in for a model: calls an input a palindrome when its value at position 20 is even."""
    return toks[:, 20] % 2 == 0


@pytest.fixture(scope="module")
def batches():
    return broken_at_each_position(7, 3)  # (bases, broken): 7 palindromes, broken at each of the 10 positions


def test_miss_rates_by_hand(batches):
    bases, broken = batches
    rates = miss_rates_by_position(_called_if_value_at_20_is_even, broken)
    assert isinstance(rates, pd.Series) and list(rates.index) == list(SECOND_HALF)
    for i, p in enumerate(SECOND_HALF):
        called = sum(int(row[20]) % 2 == 0 for row in broken[i].tolist())
        assert rates[p] == pytest.approx(called / 7)
    with_bases = miss_rates_by_position(_called_if_value_at_20_is_even, broken, bases)
    assert list(with_bases.index) == [*SECOND_HALF, PALINDROMES_ROW]
    missed = sum(int(row[20]) % 2 == 1 for row in bases.tolist())
    assert with_bases[PALINDROMES_ROW] == pytest.approx(missed / 7)
    pd.testing.assert_series_equal(with_bases.iloc[:-1], rates, check_index_type=False)
    # the accuracy table is one minus every entry, each counted directly
    accuracy = miss_rates_by_position(_called_if_value_at_20_is_even, broken, bases, accuracy=True)
    assert accuracy.name == "accuracy" and list(accuracy.index) == list(with_bases.index)
    assert accuracy[20] == pytest.approx(sum(int(row[20]) % 2 == 1 for row in broken[-1].tolist()) / 7)
    assert accuracy[PALINDROMES_ROW] == pytest.approx(1 - missed / 7)
    pd.testing.assert_series_equal(accuracy, 1 - with_bases, check_names=False, atol=1e-6)


def test_decide_is_called_once_on_every_input(batches):
    bases, broken = batches
    seen = []

    def decide(toks):
        seen.append(toks.shape[0])
        return torch.zeros(toks.shape[0], dtype=torch.bool)

    rates = miss_rates_by_position(decide, broken[:3], bases, positions=[11, 12, 13])
    assert seen == [3 * 7 + 7] and list(rates) == [0.0, 0.0, 0.0, 1.0]


def test_a_wrong_decide_is_caught(batches):
    bases, broken = batches
    # a rule returning logits (or probabilities) instead of calls, or one answer per position instead of per input
    wrong = {
        "logits": lambda toks: torch.zeros(toks.shape[0], 2),
        "probabilities": lambda toks: torch.full((toks.shape[0],), 0.7),
        "one per position": lambda toks: torch.ones(10, dtype=torch.bool),
        "a list": lambda toks: [True] * toks.shape[0],
    }
    for decide in wrong.values():
        with pytest.raises(ValueError, match=r"decide must map a \(batch, seq\) token tensor to a bool tensor"):
            miss_rates_by_position(decide, broken, bases)
    # a rule with the calls inverted gives other rates than the by-hand ones: the by-hand test above would catch it
    inverted = miss_rates_by_position(lambda toks: ~_called_if_value_at_20_is_even(toks), broken)
    assert not inverted.equals(miss_rates_by_position(_called_if_value_at_20_is_even, broken))


def test_bad_inputs_are_refused(batches):
    bases, broken = batches
    with pytest.raises(ValueError, match="decide must be a function"):
        miss_rates_by_position("model", broken)
    with pytest.raises(ValueError, match=r"broken must be a non-empty \(position, n, seq\) token tensor"):
        miss_rates_by_position(_called_if_value_at_20_is_even, broken[0])
    with pytest.raises(ValueError, match="tokens"):
        miss_rates_by_position(_called_if_value_at_20_is_even, broken.float())
    with pytest.raises(ValueError, match="positions must label broken's 10 positions"):
        miss_rates_by_position(_called_if_value_at_20_is_even, broken, positions=[11, 12])
    with pytest.raises(ValueError, match="more than the 10 second-half ones"):
        miss_rates_by_position(_called_if_value_at_20_is_even, torch.cat([broken, broken[:1]]))
    with pytest.raises(ValueError, match="accuracy must be"):
        miss_rates_by_position(_called_if_value_at_20_is_even, broken, accuracy="yes")
    with pytest.raises(ValueError, match="22"):
        miss_rates_by_position(_called_if_value_at_20_is_even, broken, bases[:, :-2])


def test_the_table_names_what_it_holds(batches):
    bases, broken = batches
    rates = miss_rates_by_position(_called_if_value_at_20_is_even, broken)
    assert rates.name == "miss rate" and rates.index.name == "broken position"
    # one input per position is a table too (a batch of one)
    one = miss_rates_by_position(_called_if_value_at_20_is_even, broken[:2, :1])
    assert list(one.index) == [11, 12] and set(one.tolist()) <= {0.0, 1.0}


def test_refusals_say_what_came_instead(batches):
    bases, broken = batches
    with pytest.raises(ValueError, match=r"decide must be a function of a token tensor, got str"):
        miss_rates_by_position("model", broken)
    with pytest.raises(ValueError, match=r"token tensor, got shape \(10, 7, 22, 1\)"):
        miss_rates_by_position(_called_if_value_at_20_is_even, broken[..., None])
    with pytest.raises(ValueError, match=r"token tensor, got list"):
        miss_rates_by_position(_called_if_value_at_20_is_even, broken.tolist())
    with pytest.raises(
        ValueError, match=r"shape \(70,\) \(True: called palindrome\), got a torch.float32 tensor of shape"
    ):
        miss_rates_by_position(lambda toks: torch.zeros(toks.shape[0]), broken)
    with pytest.raises(ValueError, match=r"got a list$"):
        miss_rates_by_position(lambda toks: [True] * toks.shape[0], broken)
    with pytest.raises(ValueError, match="positions must label"):
        miss_rates_by_position(_called_if_value_at_20_is_even, broken, positions="abcdefghij")


def test_end_logits_fast_path_is_the_hooked_one_and_checks_its_options(model):
    from palindrome.metrics import end_logits

    toks = broken_at_each_position(3, 5)[1].flatten(0, 1)
    torch.testing.assert_close(
        end_logits(model, toks, fast=True, batch_size=7), end_logits(model, toks), atol=1e-4, rtol=0
    )
    with pytest.raises(ValueError, match=r"^fast must be True or False, got 'yes'$"):
        end_logits(model, toks, fast="yes")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        end_logits(model, toks, fast=True, batch_size=0)
