"""The bugs of issue #25 are kept as patches (mutation/bugs); each still applies, and each names its killing tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUGS = REPO / "mutation" / "bugs"
PATCHES = sorted(p.name for p in BUGS.glob("*.patch"))


def test_every_patch_names_tests_that_exist():
    table = json.loads((BUGS / "killers.json").read_text())
    assert sorted(table) == PATCHES and len(PATCHES) >= 7
    for tests in table.values():
        for test in tests:
            path, name = test.split("::")
            assert f"def {name}(" in (REPO / path).read_text(), test


@pytest.mark.parametrize("patch", PATCHES)
def test_every_patch_still_applies(patch):
    # A patch that no longer applies would silently stop checking its bug: python tools/kill_bugs.py runs them.
    run = subprocess.run(["git", "apply", "--check", str(BUGS / patch)], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
