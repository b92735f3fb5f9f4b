"""What sits on top of the chapters: the reconciliation of the claims, the live page, the exercises, the report.

These modules may import any chapter module; no package module outside this folder imports them (notebooks, ``_ext``
and the command line may). ``tests/test_layers.py`` checks both rules.
"""

MODULES: tuple[str, ...] = (
    "claims",  # the published claims, the numbers that test them and their verdict rules
    "reconciliation",  # every published claim against the measured numbers: the table, and chapter 8's verdict
    "live",  # the "Try it" page: the weights exported for the in-browser forward pass
    "exercise_checks",  # the checker every exercise shares: Exercise, Case, Mutant, the comparisons
    "exercises_task",  # chapter 1's exercises: references, cases, mutants
    "exercises_circuits",  # the exercises of chapters 2 to 5
    "exercises_interventions",  # the exercises of chapters 6 to 9
    "exercises",  # the registry EXERCISES and check, the call the chapters' check cells make
    "report",  # the book's analysis on any checkpoint (python -m palindrome.book.report)
)
"""The modules of this folder."""
