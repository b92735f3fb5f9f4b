"""Apply each committed bug patch (mutation/bugs/*.patch) to a copy of the package and check that every test named
for it in mutation/bugs/killers.json fails.

    python tools/kill_bugs.py            # all patches; exit status 1 if any bug survives one of its tests
    python tools/kill_bugs.py NAME.patch # one patch

The copy lives in a temporary folder; the working tree is never changed. Needs the real checkpoint
(PALINDROME_CHECKPOINT), as the tests do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUGS = REPO / "mutation" / "bugs"


def killers() -> dict[str, list[str]]:
    """Patch file name -> the pytest node ids that must fail with it applied."""
    return json.loads((BUGS / "killers.json").read_text())


def survivors(patch: str, tests: list[str]) -> list[str]:
    """The tests of ``tests`` that still pass with ``patch`` applied to a copy of the repository."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "repo"
        copy.mkdir()
        for name in ("palindrome", "tests"):
            shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
        subprocess.run(["git", "apply", str(BUGS / patch)], cwd=copy, check=True)
        env = dict(os.environ, PYTHONPATH=str(copy))
        left = []
        for test in tests:
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
                cwd=copy,
                env=env,
                capture_output=True,
                text=True,
            )
            if run.returncode != 1:  # 1: tests ran and some failed; 0 passed; others are errors, not kills
                left.append(f"{test} (pytest exit status {run.returncode})")
        return left


def main(argv: list[str]) -> int:
    """Check the named patches (default: all); print each verdict; 1 if any bug survives a test named for it."""
    table = killers()
    listed = {p.name for p in BUGS.glob("*.patch")}
    if set(table) != listed:
        print(f"killers.json and mutation/bugs/*.patch disagree: {sorted(set(table) ^ listed)}")
        return 1
    failed = 0
    for patch in argv or sorted(table):
        left = survivors(patch, table[patch])
        print(f"{patch}: {'killed by ' + ', '.join(table[patch]) if not left else 'SURVIVES ' + ', '.join(left)}")
        failed += bool(left)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
