"""Probe inputs: the hand-built batches every chapter module draws from one module."""

from __future__ import annotations

import pytest
import torch

from palindrome import probes
from palindrome.constants import END, MIRROR, SECOND_HALF, START
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
    "bad, match",
    [
        (dict(n=0, seed=0, position=20), "n must be an integer >= 1"),
        (dict(n=3, seed=-1, position=20), "seed must be an integer >= 0"),
        (dict(n=3, seed=0, position=5), "position must be a second-half position 11..20"),
    ],
)
def test_bad_probe_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        probes.broken_and_bases(**bad)


def _hand_built_decoys():
    """Three sequences and their decoys at positions 11..20, counted by hand."""
    distinct = [START] + list(range(20)) + [END]  # no value repeats: no decoy anywhere
    edited = list(distinct)
    edited[20] = 0  # the value at position 1 (the first value position)
    edited[13] = 13  # a value that occurs only later (position 14): no decoy at 13 ...
    # ... but position 14 now finds its value at position 13, just before it
    palindrome = [START] + list(range(10)) + list(range(9, -1, -1)) + [END]  # every value repeats its mirror
    toks = torch.tensor([distinct, edited, palindrome])
    expected = [
        [False] * 10,
        [False, False, False, True, False, False, False, False, False, True],
        [True] * 10,
    ]
    return toks, torch.tensor(expected)


def test_decoy_masks_by_hand():
    toks, expected = _hand_built_decoys()
    assert torch.equal(probes.decoy_masks(toks), expected)
    assert torch.equal(probes.decoy_masks(toks, [20, 14]), expected[:, [9, 3]])
    assert probes.decoy_mask(toks, 20).tolist() == [False, True, True]
    assert probes.decoy_mask(toks, 13).tolist() == [False, False, True]
