"""Probe inputs: the hand-built batches every chapter module draws from one module."""

from __future__ import annotations

import pytest
import torch

from palindrome import inputs
from palindrome.constants import END, MIRROR, SECOND_HALF, START
from palindrome.tokens import is_palindrome, mismatch_mask


def test_broken_at_each_position_breaks_exactly_that_pair():
    bases, broken = inputs.broken_at_each_position(5, seed=0)
    assert is_palindrome(bases).all()
    for i, p in enumerate(SECOND_HALF):
        mask = mismatch_mask(broken[i])
        assert mask[:, p].all() and mask.sum(-1).eq(2).all() and mask[:, MIRROR[p]].all()
    again = inputs.broken_at_each_position(5, seed=0)
    assert torch.equal(again[1], broken)


def test_broken_and_bases_pairs_each_base_with_its_broken_copy():
    broken, bases = inputs.broken_and_bases(7, seed=1, position=20)
    assert is_palindrome(bases).all() and not is_palindrome(broken).any()
    assert (broken != bases).sum(-1).eq(1).all() and (broken[:, 20] != bases[:, 20]).all()


def test_fresh_bases_per_position_differ_from_shared_bases():
    probe = inputs.broken_at_each_position_fresh(4, seed=2)
    assert probe.shape == (len(SECOND_HALF), 4, 22)
    assert not torch.equal(probe[0, :, 1:11], probe[1, :, 1:11])


def test_shuffled_halves_keep_the_values_and_are_never_palindromes():
    toks = inputs.shuffled_halves(300, seed=0)
    assert not is_palindrome(toks).any()
    first, second = toks[:, 1:11].sort(-1).values, toks[:, 11:21].sort(-1).values
    assert torch.equal(first, second)


@pytest.mark.parametrize("position", [10, 21, 0, True, 20.0])
def test_positions_must_be_in_the_second_half(position):
    with pytest.raises(ValueError, match="second-half position"):
        inputs.check_second_half_position(position)


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
        inputs.broken_and_bases(**bad)


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
    assert torch.equal(inputs.decoy_masks(toks), expected)
    assert torch.equal(inputs.decoy_masks(toks, [20, 14]), expected[:, [9, 3]])
    assert inputs.decoy_mask(toks, 20).tolist() == [False, True, True]
    assert inputs.decoy_mask(toks, 13).tolist() == [False, False, True]


# --- validators, builders' exact draws and edits, checked by hand (issue #25: mutation testing) ----

from palindrome.tokens import MAX_SAMPLES  # noqa: E402

N_BOUND = r"must be an integer >= 1 and <= 10000000"


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _reference_palindromes(n, generator, half_length=10, max_value=30):
    """START, h, reverse(h), END with h drawn as the module docstring says (one randint of shape (n, half_length))."""
    halves = torch.randint(0, max_value + 1, (n, half_length), generator=generator).tolist()
    return torch.tensor([[max_value + 1, *h, *h[::-1], max_value + 2] for h in halves])


def _reference_break(toks, positions, generator, side="second"):
    """Each pair in turn: the edited member becomes (its mirror + a draw from 1..30) mod 31."""
    toks = toks.clone()
    for p in positions:
        edited = p if side == "second" else 21 - p
        offsets = torch.randint(1, 31, (toks.shape[0],), generator=generator)
        toks[:, edited] = (toks[:, 21 - edited] + offsets) % 31
    return toks


def test_check_side_and_second_half_validators():
    assert inputs.check_side("first") == "first" and inputs.check_side("second") == "second"
    with pytest.raises(ValueError, match=r"^side must be one of \('second', 'first'\), got 'third'$"):
        inputs.check_side("third")
    assert inputs.check_second_half([11, 20]) == (11, 20) and inputs.check_second_half([]) == ()
    assert inputs.check_second_half(iter([torch.tensor(12).item()])) == (12,)
    # half_length 1: the only second-half position is 2 (positions 1 and 3 are refused).
    assert inputs.check_second_half([2], half_length=1) == (2,)
    for bad in ([1], [3], [0]):
        with pytest.raises(
            ValueError, match=rf"^positions must be distinct second-half positions 2\.\.2, got \({bad[0]},\)$"
        ):
            inputs.check_second_half(bad, half_length=1)
    for bad in ([10], [21], [12, 12], [12.0], [True]):
        with pytest.raises(ValueError, match=r"^positions must be distinct second-half positions 11\.\.20, got "):
            inputs.check_second_half(bad)
    for bad in (12, "12", None):
        with pytest.raises(
            ValueError, match=rf"^positions must be a collection of second-half positions 11\.\.20, got {bad!r}$"
        ):
            inputs.check_second_half(bad)
    for half_length in (0, 2**20 + 1):
        with pytest.raises(
            ValueError, match=rf"^half_length must be an integer >= 1 and <= 1048576, got {half_length}$"
        ):
            inputs.check_second_half([12], half_length=half_length)
    assert inputs.check_second_half_position(11) == 11 and inputs.check_second_half_position(20) == 20
    for bad in (10, 21, 12.0):
        with pytest.raises(
            ValueError, match=rf"^position must be a second-half position 11\.\.20 \(the pair 21 - p, p\), got {bad}$"
        ):
            inputs.check_second_half_position(bad)


def test_check_palindromes_names_the_first_non_palindrome():
    palindrome = [START] + list(range(10)) + list(range(9, -1, -1)) + [END]
    broken = list(palindrome)
    broken[20] = 5
    assert torch.equal(inputs.check_palindromes([palindrome, palindrome]), torch.tensor([palindrome] * 2))
    with pytest.raises(ValueError, match=r"^bases must all be palindromes; sequence 1 is not$"):
        inputs.check_palindromes([palindrome, broken, broken])
    with pytest.raises(ValueError, match=r"^bases must all be palindromes; sequence 0 is not$"):
        inputs.check_palindromes([broken])


def test_random_palindromes_draws_and_bounds():
    assert torch.equal(inputs.random_palindromes(6, _gen(3)), _reference_palindromes(6, _gen(3)))
    small = inputs.random_palindromes(5, _gen(4), half_length=2, max_value=3)
    assert torch.equal(small, _reference_palindromes(5, _gen(4), half_length=2, max_value=3))
    assert small.shape == (5, 6) and (small[:, 0] == 4).all() and (small[:, -1] == 5).all()
    assert inputs.random_palindromes(1, _gen(0)).shape == (1, 22)  # n = 1 is the minimum
    with pytest.raises(ValueError, match=rf"^n {N_BOUND}, got 0$"):
        inputs.random_palindromes(0)
    with pytest.raises(ValueError, match=rf"^n {N_BOUND}, got 10000001$"):
        inputs.random_palindromes(MAX_SAMPLES + 1, half_length=0)  # n is checked first
    with pytest.raises(ValueError, match=r"^generator must be None or a torch\.Generator"):
        inputs.random_palindromes(2, 0)


def test_ordered_value_pairs_by_hand():
    a, b = inputs.ordered_value_pairs(2)
    assert a.tolist() == [0, 0, 1, 1, 2, 2] and b.tolist() == [1, 2, 0, 2, 0, 1]
    a, b = inputs.ordered_value_pairs(1)
    assert a.tolist() == [0, 1] and b.tolist() == [1, 0]
    a, b = inputs.ordered_value_pairs()
    assert a.shape == b.shape == (930,) and (a != b).all() and a.max() == b.max() == 30


def test_single_mismatch_tokens_by_hand():
    base = [START] + list(range(10)) + list(range(9, -1, -1)) + [END]
    # Position 12 mirrors 9: side "second" (the default) puts a at 9 and b at 12; side "first" the reverse.
    toks = inputs.single_mismatch_tokens([base], 12, max_value=2)
    assert toks.shape == (1, 6, 22)
    assert toks[0, :, 9].tolist() == [0, 0, 1, 1, 2, 2] and toks[0, :, 12].tolist() == [1, 2, 0, 2, 0, 1]
    others = [p for p in range(22) if p not in (9, 12)]
    assert (toks[0][:, others] == torch.tensor(base)[others]).all()
    first = inputs.single_mismatch_tokens(torch.tensor([base, base]), 12, side="first", max_value=2)
    assert first.shape == (2, 6, 22)
    assert first[1, :, 12].tolist() == [0, 0, 1, 1, 2, 2] and first[1, :, 9].tolist() == [1, 2, 0, 2, 0, 1]
    assert inputs.single_mismatch_tokens([base], 20).shape == (1, 930, 22)
    with pytest.raises(ValueError, match=r"^side must be one of"):
        inputs.single_mismatch_tokens([base], 12, side="both")
    with pytest.raises(ValueError, match=r"^positions must be distinct second-half positions 11\.\.20, got \(9,\)$"):
        inputs.single_mismatch_tokens([base], 9)


def test_break_pairs_by_hand_and_by_draws():
    base = torch.tensor([[START] + [0, 1, 1, 0, 1, 0, 0, 1, 1, 0] * 2 + [END]])
    base[0, 11:21] = base[0, 1:11].flip(-1)
    # max_value 1: the only offset is 1, so the edited member becomes 1 - its mirror.
    broken = inputs.break_pairs(base, [12, 15], _gen(0), max_value=1)
    expected = base.clone()
    expected[0, 12], expected[0, 15] = 1 - base[0, 9], 1 - base[0, 6]
    assert torch.equal(broken, expected)
    first = inputs.break_pairs(base, [12], _gen(0), side="first", max_value=1)
    expected = base.clone()
    expected[0, 9] = 1 - base[0, 12]
    assert torch.equal(first, expected)
    # max_value 30: the reference's draws, pair by pair, in the order given.
    bases = _reference_palindromes(8, _gen(1))
    for side in ("second", "first"):
        got = inputs.break_pairs(bases, [20, 13], _gen(2), side=side)
        assert torch.equal(got, _reference_break(bases, [20, 13], _gen(2), side))
    assert torch.equal(inputs.break_pairs(bases, [14], _gen(2)), _reference_break(bases, [14], _gen(2)))
    with pytest.raises(ValueError, match=r"^positions must name at least one second-half position$"):
        inputs.break_pairs(bases, [])
    with pytest.raises(ValueError, match=r"^side must be one of"):
        inputs.break_pairs(bases, [12], side="middle")


def test_builders_follow_the_documented_draws():
    # Each builder's output is the reference's: bases first, then one offset draw per broken pair.
    bases, broken = inputs.broken_at_each_position(4, seed=6)
    generator = _gen(6)
    expected_bases = _reference_palindromes(4, generator)
    assert torch.equal(bases, expected_bases)
    for i, p in enumerate(SECOND_HALF):
        assert torch.equal(broken[i], _reference_break(expected_bases, [p], generator))
    broken, bases = inputs.broken_and_bases(5, seed=7, position=17)
    generator = _gen(7)
    expected_bases = _reference_palindromes(5, generator)
    assert torch.equal(bases, expected_bases)
    assert torch.equal(broken, _reference_break(expected_bases, [17], generator))
    fresh = inputs.broken_at_each_position_fresh(3, seed=8)
    generator = _gen(8)
    for i, p in enumerate(SECOND_HALF):
        assert torch.equal(fresh[i], _reference_break(_reference_palindromes(3, generator), [p], generator))
    batch = inputs.position_mismatch_batch(4, 11, _gen(9))
    generator = _gen(9)
    assert torch.equal(batch, _reference_break(_reference_palindromes(4, generator), [11], generator))
    assert inputs.position_mismatch_batch(3, 20).shape == (3, 22)  # the global RNG when no generator is given


def test_builders_size_bounds():
    # n = 1 (and n_bases = 1) is the minimum; 0 is refused naming the argument; n is checked before the seed.
    assert inputs.broken_at_each_position(1, seed=0)[1].shape == (10, 1, 22)
    assert inputs.broken_and_bases(1, seed=0, position=12)[0].shape == (1, 22)
    assert inputs.position_mismatch_batch(1, 12).shape == (1, 22)
    assert inputs.shuffled_halves(1, seed=0).shape == (1, 22)
    with pytest.raises(ValueError, match=r"^n_bases must be an integer >= 1, got 0$"):
        inputs.broken_at_each_position(0, seed=0)
    with pytest.raises(ValueError, match=rf"^n {N_BOUND}, got 0$"):
        inputs.position_mismatch_batch(0, 12)
    with pytest.raises(ValueError, match=rf"^n {N_BOUND}, got 0$"):
        inputs.broken_and_bases(0, seed=0, position=12)
    with pytest.raises(ValueError, match=rf"^n {N_BOUND}, got 0$"):
        inputs.shuffled_halves(0, seed=0)
    with pytest.raises(ValueError, match=rf"^n {N_BOUND}, got 10000001$"):
        inputs.shuffled_halves(MAX_SAMPLES + 1, seed=-1)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0"):
        inputs.shuffled_halves(2, seed=-1)


def _reference_shuffled(n, seed):
    """Redraw the permutation of every second half that is still a palindrome, until none is."""
    generator = _gen(seed)
    toks = _reference_palindromes(n, generator)
    while True:
        left = [i for i, row in enumerate(toks[:, 1:21].tolist()) if row == row[::-1]]
        if not left:
            return toks
        order = torch.rand(len(left), 10, generator=generator).argsort(-1)
        for row, perm in zip(left, order.tolist(), strict=True):
            toks[row, 11:21] = toks[row, 11:21][perm]


def test_shuffled_halves_follow_the_documented_draws():
    assert torch.equal(inputs.shuffled_halves(50, seed=3), _reference_shuffled(50, 3))


def test_single_edits_by_hand():
    base = [START] + list(range(10)) + list(range(9, -1, -1)) + [END]
    edits = inputs.single_edits(base, [1, 20], [0, 30])
    assert edits.shape == (2, 2, 22)
    for i, position in enumerate([1, 20]):
        for j, value in enumerate([0, 30]):
            expected = list(base)
            expected[position] = value
            assert edits[i, j].tolist() == expected
    assert inputs.single_edits(torch.tensor([base]), (5,), range(3)).shape == (1, 3, 22)
    with pytest.raises(ValueError, match=r"^base must be one sequence, got a batch of 2$"):
        inputs.single_edits([base, base], [1], [0])
    for bad in ([], [31], [-1], [1.5], [True], 5, "12", None):
        with pytest.raises(ValueError, match=r"^values must be a non-empty list of integers in 0\.\.30, got "):
            inputs.single_edits(base, [1], bad)
    for bad in ([0], [21], []):
        with pytest.raises(ValueError, match=r"^positions must be a non-empty list of integers in 1\.\.20, got "):
            inputs.single_edits(base, bad, [0])
