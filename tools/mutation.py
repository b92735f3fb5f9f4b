"""Mutation testing of the package's foundations: mutmut's mutants, the committed bug patches, and a score per module.

    .venv/bin/pip install -r requirements-dev.txt    # mutmut, pinned
    .venv/bin/python tools/mutation.py               # everything (an hour or more on two cores; offline)
    .venv/bin/python tools/mutation.py --report      # only re-score the results of the last run
    .venv/bin/python tools/mutation.py --alive       # after adding tests: rerun the mutants left alive

Method. mutmut (configured in ``pyproject.toml``'s ``[tool.mutmut]``) copies the package to ``mutants/``, makes every
small change its operators know (``<`` to ``<=``, ``and`` to ``or``, a number plus one, a string wrapped in
``XX``, an argument dropped, ...) in the scoped modules, and runs, for each mutant, the quick tests that call the
mutated function, in a process forked after the package is imported. A mutant is *killed* when a test fails or it
runs out of time (a minute of CPU: an endless loop is a detected change), *survives* when every test passes, and has
*no tests* when no selected test calls its function (a survivor too). Only the functions named in ``SCOPE`` count.

A mutant that cannot change behaviour (an *equivalent* mutant) is listed in ``mutation/equivalents.toml`` with its
module, function, source line, the mutated line and the reason, and is taken out of the denominator::

    score = killed / (generated - listed equivalents)

An entry that matches no generated mutant, or matches one that a test kills, is *stale*, and the run fails.

The deliberate bugs of ``mutation/bugs/`` (each a patch with the tests that must fail on it) are applied first, one
at a time, by ``tools/kill_bugs.py``; a surviving bug fails the run. The exit status is 0 only when every bug is
killed, no entry is stale, and every module scores at least ``MIN_SCORE``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import tomllib

REPO = Path(__file__).resolve().parents[1]
EQUIVALENTS = REPO / "mutation" / "equivalents.toml"
SURVIVORS = REPO / "mutants" / "survivors.md"
MIN_SCORE = 0.90

SCOPE: dict[str, tuple[str, ...]] = {
    "palindrome.tokens": ("palindrome.tokens.*",),
    "palindrome.metrics": ("palindrome.metrics.*",),
    "palindrome.data": ("palindrome.data.*",),
    "palindrome.data_distribution": ("palindrome.data_distribution.*",),
    "palindrome.inputs": ("palindrome.inputs.*",),
    "palindrome.ablation": ("palindrome.ablation.*",),
    "palindrome.checkpoint": ("palindrome.checkpoint.*",),
    "palindrome.chapters.blindspots": (
        "palindrome.chapters.blindspots.x_single_mismatch_sweep__*",
        "palindrome.chapters.blindspots.xǁSweepResultǁ*",
    ),
}
"""Module -> the mutmut mutant names that count (the sweep and its result only, in ``blindspots``)."""

KILLED = {1, 3}
TIMEOUT = {-24, 24, 152, 255, 36, -9}  # SIGXCPU, and SIGKILL one CPU second later: mutmut's two timeout signals
SURVIVED = {0}
NO_TESTS = {33, 5}


@dataclass(frozen=True)
class Equivalent:
    """One listed equivalent mutant: where it is, what it changes, and why no behaviour can tell."""

    module: str
    function: str
    line: str
    mutant: str
    reason: str

    def matches(self, module: str, function: str, removed: str, added: str) -> bool:
        """Whether a mutant of ``function`` in ``module`` that turns ``removed`` into ``added`` is this one."""
        return (self.module, self.function, self.line, self.mutant) == (module, function, removed, added)


def load_equivalents(path: Path = EQUIVALENTS) -> list[Equivalent]:
    """The entries of ``mutation/equivalents.toml``; ValueError names a malformed one."""
    entries = tomllib.loads(path.read_text()).get("equivalent", [])
    fields = {"module", "function", "line", "mutant", "reason"}
    out = []
    for i, entry in enumerate(entries):
        if set(entry) != fields or not all(isinstance(v, str) and v.strip() for v in entry.values()):
            raise ValueError(f"{path.name}: entry {i} must have exactly the non-empty strings {sorted(fields)}")
        if entry["module"] not in SCOPE:
            raise ValueError(f"{path.name}: entry {i} names {entry['module']!r}, which is not in SCOPE")
        out.append(Equivalent(**entry))
    return out


def function_name(mutant: str) -> str:
    """``palindrome.tokens.x_check_int__mutmut_3`` -> ``check_int``; a method -> ``Class.method``."""
    key = mutant.rsplit(".", 1)[1].rsplit("__mutmut_", 1)[0]
    if key.startswith("xǁ"):
        return ".".join(part for part in key[2:].split("ǁ") if part)
    return key[2:]


def module_of(mutant: str) -> str:
    """The module a mutant name belongs to."""
    return mutant.rsplit(".", 1)[0]


def in_scope(mutant: str) -> str | None:
    """The scoped module whose patterns name ``mutant``, or None."""
    module = module_of(mutant)
    patterns = SCOPE.get(module, ())
    return module if any(fnmatch.fnmatchcase(mutant, p) for p in patterns) else None


def changed_lines(diff: str) -> tuple[str, str]:
    """The removed and the added lines of a unified diff, each stripped and joined by newlines."""
    body = [line for line in diff.splitlines() if not line.startswith(("---", "+++", "@@"))]
    removed = "\n".join(line[1:].strip() for line in body if line.startswith("-"))
    added = "\n".join(line[1:].strip() for line in body if line.startswith("+"))
    return removed, added


def results() -> dict[str, int | None]:
    """Every scoped mutant of the last run -> its exit code (None: not run), from mutmut's meta files."""
    out: dict[str, int | None] = {}
    for module in SCOPE:
        meta = REPO / "mutants" / (module.replace(".", "/") + ".py.meta")
        if not meta.exists():
            raise FileNotFoundError(f"{meta} is missing: run `python tools/mutation.py` (without --report) first")
        for attempt in range(10):  # mutmut rewrites the file while it runs: read it again if caught half-written
            try:
                codes = json.loads(meta.read_text())["exit_code_by_key"]
                break
            except json.JSONDecodeError:
                if attempt == 9:
                    raise
                time.sleep(0.5)
        out.update({name: code for name, code in codes.items() if in_scope(name)})
    return out


def score(
    codes: dict[str, int | None], equivalents: list[Equivalent], diff: Callable[[str], str] | None = None
) -> tuple[list[dict], list[str], list[str]]:
    """Per-module rows, the survivors' diffs, and the stale equivalents (messages); ``diff`` gives a mutant's diff."""
    if diff is None:
        diff = _mutmut_diff

    used: dict[Equivalent, str] = {}
    stale: list[str] = []
    rows: dict[str, dict] = {m: dict(module=m, generated=0, killed=0, timeout=0, equivalent=0, alive=0) for m in SCOPE}
    survivors: list[str] = []
    for name, code in sorted(codes.items()):
        module = module_of(name)
        row = rows[module]
        row["generated"] += 1
        if code in KILLED or code in TIMEOUT:
            row["killed" if code in KILLED else "timeout"] += 1
            matching = _matching(name, module, equivalents, diff) if equivalents else []
            stale += [f"{e.module}.{e.function}: {e.line!r} -> {e.mutant!r} is killed ({name})" for e in matching]
            used.update({e: name for e in matching})
            continue
        found = _matching(name, module, equivalents, diff)
        if found:
            row["equivalent"] += 1
            used[found[0]] = name
            continue
        row["alive"] += 1
        status = {0: "survived", 33: "no tests", 5: "no tests", None: "not run"}.get(code, f"exit {code}")
        survivors.append(f"### {name} ({status})\n```diff\n{diff(name)}\n```\n")
    stale += [
        f"{e.module}.{e.function}: {e.line!r} -> {e.mutant!r} matches no mutant" for e in equivalents if e not in used
    ]
    for row in rows.values():
        denominator = row["generated"] - row["equivalent"]
        row["score"] = (row["killed"] + row["timeout"]) / denominator if denominator else float("nan")
    return list(rows.values()), survivors, stale


def _mutmut_diff(name: str) -> str:
    """mutmut's diff of one mutant (read from ``mutants/``; mutmut is the dev requirement, needed only here)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    return get_diff_for_mutant(name, path=Path(module_of(name).replace(".", "/") + ".py"))


def _matching(name: str, module: str, equivalents: list[Equivalent], diff: Callable[[str], str]) -> list[Equivalent]:
    """The equivalents that describe mutant ``name``."""
    if not any(e.module == module for e in equivalents):
        return []
    removed, added = changed_lines(diff(name))
    return [e for e in equivalents if e.matches(module, function_name(name), removed, added)]


def run_mutmut(max_children: int, names: list[str] | None = None) -> None:
    """``mutmut run`` on the named mutants (default: every scoped mutant)."""
    names = names or [pattern for patterns in SCOPE.values() for pattern in patterns]
    # torch's OpenMP pool does not survive a fork: a forked test that runs a torch op would hang, and count as a
    # timeout (a kill). One thread per process keeps every fork live; max_children processes run side by side.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    mutmut = Path(sys.executable).with_name("mutmut")
    subprocess.run([str(mutmut), "run", "--max-children", str(max_children), *names], cwd=REPO, env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    """Run the bugs and the mutants (or only re-score with --report); print the table; 0 when all is well."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only score the last run's results")
    parser.add_argument(
        "--alive",
        action="store_true",
        help="rerun only the mutants the last run left alive (after adding tests: a killed mutant stays killed "
        "while its function is unchanged, and mutmut re-tests a function whose source changed)",
    )
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument(
        "--out",
        type=Path,
        default=SURVIVORS,
        help=f"where to write the alive mutants' diffs ({SURVIVORS.relative_to(REPO)})",
    )
    args = parser.parse_args(argv)
    bugs_ok = True
    if not args.report:
        bugs_ok = subprocess.run([sys.executable, str(REPO / "tools" / "kill_bugs.py")], cwd=REPO).returncode == 0
        if args.alive:
            alive = [name for name, code in results().items() if code not in KILLED | TIMEOUT]
            run_mutmut(args.max_children, alive)  # listed equivalents are rerun too: one that a test kills is stale
        else:
            run_mutmut(args.max_children)
    rows, survivors, stale = score(results(), load_equivalents())
    print(f"{'module':24} {'generated':>9} {'killed':>7} {'timeout':>7} {'equiv.':>6} {'alive':>6} {'score':>7}")
    for r in rows:
        print(
            f"{r['module']:24} {r['generated']:9d} {r['killed']:7d} {r['timeout']:7d} {r['equivalent']:6d} "
            f"{r['alive']:6d} {r['score']:7.1%}"
        )
    args.out.write_text("# Mutants alive after the last run\n\n" + "\n".join(survivors))
    print(f"{len(survivors)} mutants alive (diffs in {args.out})")
    for message in stale:
        print(f"stale equivalent: {message}")
    low = [r["module"] for r in rows if not r["score"] >= MIN_SCORE]
    if low:
        print(f"below {MIN_SCORE:.0%}: {', '.join(low)}")
    if not bugs_ok:
        print("a committed bug survives its tests (tools/kill_bugs.py above)")
    return 0 if bugs_ok and not stale and not low else 1


if __name__ == "__main__":
    sys.exit(main())
