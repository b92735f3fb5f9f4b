"""The exercises: every check accepts its reference, reports a stub, rejects every mutant and cheap answer with its
message, and changes nothing; the chapters show every exercise with its title; the learner notebooks are in sync,
hold no solution and run to the end unsolved."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import time
from pathlib import Path

import pytest
import torch

from palindrome.book import exercise_checks as checks
from palindrome.book import exercises as ex
from palindrome.book import exercises_circuits as circuits_ex
from palindrome.book import exercises_interventions as interventions_ex
from palindrome.book import exercises_task as task_ex
from palindrome.chapters import adversarial as adv

REPO = Path(__file__).resolve().parents[2]
IDS = sorted(ex.EXERCISES, key=lambda i: tuple(int(x) for x in i.split(".")))
CHECK_SECONDS = 5.0  # the limit for one check with the reference on the 2-core machine


def _tool():
    spec = importlib.util.spec_from_file_location("make_exercises", REPO / "tools" / "make_exercises.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def _threads(one_torch_thread):
    yield


def _state(models) -> list[torch.Tensor]:
    return [t.detach().clone() for m in models for t in m.state_dict().values()]


def test_the_registry_covers_the_book():
    assert len(ex.EXERCISES) >= 14
    assert {e.chapter for e in ex.EXERCISES.values()} >= set(range(1, 9))
    for key, e in ex.EXERCISES.items():
        assert key == e.id and re.fullmatch(r"[1-9]\.[1-9]", key) and int(key.split(".")[0]) == e.chapter
        assert 1 <= e.difficulty <= 5 and 1 <= e.importance <= 5 and e.minutes > 0
        assert len(e.mutants) >= 2, f"{key} registers fewer than two mutants"
        assert e.signature.startswith(e.reference.__name__ + "("), f"{key}: signature does not name the reference"
    assert isinstance(ex.ExerciseFailed("x"), AssertionError)


@pytest.mark.parametrize("exercise_id", IDS)
def test_reference_passes_fast_twice_and_changes_nothing(exercise_id, capsys):
    e = ex.EXERCISES[exercise_id]
    e.check(e.reference)  # warm: models loaded once per session
    models = [checks._july()] + [checks._replica(s) for s in (0, 1, 7, 9)]
    before, rng = _state(models), torch.get_rng_state()
    capsys.readouterr()
    start = time.perf_counter()
    assert e.check(e.reference) is True
    seconds = time.perf_counter() - start
    assert e.check(e.reference) is True  # the same verdict twice
    out = capsys.readouterr().out.splitlines()
    assert out[0] == out[1] and re.fullmatch(rf"✓ Exercise {re.escape(exercise_id)} passed: \d+ cases", out[0])
    assert int(out[0].split(": ")[1].split()[0]) >= 2
    assert torch.equal(torch.get_rng_state(), rng), "the check moved torch's global RNG"
    assert all(torch.equal(a, b) for a, b in zip(before, _state(models), strict=True)), "the check changed a model"
    assert seconds < CHECK_SECONDS, f"Exercise {exercise_id}'s check took {seconds:.1f} s with the reference"


@pytest.mark.parametrize("exercise_id", IDS)
@pytest.mark.parametrize("stub", ["raises", "none", "ellipsis"])
def test_a_stub_is_not_implemented(exercise_id, stub, capsys):
    def fn(*args):
        if stub == "raises":
            raise NotImplementedError
        return None if stub == "none" else ...

    assert ex.EXERCISES[exercise_id].check(fn) is False
    assert capsys.readouterr().out.strip() == f"Exercise {exercise_id}: not implemented yet"


@pytest.mark.parametrize("exercise_id", IDS)
def test_every_mutant_fails_with_its_message(exercise_id):
    e = ex.EXERCISES[exercise_id]
    for mutant in e.mutants:
        with pytest.raises(ex.ExerciseFailed, match=re.escape(mutant.message)) as info:
            e.check(mutant.fn)
        assert f"Exercise {exercise_id}, case " in str(info.value), "the message names no case"


def _cheap_answers(e: ex.Exercise):
    """What a learner after a cheap tick tries: the first answer memorised, 2% off, transposed, a constant."""
    first_case = next(iter(e.cases()))
    first = e.reference(*first_case.args)
    yield "the first answer memorised", lambda *args: first
    if isinstance(first, float):
        yield "2% off", lambda *args: e.reference(*args) * 1.02
        yield "a constant 0.0", lambda *args: 0.0
    if isinstance(first, torch.Tensor) and first.is_floating_point():
        yield "2% off", lambda *args: e.reference(*args) * 1.02
        yield "zeros", lambda *args: torch.zeros_like(e.reference(*args))
        if first.ndim == 2 and first.shape[0] == first.shape[1]:
            yield "transposed", lambda *args: e.reference(*args).T
    if isinstance(first, torch.Tensor) and first.dtype == torch.bool:
        yield "all True", lambda *args: torch.ones_like(e.reference(*args))
    if isinstance(first, (set, dict)):
        yield "empty", lambda *args: type(first)()


@pytest.mark.parametrize("exercise_id", IDS)
def test_cheap_answers_fail(exercise_id):
    e = ex.EXERCISES[exercise_id]
    for name, fn in _cheap_answers(e):
        with pytest.raises(ex.ExerciseFailed):
            e.check(fn)
            pytest.fail(f"Exercise {exercise_id} passed a cheap answer: {name}")


def test_an_error_in_the_learners_code_is_a_failed_case():
    def broken(*args):
        return 1 / 0

    with pytest.raises(ex.ExerciseFailed, match="your function raised ZeroDivisionError") as info:
        ex.EXERCISES["2.1"].check(broken)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert "case 'July H0.0" in str(info.value)


def test_a_wrong_type_is_named_before_values():
    with pytest.raises(ex.ExerciseFailed, match="expected a torch.Tensor of shape \\(33, 33\\), got list"):
        ex.EXERCISES["2.1"].check(lambda *a: [[0.0]])
    with pytest.raises(ex.ExerciseFailed, match="expected a floating-point tensor"):
        ex.EXERCISES["2.1"].check(
            lambda model, layer, head, scale: circuits_ex.token_qk(model, layer, head, scale).long()
        )
    with pytest.raises(ex.ExerciseFailed, match="expected a Python float"):
        ex.EXERCISES["4.1"].check(lambda A, B: (A @ B).norm() / (A.norm() * B.norm()))


def test_a_check_takes_a_function():
    with pytest.raises(ValueError, match="your function itself"):
        ex.EXERCISES["1.1"].check("labels")
    with pytest.raises(ValueError, match="exercise_id must be one of"):
        ex.check("0.0", task_ex.labels)


def test_a_learner_that_edits_its_input_in_place_changes_no_expected_value():
    def in_place(toks):
        answer = task_ex.labels(toks)
        toks.zero_()
        return answer

    assert ex.EXERCISES["1.1"].check(in_place) is True


def test_wrecking_the_model_given_or_hooking_it_earns_no_tick_and_leaves_the_checkers_model_alone():
    """The learner gets a copy: zeroing its weights (then answering for the zeroed model) or leaving a hook on it
    changes neither the expected values nor any later check."""
    july = checks._july()
    before = _state([july])

    def zero_then_answer(model, layer, head, scale):
        for p in model.parameters():
            p.data.zero_()
        return torch.zeros(33, 33)

    with pytest.raises(ex.ExerciseFailed, match="expected"):
        ex.check("2.1", zero_then_answer)

    def hook_then_nothing(model, toks, layer, head, which):
        model.add_hook("blocks.1.hook_resid_post", lambda act, hook: act * 0, is_permanent=True)
        return 0.0

    with pytest.raises(ex.ExerciseFailed, match="expected"):
        ex.check("7.1", hook_then_nothing)
    assert all(torch.equal(a, b) for a, b in zip(before, _state([july]), strict=True))
    assert not any(hp.fwd_hooks for hp in july.hook_dict.values()), "a learner's hook reached the checker's model"
    assert ex.check("7.1", ex.EXERCISES["7.1"].reference) is True


def test_a_tensor_whose_comparisons_lie_is_judged_as_a_plain_tensor():
    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            out = super().__torch_function__(func, types, args, kwargs or {})
            if func is torch.isclose:
                return torch.ones_like(torch.Tensor(out), dtype=torch.bool)
            return out

    with pytest.raises(ex.ExerciseFailed, match="expected"):
        ex.check("2.1", lambda model, layer, head, scale: torch.zeros(33, 33).as_subclass(Liar))


@pytest.mark.parametrize(
    "exercise_id, cheat, case",
    [
        ("1.1", lambda t: (t[:, [1, 2, 4, 6, 10]] == t[:, [20, 19, 17, 15, 11]]).all(-1), "each of the ten pairs"),
        ("6.2", lambda model, blind: interventions_ex.fool(model)[0], "(10, 11) forbidden too"),
        (
            "8.1",
            lambda model, bases: interventions_ex.blind_pairs(model, bases[:0].new_tensor(adv.BASE_PALINDROME[None])),
            "42",
        ),
    ],
    ids=["1.1 five pairs only", "6.2 blind pairs ignored", "8.1 bases ignored"],
)
def test_answers_that_skip_part_of_the_task_fail(exercise_id, cheat, case):
    with pytest.raises(ex.ExerciseFailed, match=re.escape(case)):
        ex.check(exercise_id, cheat)


@pytest.mark.parametrize("threshold", [0.45, 0.49, 0.52, 0.6])
def test_blind_means_missed_more_than_half_the_time(threshold):
    """Replica 42's cases put pair (10, 11) at 49.1% and 51.1%: any other threshold fails one of them."""
    from palindrome.chapters import blindspots as bs
    from palindrome.constants import MIRROR, SECOND_HALF

    def with_threshold(model, bases):
        rates = bs.single_mismatch_sweep(model, bases=bases, progress=False).misclassified_frac.tolist()
        return {(MIRROR[p], p) for p, r in zip(SECOND_HALF, rates, strict=True) if r > threshold}

    with pytest.raises(ex.ExerciseFailed, match="replica 42"):
        ex.check("8.1", with_threshold)


def test_the_simulation_case_is_statistical():
    """1.2's last case compares with the generator's own sequences within 4 standard errors, not exactly."""
    case = list(ex.EXERCISES["1.2"].cases())[-1]
    exact = task_ex.p_single(*case.args)
    assert case.judge(exact) is None
    share, se = task_ex._simulated_single(*case.args)
    assert abs(share - exact) < checks.SIGMAS * se
    assert "standard errors" in (case.judge(share + 5 * se) or "") or case.judge(share + 5 * se) is not None


# --- the chapters --------------------------------------------------------------------------------


def _chapter_cells() -> dict[str, list[dict]]:
    return {p.stem: json.loads(p.read_text())["cells"] for p in sorted((REPO / "chapters").glob("*.ipynb"))}


def test_every_exercise_sits_in_its_chapter_with_the_registry_title_and_layout():
    found = {}
    for stem, cells in _chapter_cells().items():
        for i, cell in enumerate(cells):
            source = "".join(cell["source"])
            match = re.match(r"```\{exercise-start\} (.+)\n:label: ex-(\d)-(\d)\n:nonumber:\n```", source)
            if not match:
                continue
            exercise_id = f"{match.group(2)}.{match.group(3)}"
            e = ex.EXERCISES[exercise_id]
            assert match.group(1) == e.heading, f"{stem}: the title of {exercise_id} differs from EXERCISES"
            assert stem.startswith(f"{e.chapter:02d}_"), f"{exercise_id} sits in {stem}"
            layout = [(c["cell_type"], c.get("metadata", {}).get("tags", [])) for c in cells[i : i + 7]]
            sources = ["".join(c["source"]) for c in cells[i : i + 7]]
            assert [t for t, _ in layout] == ["markdown", "code", "markdown", "markdown", "code", "markdown", "code"]
            assert "exercise-stub" in layout[1][1] and "raise NotImplementedError" in sources[1]
            assert sources[2].startswith("```{exercise-end}") and ":::{hint}" in sources[2]
            assert sources[3].startswith(
                f"```{{solution-start}} ex-{match.group(2)}-{match.group(3)}\n:class: dropdown"
            )
            assert "exercise-solution" in layout[4][1]
            assert sources[4] == inspect.getsource(e.reference).rstrip(), f"{exercise_id}: solution cell != reference"
            assert sources[5].startswith("```{solution-end}")
            assert sources[6] == f'_ = ex.check("{exercise_id}", {e.reference.__name__})'
            assert "nbval-check-output" in layout[6][1]
            outputs = "".join("".join(o.get("text", "")) for o in cells[i + 6].get("outputs", []))
            assert re.fullmatch(rf"✓ Exercise {re.escape(exercise_id)} passed: \d+ cases\n", outputs), outputs
            for c in cells[i : i + 7]:
                if c["cell_type"] == "markdown":
                    assert "exercise" in c.get("metadata", {}).get("tags", []), f"{exercise_id}: untagged text"
            found[exercise_id] = stem
    assert set(found) == set(ex.EXERCISES), f"exercises missing from the chapters: {set(ex.EXERCISES) - set(found)}"


def test_every_chapter_with_exercises_links_its_learner_notebook():
    tool = _tool()
    for stem, cells in _chapter_cells().items():
        if not any("exercise-stub" in c.get("metadata", {}).get("tags", []) for c in cells):
            continue
        links = [c for c in cells if "exercise-link" in c.get("metadata", {}).get("tags", [])]
        assert len(links) == 1, f"{stem} has no 'Open the exercises in Colab' link"
        assert f"[Open the exercises in Colab]({tool.colab_url(f'exercises/{stem}.ipynb')})" in "".join(
            links[0]["source"]
        )


# --- the learner notebooks -----------------------------------------------------------------------


def test_learner_notebooks_are_in_sync_with_the_chapters():
    tool = _tool()
    chapters = tool.chapters_with_exercises()
    committed = sorted(p.name for p in (REPO / "exercises").glob("*.ipynb"))
    assert committed == sorted(p.name for p in chapters), "run: python tools/make_exercises.py"
    for chapter in chapters:
        assert (REPO / "exercises" / chapter.name).read_text() == tool.rendered(chapter), (
            f"exercises/{chapter.name} is out of date: run python tools/make_exercises.py"
        )


def test_learner_notebooks_hold_no_solution_and_start_with_the_install_cell():
    from palindrome.constants import REPO_URL

    for path in sorted((REPO / "exercises").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells)
        assert "solution-start" not in text and "solution-end" not in text
        for e in ex.EXERCISES.values():
            body = inspect.getsource(e.reference).split('"""')[-1].split(":\n", 1)[-1].strip().splitlines()
            assert not any(len(line.strip()) > 25 and line.strip() in text for line in body[1:]), (
                f"{path.name} holds solution source of {e.id}"
            )
        assert cells[0]["cell_type"] == "code" and "google.colab" in "".join(cells[0]["source"])
        assert f"git+{REPO_URL}" in "".join(cells[0]["source"])
        links = "".join(cells[1]["source"])
        assert f"exercises/{path.name}" in links and f"chapters/{path.name}" in links
        assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "exercises").glob("*.ipynb")))
def test_learner_notebook_runs_unsolved(name):
    """Executed as committed, every exercise unsolved: no error, and every check says 'not implemented yet'."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(REPO / "exercises" / name, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO / "chapters")}}
    ).execute()
    checks = [c for c in nb.cells if "exercise-check" in c.metadata.get("tags", [])]
    assert checks
    for cell in checks:
        out = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert "not implemented yet" in out, f"{name}: a check printed {out!r}"
