"""Chapter 1's exercises, on the task itself: labelling a batch and the generator's chance of one broken pair.

Method. Each exercise is a reference solution, a generator of cases and mutants, as ``exercise_checks`` sets out;
the tuple of ``Exercise`` records at the end is all this module exports (``EXERCISES[id].reference`` reaches each
reference).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Optional

import torch
from torch import Tensor

from palindrome import data, inputs, tokens
from palindrome import data_distribution as gen
from palindrome.book.exercise_checks import (
    SIGMAS,
    Case,
    Exercise,
    Mutant,
    _float_problem,
    _generator,
    _tensor_problem,
    _value_case,
)
from palindrome.constants import END, HALF_LENGTH, MAX_VALUE, SECOND_HALF, START

__all__ = ["TASK_EXERCISES"]


def _pal_tokens(values: Tensor) -> Tensor:
    """START, values, END for a batch of 20 values each."""
    n = values.shape[0]
    return torch.cat([torch.full((n, 1), START), values, torch.full((n, 1), END)], 1)


# --- 1.1 labels ----------------------------------------------------------------------------------


def labels(toks):
    values = toks[:, 1:-1]
    return (values == values.flip(-1)).all(-1)


def _labels_cases() -> Iterator[Case]:
    def expected(toks: Tensor) -> Tensor:
        return tokens.is_palindrome(toks).bool()

    def case(name: str, toks: Tensor) -> Case:
        return _value_case(name, (toks,), expected, lambda g, e: _tensor_problem(g, e, "bool"), _LABELS_MUTANTS)

    fixed = _pal_tokens(
        torch.tensor(
            [
                [5] * 20,  # a palindrome whose halves are also equal
                list(range(1, 11)) + list(range(10, 0, -1)),  # 1..10, 10..1: a palindrome
                list(range(1, 11)) * 2,  # 1..10, 1..10: equal halves, not a palindrome
            ]
        )
    )
    yield case("fixed: constant, 1..10 10..1, 1..10 1..10", fixed)
    yield case("PalindromeDataset(32)", data.PalindromeDataset(32).toks)
    g = _generator(11)
    bases = inputs.random_palindromes(8, g)
    for position in (11, 17, 19, 20):  # the first pair checked last, the blind pairs, the pair at END's side
        mixed = torch.cat([bases[:4], inputs.break_pairs(bases[4:], [position], g)])
        yield case(f"one broken pair at {position} (half the batch)", mixed)
    yield case("PalindromeDataset(32, seed=5)", data.PalindromeDataset(32, seed=5).toks)
    palindromes = inputs.random_palindromes(20, _generator(12))
    each = torch.cat([inputs.break_pairs(palindromes[i : i + 1], [p], g) for i, p in enumerate(SECOND_HALF)])
    yield case("each of the ten pairs broken once, then ten palindromes", torch.cat([each, palindromes[10:]]))


_LABELS_MUTANTS = (
    Mutant(
        "no reversal",
        lambda toks: (toks[:, 1:11] == toks[:, 11:21]).all(-1),
        "did you reverse the second half? a_p pairs with a_(21-p)",
    ),
    Mutant(
        "START and END compared",
        lambda toks: (toks == toks.flip(-1)).all(-1),
        "did you compare START with END? they are never equal; compare the 20 values only",
    ),
    Mutant(
        "nine pairs",
        lambda toks: (toks[:, 1:10] == toks[:, 12:21].flip(-1)).all(-1),
        "did you compare every pair? the pair (10, 11) is missing",
    ),
    Mutant("long labels", lambda toks: labels(toks).long(), "expected dtype torch.bool"),
)


# --- 1.2 the generator's closed form -------------------------------------------------------------


def p_single(half_length, max_value):
    q = 0.5 * max_value / (max_value + 1)  # a near-palindrome slot breaks its pair
    return 0.5 * half_length * q * (1 - q) ** (half_length - 1)


SIMULATION_SIZE: int = 20_000


def _simulated_single(half_length: int, max_value: int) -> tuple[float, float]:
    """The fraction of ``SIMULATION_SIZE`` generated sequences with exactly one broken pair, and its standard error."""
    values = data.generate_sequences(SIMULATION_SIZE, max_value, half_length, seed=0)
    toks = torch.cat(
        [torch.full((SIMULATION_SIZE, 1), max_value + 1), values, torch.full((SIMULATION_SIZE, 1), max_value + 2)], 1
    )
    share = (gen.mismatch_counts(toks, half_length, max_value) == 1).double().mean().item()
    return share, math.sqrt(share * (1 - share) / SIMULATION_SIZE)


def _p_single_cases() -> Iterator[Case]:
    def case(name: str, half_length: int, max_value: int) -> Case:
        return _value_case(name, (half_length, max_value), gen.single_mismatch_fraction, _float_problem, _P_MUTANTS)

    yield case("the July data (10, 30)", HALF_LENGTH, MAX_VALUE)
    yield case("one pair, two values (1, 1)", 1, 1)
    yield case("(2, 1)", 2, 1)
    g = _generator(12)
    for i in range(2):
        h, m = (int(x) for x in torch.randint(1, 25, (2,), generator=g))
        yield case(f"seeded random sizes #{i + 1} ({h}, {m})", h, m)
    h, m = 4, 3

    def simulated(got: Any) -> Optional[str]:
        if (problem := _float_problem(got, gen.single_mismatch_fraction(h, m), atol=1.0)) is not None:
            return problem
        share, se = _simulated_single(h, m)
        if abs(float(got) - share) > SIGMAS * se:
            return (
                f"the generator's own sequences (data.generate_sequences, {SIMULATION_SIZE:,} of them) have exactly "
                f"one broken pair in a share {share:.4f} +- {se:.4f}; your {float(got):.4f} lies "
                f"{abs(float(got) - share) / se:.1f} standard errors away (at most {SIGMAS:g} pass)"
            )
        return None

    closed = _value_case("", (h, m), gen.single_mismatch_fraction, _float_problem, _P_MUTANTS)
    yield Case(f"simulation ({h}, {m})", (h, m), simulated, closed.mistakes)


_P_MUTANTS = (
    Mutant(
        "near-palindromes only",
        lambda h, m: h * (0.5 * m / (m + 1)) * (1 - 0.5 * m / (m + 1)) ** (h - 1),
        "did you forget that half of the dataset are palindromes by construction?",
    ),
    Mutant(
        "q = 1/2",
        lambda h, m: 0.5 * h * 0.5**h,
        "a fresh value equals its mirror with probability 1/(max_value+1), so a slot breaks its pair with "
        "probability 1/2 * max_value/(max_value+1)",
    ),
    Mutant(
        "no binomial coefficient",
        lambda h, m: 0.5 * (0.5 * m / (m + 1)) * (1 - 0.5 * m / (m + 1)) ** (h - 1),
        "the one broken pair can be any of the half_length pairs",
    ),
)


# --- the exercises --------------------------------------------------------------------------------


TASK_EXERCISES: tuple[Exercise, ...] = (
    Exercise("1.1", 1, "Label a batch", "labels(toks) -> Bool[batch]", 1, 3, 5, labels, _labels_cases, _LABELS_MUTANTS),
    Exercise(
        "1.2",
        1,
        "How often the generator breaks exactly one pair",
        "p_single(half_length, max_value) -> float",
        2,
        4,
        15,
        p_single,
        _p_single_cases,
        _P_MUTANTS,
    ),
)
"""Chapter 1's exercises, in book order."""
