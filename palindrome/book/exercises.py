"""Exercises with checkers: the registry ``EXERCISES`` that the chapters and the learner notebooks call.

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
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from numbers import Integral, Real
from typing import Any, Optional

import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from palindrome import ablation as abl
from palindrome import attribution as attr
from palindrome import circuits as circ
from palindrome import composition as comp
from palindrome import data, fast, inputs, tokens
from palindrome import data_distribution as gen
from palindrome.chapters import adversarial as adv
from palindrome.chapters import blindspots as bs
from palindrome.constants import END, END_POS, HALF_LENGTH, MAX_VALUE, MIRROR, SECOND_HALF, START
from palindrome.metrics import cross_entropy
from palindrome.model import load_model
from palindrome.replicas import load_replica

__all__ = ["EXERCISES", "Exercise", "ExerciseFailed", "Mutant", "check"]

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


def check(exercise_id: str, fn: Callable[..., Any]) -> bool:
    """``EXERCISES[exercise_id].check(fn)``: the call a chapter's check cell makes."""
    if not isinstance(exercise_id, str) or exercise_id not in EXERCISES:
        raise ValueError(f"exercise_id must be one of {sorted(EXERCISES)}, got {exercise_id!r}")
    return EXERCISES[exercise_id].check(fn)


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


# --- 2.1 and 2.2: layer-0 QK circuits --------------------------------------------------------------


def token_qk(model, layer, head, scale):
    W_E = model.W_E / scale  # LayerNorm at layer 0 only divides by the scale
    q = W_E @ model.W_Q[layer, head]
    k = W_E @ model.W_K[layer, head]
    return (q @ k.T / model.cfg.d_head**0.5).detach().cpu()


def _token_qk_expected(model: HookedTransformer, layer: int, head: int, scale: float) -> Tensor:
    return circ.embedding_qk_circuit(model, layer, head, scale, pattern=False)


def _qk_cases(expected: Callable[..., Any], problem: Callable[[Any, Any], Optional[str]], mutants) -> Iterator[Case]:
    july = _july()
    yield _value_case("July H0.0, scale 0.214", (july, 0, 0, 0.214), expected, problem, mutants)
    yield _value_case("July H0.1, scale 0.2", (july, 0, 1, 0.2), expected, problem, mutants)
    yield _value_case("July H1.0, scale 0.5", (july, 1, 0, 0.5), expected, problem, mutants)
    scale = 0.1 + torch.rand(1, generator=_generator(21)).item()
    yield _value_case(f"July H0.0, seeded scale {scale:.4f}", (july, 0, 0, scale), expected, problem, mutants)
    for seed in (0, 1):
        yield _value_case(
            f"replica {seed} H0.0, scale 0.214", (_replica(seed), 0, 0, 0.214), expected, problem, mutants, True
        )


def _token_qk_cases() -> Iterator[Case]:
    return _qk_cases(_token_qk_expected, _tensor_problem, _TOKEN_QK_MUTANTS)


_TOKEN_QK_MUTANTS = (
    Mutant(
        "no sqrt(d_head)",
        lambda model, layer, head, scale: token_qk(model, layer, head, scale) * model.cfg.d_head**0.5,
        "did you divide by sqrt(d_head)?",
    ),
    Mutant(
        "query and key swapped",
        lambda model, layer, head, scale: token_qk(model, layer, head, scale).T,
        "did you swap query and key? rows are query tokens (W_Q), columns key tokens (W_K)",
    ),
    Mutant(
        "no LayerNorm scale",
        lambda model, layer, head, scale: token_qk(model, layer, head, scale) * scale**2,
        "did you divide the embeddings by the LayerNorm scale?",
    ),
    Mutant(
        "softmax",
        lambda model, layer, head, scale: token_qk(model, layer, head, scale).softmax(-1),
        "the exercise asks for the scores before the softmax",
    ),
    Mutant(
        "always head 0",
        lambda model, layer, head, scale: token_qk(model, layer, 0, scale),
        "you used the wrong head: index W_Q and W_K with both layer and head",
    ),
    Mutant(
        "July model",
        lambda model, layer, head, scale: token_qk(_july(), layer, head, scale),
        "your answer does not depend on the model you were given",
    ),
)


def preferred_keys(model, layer, head, scale):
    W_pos = model.W_pos / scale
    scores = (W_pos @ model.W_Q[layer, head]) @ (W_pos @ model.W_K[layer, head]).T / model.cfg.d_head**0.5
    return {query: int(scores[query, : query + 1].argmax()) for query in range(11, 21)}


def _preferred_expected(model: HookedTransformer, layer: int, head: int, scale: float) -> dict[int, int]:
    pattern = circ.positional_qk_circuit(model, layer, head, scale)  # causal softmax: later keys get 0
    return {q: int(pattern[q, : q + 1].argmax()) for q in SECOND_HALF}


def _dict_problem(got: Any, expected: dict[int, int]) -> Optional[str]:
    if not isinstance(got, dict):
        return f"expected a dict {{query position: key position}}, got {type(got).__name__} {_show(got)}"
    if set(got) != set(expected):
        return f"expected the keys {sorted(expected)} (the second-half queries), got {sorted(got, key=str)}"
    for query, key in expected.items():
        value = got[query]
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, Integral):
            return f"query {query}: expected an int key position, got {type(value).__name__} {_show(value)}"
        if int(value) != key:
            return f"query {query}: expected key {key}, got {int(value)}"
    return None


def _preferred_cases() -> Iterator[Case]:
    return _qk_cases(_preferred_expected, _dict_problem, _PREFERRED_MUTANTS)


_PREFERRED_MUTANTS = (
    Mutant(
        "no causal mask",
        lambda model, layer, head, scale: {
            q: int(_positional_scores(model, layer, head, scale)[q].argmax()) for q in SECOND_HALF
        },
        "a query sees only the keys at or before it: mask the later positions",
    ),
    Mutant(
        "query and key swapped",
        lambda model, layer, head, scale: {
            q: int(_positional_scores(model, layer, head, scale).T[q, : q + 1].argmax()) for q in SECOND_HALF
        },
        "did you swap query and key? rows are query positions (W_Q), columns key positions (W_K)",
    ),
    Mutant(
        "itself excluded",
        lambda model, layer, head, scale: {
            q: int(_positional_scores(model, layer, head, scale)[q, :q].argmax()) for q in SECOND_HALF
        },
        "a query can attend to itself: include the key at its own position",
    ),
    Mutant(
        "always head 0",
        lambda model, layer, head, scale: preferred_keys(model, layer, 0, scale),
        "you used the wrong head: index W_Q and W_K with both layer and head",
    ),
    Mutant(
        "July model",
        lambda model, layer, head, scale: preferred_keys(_july(), layer, head, scale),
        "your answer does not depend on the model you were given",
    ),
)


def _positional_scores(model: HookedTransformer, layer: int, head: int, scale: float) -> Tensor:
    """The positional scores (the mutants' helper): ``circuits.positional_qk_circuit`` before its softmax."""
    return circ.positional_qk_circuit(model, layer, head, scale, pattern=False)


# --- 3.1 and 3.2: direct logit attribution ---------------------------------------------------------


def direction(model):
    return (model.W_U[:, 0] - model.W_U[:, 1]).detach().cpu()


def _direction_cases() -> Iterator[Case]:
    def expected(model: HookedTransformer) -> Tensor:
        return circ.nonpal_direction(model).detach().cpu()

    yield _value_case("July", (_july(),), expected, _tensor_problem, _DIRECTION_MUTANTS)
    for seed in (0, 1):
        yield _value_case(f"replica {seed}", (_replica(seed),), expected, _tensor_problem, _DIRECTION_MUTANTS, True)


_DIRECTION_MUTANTS = (
    Mutant(
        "palindrome direction",
        lambda model: -direction(model),
        "the direction raises 'not palindrome' (logit 0) over 'palindrome' (logit 1): W_U[:, 0] - W_U[:, 1]",
    ),
    Mutant("rows", lambda model: (model.W_U[0] - model.W_U[1]).detach().cpu(), "expected shape (28,)"),
    Mutant("July model", lambda model: direction(_july()), "your answer does not depend on the model you were given"),
)


def dla(model, toks):
    _, cache = model.run_with_cache(toks)
    u = model.W_U[:, 0] - model.W_U[:, 1]
    embed = cache["hook_embed"]
    parts = [embed, cache["hook_pos_embed"].expand_as(embed)]
    for layer in range(model.cfg.n_layers):
        parts += list(cache[f"blocks.{layer}.attn.hook_result"].unbind(2))  # one part per head
    parts.append(model.b_O.sum(0).expand_as(embed))  # the output biases of every layer
    return torch.stack([part[:, -1] @ u for part in parts]).detach().cpu()


def _dla_cases() -> Iterator[Case]:
    def case(name: str, model: HookedTransformer, toks: Tensor, july: bool = False) -> Case:
        return _value_case(
            name, (model, _on(model, toks)), attr.component_attribution, _tensor_problem, _DLA_MUTANTS, july
        )

    yield case("July, PalindromeDataset(16)", _july(), data.PalindromeDataset(16).toks)
    g = _generator(31)
    bases = inputs.random_palindromes(4, g)
    broken = torch.cat([inputs.break_pairs(bases, [p], g) for p in (17, 19, 20)])
    yield case("July, seeded palindromes broken at 17, 19 and 20", _july(), torch.cat([bases, broken]))
    yield case("replica 9, PalindromeDataset(16)", _replica(9), data.PalindromeDataset(16).toks, True)


_DLA_MUTANTS = (
    Mutant(
        "palindrome direction",
        lambda model, toks: -dla(model, toks),
        "the direction raises 'not palindrome' (logit 0) over 'palindrome' (logit 1): W_U[:, 0] - W_U[:, 1]",
    ),
    Mutant(
        "no biases",
        lambda model, toks: dla(model, toks)[:-1],
        "expected shape (7,",
    ),
    Mutant(
        "position 0",
        lambda model, toks: _dla_at(model, toks, 0),
        "read every part at END (position 21, the last)",
    ),
    Mutant("July model", lambda model, toks: dla(_july(), toks), "your answer does not depend on the model"),
)


def _dla_at(model: HookedTransformer, toks: Tensor, position: int) -> Tensor:
    parts, _ = attr.residual_components(model, toks)
    return (parts[:, :, position] @ circ.nonpal_direction(model)).detach().cpu()


# --- 4.1 and 4.2: composition scores ---------------------------------------------------------------


def composition_score(W_A, W_B):
    return ((W_A @ W_B).norm() / (W_A.norm() * W_B.norm())).item()


def _composition_cases() -> Iterator[Case]:
    def case(name: str, A: Tensor, B: Tensor) -> Case:
        return _value_case(name, (A, B), comp.composition_score, _float_problem, _COMPOSITION_MUTANTS)

    g = _generator(41)
    for i in range(2):
        left, right = torch.randn(2, 28, 14, generator=g)
        other = torch.randn(28, 28, generator=g)
        yield case(f"seeded random 28x28 of rank 14 #{i + 1}", left @ right.T, other)
    july = _july()
    yield case(
        "July OV of H0.0 and QK^T of H1.0",
        circ.ov_circuit(july, 0, 0).AB.detach().cpu(),
        circ.qk_circuit(july, 1, 0).AB.T.detach().cpu(),
    )
    yield case("seeded random 28x14 and 14x5", torch.randn(28, 14, generator=g), torch.randn(14, 5, generator=g))


_COMPOSITION_MUTANTS = (
    Mutant(
        "order swapped",
        lambda A, B: ((B @ A).norm() / (A.norm() * B.norm())).item(),
        "W_A writes and W_B reads (row vectors): multiply W_A @ W_B",
    ),
    Mutant(
        "one norm",
        lambda A, B: ((A @ B).norm() / A.norm()).item(),
        "divide by both Frobenius norms, ||W_A|| and ||W_B||",
    ),
    Mutant(
        "squared norms",
        lambda A, B: ((A @ B).norm() ** 2 / (A.norm() ** 2 * B.norm() ** 2)).item(),
        "use the Frobenius norms themselves, not their squares",
    ),
    Mutant(
        "spectral norm",
        lambda A, B: (torch.linalg.matrix_norm(A @ B, 2) / (A.norm() * B.norm())).item(),
        "use the Frobenius norm (Tensor.norm()) of W_A @ W_B",
    ),
)


def k_composition(model, writer_head, reader_head):
    W_OV = model.W_V[0, writer_head] @ model.W_O[0, writer_head]
    W_QK = model.W_Q[1, reader_head] @ model.W_K[1, reader_head].T
    return composition_score(W_OV, W_QK.T)  # the key side reads the writer's output


def _k_expected(model: HookedTransformer, writer_head: int, reader_head: int) -> float:
    return comp.composition_scores(model, "K")[writer_head, reader_head].item()


def _k_cases() -> Iterator[Case]:
    july = _july()
    for writer, reader in ((0, 0), (0, 1), (1, 0), (1, 1)):
        yield _value_case(
            f"July H0.{writer} -> H1.{reader}", (july, writer, reader), _k_expected, _float_problem, _K_MUTANTS
        )
    yield _value_case("replica 7 H0.0 -> H1.0", (_replica(7), 0, 0), _k_expected, _float_problem, _K_MUTANTS, True)


def _k_variant(kind: str) -> Callable[..., float]:
    return lambda model, writer, reader: comp.composition_scores(model, kind)[writer, reader].item()


_K_MUTANTS = (
    Mutant("Q-composition", _k_variant("Q"), "that is Q-composition: K-composition reads on the key side, W_QK^T"),
    Mutant("V-composition", _k_variant("V"), "that is V-composition: K-composition reads through W_QK^T"),
    Mutant(
        "always writer head 0",
        lambda model, writer, reader: k_composition(model, 0, reader),
        "you used the wrong head: the writer is head 0.writer_head",
    ),
    Mutant(
        "July model",
        lambda model, writer, reader: k_composition(_july(), writer, reader),
        "your answer does not depend on the model",
    ),
)


# --- 5.1 V-composition -----------------------------------------------------------------------------


def value_attribution(model, toks, position):
    _, cache = model.run_with_cache(toks)
    v = cache["blocks.0.attn.hook_v"][:, position, 0]  # H0.0's value at the position
    u = model.W_U[:, 0] - model.W_U[:, 1]
    return (v @ model.W_O[0, 0] @ model.W_V[1, 0] @ model.W_O[1, 0] @ u).detach().cpu()


def _value_expected(model: HookedTransformer, toks: Tensor, position: int) -> Tensor:
    return attr.h00_value_attribution(model, toks, [position])[:, 0]


def _value_cases() -> Iterator[Case]:
    def case(name: str, model: HookedTransformer, toks: Tensor, position: int, july: bool = False) -> Case:
        args = (model, _on(model, toks), position)
        return _value_case(name, args, _value_expected, _tensor_problem, _VALUE_MUTANTS, july)

    examples = data.PalindromeDataset(100).toks[:4]
    yield case("PalindromeDataset(100)[:4], position 13 (chapter 5's 20.16 is example 2)", _july(), examples, 13)
    g = _generator(51)
    for position in (17, 19, 20):
        toks = inputs.break_pairs(inputs.random_palindromes(6, g), [position], g)
        yield case(f"seeded palindromes broken at {position}, position {position}", _july(), toks, position)
    yield case("replica 9, PalindromeDataset(100)[:4], position 14", _replica(9), examples, 14, True)


_VALUE_MUTANTS = (
    Mutant(
        "H0.0's output",
        lambda model, toks, position: attr.h00_output_attribution(model, toks, [position])[:, 0],
        "you read H0.0's output (after attention, hook_result); the exercise asks for its value at the position "
        "(hook_v)",
    ),
    Mutant(
        "through H1.1",
        lambda model, toks, position: _value_through(model, toks, position, 1),
        "you read through the wrong head: the second head is H1.0 (model.W_V[1, 0], model.W_O[1, 0])",
    ),
    Mutant(
        "palindrome direction",
        lambda model, toks, position: -value_attribution(model, toks, position),
        "the direction raises 'not palindrome' (logit 0) over 'palindrome' (logit 1): W_U[:, 0] - W_U[:, 1]",
    ),
    Mutant(
        "July model",
        lambda model, toks, position: value_attribution(_july(), toks, position),
        "your answer does not depend on the model",
    ),
)


def _value_through(model: HookedTransformer, toks: Tensor, position: int, reader: int) -> Tensor:
    _, cache = model.run_with_cache(toks)
    u = circ.nonpal_direction(model)
    value = cache["blocks.0.attn.hook_v"][:, position, 0]
    return (value @ model.W_O[0, 0] @ model.W_V[1, reader] @ model.W_O[1, reader] @ u).detach().cpu()


# --- 6.1 and 6.2: adversarial inputs ---------------------------------------------------------------


def fool(model):
    g = torch.Generator().manual_seed(0)
    halves = torch.randint(0, 31, (64, 10), generator=g)
    bases = torch.cat([torch.full((64, 1), 31), halves, halves.flip(-1), torch.full((64, 1), 32)], 1)
    found = []
    for p in range(11, 21):  # break one pair at a time; keep what the model still calls a palindrome
        toks = bases.clone()
        toks[:, p] = (toks[:, 21 - p] + torch.randint(1, 31, (64,), generator=g)) % 31
        probs = model(toks.to(model.cfg.device))[:, -1].softmax(-1)[:, 1].cpu()
        found += list(toks[probs > 0.5])
    return torch.stack(found[:5])


def _fooling_problem(got: Any, model: HookedTransformer, shape: tuple[int, ...], blind=None) -> Optional[str]:
    """What stops ``got`` from being ``shape[0]`` distinct non-palindromes the model calls palindromes."""
    if not isinstance(got, Tensor):
        return f"expected a torch.Tensor of shape {shape}, got {type(got).__name__} {_show(got)}"
    if tuple(got.shape) != shape:
        return f"expected shape {shape} (START, 20 values, END), got shape {tuple(got.shape)}"
    if got.is_floating_point() or got.is_complex() or got.dtype == torch.bool:
        return f"expected an integer tensor, got dtype {got.dtype}"
    try:
        toks = tokens.validate_tokens(got.detach().cpu())
    except ValueError as error:
        return f"not a valid input: {error}"
    if (toks[:, 0] != START).any() or (toks[:, END_POS] != END).any():
        return "every input starts with START (31) and ends with END (32)"
    if len(set(map(tuple, toks.tolist()))) < len(toks):
        return f"the {len(toks)} inputs must be distinct, got repeats"
    for i, (row, label) in enumerate(zip(toks, tokens.is_palindrome(toks).tolist(), strict=True)):
        if label:
            return f"input {i} is a palindrome: {row.tolist()}"
    if blind is not None:
        for pairs in adv.broken_pairs(toks):
            hit = [pair for pair in pairs if pair in blind]
            if hit:
                return f"the input breaks the blind pair {hit[0]}; break only pairs outside {sorted(blind)}"
    with torch.no_grad():
        probs = model(_on(model, toks))[:, -1].softmax(-1)[:, 1].cpu()
    for i, prob in enumerate(probs.tolist()):
        if prob <= 0.5:
            return f"input {i} does not fool the model: P(palindrome) = {prob:.3f}, needs > 0.5"
    return None


def _fool_cases() -> Iterator[Case]:
    yield Case("the July model", (_july(),), lambda got: _fooling_problem(got, _july(), (5, 22)))
    for seed in (1, 9):  # blind pairs (10, 11) and (7, 14): the July model's inputs do not fool them
        model = _replica(seed)
        yield Case(
            f"replica {seed}",
            (model,),
            lambda got, m=model: _fooling_problem(got, m, (5, 22)),
            same_as="the July model",
        )


_FOOL_MUTANTS = (
    Mutant(
        "July's answer",
        lambda model: fool(_july()),
        "your answer does not depend on the model you were given",
    ),
    Mutant(
        "palindromes",
        lambda model: inputs.random_palindromes(5, _generator(0)),
        "is a palindrome",
    ),
    Mutant("one input five times", lambda model: fool(model)[:1].repeat(5, 1), "must be distinct"),
    Mutant("values only", lambda model: fool(model)[:, 1:-1], "expected shape (5, 22)"),
)


def fool_outside_blind(model, blind):
    g = torch.Generator().manual_seed(0)
    halves = torch.randint(0, 31, (256, 10), generator=g)
    bases = torch.cat([torch.full((256, 1), 31), halves, halves.flip(-1), torch.full((256, 1), 32)], 1)
    for p in range(11, 21):
        if (21 - p, p) in blind:
            continue
        toks = bases.clone()
        toks[:, p] = (toks[:, 21 - p] + torch.randint(1, 31, (256,), generator=g)) % 31
        probs = model(toks.to(model.cfg.device))[:, -1].softmax(-1)[:, 1].cpu()
        if (probs > 0.5).any():
            return toks[probs > 0.5][0]
    raise ValueError("no single broken pair outside the blind ones fooled the model")


def _outside_problem(got: Any, model: HookedTransformer, blind: set) -> Optional[str]:
    if isinstance(got, Tensor) and got.ndim != 1:
        return f"expected one input, shape (22,), got shape {tuple(got.shape)}"
    problem = _fooling_problem(got[None] if isinstance(got, Tensor) else got, model, (1, 22), blind)
    return None if problem is None else problem.replace("input 0 ", "the input ").replace("(1, 22)", "(22,)")


def _outside_cases() -> Iterator[Case]:
    july_blind = {(4, 17), (2, 19)}
    yield Case("the July model", (_july(), july_blind), lambda got: _outside_problem(got, _july(), july_blind))
    replica_blind = {(8, 13)}
    yield Case(
        "replica 0, blind pair (8, 13)",
        (_replica(0), replica_blind),
        lambda got: _outside_problem(got, _replica(0), replica_blind),
        same_as="the July model",
    )
    forbidden = july_blind | {(10, 11)}  # the pair a search from position 11 up tries first
    yield Case(
        "the July model, with (10, 11) forbidden too",
        (_july(), forbidden),
        lambda got: _outside_problem(got, _july(), forbidden),
    )


_OUTSIDE_MUTANTS = (
    Mutant("a blind pair", lambda model, blind: _break_at(model, 17), "blind pair"),
    Mutant(
        "July's answer",
        lambda model, blind: fool_outside_blind(_july(), {(4, 17), (2, 19)}),
        "your answer does not depend on the model you were given",
    ),
    Mutant("a palindrome", lambda model, blind: inputs.random_palindromes(1, _generator(0))[0], "is a palindrome"),
)


def _break_at(model: HookedTransformer, position: int) -> Tensor:
    """One seeded palindrome broken at ``position`` (a mutant's answer)."""
    g = _generator(0)
    return inputs.break_pairs(inputs.random_palindromes(1, g), [position], g)[0]


# --- 7.1 and 9.1: mean ablation --------------------------------------------------------------------


def ablate(model, toks, layer, head, which):
    labels = (toks[:, 1:-1] == toks[:, 1:-1].flip(-1)).all(-1).long()
    name = f"blocks.{layer}.attn.hook_{which}"
    _, cache = model.run_with_cache(toks, names_filter=name)
    mean = cache[name][:, :, head].mean(0)  # the mean over the batch, at each position

    def hook(activation, hook):
        activation[:, :, head] = mean
        return activation

    def loss(logits):
        return torch.nn.functional.cross_entropy(logits[:, -1], labels).item()

    return loss(model.run_with_hooks(toks, fwd_hooks=[(name, hook)])) - loss(model(toks))


LOSS_ATOL: float = 1e-6
"""Absolute floor for loss increases: two float32 cross-entropies differ by about 1e-7 in rounding alone."""


def _loss_problem(got: Any, expected: float) -> Optional[str]:
    return _float_problem(got, expected, atol=LOSS_ATOL)


def _ablation_expected(model: HookedTransformer, toks: Tensor, layer: int, head: int, which: str, where=None) -> float:
    ablation = abl.Ablation(layer, head, which, "mean", None if where is None else (where,))
    return abl.loss_increase(model, toks, tokens.is_palindrome(toks), [ablation])


def _ablation_batch(seed: int, position: int) -> Tensor:
    """Seeded palindromes and the same ones broken at ``position``: both classes, the pair the case is about."""
    g = _generator(seed)
    bases = inputs.random_palindromes(32, g)
    return torch.cat([bases, inputs.break_pairs(bases, [position], g)])


def _ablate_cases() -> Iterator[Case]:
    july = _july()
    dataset = data.PalindromeDataset(200).toks

    def case(name: str, model: HookedTransformer, toks: Tensor, layer: int, head: int, which: str, july=False):
        args = (model, _on(model, toks), layer, head, which)
        return _value_case(name, args, _ablation_expected, _loss_problem, _ABLATE_MUTANTS, july)

    yield case("July, PalindromeDataset(200), H1.0 values", july, dataset, 1, 0, "v")
    yield case("July, PalindromeDataset(200), H0.0 keys", july, dataset, 0, 0, "k")
    yield case("July, PalindromeDataset(200), H1.0 queries", july, dataset, 1, 0, "q")
    yield case("July, seeded breaks at 20, H1.1 values", july, _ablation_batch(71, 20), 1, 1, "v")
    yield case("July, seeded breaks at 17, H0.1 values", july, _ablation_batch(72, 17), 0, 1, "v")
    yield case("replica 7, PalindromeDataset(200), H1.0 values", _replica(7), dataset, 1, 0, "v", True)


_ABLATE_MUTANTS = (
    Mutant(
        "zero ablation",
        lambda model, toks, layer, head, which: abl.loss_increase(
            model, toks, tokens.is_palindrome(toks), [abl.Ablation(layer, head, which, "zero")]
        ),
        "that is zero ablation: replace the activation by its mean over the batch",
    ),
    Mutant(
        "mean over positions too",
        lambda model, toks, layer, head, which: _ablate_flat_mean(model, toks, layer, head, which),
        "take the mean over the batch at each position, not over positions too",
    ),
    Mutant(
        "ablated loss",
        lambda model, toks, layer, head, which: ablate(model, toks, layer, head, which) + _clean_loss(model, toks),
        "return the increase: the ablated loss minus the clean loss",
    ),
    Mutant(
        "always head 0",
        lambda model, toks, layer, head, which: ablate(model, toks, layer, 0, which),
        "you ablated the wrong head",
    ),
    Mutant(
        "July model",
        lambda model, toks, layer, head, which: ablate(_july(), toks, layer, head, which),
        "your answer does not depend on the model",
    ),
)


def _clean_loss(model: HookedTransformer, toks: Tensor) -> float:
    """The clean END cross-entropy (the mutants' helper)."""
    return cross_entropy(model, toks, tokens.is_palindrome(toks))


def _ablate_flat_mean(model: HookedTransformer, toks: Tensor, layer: int, head: int, which: str) -> float:
    name = f"blocks.{layer}.attn.hook_{which}"
    _, cache = model.run_with_cache(toks, names_filter=name)
    mean = cache[name][:, :, head].mean((0, 1))

    def hook(activation: Tensor, hook: Any) -> Tensor:
        activation[:, :, head] = mean
        return activation

    logits = model.run_with_hooks(toks, fwd_hooks=[(name, hook)])
    labels = tokens.is_palindrome(toks).to(logits.device)
    return torch.nn.functional.cross_entropy(logits[:, -1], labels).item() - _clean_loss(model, toks)


def ablate_at(model, toks, layer, head, position):
    labels = (toks[:, 1:-1] == toks[:, 1:-1].flip(-1)).all(-1).long()
    name = f"blocks.{layer}.attn.hook_result"
    _, cache = model.run_with_cache(toks, names_filter=name)
    mean = cache[name][:, position, head].mean(0)  # the head's mean output there, over the batch

    def hook(activation, hook):
        activation[:, position, head] = mean
        return activation

    def loss(logits):
        return torch.nn.functional.cross_entropy(logits[:, -1], labels).item()

    return loss(model.run_with_hooks(toks, fwd_hooks=[(name, hook)])) - loss(model(toks))


def _ablate_at_expected(model: HookedTransformer, toks: Tensor, layer: int, head: int, position: int) -> float:
    return _ablation_expected(model, toks, layer, head, "result", position)


def _ablate_at_cases() -> Iterator[Case]:
    july = _july()

    def case(name: str, model: HookedTransformer, toks: Tensor, layer: int, head: int, position: int, july=False):
        args = (model, _on(model, toks), layer, head, position)
        return _value_case(name, args, _ablate_at_expected, _loss_problem, _ABLATE_AT_MUTANTS, july)

    at20 = _ablation_batch(91, 20)
    yield case("July, seeded breaks at 20, H0.1 at 20", july, at20, 0, 1, 20)
    yield case("July, seeded breaks at 20, H1.1 at END", july, at20, 1, 1, END_POS)
    yield case("July, seeded breaks at 20, H1.1 at 20 (a layer-1 head matters only at END)", july, at20, 1, 1, 20)
    yield case("July, seeded breaks at 17, H1.0 at 17", july, _ablation_batch(92, 17), 1, 0, 17)
    yield case("July, seeded breaks at 19, H0.0 at 19", july, _ablation_batch(93, 19), 0, 0, 19)
    yield case("replica 0, seeded breaks at 13, H0.0 at 13", _replica(0), _ablation_batch(94, 13), 0, 0, 13, True)


_ABLATE_AT_MUTANTS = (
    Mutant(
        "every position",
        lambda model, toks, layer, head, position: _ablation_expected(model, toks, layer, head, "result"),
        "ablate the head at the one position only",
    ),
    Mutant(
        "zero ablation",
        lambda model, toks, layer, head, position: abl.loss_increase(
            model, toks, tokens.is_palindrome(toks), [abl.Ablation(layer, head, "result", "zero", (position,))]
        ),
        "that is zero ablation: replace the output by its mean over the batch",
    ),
    Mutant(
        "position off by one",
        lambda model, toks, layer, head, position: ablate_at(model, toks, layer, head, position - 1),
        "positions count START as 0: a_p sits at position p",
    ),
    Mutant(
        "always head 0",
        lambda model, toks, layer, head, position: ablate_at(model, toks, layer, 0, position),
        "you ablated the wrong head",
    ),
    Mutant(
        "July model",
        lambda model, toks, layer, head, position: ablate_at(_july(), toks, layer, head, position),
        "your answer does not depend on the model",
    ),
)


# --- 8.1 blind pairs -------------------------------------------------------------------------------


def blind_pairs(model, bases):
    a, b = torch.meshgrid(torch.arange(31), torch.arange(31), indexing="ij")
    keep = a != b  # every ordered pair of distinct values
    pairs = set()
    for p in range(11, 21):
        toks = bases[:, None].repeat(1, int(keep.sum()), 1)
        toks[:, :, 21 - p], toks[:, :, p] = a[keep], b[keep]
        logits = fast.fast_end_logits(model, toks.flatten(0, 1))
        if (logits[:, 1] > logits[:, 0]).float().mean() > 0.5:  # missed more often than not
            pairs.add((21 - p, p))
    return pairs


def _blind_expected(model: HookedTransformer, bases: Tensor) -> set[tuple[int, int]]:
    sweep = bs.single_mismatch_sweep(model, bases=bases, progress=False)
    return {(MIRROR[p], p) for p in bs.blind_positions(sweep)}


def _set_problem(got: Any, expected: set[tuple[int, int]]) -> Optional[str]:
    if not isinstance(got, (set, frozenset)):
        return f"expected a set of (first-half, second-half) position pairs, got {type(got).__name__} {_show(got)}"
    for item in got:
        if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, Integral) for x in item)):
            return f"expected a set of (first-half, second-half) position pairs, got the element {item!r}"
    got = {(int(p), int(q)) for p, q in got}
    if got != expected:
        return f"expected {sorted(expected)}, got {sorted(got)}"
    return None


def _blind_cases() -> Iterator[Case]:
    # Replicas 0, 1, 7 and 9 are blind at (8, 13), (10, 11), (4, 17) and (7, 14) over chapter 8's bases; on one base
    # a replica may miss more (replica 9 misses (9, 12) too on its base here). Seed 8 (0.527) sits at the threshold.
    models = [("the July model", _july(), False)] + [(f"replica {s}", _replica(s), True) for s in (0, 1, 7, 9)]
    for i, (name, model, replica) in enumerate(models):
        bases = inputs.random_palindromes(1, _generator(80 + i))
        yield _value_case(
            f"{name}, one seeded base", (model, bases), _blind_expected, _set_problem, _BLIND_MUTANTS, replica
        )
    # Replica 42 misses pair (10, 11) on these bases 49.1%, 51.1% and 52.6% of the time (with misses of 0.25-0.39
    # elsewhere on the last), and no input lies within 1e-4 of P = 0.5: only "more than half" gives all three.
    for seed in (89, 133, 99):
        bases = inputs.random_palindromes(1, _generator(seed))
        yield _value_case(
            f"replica 42, base seed {seed}", (_replica(42), bases), _blind_expected, _set_problem, _BLIND_MUTANTS, True
        )


_BLIND_MUTANTS = (
    Mutant(
        "positions",
        lambda model, bases: {q for _, q in blind_pairs(model, bases)},
        "expected a set of (first-half, second-half) position pairs",
    ),
    Mutant(
        "reversed pairs",
        lambda model, bases: {(q, p) for p, q in blind_pairs(model, bases)},
        "write each pair first-half position first, (p, 21 - p)",
    ),
    Mutant(
        "threshold 0.05",
        lambda model, bases: {
            (MIRROR[p], p)
            for p, f in zip(
                SECOND_HALF,
                bs.single_mismatch_sweep(model, bases=bases, progress=False).misclassified_frac.tolist(),
                strict=True,
            )
            if f > 0.05
        },
        "a pair is blind when the model misses more than half of its single mismatches",
    ),
    Mutant(
        "July model",
        lambda model, bases: blind_pairs(_july(), bases),
        "your answer does not depend on the model you were given",
    ),
)


# --- the registry ----------------------------------------------------------------------------------


EXERCISES: dict[str, Exercise] = {
    e.id: e
    for e in (
        Exercise(
            "1.1", 1, "Label a batch", "labels(toks) -> Bool[batch]", 1, 3, 5, labels, _labels_cases, _LABELS_MUTANTS
        ),
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
        Exercise(
            "2.1",
            2,
            "H0.0's token-token QK scores",
            "token_qk(model, layer, head, scale) -> Float[33, 33]",
            2,
            4,
            15,
            token_qk,
            _token_qk_cases,
            _TOKEN_QK_MUTANTS,
        ),
        Exercise(
            "2.2",
            2,
            "The key each second-half query prefers",
            "preferred_keys(model, layer, head, scale) -> dict[int, int]",
            2,
            4,
            15,
            preferred_keys,
            _preferred_cases,
            _PREFERRED_MUTANTS,
        ),
        Exercise(
            "3.1",
            3,
            "The non-palindrome direction",
            "direction(model) -> Float[d_model]",
            1,
            3,
            5,
            direction,
            _direction_cases,
            _DIRECTION_MUTANTS,
        ),
        Exercise(
            "3.2",
            3,
            "Direct attribution of each component at END",
            "dla(model, toks) -> Float[7, batch]",
            3,
            5,
            25,
            dla,
            _dla_cases,
            _DLA_MUTANTS,
        ),
        Exercise(
            "4.1",
            4,
            "The composition score of two matrices",
            "composition_score(W_A, W_B) -> float",
            1,
            3,
            10,
            composition_score,
            _composition_cases,
            _COMPOSITION_MUTANTS,
        ),
        Exercise(
            "4.2",
            4,
            "K-composition from layer 0 into layer 1",
            "k_composition(model, writer_head, reader_head) -> float",
            2,
            4,
            15,
            k_composition,
            _k_cases,
            _K_MUTANTS,
        ),
        Exercise(
            "5.1",
            5,
            "H0.0's value through H1.0",
            "value_attribution(model, toks, position) -> Float[batch]",
            3,
            4,
            20,
            value_attribution,
            _value_cases,
            _VALUE_MUTANTS,
        ),
        Exercise(
            "6.1",
            6,
            "Five inputs that fool the model",
            "fool(model) -> Int[5, 22]",
            2,
            4,
            20,
            fool,
            _fool_cases,
            _FOOL_MUTANTS,
        ),
        Exercise(
            "6.2",
            6,
            "Fool the model without its blind pairs",
            "fool_outside_blind(model, blind) -> Int[22]",
            4,
            3,
            40,
            fool_outside_blind,
            _outside_cases,
            _OUTSIDE_MUTANTS,
        ),
        Exercise(
            "7.1",
            7,
            "Mean-ablate one head's queries, keys or values",
            "ablate(model, toks, layer, head, which) -> float",
            3,
            5,
            25,
            ablate,
            _ablate_cases,
            _ABLATE_MUTANTS,
        ),
        Exercise(
            "8.1",
            8,
            "Map a model's blind pairs",
            "blind_pairs(model, bases) -> set[tuple[int, int]]",
            3,
            5,
            30,
            blind_pairs,
            _blind_cases,
            _BLIND_MUTANTS,
        ),
        Exercise(
            "9.1",
            9,
            "Ablate one head at one position",
            "ablate_at(model, toks, layer, head, position) -> float",
            3,
            4,
            20,
            ablate_at,
            _ablate_at_cases,
            _ABLATE_AT_MUTANTS,
        ),
    )
}
"""Every exercise of the book, keyed by id ("2.1": chapter 2's first exercise)."""
