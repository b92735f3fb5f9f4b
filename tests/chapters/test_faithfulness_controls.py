"""Chapter 10's controls (palindrome.chapters.faithfulness_controls): paired counts at position 20, the layer-1
scale held, and the chapter's numbers over redrawn resampling partners."""

from __future__ import annotations

import pytest
import torch

from palindrome import path_patching
from palindrome.chapters import faithfulness as fa
from palindrome.chapters import faithfulness_controls as fc


def test_paired_misses_counts_each_side():
    first, second = torch.tensor([True, True, False, False, True]), torch.tensor([False, True, True, False, False])
    assert fc.paired_misses(first, second) == (2, 1, 1.0)
    assert fc.paired_misses(torch.ones(6, dtype=torch.bool), torch.zeros(6, dtype=torch.bool))[2] == 2 / 2**6
    with pytest.raises(ValueError, match="boolean"):
        fc.paired_misses(first.float(), second)


@pytest.mark.slow
def test_position_20_controls(model):
    """Referee of issue 23 (item 2): H0.1's edges into H1.1 cut at 20, with and without the layer-1 scale held."""
    mean = fc.position20_controls(model, "mean")
    assert mean["missed"].round(2).tolist() == [0.17, 0.44, 0.05, 0.43]
    assert mean[["only_full_missed", "only_row_missed"]].values.tolist() == [[2, 13], [1, 39], [5, 4], [1, 38]]
    resample = fc.position20_controls(model, "resample")
    assert resample["missed"].round(2).tolist()[:2] == [0.38, 0.47]
    added = fc.added_head_paired(model, "mean")
    assert added.iloc[:, :2].values.tolist() == [[3, 13], [3, 10], [1, 15]]
    assert added["p"].round(3).tolist() == [0.021, 0.092, 0.001]


@pytest.mark.slow
def test_resampled_edit_at_20_injects_another_inputs_pair(model):
    """Referee of issue 23 (item 3): every input the resampled cut at 20 newly catches at 17 or 19 borrowed a row
    whose pair (1, 20) is broken, and the cut rejects some palindromes (the full model none)."""
    out = fc.resampled_edit_sources(model)
    assert (out["newly_caught_pos_17"], out["newly_caught_pos_19"]) == (12.0, 15.0)
    assert out["newly_caught_borrowed_broken_pos_17"] == 12.0 and out["newly_caught_borrowed_broken_pos_19"] == 15.0
    assert round(out["borrowed_broken_rate_pos_17"], 2) == 0.29
    assert out["palindromes_rejected_clean"] == 0.0 and round(out["palindromes_rejected_cut"], 2) == 0.06


# --- resampling: the chapter's draw against other draws of partners -------------------------------------


def test_resample_draws_reproduce_the_chapters_draw(model):
    """A draw at the chapter's own partner seeds gives the chapter's numbers: seed 0 on the main batch
    (``path_contributions``), ``HARD_SEED`` on the hard subset (``hard_subset_errors`` and the position edit)."""
    data = fa.main_dataset()
    draws = fc.resample_draws(model, seeds=[path_patching.DEFAULT_SEED, fa.HARD_SEED], progress=False)
    contributions = {
        "resample": fa.path_contributions(
            model, data.toks, data.is_palindrome, "resample", fc.DRAW_MAIN, progress=False
        )
    }
    hard = {"resample": fa.hard_subset_errors(model, "resample", reference_toks=data.toks)}
    targeted = {"resample": fa.hard_subset_position_errors(model, "resample", reference_toks=data.toks)}
    chapter = fc.chapter_draw(contributions, hard, targeted)
    assert list(chapter) == list(draws.columns)
    main = [c for c in draws.columns if "missed at 20" not in c]
    assert len(main) == 5
    for column in draws.columns:
        seed = path_patching.DEFAULT_SEED if column in main else fa.HARD_SEED
        assert draws.loc[seed, column] == pytest.approx(chapter[column], abs=1e-9), column
    # another seed draws other partners: the numbers move
    assert (draws.loc[path_patching.DEFAULT_SEED] != draws.loc[fa.HARD_SEED]).all()


def test_draw_spread_by_hand():
    import pandas as pd

    draws = pd.DataFrame({"a": [0.1, 0.3, 0.2, 0.5], "b": [2.0, 1.0, 4.0, 3.0]}, index=[100, 101, 102, 103])
    spread = fc.draw_spread(draws, {"a": 0.25, "b": 1.0})
    assert spread.loc["a"].tolist() == pytest.approx([0.25, 0.1, 0.25, 0.5, 2])
    assert spread.loc["b"].tolist() == pytest.approx([1.0, 1.0, 2.5, 4.0, 0])  # a tie is not below
    assert list(spread.columns) == ["chapter", "min", "median", "max", "draws below"]
    assert spread.index.name == "over 4 other draws"
    with pytest.raises(ValueError, match="exactly the quantities"):
        fc.draw_spread(draws, {"a": 0.25})
    with pytest.raises(ValueError, match="non-empty table"):
        fc.draw_spread(draws.iloc[:0], {"a": 0.25, "b": 1.0})


@pytest.mark.parametrize(
    "seeds, match",
    [
        ([], "non-empty list"),
        ("12", "non-empty list"),
        ([1, 1], "distinct"),
        ([-1], r"^seeds\[0\] must be an integer >= 0 and <= 9223372036854775806, got -1"),
        ([0, True], r"^seeds\[1\] must be an integer >= 0 and <= 9223372036854775806, got True"),
        ([1.5], r"^seeds\[0\] must be an integer >= 0 and <= 9223372036854775806, got 1.5"),
    ],
)
def test_resample_draws_refuse_bad_seeds(model, seeds, match):
    with pytest.raises(ValueError, match=match):
        fc.resample_draws(model, seeds=seeds, progress=False)


def test_chapter_draw_needs_the_resampled_tables():
    with pytest.raises(ValueError, match="include 'resample'"):
        fc.chapter_draw({"mean": None}, {"resample": None}, {"resample": None})


@pytest.mark.slow
def test_every_redrawn_comparison_keeps_its_direction(model):
    """Chapter 10's verdict on its resampled numbers: over ``DRAW_SEEDS`` each sits on the same side of the
    mean-ablated number (or the control) it is compared with in the chapter."""
    data = fa.main_dataset()
    draws = fc.resample_draws(model, progress=False)
    assert len(draws) == len(fc.DRAW_SEEDS) == 20
    assert not set(fc.DRAW_SEEDS) & {path_patching.DEFAULT_SEED, fa.HARD_SEED}
    mean = fa.path_contributions(model, data.toks, data.is_palindrome, "mean", fc.DRAW_MAIN, progress=False)
    hard = fa.hard_subset_errors(model, "mean", reference_toks=data.toks)
    resampled_elsewhere = fa.hard_subset_position_errors(model, "resample", reference_toks=data.toks)
    clean = mean.loc[fa.CLEAN, "loss"]
    assert draws["hypothesis loss recovered"].max() < mean.loc["hypothesis", "loss_recovered"]
    assert draws["hypothesis accuracy"].min() > mean.loc["hypothesis", "accuracy"]
    for head in ("H0.1", "H1.1"):
        assert draws[f"full - {head} loss increase"].min() > mean.loc[f"full - {head}", "loss"] - clean
    assert draws["+ H1.1 missed at 20"].min() > hard.loc["+ H1.1", 20]
    assert draws["full - H0.1 missed at 20"].min() > hard.loc["full - H0.1", 20]
    edit = draws["H0.1 -> H1.1 at 20 only missed at 20"]
    assert edit.min() > resampled_elsewhere.loc["H0.1 -> H1.1 except at 20", 20]
