"""The package's import graph follows its folders: infrastructure, then ``chapters`` in book order, then ``book``.

The map is the tree itself plus two tuples: ``palindrome.chapters.ORDER`` (the chapter modules in book order) and
``palindrome.book.MODULES``. The rules:

- an infrastructure module (directly in ``palindrome/``) imports neither ``chapters`` nor ``book``;
- a chapter module imports only infrastructure and the chapter modules before it in ``ORDER``;
- no module outside ``book`` imports ``book`` (notebooks, ``_ext`` and the command line may).

Imports are read with ``ast`` wherever they stand (inside functions, under ``TYPE_CHECKING``); ``importlib`` imports of
package modules, which a static reader cannot see, fail on their own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from palindrome import book, chapters

PACKAGE = Path(__file__).resolve().parents[1] / "palindrome"
SUBPACKAGES = ("chapters", "book")


def module_name(path: Path) -> str:
    """``tokens``, ``chapters.blindspots``, ``book.report``; a package's ``__init__`` is named by its folder."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def package_imports(source: str) -> set[str]:
    """The ``palindrome`` modules a module's source imports (dotted below ``palindrome``), wherever it stands."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "palindrome":
                found.update(alias.name for alias in node.names)
            elif node.module in {f"palindrome.{s}" for s in SUBPACKAGES}:
                sub = node.module.split(".")[1]
                found.update(f"{sub}.{alias.name}" for alias in node.names)
            elif node.module.startswith("palindrome."):
                found.add(node.module.removeprefix("palindrome."))
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("palindrome.") for a in node.names if a.name.startswith("palindrome."))
    return found


def graph() -> dict[str, set[str]]:
    """Every module of the package (subfolders included) with the package modules it imports."""
    return {module_name(p): package_imports(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}


def violations(imports_of: dict[str, set[str]]) -> list[str]:
    """Every import that breaks the rules above, and every module the map lacks."""
    order = {f"chapters.{name}": rank for rank, name in enumerate(chapters.ORDER)}
    top = {f"book.{name}" for name in book.MODULES}
    found = []
    for module, imports in sorted(imports_of.items()):
        if module in SUBPACKAGES:  # the folders' own __init__ hold the map and import nothing of the package
            found += [f"palindrome.{module} imports {m}" for m in sorted(imports)]
            continue
        layer = module.split(".")[0] if "." in module else "infrastructure"
        if layer not in {"infrastructure", *SUBPACKAGES}:
            found.append(f"{module} is in a folder that is no layer (infrastructure, chapters or book)")
            continue
        if layer == "chapters" and module not in order:
            found.append(f"{module} is missing from palindrome.chapters.ORDER")
            continue
        if layer == "book" and module not in top:
            found.append(f"{module} is missing from palindrome.book.MODULES")
            continue
        for imported in sorted(imports):
            imported_layer = imported.split(".")[0] if "." in imported else "infrastructure"
            if imported in SUBPACKAGES:
                found.append(f"{module} imports the folder {imported} itself: import its modules")
            elif imported_layer == "infrastructure" and imported not in imports_of:
                found.append(f"{module} imports {imported}, which is no module of the package")
            elif imported_layer == "book" and layer != "book":
                found.append(f"{module} imports {imported}: only book modules import book")
            elif layer == "infrastructure" and imported_layer == "chapters":
                found.append(f"infrastructure module {module} imports the chapter module {imported}")
            elif layer == "chapters" and imported_layer == "chapters" and imported != module:
                if imported not in order:
                    found.append(f"{module} imports {imported}, which palindrome.chapters.ORDER lacks")
                elif order[imported] >= order[module]:
                    found.append(f"{module} imports {imported}, a chapter module after it in book order")
    return found


def test_the_package_follows_its_layers():
    assert not violations(graph()), "\n".join(violations(graph()))


def test_the_map_names_exactly_the_modules_of_each_folder():
    on_disk = set(graph())
    assert {f"chapters.{m}" for m in chapters.ORDER} == {m for m in on_disk if m.startswith("chapters.")}
    assert {f"book.{m}" for m in book.MODULES} == {m for m in on_disk if m.startswith("book.")}
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(SUBPACKAGES)


def test_no_module_imports_package_modules_through_importlib():
    for path in PACKAGE.rglob("*.py"):
        assert "import_module(" not in path.read_text(), f"{path.name} imports a module through importlib"


@pytest.mark.parametrize(
    "imports_of, message",
    [
        ({"chapters.backup": {"chapters.faithfulness"}}, "chapters.backup imports chapters.faithfulness, a chapter"),
        ({"ablation": {"chapters.roles"}}, "infrastructure module ablation imports the chapter module chapters.roles"),
        ({"chapters.newmodule": {"tokens"}}, "chapters.newmodule is missing from palindrome.chapters.ORDER"),
        ({"book.new": {"tokens"}}, "book.new is missing from palindrome.book.MODULES"),
        ({"__init__": {"chapters.roles"}}, "__init__ imports the chapter module chapters.roles"),
        ({"chapters.roles": {"book.reconciliation"}}, "chapters.roles imports book.reconciliation: only book"),
        ({"plots": {"book.report"}}, "plots imports book.report: only book modules import book"),
        ({"chapters.roles": {"nonexistent"}}, "imports nonexistent, which is no module of the package"),
        ({"extra.thing": {"tokens"}}, "extra.thing is in a folder that is no layer"),
        ({"chapters": {"tokens"}}, "palindrome.chapters imports tokens"),
    ],
)
def test_the_check_catches_each_kind_of_violation(imports_of, message):
    found = violations(imports_of | {"tokens": set()})
    assert any(message in v for v in found), found


def test_imports_are_read_wherever_they_stand():
    source = (
        "from palindrome import data\nif TYPE_CHECKING:\n    from palindrome.chapters.blindspots import X\n"
        "def f():\n    import palindrome.chapters.roles\nfrom palindrome.book import report as r\n"
    )
    assert package_imports(source) == {"data", "chapters.blindspots", "chapters.roles", "book.report"}
