"""Sphinx extension: serve plotly.js, circuitsvis and MathJax from the book's own _static.

The files are copied from the installed Python packages at build time (nothing is vendored
into the repository). MathJax is loaded by Sphinx's math extension from ``mathjax_path``;
plotly.js and circuitsvis are attached only to the pages whose outputs use them, once per
page, so every figure renders without a CDN.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

# asset name in _static -> (python package, path inside it, CSS class that needs it on a page)
ASSETS = {
    "plotly.min.js": ("plotly", "package_data/plotly.min.js", "palindrome-plotly"),
    "circuitsvis.js": ("circuitsvis", "dist/cdn/iife.js", "palindrome-circuitsvis"),
    "tex-svg.js": ("mathjax", "static/mathjax/es5/tex-svg.js", None),
}


def asset_sources() -> dict[str, Path]:
    """Where each asset lives inside its installed package."""
    sources = {}
    for name, (package, relative, _) in ASSETS.items():
        path = Path(importlib.import_module(package).__file__).parent / relative
        if not path.is_file():
            raise FileNotFoundError(f"{package} is installed without {relative}; reinstall it")
        sources[name] = path
    return sources


def _stage_assets(app) -> None:
    staging = Path(app.outdir).parent / ".book_assets"
    staging.mkdir(parents=True, exist_ok=True)
    for name, source in asset_sources().items():
        target = staging / name
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, target)
    app.config.html_static_path.append(str(staging))
    app.config.mathjax_path = "tex-svg.js"


def _attach_figure_libraries(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body", "")
    for name, (_, _, marker) in ASSETS.items():
        if marker and marker in body:
            app.add_js_file(name, priority=200)


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
