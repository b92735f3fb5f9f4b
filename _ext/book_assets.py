"""Sphinx extension: serve plotly.js and circuitsvis from the book's own _static folder.

The files are copied from the installed Python packages at build time (nothing is vendored
into the repository), and every page loads them once, so figures render with no CDN.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ASSETS = {
    "plotly.min.js": ("plotly", "package_data/plotly.min.js"),
    "circuitsvis.js": ("circuitsvis", "dist/cdn/iife.js"),
}


def asset_sources() -> dict[str, Path]:
    """Where each asset lives inside its installed package."""
    import importlib

    sources = {}
    for name, (package, relative) in ASSETS.items():
        root = Path(importlib.import_module(package).__file__).parent
        path = root / relative
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
        app.add_js_file(name, priority=200)
    app.config.html_static_path.append(str(staging))


def setup(app):
    app.connect("builder-inited", _stage_assets)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
