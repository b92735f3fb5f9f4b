"""The book's exercises by id: the registry ``EXERCISES`` and ``check``, the call every chapter's check cell makes.

Chapters and learner notebooks use ``from palindrome.book import exercises as ex`` and
``_ = ex.check("2.1", token_qk)``. The exercises themselves (reference solutions, cases and mutants) live
by part of the book: ``exercises_task`` (chapter 1), ``exercises_circuits`` (chapters 2 to 5) and
``exercises_interventions`` (chapters 6 to 9); the checker they share (``Exercise``, ``Case``, ``Mutant``,
the comparisons and tolerances) is ``exercise_checks``. ``Exercise``, ``ExerciseFailed`` and ``Mutant``
are exported from here too, so a learner needs this module only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from palindrome.book import exercises_circuits, exercises_interventions, exercises_task
from palindrome.book.exercise_checks import Exercise, ExerciseFailed, Mutant

__all__ = ["EXERCISES", "Exercise", "ExerciseFailed", "Mutant", "check"]


EXERCISES: dict[str, Exercise] = {
    e.id: e
    for part in (
        exercises_task.TASK_EXERCISES,
        exercises_circuits.CIRCUIT_EXERCISES,
        exercises_interventions.INTERVENTION_EXERCISES,
    )
    for e in part
}
"""Every exercise of the book, keyed by id ("2.1": chapter 2's first exercise), in book order."""


def check(exercise_id: str, fn: Callable[..., Any]) -> bool:
    """``EXERCISES[exercise_id].check(fn)``: the call a chapter's check cell makes."""
    if not isinstance(exercise_id, str) or exercise_id not in EXERCISES:
        raise ValueError(f"exercise_id must be one of {sorted(EXERCISES)}, got {exercise_id!r}")
    return EXERCISES[exercise_id].check(fn)
