"""Shared fixtures: the real checkpoint (via PALINDROME_CHECKPOINT) and the loaded model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CHECKPOINT = REPO.parent / "shared" / "checkpoints" / "palindrome_classifier.pt"


def _checkpoint_path() -> Path:
    env = os.environ.get("PALINDROME_CHECKPOINT")
    path = Path(env) if env else SHARED_CHECKPOINT
    if not path.is_file():
        raise pytest.UsageError(
            f"the tests need the real checkpoint: set PALINDROME_CHECKPOINT to a copy of "
            f"palindrome_classifier.pt (looked at {path})"
        )
    return path


BOOK_FIXTURES = {"built_book", "site_page"}
"""Fixtures that build the whole book (every chapter executed): a test using one is slow wherever it stands."""


def pytest_collection_modifyitems(config, items):
    """Every chapter under nbval (each re-executes a notebook) and every test of the built book is slow: the quick
    tier (-m "not slow") skips them, even where a test forgets its own mark."""
    for item in items:
        if item.path.suffix == ".ipynb" or BOOK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def checkpoint_path() -> Path:
    return _checkpoint_path()


@pytest.fixture(scope="session")
def model(checkpoint_path):
    from palindrome import load_model

    return load_model(checkpoint_path, device="cpu")


@pytest.fixture(scope="session")
def chapter_findings(model):
    """``chapter_findings("blindspots")``: that module's ``key_findings(model)``, computed once per test session.

    Chapters 8, 9 and 10's findings are minutes of work each (chapter 8's is a sweep over 297,600 inputs); the
    tests of those chapters and the reconciliation all read the same ones. Each call returns a fresh copy, so a test
    that changed its dictionary could not change another test's.
    """
    from palindrome.book.reconciliation import MODULES

    cache: dict[str, dict[str, float]] = {}

    def get(name: str) -> dict[str, float]:
        if name not in cache:
            cache[name] = dict(MODULES[name].key_findings(model))
        return dict(cache[name])

    return get


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: on a shared 2-core machine two threads stall on each other's barriers."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's real cache: every test gets an empty cache directory."""
    monkeypatch.setenv("PALINDROME_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def built_book() -> Path:
    """Build the book once per test session (README's book command) and return _build/html."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(exe), "build", str(REPO), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=3000,
    )
    if result.returncode != 0:
        pytest.fail("jupyter-book build failed:\n" + result.stdout[-6000:] + result.stderr[-6000:])
    return REPO / "_build" / "html"
