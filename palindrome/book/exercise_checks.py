"""The exercises' checker: ``Exercise`` runs a learner's function on its ``Case``s and names the ``Mutant`` it matches.

Method. Each ``Exercise`` holds its reference solution (written as a learner would write it) and a
list of cases. ``check(fn)`` runs the learner's function on every case (fixed inputs, inputs drawn
from seeded generators and passed in, the positions the book cares about, and, for every answer that
depends on the model, shipped replicas whose answer differs) and compares each answer with the value of
the package's own function for that quantity: type, shape and dtype first, then values within
``RTOL`` (relative) and an absolute floor of ``ATOL_SHARE`` times the largest expected entry, since
float32 products cannot give entries near zero four significant digits. An open-ended answer ("five
inputs that fool this model") is judged by what it must satisfy, and a simulated quantity within
``SIGMAS`` standard errors. Every check has exactly three outcomes: it passes (prints one ✓ line and
returns True), finds the exercise not implemented (``NotImplementedError``, ``None`` or ``...``:
prints "not implemented yet" and returns False), or raises ``ExerciseFailed`` naming the case, what
was expected and what came back. When the answer equals what a registered mutant (a plausible wrong
solution) returns, or the July model's answer on a replica, the message says which mistake that is.
A check builds its inputs on ``model.cfg.device``, compares on the CPU and leaves torch's global RNG
as it found it.

The helpers below the classes (``_tensor_problem``, ``_float_problem``, ``_value_case``, the models
``_july`` and ``_replica``, ...) are private to the exercise modules (``exercises_task``,
``exercises_circuits``, ``exercises_interventions``), which build their cases from them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from numbers import Real
from typing import Any, Optional

import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from palindrome.model import load_model
from palindrome.replicas import load_replica

__all__ = ["ATOL_SHARE", "NOT_IMPLEMENTED", "RTOL", "SIGMAS", "Case", "Exercise", "ExerciseFailed", "Mutant"]

RTOL: float = 1e-4
"""Relative tolerance of every value comparison."""
ATOL_SHARE: float = 1e-5
"""Absolute floor of a tensor comparison, as a share of the largest expected entry (float32 rounding)."""
SIGMAS: float = 4.0
"""A simulated quantity passes within this many standard errors."""
NOT_IMPLEMENTED: str = "not implemented yet"


class ExerciseFailed(AssertionError):
    """A learner's answer is wrong: the message names the case, what was expected and what came back."""


@dataclass(frozen=True)
class Mutant:
    """A plausible wrong solution and the words its check's message must contain."""

    name: str
    fn: Callable[..., Any]
    message: str


@dataclass(frozen=True)
class Case:
    """One call of the learner's function: its arguments, how to judge the answer, and known mistakes."""

    name: str
    args: tuple
    judge: Callable[[Any], Optional[str]]
    """None when the answer is right, else what is wrong with it."""
    mistakes: tuple[tuple[str, Callable[[Any], bool]], ...] = ()
    """(what the mistake is, whether the answer shows it), tried in order once the judge fails."""
    same_as: Optional[str] = None
    """An earlier case on another model: an answer equal to that case's means the model was ignored."""
    prepare: Callable[[], Any] = lambda: None
    """Computes (and keeps) the expected value before the learner's function runs."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it sits, what the learner writes, the reference solution and its check."""

    id: str
    chapter: int
    title: str
    signature: str
    difficulty: int
    importance: int
    minutes: int
    reference: Callable[..., Any]
    cases: Callable[[], Iterator[Case]] = field(repr=False)
    mutants: tuple[Mutant, ...] = field(default=(), repr=False)

    @property
    def heading(self) -> str:
        """The title the book shows: ``Exercise 2.1 · <title> (difficulty 2/5, importance 4/5, 15 min)``."""
        return (
            f"Exercise {self.id} · {self.title} "
            f"(difficulty {self.difficulty}/5, importance {self.importance}/5, {self.minutes} min)"
        )

    def check(self, fn: Callable[..., Any]) -> bool:
        """Run ``fn`` on every case: True (and a ✓ line) if right, False if not implemented, else ExerciseFailed."""
        if not callable(fn):
            raise ValueError(f"check takes your function itself (for example {self.signature}), got {fn!r}")
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        try:
            return self._run(fn)
        finally:
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)

    def _run(self, fn: Callable[..., Any]) -> bool:
        answers: dict[str, Any] = {}
        n = 0
        for case in self.cases():
            case.prepare()  # the expected value first, from the checker's own copy of every argument
            try:
                got = _plain(fn(*_copy(case.args)))
            except NotImplementedError:
                print(f"Exercise {self.id}: {NOT_IMPLEMENTED}")
                return False
            except Exception as error:  # noqa: BLE001 - the learner's code raised: report it as a failed case
                raise ExerciseFailed(
                    f"Exercise {self.id}, case {case.name!r}: your function raised {type(error).__name__}: {error}"
                ) from error
            if got is None or got is Ellipsis:
                print(f"Exercise {self.id}: {NOT_IMPLEMENTED}")
                return False
            problem = case.judge(got)
            if problem is not None:
                hints = [text for text, shows in case.mistakes if _safe(shows, got)]
                if case.same_as is not None and _same(got, answers.get(case.same_as)):
                    hints.insert(0, "your answer does not depend on the model you were given")
                hints = [h for h in hints if h not in problem]  # a message that already says it needs no hint
                hint = f" Hint: {hints[0]}" if hints else ""
                raise ExerciseFailed(f"Exercise {self.id}, case {case.name!r}: {problem}.{hint}")
            answers[case.name] = got
            n += 1
        print(f"✓ Exercise {self.id} passed: {n} cases")
        return True


# --- helpers of every check --------------------------------------------------------------------


def _copy(args: tuple) -> tuple:
    """The arguments the learner gets: deep copies (tensors, sets, and the model with its hooks), so an answer that
    edits its input, zeroes the model's weights or leaves a hook on it changes nothing the check or a later check
    reads."""
    return tuple(copy.deepcopy(a) for a in args)


def _plain(value: Any) -> Any:
    """The answer with every tensor a plain ``torch.Tensor`` (a subclass could redefine the comparisons that judge
    it), inside tuples, lists, sets and dicts too."""
    if isinstance(value, Tensor):
        return torch.Tensor.as_subclass(value, Tensor) if type(value) is not Tensor else value
    if isinstance(value, (tuple, list, set, frozenset)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def _safe(shows: Callable[[Any], bool], got: Any) -> bool:
    try:
        return bool(shows(got))
    except Exception:  # noqa: BLE001 - a diagnosis that cannot be computed does not apply
        return False


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.shape == b.shape and bool((a.detach().cpu() == b.detach().cpu()).all())
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return False


@lru_cache(maxsize=1)
def _july() -> HookedTransformer:
    return load_model()


@lru_cache(maxsize=None)
def _replica(seed: int) -> HookedTransformer:
    return load_replica(seed, device=_july().cfg.device)


def _on(model: HookedTransformer, toks: Tensor) -> Tensor:
    return toks.to(model.cfg.device)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _show(x: Any) -> str:
    if isinstance(x, Tensor):
        return f"a tensor of shape {tuple(x.shape)}, dtype {x.dtype}"
    text = repr(x)
    return text if len(text) < 120 else text[:117] + "..."


def _tensor_problem(got: Any, expected: Tensor, kind: str = "float") -> Optional[str]:
    """What is wrong with a tensor answer: type, shape, dtype, then values (``kind``: float, bool or int)."""
    if not isinstance(got, Tensor):
        return f"expected a torch.Tensor of shape {tuple(expected.shape)}, got {type(got).__name__} {_show(got)}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}"
    if kind == "float" and not got.is_floating_point():
        return f"expected a floating-point tensor, got dtype {got.dtype}"
    if kind == "bool" and got.dtype != torch.bool:
        return f"expected dtype torch.bool, got dtype {got.dtype}"
    if kind == "int" and (got.is_floating_point() or got.is_complex() or got.dtype == torch.bool):
        return f"expected an integer tensor, got dtype {got.dtype}"
    g, e = got.detach().cpu(), expected.detach().cpu()
    if kind == "float":
        g, e = g.double(), e.double()
        if not torch.isfinite(g).all():
            return "your answer holds NaN or inf"
        atol = ATOL_SHARE * float(e.abs().max()) if e.numel() else 0.0
        bad = ~torch.isclose(g, e, rtol=RTOL, atol=atol)
    else:
        bad = g != e
    if not bad.any():
        return None
    index = tuple(bad.nonzero()[0].tolist())
    where = f"at index {index}" if index else "the value"
    tolerance = f" beyond rtol {RTOL:g}" if kind == "float" else ""
    return (
        f"{where} expected {e[index].item():.6g}, got {g[index].item():.6g} "
        f"({int(bad.sum())} of {bad.numel()} entries differ{tolerance})"
    )


def _float_problem(got: Any, expected: float, atol: float = 1e-9) -> Optional[str]:
    """What is wrong with a float answer: a real number (not a tensor), within rtol ``RTOL`` (and ``atol``)."""
    if isinstance(got, Tensor):
        return f"expected a Python float, got {_show(got)} (call .item() on a one-element tensor)"
    if isinstance(got, bool) or not isinstance(got, Real):
        return f"expected a float, got {type(got).__name__} {_show(got)}"
    if not math.isfinite(got):
        return f"expected a finite float, got {got}"
    if not math.isclose(float(got), expected, rel_tol=RTOL, abs_tol=atol):
        return f"expected {expected:.6g}, got {float(got):.6g} (rtol {RTOL:g}, atol {atol:g})"
    return None


def _value_case(
    name: str,
    args: tuple,
    expected: Callable[..., Any],
    problem: Callable[[Any, Any], Optional[str]],
    mutants: tuple[Mutant, ...] = (),
    july_variant: bool = False,
) -> Case:
    """A case whose answer is one value: ``expected(*args)`` (lazily, once), compared by ``problem``.

    The mistakes tried are each mutant's answer on the same arguments and, with ``july_variant``
    (``args[0]`` a replica), the expected answer computed on the July model instead.
    """
    memo: dict[str, Any] = {}

    def value() -> Any:
        if "value" not in memo:
            memo["value"] = expected(*args)
        return memo["value"]

    mistakes: list[tuple[str, Callable[[Any], bool]]] = []
    if july_variant:
        mistakes.append(
            (
                "your answer does not depend on the model you were given (it is the July model's answer)",
                lambda got: problem(got, expected(_july(), *args[1:])) is None,
            )
        )
    for mutant in mutants:
        mistakes.append((mutant.message, lambda got, m=mutant: problem(got, m.fn(*_copy(args))) is None))
    return Case(name, args, lambda got: problem(got, value()), tuple(mistakes), prepare=value)
