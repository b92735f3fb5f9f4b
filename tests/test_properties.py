"""Property test: every public callable of the package, fed generated good and bad arguments.

Every module of ``palindrome`` is imported and its public callables listed: the names in its
``__all__`` where it has one, else the functions and classes it defines (not those it imports) whose
names have no leading underscore. So a module or function added later is tested without editing this
file; if no argument can be built for one of its parameters, the test fails and says to add a
strategy in tests/support/property_args.py (or, with a written reason, an entry in ``EXCLUDED`` below).

For each callable Hypothesis draws arguments by parameter name and annotation (tests/support/property_args.py),
mixing good values with bad ones: tokens out of range, of the wrong length, shape or dtype, NaN tensors,
labels that do not match, positions, layers and heads out of range, negative or huge sizes and seeds,
NaN and infinite floats, unknown kinds, unusable devices, paths under a regular file. The call must
either return the documented type (the jaxtyping shape included) with finite numbers, or raise
ValueError or one of the package's named exceptions (a ``palindrome`` exception class); any other
exception (a raw torch, TransformerLens, pandas or OS error, a TypeError or KeyError) fails. A command
line entry point (``main``, ``parse_args``) may also exit through argparse with its usage message.
Expensive callables (training, sweeps, chapter 11's analyse_model) get tiny sizes or bad inputs that
must be refused before work. Each callable runs with a fresh empty folder as the current directory,
which must stay empty (a relative path such as "" must never make a function write where it is run).
Drawn from a fixed seed, so CI is reproducible.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from property_args import Arguments, empty_problem, finite_problem, non_finite_arguments, qualified_name, type_problem

import palindrome

EXCLUDED: dict[str, str] = {
    # name: why the property test does not call it
    "chapters.blindspots.key_findings": (
        "chapter 8's whole measurement from the model alone (minutes); tests/chapters/test_blindspots.py runs it"
    ),
    "chapters.backup.key_findings": (
        "chapter 9's whole measurement from the model alone (minutes); tests/chapters/test_backup.py runs it"
    ),
    "chapters.backup.measure": "the same measurement as backup.key_findings, which tests/chapters/test_backup.py runs",
    "chapters.backup.findings_from": "takes only backup.measure's result (minutes to build)",
    "chapters.faithfulness.key_findings": (
        "chapter 10's whole measurement from the model alone (minutes); tests/chapters/test_faithfulness.py runs it"
    ),
    "chapters.faithfulness.findings_from": "takes only the tables of faithfulness.key_findings (minutes to build)",
    "chapters.faithfulness_controls.chapter_draw": (
        "takes only chapter 10's resampled tables (path_contributions and the hard-subset tables, seconds each); "
        "tests/chapters/test_faithfulness.py checks its refusals and that it matches resample_draws"
    ),
    "book.reconciliation.collect_findings": "runs the three key_findings above",
    "book.reconciliation.reconciliation_table": "runs the three key_findings above (or takes their result)",
}


NAN_OK: dict[str, str] = {
    # module.name.parameter: why NaN (or inf) in this float argument is a documented input, not a mistake
    "plots.scatter.x": "attribution.by_half masks the positions outside each group with NaN, which plotly leaves out",
    "plots.scatter.ys": "the series are by_half's NaN-masked copies (plotly draws no point where y is NaN)",
    "plots.imshow.matrix": "SweepResult.rate_matrix has a NaN diagonal (no edit keeps a token): a blank cell",
    "plots.heatmap_grid.matrices": "rate matrices side by side, each with its NaN diagonal drawn blank",
}
"""Float arguments that may hold NaN on purpose. Any other NaN or inf in a float tensor argument must raise a ValueError
that names the argument (``tokens.check_floats``), never give an answer."""

EMPTY_OK: dict[str, str] = {
    # module.name: why an empty result for non-empty input is a correct answer
    "checkpoint.remove_stale_parts": "the temporary files it removed: none when no killed write left any",
    "path_patching.circuit_hooks": "the hooks that ablate the dead edges: none when every edge is kept (full model)",
}
"""Callables whose empty table, tuple, set, list or dict is a correct answer for non-empty input. Any other callable
that returns an empty result from non-empty arguments fails: an empty answer must never stand for "something went
wrong"."""


def public_callables() -> list[tuple[str, object]]:
    """(module.name, callable) for every public callable of every module of the package."""
    out = []
    infos = pkgutil.walk_packages(palindrome.__path__, prefix="palindrome.")  # the chapters and book folders too
    for info in sorted((i for i in infos if not i.ispkg), key=lambda i: i.name):
        module = importlib.import_module(info.name)
        if hasattr(module, "__all__"):
            names = list(module.__all__)
        else:
            names = [
                n
                for n, v in vars(module).items()
                if not n.startswith("_")
                and (inspect.isfunction(v) or inspect.isclass(v))
                and v.__module__ == module.__name__
            ]
        out += [
            (f"{info.name.removeprefix('palindrome.')}.{n}", getattr(module, n))
            for n in names
            if callable(getattr(module, n))
        ]
    return out


def is_record(obj: object) -> bool:
    """A result record (a dataclass without checks), an exception class or a Protocol: nothing to call with input."""
    if not inspect.isclass(obj):
        return False
    if issubclass(obj, BaseException) or getattr(obj, "_is_protocol", False):
        return True
    return dataclasses.is_dataclass(obj) and "__post_init__" not in vars(obj)


PACKAGE_ERRORS = tuple(v for _, v in public_callables() if inspect.isclass(v) and issubclass(v, Exception)) + (
    ValueError,
)
CALLABLES = [(n, f) for n, f in public_callables() if not is_record(f)]
CLI = {"main", "parse_args"}


def test_the_exclusion_tables_name_only_existing_callables():
    names = {n for n, _ in public_callables()}
    for table_name, table in (("EXCLUDED", EXCLUDED), ("EMPTY_OK", EMPTY_OK)):
        assert set(table) <= names, f"{table_name} names callables that do not exist: {set(table) - names}"
    callables = dict(public_callables())
    for key in NAN_OK:
        fn_name, parameter = key.rsplit(".", 1)
        assert fn_name in callables, f"NAN_OK names a callable that does not exist: {fn_name}"
        assert parameter in inspect.signature(callables[fn_name]).parameters, f"NAN_OK: {fn_name} has no {parameter!r}"


def test_per_function_strategies_name_existing_callables_and_parameters(arguments):
    """Every per-function strategy reaches a callable: a stale or duplicated key would silently drop its strategies."""
    callables = {qualified_name(fn): fn for _, fn in public_callables()}
    for key, strategies in arguments.objects["__per_function__"].items():
        assert key in callables, (
            f"tests/support/property_objects.py has strategies for {key}, which is not a public callable"
        )
        parameters = inspect.signature(callables[key]).parameters
        unknown = set(strategies) - set(parameters)
        assert not unknown, f"strategies for {key} name parameters it does not have: {sorted(unknown)}"


@pytest.fixture(scope="module", autouse=True)
def shared_checkpoint_untouched(checkpoint_path):
    """The property test only ever writes to copies: the shared checkpoint must come out unchanged."""
    from palindrome.checkpoint import sha256_file

    before = sha256_file(checkpoint_path)
    yield
    assert sha256_file(checkpoint_path) == before, f"the property test changed {checkpoint_path}"


@pytest.fixture(scope="module")
def arguments(model, checkpoint_path, tmp_path_factory):
    from property_objects import package_objects

    torch.set_num_threads(1)
    return Arguments(
        model,
        tmp_path_factory.mktemp("property"),
        checkpoint_path,
        package_objects(model, checkpoint_path, tmp_path_factory.mktemp("objects")),
    )


SEED = 20231207
"""Hypothesis draws from this fixed seed (not from a digest of the test's source), so CI is reproducible."""

SMALL_EXAMPLES = 3
"""Examples per callable in the quick tier's small run; the full-size run (marked slow) draws ``arguments.examples``.
Both draw from the same fixed seed, so the small run's examples are the first of the full run's (and editing the
test's own code does not change what is drawn)."""


@pytest.mark.parametrize("name", [n for n, _ in CALLABLES])
def test_public_callable_refuses_bad_input_clearly(name, arguments, tmp_path, monkeypatch):
    """The small run (quick tier)."""
    run_in_empty_folder(name, arguments, tmp_path, monkeypatch, SMALL_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, _ in CALLABLES])
def test_public_callable_refuses_bad_input_clearly_full_size(name, arguments, tmp_path, monkeypatch):
    """The full-size run: every callable's full number of examples."""
    run_in_empty_folder(name, arguments, tmp_path, monkeypatch, arguments.examples(name))


def run_in_empty_folder(name: str, arguments: Arguments, tmp_path: Path, monkeypatch, examples: int) -> None:
    """``check_callable`` with a fresh empty folder as the current directory, which must stay empty."""
    if name in EXCLUDED:
        pytest.skip(EXCLUDED[name])
    cwd = tmp_path / "cwd"  # tmp_path itself holds the test's cache folder (conftest's _isolated_cache)
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # a relative path a callable writes to lands here, never in the repository
    check_callable(name, arguments, examples)
    written = sorted(p.name for p in cwd.iterdir())
    assert not written, f"palindrome.{name} wrote into the current folder: {written}"


def check_callable(name: str, arguments: Arguments, examples: int) -> float:
    """Run the property on one callable with ``examples`` drawn argument sets; return the seconds it took."""
    fn = dict(CALLABLES)[name]
    module = importlib.import_module(fn.__module__)
    signature = inspect.signature(fn)
    params = [p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    missing = [p.name for p in params if arguments.strategy(fn, p, {}) is None]
    assert not missing, (
        f"palindrome.{name}: no strategy for parameter(s) {missing}; add one to tests/support/property_args.py "
        f"(by name or annotation) or, with a reason, an entry in EXCLUDED in {Path(__file__).name}"
    )
    namespace = {**vars(module), "pd": importlib.import_module("pandas")}
    cli = name.rsplit(".", 1)[1] in CLI

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=False,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @seed(SEED)
    @given(st.data())
    def check(data):
        drawn = {}
        for p in params:
            drawn[p.name] = data.draw(arguments.strategy(fn, p, drawn), label=p.name)
        must_refuse = non_finite_arguments(drawn)  # float tensors (or dicts of them) holding NaN: must raise
        non_finite = {
            k: v for k, v in must_refuse.items() if f"{name}.{k}" not in NAN_OK and not isinstance(drawn[k], float)
        }
        # an error about non-finite input must name a non-finite argument: a tensor, a float or a table holding one
        named = must_refuse | {
            k: [k] for k, v in drawn.items() if k not in must_refuse and finite_problem(v) is not None
        }
        if "name" in drawn:  # a validator names what it checks by its ``name`` argument
            named = {k: [*v, str(drawn["name"])] for k, v in named.items()}
        try:
            result = fn(**drawn)
            if hasattr(result, "__enter__") and "Iterator" in str(signature.return_annotation):
                with result:  # a context manager: its setup and teardown are part of the call
                    pass
                assert not non_finite, f"palindrome.{name} accepted NaN/inf in {list(non_finite)} ({_show(drawn)})"
                return
        except PACKAGE_ERRORS as error:
            message = str(error)
            assert message, f"{name} raised {type(error).__name__} with no message"
            if non_finite and re.search(r"\b(nan|inf)\b", message, re.IGNORECASE):
                assert any(n in message for names in named.values() for n in names), (
                    f"palindrome.{name} refused NaN/inf in {list(non_finite)} without naming the argument: {message!r}"
                )
            return
        except SystemExit as error:
            assert cli and error.code not in (0, None), f"{name} exited ({error.code}) on {_show(drawn)}"
            return
        except Exception as error:  # noqa: BLE001 - the property under test
            raise AssertionError(f"palindrome.{name}({_show(drawn)}) raised {type(error).__name__}: {error}") from error
        assert not non_finite, (
            f"palindrome.{name}({_show(drawn)}) gave an answer for NaN/inf in {list(non_finite)}: refuse it with a "
            f"ValueError naming the argument (tokens.check_floats), or list it in NAN_OK with the reason"
        )
        documented = fn if inspect.isclass(fn) else signature.return_annotation
        problem = type_problem(result, documented, namespace) or finite_problem(result)
        if problem is None and name not in EMPTY_OK:
            problem = empty_problem(result, drawn)
        assert problem is None, f"palindrome.{name}({_show(drawn)}): {problem}"

    start = time.perf_counter()
    check()
    return time.perf_counter() - start


def _show(drawn: dict) -> str:
    def short(v):
        if isinstance(v, torch.Tensor):
            return f"tensor{tuple(v.shape)}:{v.dtype}" + (" nan" if v.is_floating_point() and v.isnan().any() else "")
        text = repr(v)
        return text if len(text) < 80 else text[:77] + "..."

    return ", ".join(f"{k}={short(v)}" for k, v in drawn.items())


def test_same_named_callables_get_their_own_strategies(arguments):
    """Five modules define ``findings_from``: each draws from its own module's entry, not from another's."""
    import palindrome.chapters.blindspots
    import palindrome.chapters.prediction

    table = arguments.objects["__per_function__"]
    for fn, parameter in (
        (palindrome.chapters.prediction.findings_from, "scores"),
        (palindrome.chapters.blindspots.findings_from, "attention"),
    ):
        param = inspect.signature(fn).parameters[parameter]
        assert arguments.strategy(fn, param, {}) is table[qualified_name(fn)][parameter], (
            f"{qualified_name(fn)}'s {parameter!r} is not drawn from its own per-function strategies"
        )
