"""The built site works offline in a real browser, and notebooks and site stay within budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from site_check import check_site

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


@pytest.mark.slow
def test_every_page_renders_offline(built_book):
    reports = check_site(built_book, REPO / "_build" / "screenshots")
    assert reports, "no pages found"
    pages = {r.page for r in reports}
    assert "intro.html" in pages
    failures = [r for r in reports if not r.ok]
    assert not failures, "\n".join(str(r) for r in failures)
    # the chapters really contain figures, and they were counted as drawn
    assert sum(r.plots for r in reports) == sum(r.plots_drawn for r in reports)
    assert sum(r.math_typeset for r in reports) > 0
    # every chapter collapses the code that only formats printouts or draws figures
    chapters = [r for r in reports if r.page.startswith("chapters/")]
    assert chapters and all(r.collapsed > 0 for r in chapters), [r.page for r in chapters if not r.collapsed]


@pytest.mark.parametrize("notebook", sorted((REPO / "chapters").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_hold_no_harness_marks_or_stderr(notebook):
    import json

    for index, cell in enumerate(json.loads(notebook.read_text())["cells"]):
        source = "".join(cell["source"])
        assert "NBVAL" not in source, f"{notebook.name} cell {index}: nbval marks go in the cell's tags"
        for output in cell.get("outputs", []):
            assert output.get("name") != "stderr", f"{notebook.name} cell {index} stores stderr (progress bars?)"


@pytest.mark.slow
def test_site_loads_each_library_once_per_page(built_book):
    for page in built_book.rglob("*.html"):
        text = page.read_text(errors="replace")
        for lib in ["plotly.min.js", "circuitsvis.js", "tex-svg.js"]:
            assert text.count(f"_static/{lib}") <= 1, f"{page.name} loads {lib} more than once"
        assert "cdn.plot.ly" not in text.split("palindrome-plotly")[0], f"{page.name} loads plotly from a CDN"


@pytest.mark.parametrize("notebook", sorted((REPO / "chapters").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_size_budget(notebook):
    assert notebook.stat().st_size <= 1.5 * MB, f"{notebook.name} is over 1.5 MB"
    assert b"CircuitsVis=function" not in notebook.read_bytes(), "a notebook inlines circuitsvis"


@pytest.mark.slow
def test_chapters_and_site_size_budget(built_book):
    chapters = sum(p.stat().st_size for p in (REPO / "chapters").rglob("*") if p.is_file())
    site = sum(p.stat().st_size for p in built_book.rglob("*") if p.is_file())
    assert chapters <= 8 * MB, f"chapters/ is {chapters / MB:.1f} MB (budget 8 MB)"
    assert site <= 40 * MB, f"the built site is {site / MB:.1f} MB (budget 40 MB)"


@pytest.mark.slow
def test_a_chapter_shows_an_exercise_box_and_a_collapsed_solution(built_book):
    """Chapter 2 in a browser: the exercise box with its registry title, and a solution that stays folded."""
    from playwright.sync_api import sync_playwright
    from site_check import CHROMIUM_ARGS, find_chromium, serve

    from palindrome.book.exercises import EXERCISES

    httpd, base = serve(built_book)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"{base}/chapters/02_h00_qk_circuit.html", wait_until="load")
            box = page.locator("div.exercise").first
            assert box.is_visible(), "no exercise box on chapter 2"
            assert EXERCISES["2.1"].heading in box.inner_text().replace("\u2019", "'")  # Sphinx curls apostrophes
            solution = page.locator("div.solution").first
            assert solution.count() == 1 and "dropdown" in (solution.get_attribute("class") or "")
            line = page.get_by_text("W_E = model.W_E / scale", exact=False).first
            assert line.count() == 1, "the reference solution is not on the page"
            assert not line.is_visible(), "the solution is shown unfolded"
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
