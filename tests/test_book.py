"""The book builds with warnings as errors, and the repository URL has one source of truth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tomllib
import yaml

from palindrome.constants import REPO_URL

REPO = Path(__file__).resolve().parents[1]


def readme_command(name: str) -> str:
    """The command README.md gives under ``<!-- NAME-command -->``."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- {name}-command -->\s*```bash\n(.+?)\n```", text)
    assert match, f"README.md has no {name} command"
    return match.group(1)


def test_readme_gives_a_quick_tier_and_the_full_command():
    """The quick tier leaves out exactly the tests marked slow; the full command (CI's) runs everything."""
    quick, full = readme_command("quick-test"), readme_command("test")
    assert "pytest" in quick and '-m "not slow"' in quick, quick
    assert " -m pytest " in full and " -m " not in full.split(" -m pytest ", 1)[1] and "slow" not in full, (
        f"CI's command must run every test: {full}"
    )
    assert "--nbval-lax" in full and "chapters" in full.split(), full
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert any(m.startswith("slow:") for m in config["markers"]), "the slow marker must be registered"
    assert "--strict-markers" in config["addopts"], "a misspelt marker must fail, not silently select nothing"


def test_config_uses_the_one_repository_url():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["repository"]["url"] == REPO_URL
    assert config["launch_buttons"]["colab_url"]


def test_every_chapter_installs_from_the_repository_url_in_colab():
    notebooks = sorted((REPO / "chapters").glob("*.ipynb"))
    for nb in notebooks:
        cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        first = "".join(cells[0]["source"])
        assert "google.colab" in first, f"{nb.name}: first code cell is not the Colab setup"
        assert f"git+{REPO_URL}" in first, f"{nb.name}: Colab setup does not install from {REPO_URL}"
        assert not re.search(r"install[^\n]*\btorch\b", first), f"{nb.name}: Colab must keep its torch"


@pytest.mark.slow
def test_book_builds_clean(built_book):
    assert readme_command("book").endswith("jupyter-book build . -W -n --keep-going")
    assert (built_book / "intro.html").is_file()
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    chapters = [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    for chapter in chapters:
        assert (built_book / f"{chapter}.html").is_file(), f"{chapter} missing from the site"
    for asset in ["plotly.min.js", "circuitsvis.js", "tex-svg.js"]:
        assert (built_book / "_static" / asset).is_file(), f"{asset} missing from the site"


@pytest.mark.slow
def test_cached_rebuild_does_not_reexecute_unchanged_chapters(built_book):
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(exe), "build", str(REPO), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "Executing notebook" not in log, "an unchanged chapter was executed again"


MAX_CHAPTER_WORDS = 2100  # "about 2,000 words of prose" per main chapter; side analyses go to the appendix
# Exercise cells (tagged "exercise") do not count: a reader who skips every exercise reads the chapter straight through.


def test_main_chapters_keep_their_pace():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    for part in toc["parts"]:
        if part["caption"].startswith("Appendix"):
            continue
        for entry in part["chapters"]:
            if not entry["file"].startswith("chapters/"):
                continue  # pages outside the chapters (the "Try it" page) are not chapters
            cells = json.loads((REPO / f"{entry['file']}.ipynb").read_text())["cells"]
            words = sum(
                len("".join(c["source"]).split())
                for c in cells
                if c["cell_type"] == "markdown" and "exercise" not in c.get("metadata", {}).get("tags", [])
            )
            assert words <= MAX_CHAPTER_WORDS, f"{entry['file']}: {words} words of prose (at most {MAX_CHAPTER_WORDS})"


MAX_IMPORT_CELL_LINES = 6  # a chapter's imports fit on one screen line group; setup code goes to its own cell


def test_chapters_import_the_package_as_namespaces():
    """Chapter code says where each helper lives (``pal.load_model``, ``bs.blind_positions``), not long name lists.

    Allowed: ``import palindrome as pal``, ``import palindrome.<module> as <alias>``,
    ``from palindrome import <module> as <alias>`` (or a name in ``palindrome.__all__``) and
    ``from palindrome.chapters import <module> as <alias>`` (likewise ``palindrome.book``); a code cell
    with palindrome imports has at most 6 lines. The Colab setup cell (the first code cell), with its
    ``%pip`` line, is exempt.
    """
    import ast

    from IPython.core.inputtransformer2 import TransformerManager

    import palindrome

    folders = {"palindrome": REPO / "palindrome"} | {
        f"palindrome.{sub}": REPO / "palindrome" / sub for sub in ("chapters", "book")
    }
    modules = {name: {p.stem for p in folder.glob("*.py")} - {"__init__"} for name, folder in folders.items()}
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    listed = {c["file"] for part in toc["parts"] for c in part["chapters"] if c["file"].startswith("chapters/")}
    notebooks = sorted((REPO / "chapters").glob("*.ipynb"))
    assert {f"chapters/{nb.stem}" for nb in notebooks} == listed and len(notebooks) >= 13, (
        "chapters/ and _toc.yml differ"
    )
    problems = []
    for nb in notebooks:
        cells = json.loads(nb.read_text())["cells"]
        code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
        for index in code:
            source = "".join(cells[index]["source"])
            where = f"{nb.name} cell {index} (id {cells[index].get('id', '?')})"
            if index == code[0] and "google.colab" in source:
                continue
            try:
                tree = ast.parse(TransformerManager().transform_cell(source))
            except SyntaxError as err:
                problems.append(f"{where}: does not parse ({err.msg})")
                continue
            imports = False
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.level == 0
                    and (node.module or "").startswith("palindrome")
                ):
                    imports = True
                    names = ", ".join(a.name for a in node.names)
                    if node.module not in modules:
                        problems.append(
                            f"{where}: from {node.module} import {names} (import the module as a namespace)"
                        )
                    else:
                        exported = palindrome.__all__ if node.module == "palindrome" else []
                        bad = [
                            a.name for a in node.names if a.name not in modules[node.module] and a.name not in exported
                        ]
                        if bad:
                            problems.append(
                                f"{where}: from {node.module} import {', '.join(bad)} (neither its modules nor in "
                                "palindrome.__all__)"
                            )
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] != "palindrome":
                            continue
                        imports = True
                        parts = alias.name.split(".")
                        if parts == ["palindrome"] and alias.asname != "pal":
                            problems.append(
                                f"{where}: import palindrome as {alias.asname} (write: import palindrome as pal)"
                            )
                        elif len(parts) > 1 and (
                            ".".join(parts[:-1]) not in modules
                            or parts[-1] not in modules[".".join(parts[:-1])]
                            or not alias.asname
                        ):
                            problems.append(
                                f"{where}: import {alias.name} (write: import palindrome.<module> as <alias>)"
                            )
            lines = len(source.splitlines())
            if imports and lines > MAX_IMPORT_CELL_LINES:
                problems.append(f"{where}: {lines} lines with palindrome imports (at most {MAX_IMPORT_CELL_LINES})")
    assert not problems, "\n".join(problems)


def test_every_chapter_collapses_some_code():
    """Every page in chapters/ tags at least one code cell ``hide-input`` (the site test checks the rendered toggle).

    Without a collapsed cell a page shows its formatting code in full; this quick check names the notebook
    before the slow browser test of the built site does.
    """
    bare = []
    for nb in sorted((REPO / "chapters").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        if not any("hide-input" in c.get("metadata", {}).get("tags", []) for c in cells if c["cell_type"] == "code"):
            bare.append(nb.name)
    assert not bare, f"no code cell tagged hide-input in: {bare}"


def test_every_package_name_a_chapter_uses_exists():
    """``bs.blind_positions`` in a chapter's code names a function the module has: a renamed or moved function fails
    here in seconds, before nbval re-executes the notebook (the learner notebooks are checked too)."""
    import ast
    import importlib

    from IPython.core.inputtransformer2 import TransformerManager

    problems = []
    for nb in sorted((REPO / "chapters").glob("*.ipynb")) + sorted((REPO / "exercises").glob("*.ipynb")):
        cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        trees = []
        for cell in cells:
            try:
                trees.append(ast.parse(TransformerManager().transform_cell("".join(cell["source"]))))
            except SyntaxError:
                continue  # test_chapters_import_the_package_as_namespaces names it
        aliases = {}
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("palindrome"):
                    for a in node.names:
                        target = f"{node.module}.{a.name}"
                        try:
                            aliases[a.asname or a.name] = importlib.import_module(target)
                        except ModuleNotFoundError:
                            pass  # a name, not a module (``from palindrome import END``)
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        if a.name.split(".")[0] == "palindrome":
                            aliases[a.asname or a.name] = importlib.import_module(a.name)
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                    if not hasattr(aliases[node.value.id], node.attr):
                        problems.append(f"{nb.name}: {node.value.id}.{node.attr} ({aliases[node.value.id].__name__})")
    assert not problems, "names the chapters use that the package lacks:\n" + "\n".join(sorted(set(problems)))
