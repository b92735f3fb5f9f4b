"""The package's import graph follows the layer map in ``palindrome.layers``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from palindrome import layers

PACKAGE = Path(__file__).resolve().parents[1] / "palindrome"
TOP_RANK = 1000  # above every chapter


def package_imports(source: str) -> set[str]:
    """Names of the ``palindrome`` modules a module's source imports, wherever the import stands."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "palindrome":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("palindrome."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("palindrome."))
    return found


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that breaks the rule of ``palindrome.layers``, and every module the map lacks."""
    rank = {name: 0 for name in layers.INFRASTRUCTURE} | {name: ch for name, ch in layers.CHAPTERS}
    rank |= {name: TOP_RANK for name in layers.TOP}
    found = []
    for module, imports in sorted(graph.items()):
        if module == "__init__":
            found += [f"__init__ re-exports the chapter module {m}" for m in sorted(imports) if rank.get(m, 0) > 0]
            continue
        if module not in rank:
            found.append(f"{module} is in neither layers.INFRASTRUCTURE nor layers.CHAPTERS")
            continue
        for imported in sorted(imports):
            if imported not in rank:
                found.append(f"{module} imports {imported}, which the layer map lacks")
            elif rank[module] == 0 and rank[imported] > 0:
                found.append(f"infrastructure module {module} imports the chapter module {imported}")
            elif rank[imported] == TOP_RANK and imported != module:
                found.append(f"{module} imports the top module {imported}")
            elif 0 < rank[module] < TOP_RANK and rank[imported] >= rank[module] and imported != module:
                found.append(f"{module} (chapter {rank[module]}) imports {imported} (chapter {rank[imported]})")
    return found


def test_the_package_follows_its_layer_map():
    graph = {p.stem: package_imports(p.read_text()) for p in PACKAGE.glob("*.py")}
    assert not violations(graph)
    assert set(graph) - {"__init__"} == set(layers.INFRASTRUCTURE) | {m for m, _ in layers.CHAPTERS} | set(layers.TOP)


def test_no_module_imports_package_modules_through_importlib():
    for path in PACKAGE.glob("*.py"):
        assert "import_module(" not in path.read_text(), f"{path.name} imports a module through importlib"


@pytest.mark.parametrize(
    "graph, message",
    [
        ({"backup": {"faithfulness"}}, "backup (chapter 9) imports faithfulness (chapter 10)"),
        ({"ablation": {"circuits"}}, "infrastructure module ablation imports the chapter module circuits"),
        ({"newmodule": {"tokens"}}, "newmodule is in neither"),
        ({"__init__": {"roles"}}, "__init__ re-exports the chapter module roles"),
        ({"roles": {"reconciliation"}}, "roles imports the top module reconciliation"),
        ({"plots": {"reconciliation"}}, "infrastructure module plots imports the chapter module reconciliation"),
    ],
)
def test_the_check_catches_each_kind_of_violation(graph, message):
    assert any(message in v for v in violations(graph)), violations(graph)


def test_imports_are_read_wherever_they_stand():
    source = (
        "from palindrome import data\nif TYPE_CHECKING:\n    from palindrome.blindspots import X\n"
        "def f():\n    import palindrome.roles\n"
    )
    assert package_imports(source) == {"data", "blindspots", "roles"}
