"""Sphinx extension: serve plotly.js, circuitsvis and MathJax from the book's own _static, and the live model.

The files are copied from the installed Python packages at build time (nothing is vendored
into the repository). MathJax is loaded by Sphinx's math extension from ``mathjax_path``;
plotly.js and circuitsvis are attached only to the pages whose outputs use them, once per
page, so every figure renders without a CDN. The "Try it" page (an element of class
``palindrome-live``) also gets the model's forward pass (``_ext/live/palindrome_live.js`` and its
CSS) and the weights, which ``palindrome.book.live.write_export`` writes from the checkpoint into the
build only (they are third-party data and never enter the repository).
"""

from __future__ import annotations

import shutil
from pathlib import Path

# asset name in _static (a key of palindrome.plots.LIBRARY_FILES) -> CSS class that needs it on a page
ASSETS = {
    "plotly.min.js": "palindrome-plotly",
    "circuitsvis.js": "palindrome-circuitsvis",
    "tex-svg.js": None,
}


def asset_sources() -> dict[str, Path]:
    """Where each asset lives inside its installed package (``palindrome.plots.library_file``)."""
    from palindrome.plots import library_file

    return {name: library_file(name) for name in ASSETS}


LIVE_DIR = Path(__file__).resolve().parent / "live"
LIVE_MARKER = "palindrome-live"
LIVE_FILES = ("palindrome_live.js", "palindrome_live.css")


def _stage_assets(app) -> None:
    staging = Path(app.outdir).parent / ".book_assets"
    staging.mkdir(parents=True, exist_ok=True)
    sources = asset_sources() | {name: LIVE_DIR / name for name in LIVE_FILES}
    for name, source in sources.items():
        target = staging / name
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)
    from palindrome.book.live import write_export

    write_export(staging)  # the weights, from the verified checkpoint (PALINDROME_CHECKPOINT or the cache)
    app.config.html_static_path.append(str(staging))
    app.config.mathjax_path = "tex-svg.js"


def _attach_figure_libraries(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body", "")
    live = LIVE_MARKER in body
    for name, marker in ASSETS.items():
        if marker and (marker in body or (live and name == "circuitsvis.js")):
            app.add_js_file(name, priority=200)
    if live:
        from palindrome.book.live import EXPORT_NAME

        app.add_js_file(EXPORT_NAME, priority=210)
        app.add_js_file("palindrome_live.js", priority=220)
        app.add_css_file("palindrome_live.css")


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep one copy of each script: sphinx-thebe registers its inline config twice under
    jupyter-book 1, and the second ``const`` declaration is a console error on every page."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
        key = (str(filename), repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("builder-inited", _stage_assets)
    app.connect("html-page-context", _attach_figure_libraries)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"version": "1.1", "parallel_read_safe": True, "parallel_write_safe": True}
