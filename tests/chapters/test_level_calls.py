"""Chapter 12's scoring: the input sets are disjoint where they must be; the comparison tables count as by hand; bad
input is refused."""

from __future__ import annotations

import pytest
import torch

from palindrome.chapters import explanation as ex12
from palindrome.chapters import level_calls as lc
from palindrome.chapters.blindspots import pair_cells, pair_mismatch_sweep, pair_mismatch_tokens
from palindrome.constants import SECOND_HALF
from palindrome.metrics import end_logits

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_pair_tokens_are_the_pair_sweeps_inputs(model):
    toks = pair_mismatch_tokens(3, 1)
    sweep = pair_mismatch_sweep(model, n_bases=3, seed=1, progress=False)
    probs = end_logits(model, toks.flatten(0, 1), fast=True).softmax(-1)[:, 1].view(toks.shape[:2])
    i, j = SECOND_HALF.index(11), SECOND_HALF.index(17)
    cell = pair_cells().index((i, j))
    assert torch.allclose(probs[cell], sweep.p_palindrome[i, j], atol=1e-6)
    assert pair_mismatch_tokens(3, 1, distinct=True).shape[0] == 45


def test_evaluation_sets_do_not_overlap_the_reference():
    reference = ex12.level_reference_data().toks
    for name, toks in lc.input_sets().items():
        assert lc.overlap(toks.flatten(0, -2), reference) == 0, name


def _made_up_scores() -> lc.LevelCalls:
    """Six inputs broken at 11 and six at 12 ((b) as [position, input]): the calls by hand."""
    name = lc.INPUT_SETS[1]
    model_calls = torch.tensor([1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0], dtype=torch.bool)  # the model misses 3 + 1
    words = torch.zeros(12, dtype=torch.bool)
    refined = torch.tensor([1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 0], dtype=torch.bool)  # reproduces 2 + 1, adds 1 + 2
    calls = {lv: words.clone() for lv in ex12.LEVELS} | {"refined": refined}
    ld = torch.where(model_calls, 1.0, -1.0)
    return lc.LevelCalls(
        model_ld={name: ld},
        level_ld={name: {lv: ld for lv in ex12.CIRCUIT_LEVELS}},
        calls={name: calls},
        shapes={name: (2, 6)},
        decoy_at_broken={name: torch.zeros(12, dtype=torch.bool)},
    )


def test_miss_overlap_and_own_errors_by_hand():
    scores = _made_up_scores()
    at_11 = lc.miss_overlap(scores, (11,), ("words", "refined"))
    assert at_11.loc["refined"].tolist() == [3, 2, 1] and at_11.loc["words"].tolist() == [3, 0, 0]
    both = lc.miss_overlap(scores, (11, 12), ("refined",))
    assert both.loc["refined"].tolist() == [4, 3, 3]
    errors = lc.own_errors(scores)[lc.INPUT_SETS[1]]  # every input is a non-palindrome: the model errs on its misses
    assert errors["model errors"] == 4 and errors["refined"] == 3 and errors["words"] == 0 and errors["ideal"] == 0


def test_the_fresh_set_is_held_out():
    # Set (f) is new single mismatches: no sequence of it in the reference batch, the development inputs or another set.
    sets = lc.input_sets()
    fresh = sets[lc.INPUT_SETS[5]]
    assert fresh.shape == (len(SECOND_HALF), lc.FRESH_BASES, 22)
    assert lc.FRESH_SEED not in (ex12.LEVEL_REFERENCE_SEED, lc.NATURAL_SEED, lc.PALINDROME_SEED, ex12.DEVELOPMENT_SEED)
    assert set(lc.fresh_overlaps(sets).values()) == {0}
    assert len(lc.fresh_overlaps(sets)) == 2 + 5


def test_paired_comparison_and_added_errors_by_hand():
    scores = _made_up_scores()
    table = lc.paired_comparison(scores, lc.INPUT_SETS[1], groups={"11": (11,)})
    row = table.loc["11"]
    at_11 = lc.miss_overlap(scores, (11,), ("words", "refined"))
    # words never misses: only words agrees where refined adds a miss, only refined where it reproduces one
    assert row["only words agrees"] == at_11.loc["refined", "added"]
    assert row["only refined agrees"] == at_11.loc["refined", "reproduced"]
    assert row["by chance"] == pytest.approx(at_11.loc["refined", "model misses"] * 3 / 6)
    added = lc.added_errors(scores)[lc.INPUT_SETS[1]]
    assert added["ideal"] == 0 and added["words"] == 0
    with pytest.raises(ValueError, match="pair must be"):
        lc.paired_comparison(scores, lc.INPUT_SETS[1], pair="words")


def test_bad_arguments():
    with pytest.raises(ValueError, match="positions must be"):
        lc.miss_overlap(_made_up_scores(), (5,))
