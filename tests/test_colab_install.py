"""Install the package the way a Colab reader does, in a fresh virtual environment, and run every chapter.

The steps, each taken from the file that defines it rather than typed here:

1. a fresh virtual environment, on Python 3.12 (Colab's) when this machine has it *and* can install
   a CPU build of torch for it, otherwise on the interpreter running the tests (the test prints
   which, and why);
2. torch first, with the torch requirement of README's install command (Colab brings its own
   torch, which the package deliberately does not declare);
3. the package with the ``%pip install`` line of the chapters' first (Colab) cell, with the
   repository URL (``palindrome.constants.REPO_URL``, the one place it is written; tests/test_book.py
   holds the cells and _config.yml to it) replaced by a local ``git clone`` of this repository,
   together with only ipykernel and nbval at requirements.txt's pins: so only the dependencies that
   pyproject.toml declares come with it;
4. every notebook that _toc.yml lists, from the clone, under ``pytest --nbval-lax`` in that
   environment, with PALINDROME_CHECKPOINT pointing at the checkpoint the other tests use.

The clone holds the COMMITTED state of the repository (HEAD of the checkout this file is in):
uncommitted changes to the package or the chapters are not installed or run by this test; commit
them first. The test needs the package registries this machine's pip is configured with (pip's own
cache is used as it is) and no other network. It takes about 10-15 minutes on two cores.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_book import readme_command

from palindrome.constants import REPO_URL

REPO = Path(__file__).resolve().parents[1]
COLAB_PYTHON = Path("/root/.pyenv/versions/3.12.1/bin/python")
"""Colab's Python version, where this machine has it."""
TORCH_TIMEOUT_S = 900
INSTALL_TIMEOUT_S = 1200
CHAPTERS_TIMEOUT_S = 2400


def _run(
    cmd: list[str], *, timeout: float, cwd: Path | None = None, env: dict | None = None, log: Path | None = None
) -> str:
    """Run a command; fail the test with its output (first failure and summary) if it fails or runs past ``timeout``."""
    try:
        result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{shlex.join(cmd)} ran past {timeout} s:\n{(error.stdout or '')[-4000:]}")
    output = result.stdout + result.stderr
    if log is not None:
        log.write_text(output)
    if result.returncode != 0:
        first = output.find("____")  # pytest's first failure header
        head = output[first : first + 6000] if first >= 0 else ""
        pytest.fail(
            f"{shlex.join(cmd)} failed ({result.returncode}); full output in {log}:\n{head}\n...\n{output[-3000:]}"
        )
    return output


def _clean_env(cache: Path) -> dict[str, str]:
    """The environment a reader's session has: no PYTHONPATH (it would import the checkout's package)."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PALINDROME_CACHE_DIR"] = str(cache)
    env["PIP_PROGRESS_BAR"] = "off"
    return env


def torch_requirement() -> list[str]:
    """The arguments after ``pip install`` in the torch step of README's install command."""
    for step in readme_command("install").split("&&"):
        words = shlex.split(step)
        if "install" in words and any(w.startswith("torch") for w in words):
            return words[words.index("install") + 1 :]
    raise AssertionError("README's install command has no step that installs torch")


def colab_install_arguments() -> list[str]:
    """The arguments of the ``%pip install`` line of the chapters' Colab cell (the same in every chapter)."""
    lines = set()
    for nb in sorted((REPO / "chapters").glob("*.ipynb")):
        code = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        line = [ln.strip() for ln in "".join(code[0]["source"]).splitlines() if "%pip install" in ln]
        assert len(line) == 1, f"{nb.name}: the Colab cell should have one %pip install line"
        lines.add(line[0])
    assert len(lines) == 1, f"the chapters' Colab cells install differently: {sorted(lines)}"
    words = shlex.split(lines.pop())
    return words[words.index("install") + 1 :]


def requirements_pin(name: str) -> str:
    """The line of requirements.txt that pins ``name``."""
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if re.match(rf"{re.escape(name)}\b", line.strip()):
            return line.strip()
    raise AssertionError(f"requirements.txt does not pin {name}")


def toc_notebooks(root: Path) -> list[Path]:
    """Every notebook that _toc.yml lists, in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    return [root / f"{f}.ipynb" for f in files if (root / f"{f}.ipynb").is_file()]


def cpu_torch_python(candidates: list[Path], torch_args: list[str]) -> tuple[Path, str]:
    """The first interpreter for which pip would install a CPU build of torch, and why it was chosen."""
    reasons = []
    for python in candidates:
        if not python.is_file():
            reasons.append(f"{python} not on this machine")
            continue
        report = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--no-deps",
                "--ignore-installed",
                "--quiet",
                "--report",
                "-",
                *torch_args,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        versions = []
        if report.returncode == 0:
            versions = [i["metadata"]["version"] for i in json.loads(report.stdout)["install"]]
        if any(v.endswith("+cpu") for v in versions):
            return python, "; ".join([*reasons, f"{python}: pip installs torch {versions[0]}"])
        reasons.append(f"{python}: no CPU torch for it here ({versions or report.stderr[-300:]})")
    raise AssertionError("no interpreter here can install a CPU torch: " + "; ".join(reasons))


@pytest.mark.slow
def test_every_chapter_runs_after_a_colab_style_install(tmp_path, capsys, checkpoint_path):
    start = time.monotonic()
    torch_args = torch_requirement()
    python, why = cpu_torch_python([COLAB_PYTHON, Path(sys.executable)], torch_args)
    with capsys.disabled():
        print(f"\n[colab install] interpreter: {python} ({why})")

    clone = tmp_path / "clone"
    _run(["git", "clone", "--quiet", str(REPO), str(clone)], timeout=300)
    venv = tmp_path / "venv"
    _run([str(python), "-m", "venv", str(venv)], timeout=300)
    vpython = venv / "bin" / "python"
    env = _clean_env(tmp_path / "cache")
    pip = [str(vpython), "-m", "pip", "install", "--quiet"]
    _run([*pip, *torch_args], timeout=TORCH_TIMEOUT_S, env=env)

    # file://localhost/...: pip's requirement parser wants a host in a VCS URL; git accepts it
    package = [a.replace(REPO_URL, f"file://localhost{clone}") for a in colab_install_arguments()]
    assert package != colab_install_arguments(), f"the Colab cell does not install from {REPO_URL}"
    _run([*pip, *package, requirements_pin("ipykernel"), requirements_pin("nbval")], timeout=INSTALL_TIMEOUT_S, env=env)
    _run([str(vpython), "-m", "pip", "check"], timeout=300, env=env)
    where = _run(
        [str(vpython), "-c", "import palindrome, torch; print(palindrome.__file__, torch.__version__)"],
        timeout=300,
        cwd=tmp_path,
        env=env,
    ).split()
    assert where[0].startswith(str(venv)), f"the package imported from {where[0]}, not the fresh environment"
    assert where[1].endswith("+cpu"), f"torch {where[1]} is not the CPU build"
    installed = time.monotonic() - start

    notebooks = toc_notebooks(clone)
    assert len(notebooks) >= 13, f"only {len(notebooks)} notebooks in the clone's _toc.yml"
    env["PALINDROME_CHECKPOINT"] = str(checkpoint_path)
    output = _run(
        [
            str(vpython),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval-lax",
            "--nbval-current-env",
            *map(str, notebooks),
        ],
        timeout=CHAPTERS_TIMEOUT_S,
        cwd=clone,
        env=env,
        log=tmp_path / "chapters.log",
    )
    with capsys.disabled():
        print(
            f"[colab install] torch {where[1]}; installed in {installed / 60:.1f} min; "
            f"{len(notebooks)} notebooks in {(time.monotonic() - start - installed) / 60:.1f} min: "
            f"{output.strip().splitlines()[-1]}"
        )
