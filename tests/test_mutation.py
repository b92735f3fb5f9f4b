"""The mutation-testing setup (tools/mutation.py) holds together without running mutmut: scope, equivalents, scoring."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("mutation_tool", REPO / "tools" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


mutation = _load_tool()


def _function_source(module: str, function: str) -> str | None:
    """The source of ``function`` (``Class.method`` for a method) in ``module``, or None if there is none."""
    path = REPO / (module.replace(".", "/") + ".py")
    source = path.read_text()
    body = ast.parse(source).body
    *owners, name = function.split(".")
    for owner in owners:
        body = next((n.body for n in body if isinstance(n, ast.ClassDef) and n.name == owner), [])
    node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name), None)
    return None if node is None else ast.get_source_segment(source, node)


def test_scope_is_the_files_mutmut_mutates():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert sorted(config["only_mutate"]) == sorted(m.replace(".", "/") + ".py" for m in mutation.SCOPE)
    for module, patterns in mutation.SCOPE.items():
        assert all(p.startswith(module + ".") for p in patterns), module


@pytest.mark.parametrize("entry", mutation.load_equivalents(), ids=lambda e: f"{e.module}.{e.function}")
def test_every_equivalent_names_code_that_is_still_there(entry):
    # An entry whose line has gone from its function is stale: the mutant it excused no longer exists.
    source = _function_source(entry.module, entry.function)
    assert source is not None, f"{entry.module} has no function {entry.function}"
    lines = {line.strip() for line in source.splitlines()}
    missing = [line for line in entry.line.splitlines() if line not in lines]
    assert not missing, f"{entry.module}.{entry.function} no longer has the line(s) {missing}: drop or update the entry"
    assert entry.mutant != entry.line


def test_equivalents_file_rejects_a_malformed_entry(tmp_path):
    bad = tmp_path / "equivalents.toml"
    bad.write_text('[[equivalent]]\nmodule = "palindrome.tokens"\nfunction = "check_int"\nline = "x"\nmutant = "y"\n')
    with pytest.raises(ValueError, match=r"entry 0 must have exactly the non-empty strings"):
        mutation.load_equivalents(bad)
    bad.write_text(
        '[[equivalent]]\nmodule = "palindrome.plots"\nfunction = "f"\nline = "x"\nmutant = "y"\nreason = "z"\n'
    )
    with pytest.raises(ValueError, match=r"'palindrome.plots', which is not in SCOPE"):
        mutation.load_equivalents(bad)


def test_mutant_names_map_to_functions_and_scope():
    assert mutation.function_name("palindrome.tokens.x_check_int__mutmut_3") == "check_int"
    assert mutation.function_name("palindrome.chapters.blindspots.xǁSweepResultǁ__post_init____mutmut_12") == (
        "SweepResult.__post_init__"
    )
    assert (
        mutation.in_scope("palindrome.chapters.blindspots.x_single_mismatch_sweep__mutmut_1")
        == "palindrome.chapters.blindspots"
    )
    assert mutation.in_scope("palindrome.chapters.blindspots.x_ablation_blindness__mutmut_1") is None
    assert mutation.in_scope("palindrome.plots.x_line__mutmut_1") is None


DIFF = """--- a.py
+++ a.py
@@ -1,3 +1,3 @@
 def f(x):
-    if x < 0:
+    if x <= 0:
         return 1"""


def test_changed_lines_are_read_from_the_diff():
    assert mutation.changed_lines(DIFF) == ("if x < 0:", "if x <= 0:")


def _entry(line="if x < 0:", mutant="if x <= 0:"):
    return mutation.Equivalent("palindrome.tokens", "f", line, mutant, "x is never 0")


def test_score_counts_kills_timeouts_and_equivalents():
    codes = {
        "palindrome.tokens.x_f__mutmut_1": 1,  # killed
        "palindrome.tokens.x_f__mutmut_2": -24,  # timeout
        "palindrome.tokens.x_f__mutmut_3": 0,  # survived, listed as equivalent
        "palindrome.tokens.x_f__mutmut_4": 33,  # no tests: alive
    }
    diffs = {name: DIFF if name.endswith("_3") else DIFF.replace("<= 0", "< 1") for name in codes}
    rows, survivors, stale = mutation.score(codes, [_entry()], diffs.__getitem__)
    row = next(r for r in rows if r["module"] == "palindrome.tokens")
    assert (row["generated"], row["killed"], row["timeout"], row["equivalent"], row["alive"]) == (4, 1, 1, 1, 1)
    assert row["score"] == pytest.approx(2 / 3)
    assert len(survivors) == 1 and "mutmut_4 (no tests)" in survivors[0] and not stale


def test_an_equivalent_that_matches_nothing_or_a_killed_mutant_is_stale():
    codes = {"palindrome.tokens.x_f__mutmut_1": 1}
    _, _, stale = mutation.score(codes, [_entry()], lambda name: DIFF)
    assert len(stale) == 1 and "is killed" in stale[0]
    _, _, stale = mutation.score(codes, [_entry(mutant="if x > 0:")], lambda name: DIFF)
    assert len(stale) == 1 and "matches no mutant" in stale[0]


def test_the_tool_is_pinned_and_documented():
    dev = (REPO / "requirements-dev.txt").read_text()
    assert re.search(r"^mutmut==\d+\.\d+\.\d+", dev, re.M), "pin mutmut in requirements-dev.txt"
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- mutation-command -->\s*```bash\n(.+?)\n\s*```", readme, re.S)
    assert block, "README gives the mutation command under <!-- mutation-command -->"
    lines = [line.strip() for line in block.group(1).splitlines()]
    assert lines == [".venv/bin/pip install -r requirements-dev.txt", ".venv/bin/python tools/mutation.py"]
