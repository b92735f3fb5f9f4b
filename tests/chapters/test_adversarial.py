"""Key numbers of the adversarial-examples chapter (6)."""

from __future__ import annotations

import pytest
import torch

from palindrome.chapters.adversarial import (
    BASE_PALINDROME,
    HANDMADE_ADVERSARIAL,
    broken_pairs,
    broken_position_attention,
    handmade_adversarial_probs,
    single_edit_probs,
    single_edits,
)
from palindrome.constants import SEQ_LEN, VALUE_POSITIONS
from palindrome.tokens import is_palindrome


def test_handmade_probabilities(model):
    # FINDINGS #6
    probs = handmade_adversarial_probs(model)
    assert [round(p, 3) for p in probs.tolist()] == [0.997, 0.998, 0.981, 0.997]
    assert is_palindrome(HANDMADE_ADVERSARIAL).tolist() == [0, 0, 0, 0]


def test_broken_pairs():
    assert broken_pairs(HANDMADE_ADVERSARIAL) == [[(2, 19)], [(4, 17)], [(1, 20)], [(2, 19), (4, 17)]]
    assert broken_pairs(BASE_PALINDROME) == [[]]


def test_broken_positions_attend_to_themselves(model):
    table = broken_position_attention(model, HANDMADE_ADVERSARIAL)
    assert list(table.index) == [(0, 19), (1, 17), (2, 20), (3, 19), (3, 17)]
    assert (table["H0.0 top key"] == table.index.get_level_values("position")).all()
    assert (table["vote via H1.0"] < 0).all()
    assert (table["H1.0 END to it"] < 0.02).all()


def test_single_edits(model):
    edits = single_edits(BASE_PALINDROME, [19, 20], [0, 15, 30])
    assert edits.shape == (2, 3, SEQ_LEN)
    assert edits[1, 2, 20] == 30 and edits[1, 2, 19] == BASE_PALINDROME[19]
    probs = single_edit_probs(model, BASE_PALINDROME, VALUE_POSITIONS, (0, 15, 30))
    assert probs.shape == (20, 3)
    fooled = {p for p, row in zip(VALUE_POSITIONS, probs.tolist(), strict=True) if min(row) > 0.5}
    assert fooled == {2, 4, 17, 19}
    assert probs[VALUE_POSITIONS.index(20)].max() < 0.01


def test_bad_inputs(model):
    with pytest.raises(ValueError, match="positions"):
        single_edits(BASE_PALINDROME, [0], [1])
    with pytest.raises(ValueError, match="values"):
        single_edits(BASE_PALINDROME, [3], [31])
    with pytest.raises(ValueError, match="values"):
        single_edit_probs(model, BASE_PALINDROME, [3], [])
    with pytest.raises(ValueError, match="one sequence"):
        single_edits(HANDMADE_ADVERSARIAL, [3], [1])
    with pytest.raises(ValueError, match="START"):
        broken_pairs(torch.zeros(SEQ_LEN, dtype=torch.long))
