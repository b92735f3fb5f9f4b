"""Probe inputs: the hand-built batches every chapter module draws from one module."""

from __future__ import annotations

import pytest
import torch

from palindrome import probes
from palindrome.constants import MIRROR, SECOND_HALF
from palindrome.tokens import is_palindrome, mismatch_mask


def test_broken_at_each_position_breaks_exactly_that_pair():
    bases, broken = probes.broken_at_each_position(5, seed=0)
    assert is_palindrome(bases).all()
    for i, p in enumerate(SECOND_HALF):
        mask = mismatch_mask(broken[i])
        assert mask[:, p].all() and mask.sum(-1).eq(2).all() and mask[:, MIRROR[p]].all()
    again = probes.broken_at_each_position(5, seed=0)
    assert torch.equal(again[1], broken)


def test_broken_and_bases_pairs_each_base_with_its_broken_copy():
    broken, bases = probes.broken_and_bases(7, seed=1, position=20)
    assert is_palindrome(bases).all() and not is_palindrome(broken).any()
    assert (broken != bases).sum(-1).eq(1).all() and (broken[:, 20] != bases[:, 20]).all()


def test_fresh_bases_per_position_differ_from_shared_bases():
    probe = probes.broken_at_each_position_fresh(4, seed=2)
    assert probe.shape == (len(SECOND_HALF), 4, 22)
    assert not torch.equal(probe[0, :, 1:11], probe[1, :, 1:11])


def test_shuffled_halves_keep_the_values_and_are_never_palindromes():
    toks = probes.shuffled_halves(300, seed=0)
    assert not is_palindrome(toks).any()
    first, second = toks[:, 1:11].sort(-1).values, toks[:, 11:21].sort(-1).values
    assert torch.equal(first, second)


@pytest.mark.parametrize("position", [10, 21, 0, True, 20.0])
def test_positions_must_be_in_the_second_half(position):
    with pytest.raises(ValueError, match="second-half position"):
        probes.check_second_half_position(position)


@pytest.mark.parametrize(
    "bad", [dict(n=0, seed=0, position=20), dict(n=3, seed=-1, position=20), dict(n=3, seed=0, position=5)]
)
def test_bad_probe_arguments(bad):
    with pytest.raises(ValueError):
        probes.broken_and_bases(**bad)
