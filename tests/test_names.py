"""Names the docs promise resolve, and the old names of CHANGELOG.md do not.

Every ``palindrome.…`` name that README, ``try_it.md``, ``intro.md``, ``_ext`` and the benchmarks mention must import
(a module, or an attribute of one). Every renamed or removed name in CHANGELOG.md must fail to import, so that a
leftover folder of an old module's name (which Python would import silently as an empty namespace package) or a
forgotten alias is caught; every new name there must import.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NAME = re.compile(r"\bpalindrome(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
DOCS = ["README.md", "try_it.md", "intro.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "_ext").rglob("*.py"))]
DOCS += [str(p.relative_to(REPO)) for p in sorted((REPO / "_ext" / "live").glob("*.js"))]
DOCS += [str(p.relative_to(REPO)) for p in sorted((REPO / "benchmarks").glob("*.py"))]


def resolve(dotted: str) -> object:
    """The module or attribute ``dotted`` names; ImportError (or AttributeError) when there is none."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(dotted)


def changelog_rows(section: str) -> list[tuple[str, str]]:
    """(old, new) cells of the table under ``### section`` in CHANGELOG.md (backticks kept)."""
    text = (REPO / "CHANGELOG.md").read_text()
    block = text.split(f"### {section}\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in block.splitlines() if line.startswith("| `")]
    return [(old.strip(), new.strip()) for old, new in rows]


def first_name(cell: str) -> str:
    found = NAME.search(cell)
    assert found, f"no palindrome name in {cell!r}"
    return found.group(0)


@pytest.mark.parametrize("doc", DOCS)
def test_every_name_the_docs_mention_imports(doc):
    text = (REPO / doc).read_text()
    if doc.endswith(".js"):  # in the page's script, ``palindrome`` is also a variable: read its comments only
        text = "\n".join(line for line in text.splitlines() if line.lstrip().startswith(("*", "/*", "//")))
    missing = []
    for name in sorted(set(NAME.findall(text))):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"{doc} names what does not exist: {missing}"


def test_the_changelog_has_its_tables():
    assert len(changelog_rows("Modules")) >= 16 and changelog_rows("Names") and changelog_rows("Removed")


@pytest.mark.parametrize("old, new", changelog_rows("Modules") + changelog_rows("Names"))
def test_each_old_name_is_gone_and_its_new_name_imports(old, new):
    with pytest.raises((ImportError, AttributeError)):
        resolve(first_name(old))
    resolve(first_name(new))


@pytest.mark.parametrize("old, why", [r for r in changelog_rows("Removed") if NAME.search(r[0])])
def test_each_removed_name_is_gone(old, why):
    with pytest.raises((ImportError, AttributeError)):
        resolve(first_name(old))


def test_an_old_module_name_fails_with_import_error():
    with pytest.raises(ImportError):
        importlib.import_module("palindrome.counterfactuals")
    assert not (REPO / "palindrome" / "counterfactuals").exists(), "a leftover folder would import as a namespace"


def test_resolve_tells_names_apart():
    blindspots = importlib.import_module("palindrome.chapters.blindspots")
    assert resolve("palindrome.chapters.blindspots.KEYS") is blindspots.KEYS
    assert resolve("palindrome.chapters.blindspots") is blindspots
    with pytest.raises(AttributeError):
        resolve("palindrome.tokens.no_such_name")
    with pytest.raises((ImportError, AttributeError)):
        resolve("palindrome.no_such_module.x")
