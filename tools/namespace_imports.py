"""Rewrite chapter notebooks to import the ``palindrome`` modules they use as namespaces.

Every ``from palindrome[.module] import name`` in a code cell goes; each use of ``name`` becomes
``pal.name`` (``import palindrome as pal``) when ``palindrome/__init__.py`` lists it in ``__all__``
and its home module is infrastructure (``palindrome/layers.py``), otherwise ``<alias>.name``
(``from palindrome import <module> as <alias>``, aliases from ``ALIASES`` below). A name's home
module is the module it is imported from if that module defines it at top level (``def``,
``class`` or an assignment), otherwise the one package module that does, found by scanning
``palindrome/*.py`` when the tool runs; re-exports do not count.
References through namespaces the notebook already imports (``fa.x``) move to the home module of
``x`` when ``x`` is only re-exported there. An import cell over 6 lines keeps its imports and
hands its other statements (and its outputs) to a new code cell right after it.

Cells that do not parse as Python (IPython magics, such as the Colab setup cell) are left as they
are and reported.

Usage:
    .venv/bin/python tools/namespace_imports.py --check [NOTEBOOK ...]
    .venv/bin/python tools/namespace_imports.py --write [NOTEBOOK ...]
    .venv/bin/python tools/namespace_imports.py --out DIR [NOTEBOOK ...]

Without notebooks it takes every ``chapters/*.ipynb``. ``--check`` exits 1 and lists the
notebooks that still have ``from palindrome.<module> import name`` imports or palindrome import
cells over 6 lines; ``--write`` rewrites in place (nothing is written if any notebook has an
error); ``--out DIR`` writes rewritten copies to DIR. Errors (a name defined in no module or in
several, an assignment to an imported name or to an alias the notebook needs, a module missing
from ``ALIASES``) exit 2.
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "palindrome"
PAL = "pal"
MAX_CELL_LINES = 6
MAX_LINE = 99

# module -> alias, in output order: infrastructure first, then the chapter modules in book order.
ALIASES: dict[str, str] = {
    "constants": "C",
    "tokens": "tokens",
    "data": "datasets",
    "generator": "gen",
    "checkpoint": "ckpt",
    "model": "pmodel",
    "metrics": "metrics",
    "fast": "fast",
    "train": "train",
    "replicas": "replicas",
    "ablation": "abl",
    "paths": "paths",
    "plots": "plots",
    "probes": "probes",
    "hooks": "hooks",
    "findings": "findings",
    "circuits": "circ",
    "attribution": "attr",
    "composition": "comp",
    "adversarial": "adv",
    "blindspots": "bs",
    "backup": "bk",
    "faithfulness": "fa",
    "roles": "roles",
    "reconciliation": "rc",
}
TABLE_INFRASTRUCTURE = tuple(ALIASES)[: tuple(ALIASES).index("hooks") + 1]
"""Used only when ``palindrome/layers.py`` has no ``INFRASTRUCTURE`` tuple."""


class ToolError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# The package, as its sources stand now


def _defined_names(body: list[ast.stmt]) -> set[str]:
    """Names a module body defines at top level (also inside top-level if/try/with blocks)."""
    found: set[str] = set()

    def targets(node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                targets(elt)
        elif isinstance(node, ast.Starred):
            targets(node.value)

    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                targets(target)
        elif isinstance(stmt, ast.AnnAssign):
            targets(stmt.target)
        elif isinstance(stmt, ast.If):
            found |= _defined_names(stmt.body) | _defined_names(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            found |= _defined_names(stmt.body) | _defined_names(stmt.orelse) | _defined_names(stmt.finalbody)
            for handler in stmt.handlers:
                found |= _defined_names(handler.body)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            found |= _defined_names(stmt.body)
    return found


def _literal(tree: ast.Module, name: str):
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            return ast.literal_eval(stmt.value)
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
            return ast.literal_eval(stmt.value)
    return None


@dataclass
class Package:
    defines: dict[str, set[str]]  # module -> names defined there at top level
    exported: set[str]  # palindrome.__all__
    infrastructure: set[str]
    infrastructure_from: str

    @classmethod
    def scan(cls, root: Path = PACKAGE) -> "Package":
        defines = {}
        for path in sorted(root.glob("*.py")):
            if path.stem != "__init__":
                defines[path.stem] = _defined_names(ast.parse(path.read_text(), str(path)).body)
        init = ast.parse((root / "__init__.py").read_text())
        exported = set(_literal(init, "__all__") or ())
        for stmt in init.body:  # __all__ += [...]
            if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == "__all__":
                exported |= set(ast.literal_eval(stmt.value))
        infra, source = None, "palindrome/layers.py INFRASTRUCTURE"
        if (root / "layers.py").is_file():
            infra = _literal(ast.parse((root / "layers.py").read_text()), "INFRASTRUCTURE")
        if infra is None:
            infra, source = TABLE_INFRASTRUCTURE, "the tool's alias table (layers.py has no INFRASTRUCTURE)"
        return cls(defines, exported, set(infra), source)

    def is_module(self, name: str) -> bool:
        return name in self.defines

    def home(self, name: str) -> list[str]:
        return sorted(m for m, names in self.defines.items() if name in names)


def alias_of(module: str) -> str:
    if module not in ALIASES:
        raise ToolError(f"module palindrome.{module} has no alias: add it to ALIASES in tools/namespace_imports.py")
    return ALIASES[module]


def module_order(package: Package, alias: str) -> tuple[int, int]:
    if alias == PAL:
        return (-1, 0)
    modules = list(ALIASES)
    module = modules[list(ALIASES.values()).index(alias)]
    return (0 if module in package.infrastructure else 1, modules.index(module))


# ---------------------------------------------------------------------------------------------
# Source positions


class Source:
    """A cell's source with ast (line, UTF-8 byte column) positions mapped to str offsets."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:col].decode())

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def line_span(self, node: ast.stmt) -> tuple[int, int]:
        """The whole lines a statement occupies, with the newline after them."""
        start = self.starts[node.lineno - 1]
        end = self.starts[node.end_lineno] if node.end_lineno < len(self.lines) else len(self.text)
        before = self.text[start : self.offset(node.lineno, node.col_offset)]
        after = self.text[self.offset(node.end_lineno, node.end_col_offset) : end]
        if before.strip() or after.strip() and not after.strip().startswith("#"):
            raise ToolError(f"line {node.lineno}: an import shares its line with another statement")
        return start, end


# ---------------------------------------------------------------------------------------------
# A notebook


@dataclass
class Binding:
    """A local name a palindrome import binds: a package name (``name``) or a namespace (``module``)."""

    local: str
    cell: int
    stmt: ast.stmt
    name: str | None = None  # from palindrome[.m] import name [as local]
    module: str | None = None  # "" for the package itself
    source: str = ""  # the module a name is imported from ("" for the package)
    uses: int = 0
    aliases: set[str] = field(default_factory=set)  # aliases its uses are rewritten to


@dataclass
class Report:
    path: Path
    renamed: dict[str, dict[str, int]] = field(default_factory=dict)  # alias -> name -> uses
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def cell_label(nb, index: int) -> str:
    return f"cell {index} (id {nb.cells[index].get('id', '?')})"


def is_palindrome_import(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (
            node.level == 0
            and node.module is not None
            and (node.module == "palindrome" or node.module.startswith("palindrome."))
        )
    if isinstance(node, ast.Import):
        return any(a.name == "palindrome" or a.name.startswith("palindrome.") for a in node.names)
    return False


def bound_names(tree: ast.AST) -> dict[str, ast.AST]:
    """Every name a cell binds other than through palindrome imports (first node for each)."""
    found: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names = [node.id]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.arg):
            names = [node.arg]
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and not is_palindrome_import(node):
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names = [node.name]
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names = [node.name]
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names = [node.rest]
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names = list(node.names)
        for name in names:
            found.setdefault(name, node)
    return found


def import_lines(package: Package, aliases: set[str], indent: str = "") -> list[str]:
    lines = []
    if PAL in aliases:
        lines.append(f"{indent}import palindrome as {PAL}")
    modules = {a: m for m, a in ALIASES.items()}
    parts = [
        modules[a] if modules[a] == a else f"{modules[a]} as {a}"
        for a in sorted(aliases - {PAL}, key=lambda a: module_order(package, a))
    ]
    head = f"{indent}from palindrome import "
    line = ""
    for part in parts:
        if line and len(head + line + ", " + part) > MAX_LINE:
            lines.append(head + line)
            line = part
        else:
            line = f"{line}, {part}" if line else part
    if line:
        lines.append(head + line)
    return lines


DELETED = "\x00deleted\x00"


def apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    edits = sorted(edits)
    for (_, e1, _), (s2, _, _) in zip(edits, edits[1:], strict=False):
        if s2 < e1:
            raise ToolError("overlapping edits (please report this)")
    for start, end, new in reversed(edits):
        text = text[:start] + new + text[end:]
    if DELETED not in text:
        return text
    lines = text.split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        if line == DELETED:
            continue
        touched = i > 0 and lines[i - 1] == DELETED or i + 1 < len(lines) and lines[i + 1] == DELETED
        if not line.strip() and touched and (not out or not out[-1].strip()):
            continue  # no double blank line (or leading one) where an import went
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


def count_lines(text: str) -> int:
    return len(text.splitlines())


def process(path: Path, package: Package) -> tuple[object, Report]:
    nb = nbformat.read(path, as_version=4)
    report = Report(path)
    trees: dict[int, ast.Module] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            trees[i] = ast.parse(cell.source)
        except SyntaxError as err:
            what = "Colab setup" if "google.colab" in cell.source else "does not parse"
            has = (
                " (has palindrome imports, left as they are)"
                if re.search(r"^\s*(from|import)\s+palindrome\b", cell.source, re.M)
                else ""
            )
            report.skipped.append(f"{cell_label(nb, i)}: {what}, {err.msg} at line {err.lineno}{has}")

    def error(msg: str) -> None:
        report.errors.append(msg)

    # 1. the bindings palindrome imports make
    bindings: dict[str, Binding] = {}
    for i, tree in trees.items():
        for node in ast.walk(tree):
            if not is_palindrome_import(node):
                continue
            new: list[Binding] = []
            if isinstance(node, ast.Import):
                for a in node.names:
                    parts = a.name.split(".")
                    if len(parts) > 2:
                        error(f"{cell_label(nb, i)}: import {a.name}: the package has no subpackages")
                    elif a.asname:
                        new.append(Binding(a.asname, i, node, module=parts[1] if len(parts) == 2 else ""))
                    else:
                        new.append(Binding("palindrome", i, node, module=""))
            else:
                parts = node.module.split(".")
                if len(parts) > 2:
                    error(f"{cell_label(nb, i)}: from {node.module} import: the package has no subpackages")
                    continue
                for a in node.names:
                    if a.name == "*":
                        error(f"{cell_label(nb, i)}: from {node.module} import *: import the names one by one first")
                    elif len(parts) == 1 and package.is_module(a.name):
                        new.append(Binding(a.asname or a.name, i, node, module=a.name))
                    else:
                        source = parts[1] if len(parts) == 2 else ""
                        new.append(Binding(a.asname or a.name, i, node, name=a.name, source=source))
            for b in new:
                old = bindings.get(b.local)
                if old and (old.name, old.module) != (b.name, b.module):
                    error(
                        f"{cell_label(nb, i)}: {b.local} is imported as two different things "
                        f"(also in {cell_label(nb, old.cell)})"
                    )
                bindings.setdefault(b.local, b)

    # 2. where each bound thing lives, and what its uses become
    def target(name: str, where: str, source: str = "") -> str | None:
        homes = package.home(name)
        if source in homes:  # defined where the notebook imports it from: that is its home
            homes = [source]
        if len(homes) != 1:
            found = ", ".join(f"palindrome.{m}" for m in homes) if homes else "no module of palindrome/"
            origin = f"imported from palindrome{'.' + source if source else ''}, which does not define it; "
            error(
                f"{path.name}: {where}: {name} ({origin}defined at top level in {found}): "
                f"it needs exactly one home module"
            )
            return None
        if name in package.exported and homes[0] in package.infrastructure:
            return PAL
        try:
            return alias_of(homes[0])
        except ToolError as err:
            error(f"{path.name}: {where}: {name}: {err}")
            return None

    edits: dict[int, list[tuple[int, int, str]]] = {i: [] for i in trees}
    sources = {i: Source(nb.cells[i].source) for i in trees}

    def rename(alias: str, name: str) -> None:
        report.renamed.setdefault(alias, {}).setdefault(name, 0)
        report.renamed[alias][name] += 1

    for i, tree in trees.items():
        src = sources[i]
        chain_heads: set[int] = set()
        for node in ast.walk(tree):
            # namespace references: local.a.b.name
            if isinstance(node, ast.Attribute) and id(node) not in chain_heads:
                chain, inner = [], node
                while isinstance(inner, ast.Attribute):
                    chain.append(inner)
                    inner = inner.value
                if not (isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Load) and inner.id in bindings):
                    continue
                b = bindings[inner.id]
                if b.module is None:
                    continue  # an attribute of an imported name: the Name rule below handles it
                chain_heads.update(id(c) for c in chain)
                chain.reverse()  # innermost first
                module, k = b.module, 0
                while k < len(chain) and module == "" and package.is_module(chain[k].attr):
                    module, k = chain[k].attr, k + 1
                where = f"{cell_label(nb, i)}: {ast.unparse(chain[min(k, len(chain) - 1)])}"
                if k == len(chain):  # the module object itself
                    b.uses += 1
                    alias = PAL if module == "" else alias_of(module)
                    new, end = alias, chain[-1]
                else:
                    b.uses += 1
                    attr = chain[k].attr
                    if module and attr in package.defines.get(module, set()):
                        alias = alias_of(module)
                    else:
                        alias = target(attr, where)
                        if alias is None:
                            continue
                    new, end = f"{alias}.{attr}", chain[k]
                start, stop = src.span(end)
                edits[i].append((start, stop, new))
                b.aliases.add(alias)
                rename(alias, new.split(".")[-1] if "." in new else f"<module {module}>")
            # uses of imported names
            elif isinstance(node, ast.Name) and node.id in bindings and bindings[node.id].name is not None:
                b = bindings[node.id]
                if not isinstance(node.ctx, ast.Load):
                    continue  # reported as a collision below
                b.uses += 1
                alias = target(b.name, f"{cell_label(nb, i)}: {b.local}", b.source)
                if alias is None:
                    continue
                start, stop = src.span(node)
                if src.text[start:stop] != node.id:
                    raise ToolError(
                        f"{path.name}: {cell_label(nb, i)}: ast position of {node.id} "
                        f"points at {src.text[start:stop]!r} (please report this)"
                    )
                edits[i].append((start, stop, f"{alias}.{b.name}"))
                b.aliases.add(alias)
                rename(alias, b.name)
        # bare uses of a namespace (fa itself, not fa.x)
        attribute_values = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in bindings:
                b = bindings[node.id]
                if b.module is not None and id(node) not in attribute_values:
                    b.uses += 1
                    alias = PAL if b.module == "" else alias_of(b.module)
                    b.aliases.add(alias)
                    if alias != node.id:
                        edits[i].append((*src.span(node), alias))

    for b in bindings.values():
        if not b.uses:
            report.notes.append(f"{b.local} (imported in {cell_label(nb, b.cell)}) is never used; its import goes")

    # 3. collisions: the notebook binds an imported name or an alias it will use
    used_aliases = set().union(*(b.aliases for b in bindings.values())) if bindings else set()
    for i, tree in trees.items():
        for name, node in bound_names(tree).items():
            line = getattr(node, "lineno", "?")
            if name in bindings and name not in used_aliases:
                error(
                    f"{path.name}: {cell_label(nb, i)}, line {line}: assigns to {name!r}, "
                    f"which it imports from palindrome; rename the variable"
                )
            elif name in used_aliases:
                error(
                    f"{path.name}: {cell_label(nb, i)}, line {line}: assigns to {name!r}, "
                    f"the alias of a palindrome module the rewrite needs; rename the variable"
                )
    if report.errors:
        return nb, report

    # 4. the import statements: each cell imports the aliases first needed by its bindings
    imported: set[str] = set()
    new_cells: list[tuple[int, object]] = []
    for i, tree in sorted(trees.items()):
        stmts = [n for n in ast.walk(tree) if is_palindrome_import(n)]
        if not stmts:
            continue
        src = sources[i]
        top = [s for s in tree.body if is_palindrome_import(s)]
        nested = [s for s in stmts if s not in top]
        try:
            if top:
                need = set().union(*(b.aliases for b in bindings.values() if b.stmt in top)) - imported
                imported |= need
                lines = import_lines(package, need)
                for k, s in enumerate(top):
                    start, end = src.line_span(s)
                    new = "\n".join(lines) + "\n" if k == 0 and lines else DELETED + "\n"
                    if end == len(src.text) and not src.text.endswith("\n"):
                        new = new[:-1]
                    edits[i].append((start, end, new))
            for s in nested:
                need = set().union(*(b.aliases for b in bindings.values() if b.stmt is s)) - imported
                indent = src.lines[s.lineno - 1][: len(src.lines[s.lineno - 1]) - len(src.lines[s.lineno - 1].lstrip())]
                lines = import_lines(package, need, indent) or [f"{indent}pass"]
                start, end = src.line_span(s)
                edits[i].append((start, end, "\n".join(lines) + "\n"))
                imported |= need
            text = apply_edits(src.text, edits[i])
            edits[i] = []
            cell = nb.cells[i]
            cell.source = text
            if count_lines(text) > MAX_CELL_LINES:
                setup = split_import_cell(nb, i, text)
                if setup is not None:
                    new_cells.append((i, setup))
        except ToolError as err:
            error(f"{path.name}: {cell_label(nb, i)}: {err}")
    for i in trees:
        if edits[i]:
            nb.cells[i].source = apply_edits(sources[i].text, edits[i])
    if report.errors:
        return nb, report
    for i, setup in reversed(new_cells):
        nb.cells.insert(i + 1, setup)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(is_palindrome_import(n) for n in _walk_safe(cell.source)):
            report.cells.append(
                f"{cell_label(nb, i)}:\n" + "\n".join(f"    | {line}" for line in cell.source.split("\n"))
            )
            if i + 1 < len(nb.cells) and any(c is nb.cells[i + 1] for _, c in new_cells):
                setup = nb.cells[i + 1]
                report.cells.append(
                    f"  new setup cell after it, {cell_label(nb, i + 1)}: "
                    f"{count_lines(setup.source)} lines, {len(setup.outputs)} outputs"
                )
    return nb, report


def _walk_safe(source: str):
    try:
        return ast.walk(ast.parse(source))
    except SyntaxError:
        return ()


def split_import_cell(nb, index: int, text: str):
    """Keep the leading imports in cell ``index`` (at most 6 lines); return a new cell with the rest."""
    cell = nb.cells[index]
    tree = ast.parse(text)
    body = tree.body
    k = next((j for j, s in enumerate(body) if not isinstance(s, (ast.Import, ast.ImportFrom))), len(body))
    if any(is_palindrome_import(s) for s in body[k:]):
        raise ToolError(
            f"the cell is over {MAX_CELL_LINES} lines and has palindrome imports after other statements; "
            f"move the imports to the top of the cell"
        )
    lines = text.split("\n")
    cut = body[k - 1].end_lineno if k else 0
    head, rest = lines[:cut], lines[cut:]
    while rest and not rest[0].strip():
        rest.pop(0)
    if count_lines("\n".join(head)) > MAX_CELL_LINES:
        head = [line for line in head if line.strip()]
    if len(head) > MAX_CELL_LINES:
        raise ToolError(
            f"its imports alone take {len(head)} lines (at most {MAX_CELL_LINES}); "
            f"the cell's non-palindrome imports must shrink"
        )
    cell.source = "\n".join(head)
    if not rest:
        return None
    setup = nbformat.v4.new_code_cell(
        source="\n".join(rest),
        metadata=copy.deepcopy(cell.metadata),
        outputs=cell.outputs,
        execution_count=cell.get("execution_count"),
    )
    ids = {c.get("id") for c in nb.cells}
    base = f"{cell.get('id', 'cell')}"[:58] + "-setup"
    new_id, n = base, 1
    while new_id in ids:
        new_id, n = f"{base[:60]}-{n}", n + 1
    setup["id"] = new_id
    cell.outputs = []
    return setup


# ---------------------------------------------------------------------------------------------
# --check (the same rule as tests/test_book.py)


def check(path: Path, package: Package) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue  # IPython magics (the Colab setup cell): left as they are
        imports = [n for n in ast.walk(tree) if is_palindrome_import(n)]
        for node in imports:
            if isinstance(node, ast.ImportFrom) and node.module != "palindrome":
                problems.append(f"{cell_label(nb, i)}: from {node.module} import ...")
            elif isinstance(node, ast.ImportFrom):
                bad = [a.name for a in node.names if not package.is_module(a.name) and a.name not in package.exported]
                if bad:
                    problems.append(f"{cell_label(nb, i)}: from palindrome import {', '.join(bad)}")
        if imports and count_lines(cell.source) > MAX_CELL_LINES:
            problems.append(f"{cell_label(nb, i)}: palindrome import cell has {count_lines(cell.source)} lines")
    return problems


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="list notebooks that still need the rewrite")
    mode.add_argument("--write", action="store_true", help="rewrite the notebooks in place")
    mode.add_argument("--out", type=Path, metavar="DIR", help="write rewritten copies to DIR")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((REPO / "chapters").glob("*.ipynb"))
    package = Package.scan()

    if args.check:
        failing = {p: check(p, package) for p in paths}
        failing = {p: v for p, v in failing.items() if v}
        for p, problems in failing.items():
            print(f"{p}:")
            for problem in problems:
                print(f"  {problem}")
        print(f"{len(failing)} of {len(paths)} notebooks need tools/namespace_imports.py --write")
        return 1 if failing else 0

    print(f"infrastructure from {package.infrastructure_from}: {', '.join(sorted(package.infrastructure))}")
    results = []
    for p in paths:
        try:
            nb, report = process(p, package)
        except ToolError as err:
            nb, report = None, Report(p, errors=[f"{p.name}: {err}"])
        results.append((p, nb, report))
        print(f"\n== {p}")
        for s in report.skipped:
            print(f"  skipped {s}")
        for alias in sorted(report.renamed, key=lambda a: module_order(package, a)):
            names = report.renamed[alias]
            print(f"  {alias}: " + ", ".join(f"{n} ({c})" if c > 1 else n for n, c in sorted(names.items())))
        for note in report.notes:
            print(f"  note: {note}")
        for text in report.cells:
            print(f"  {text}")
        for err in report.errors:
            print(f"  ERROR {err}")
    errors = [e for _, _, r in results for e in r.errors]
    if args.write and errors:
        print(f"\n{len(errors)} errors: nothing written")
        return 2
    written = 0
    for p, nb, report in results:
        if nb is None or report.errors:
            continue
        dest = p if args.write else args.out / p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
        written += 1
    print(f"\n{written} of {len(results)} notebooks written" + (f" to {args.out}" if args.out else ""))
    if errors:
        print(f"{len(errors)} errors (those notebooks not written)")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
