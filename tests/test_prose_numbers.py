"""The prose cannot drift from the numbers: the guard of ``prose_numbers`` on every chapter.

The rules (what counts as a number, rounding, percentages, ranges, signs, marks) are in the
docstring of ``tests/prose_numbers.py``. The unit tests below pin those rules on small made-up
cells, including the failure a reader would care about: a number edited in the prose.
"""

from __future__ import annotations

import json
from pathlib import Path

import prose_numbers as pn
import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = {pn.page_key(p): p for p in sorted((REPO / "chapters").glob("*.ipynb"))}


@pytest.mark.parametrize("page", sorted(CHAPTERS), ids=lambda n: CHAPTERS[n].stem)
def test_every_prose_number_is_printed_or_marked(page):
    found = pn.problems(CHAPTERS[page], CHAPTERS)
    assert not found, "prose numbers without a source:\n" + "\n".join(found)


def _numbers(markdown):
    return [n.text for n in pn.prose_numbers(markdown)]


def test_what_counts_as_a_number():
    text = (
        "H0.0 and heads 0.1 and 1.1 attend; position 17 is blind in 7 of the 10 cases, "
        "on 29,760 inputs and 500 more, in 2023, missing 8.3% ($q \\approx 0.484$, $31 \\times 30 = 930$); "
        "`0.123` is code, the range 0.56 to 0.70 and 6-12% count."
    )
    assert _numbers(text) == ["7", "10", "29,760", "500", "8.3%", "0.484", "0.56", "0.70", "6%", "12%"]


def test_rounding_percentages_and_signs():
    printed = pn.printed_numbers("misclassified 0.0826, vote -3.145, accuracy 99.8%, 592 / 100000")
    assert pn.matches(pn.prose_numbers("missed 8.3% of the time")[0], printed)
    assert pn.matches(pn.prose_numbers("missed 0.08 of the time")[0], printed)
    assert pn.matches(pn.prose_numbers("a vote of -3.1")[0], printed)
    assert pn.matches(pn.prose_numbers("a vote of 3.15")[0], printed)  # 3.145 half up
    assert pn.matches(pn.prose_numbers("accuracy 0.998")[0], printed)
    assert pn.matches(pn.prose_numbers("on 100,000 inputs")[0], printed)
    assert not pn.matches(pn.prose_numbers("missed 8.4% of the time")[0], printed)
    assert not pn.matches(pn.prose_numbers("missed 0.08260 of the time")[0], printed)  # more digits than printed
    assert not pn.matches(pn.prose_numbers("on 101,000 inputs")[0], printed)


def _chapter_with(tmp_path, prose, printed, marks=None):
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {pn.MARK_KEY: marks} if marks else {}, "source": prose},
            {
                "cell_type": "code",
                "metadata": {"tags": [pn.CHECK_TAG]},
                "source": "print(...)",
                "outputs": [{"output_type": "stream", "name": "stdout", "text": printed}],
            },
        ]
    }
    path = tmp_path / "01_made_up.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_guard_fails_on_an_edited_number_and_names_page_number_and_sentence(tmp_path):
    path = _chapter_with(tmp_path, "The pair is missed 8.3% of the time. Nothing else.", "missed 0.083\n")
    assert pn.problems(path, {"chapter 1": path}) == []
    edited = _chapter_with(tmp_path, "The pair is missed 8.4% of the time. Nothing else.", "missed 0.083\n")
    [message] = pn.problems(edited, {"chapter 1": edited})
    assert "01_made_up.ipynb" in message and "8.4%" in message and "The pair is missed 8.4% of the time." in message


def test_only_checked_cells_count(tmp_path):
    path = _chapter_with(tmp_path, "Missed 0.083 of the time.", "missed 0.083\n")
    nb = json.loads(path.read_text())
    nb["cells"][1]["metadata"]["tags"] = []
    path.write_text(json.dumps(nb))
    assert len(pn.problems(path, {"chapter 1": path})) == 1


def test_marks_derived_quoted_chapter_and_stale(tmp_path):
    other = tmp_path / "08_other.ipynb"
    other.write_text(json.dumps(json.loads(_chapter_with(tmp_path, "x", "rate 0.083\n").read_text())))
    prose = "The mean is 4.8, they found 0.373, Chapter 8 measured 0.083."
    marks = {"4.8": "derived: 10 q", "0.373": "quoted: the other analysis, claim 4", "0.083": "chapter 8"}
    path = _chapter_with(tmp_path, prose, "nothing\n", marks)
    pages = {"chapter 1": path, "chapter 8": other}
    assert pn.problems(path, pages) == []
    wrong_cite = marks | {"0.083": "chapter 1"}
    path = _chapter_with(tmp_path, prose, "nothing\n", wrong_cite)
    [message] = pn.problems(path, pages | {"chapter 1": path})
    assert "cited from chapter 1" in message
    stale = marks | {"9.9": "derived: gone"}
    path = _chapter_with(tmp_path, prose, "nothing\n", stale)
    [message] = pn.problems(path, pages | {"chapter 1": path})
    assert "names no number" in message
    bad_kind = marks | {"4.8": "because"}
    path = _chapter_with(tmp_path, prose, "nothing\n", bad_kind)
    assert any("is not 'derived" in m for m in pn.problems(path, pages | {"chapter 1": path}))


def test_page_keys():
    assert pn.page_key(Path("chapters/08_blind_spot_map.ipynb")) == "chapter 8"
    assert pn.page_key(Path("chapters/A_blind_spot_details.ipynb")) == "appendix A"
    with pytest.raises(ValueError, match="NN_name"):
        pn.page_key(Path("chapters/notes.ipynb"))
