"""Each module of the package does one job: its docstring opens with one sentence saying which, and it stays short.

A module past ``MAX_LINES`` or without that sentence is named with what to do. The sentence is the first paragraph
of the docstring; it must end with a full stop and hold no second sentence (a full stop followed by a capital).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "palindrome"
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
MAX_LINES = 600


def job_sentence_problem(source: str) -> str | None:
    """Why a module's docstring does not open with one sentence stating its job, or None when it does."""
    doc = ast.get_docstring(ast.parse(source))
    if not doc:
        return "has no docstring: open one with a sentence that states the module's one job"
    first = doc.strip().split("\n\n", 1)[0].replace("\n", " ").strip()
    if not first.endswith((".", "?")) and not first.endswith(".``"):
        return f"its docstring's first paragraph is not a sentence ending in a full stop: {first[:80]!r}"
    if re.search(r"[a-z0-9)`'\"]\. +[A-Z]", first[:-1]):
        return f"its docstring opens with more than one sentence: {first[:120]!r} (one sentence, then a blank line)"
    return None


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_states_its_one_job(path):
    problem = job_sentence_problem(path.read_text())
    assert problem is None, f"{path.relative_to(PACKAGE.parent)} {problem}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_600_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines: split it by job (<= {MAX_LINES})"


@pytest.mark.parametrize(
    "doc, problem",
    [
        ('"""Chapter 8: the blind-spot map."""', None),
        ('"""The map.\n\nMethod. More text. And more."""', None),
        ("x = 1", "has no docstring"),
        ('"""The map. And the verdicts."""', "more than one sentence"),
        ('"""The map and\nthe verdicts\n\nMethod."""', "not a sentence ending"),
    ],
)
def test_the_job_check_reads_the_first_paragraph(doc, problem):
    found = job_sentence_problem(doc)
    assert (found is None) if problem is None else (problem in found)
