"""Write the learner notebooks ``exercises/NN_name.ipynb`` from the chapters (the solutions notebooks).

Usage: .venv/bin/python tools/make_exercises.py [--check]

Each chapter with exercises gives one learner notebook: the Colab install cell first, then links that
open this notebook and its chapter (the solutions) in Colab, then every other cell of the chapter
without outputs, less the solution gates (``solution-start`` ... ``solution-end``) and the chapter's
own "Open the exercises in Colab" link. ``--check`` writes nothing and exits 1 when a committed
notebook differs from what this script would write (tests/book/test_exercises.py runs the same comparison).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = REPO / "chapters"
OUT = REPO / "exercises"
STUB_TAG = "exercise-stub"
LINK_TAG = "exercise-link"
SOLUTION_START = "```{solution-start}"
SOLUTION_END = "```{solution-end}"


def repo_url() -> str:
    """The repository URL, from its one source of truth (read as text, so this runs without the package's deps)."""
    for line in (REPO / "palindrome" / "constants.py").read_text().splitlines():
        if line.startswith("REPO_URL"):
            return line.split("=", 1)[1].strip().strip('"')
    raise SystemExit("palindrome/constants.py has no REPO_URL")


def colab_url(relative: str) -> str:
    """The Colab address that opens ``relative`` (a path in the repository) from GitHub's main branch."""
    return (
        repo_url().replace("https://github.com/", "https://colab.research.google.com/github/")
        + f"/blob/main/{relative}"
    )


def has_exercises(nb: nbformat.NotebookNode) -> bool:
    """Whether a chapter holds at least one exercise stub."""
    return any(STUB_TAG in c.get("metadata", {}).get("tags", []) for c in nb.cells)


def learner_notebook(chapter: Path) -> nbformat.NotebookNode:
    """The learner notebook of ``chapter``: solutions dropped, outputs cleared, install cell and links first."""
    nb = nbformat.read(chapter, as_version=4)
    kept, in_solution = [], False
    for cell in nb.cells:
        source = cell.source.lstrip()
        if cell.cell_type == "markdown" and source.startswith(SOLUTION_START):
            in_solution = True
        if not in_solution and LINK_TAG not in cell.get("metadata", {}).get("tags", []):
            kept.append(copy.deepcopy(cell))
        if cell.cell_type == "markdown" and source.startswith(SOLUTION_END):
            in_solution = False
    if in_solution:
        raise ValueError(f"{chapter.name}: a solution-start without its solution-end")
    for cell in kept:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    install = next(c for c in kept if c.cell_type == "code")
    kept.remove(install)
    links = nbformat.v4.new_markdown_cell(
        f"**Exercises for chapter {chapter.stem.split('_')[0].lstrip('0')}.** "
        f"[Open this notebook in Colab]({colab_url(f'exercises/{chapter.name}')}) · "
        f"[open the chapter with the solutions in Colab]({colab_url(f'chapters/{chapter.name}')}).\n\n"
        "Each exercise has a stub to fill in and a check cell after it; an unsolved exercise's check says "
        '"not implemented yet" and the notebook runs on.'
    )
    links.id = "learner-links"
    out = nbformat.v4.new_notebook()
    out.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    out.cells = [install, links, *kept]
    return out


def rendered(chapter: Path) -> str:
    """The learner notebook of ``chapter`` as the text this script writes."""
    return nbformat.writes(learner_notebook(chapter)) + "\n"


def chapters_with_exercises() -> list[Path]:
    """Every chapter notebook that holds an exercise, in book order."""
    return [p for p in sorted(CHAPTERS.glob("*.ipynb")) if has_exercises(nbformat.read(p, as_version=4))]


def main(argv: list[str]) -> int:
    """Write (or with --check, compare) every learner notebook; return the exit status."""
    check = "--check" in argv
    stale = []
    expected = {OUT / p.name: rendered(p) for p in chapters_with_exercises()}
    for path, text in expected.items():
        if not path.is_file() or path.read_text() != text:
            stale.append(path.name)
            if not check:
                OUT.mkdir(exist_ok=True)
                path.write_text(text)
    extra = sorted(p.name for p in OUT.glob("*.ipynb") if p not in expected)
    if check:
        if stale or extra:
            print(f"out of date: {stale}; not made from a chapter: {extra}; run tools/make_exercises.py")
            return 1
        return 0
    for name in extra:
        (OUT / name).unlink()
    print(f"wrote {len(stale)} of {len(expected)} learner notebooks in {OUT.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
