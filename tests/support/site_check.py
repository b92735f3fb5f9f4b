"""Open every page of the built site in headless Chromium with the network blocked, and check it.

Used by tests/test_site.py; also runnable by hand:
    .venv/bin/python tests/support/site_check.py _build/html
which prints one line per page and writes screenshots to _build/screenshots/.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# Runs in the page: counts figures and whether each one is drawn.
PAGE_PROBE = r"""
() => {
  const plots = [...document.querySelectorAll('.palindrome-plotly')];
  const vis = [...document.querySelectorAll('.palindrome-circuitsvis')];
  const mathNodes = [...document.querySelectorAll('div.math, span.math')];
  return {
    plots: plots.length,
    plotsDrawn: plots.filter(d => d.querySelector('svg.main-svg') &&
        (d.querySelectorAll('.trace, .hm, .bars, .scatterlayer path, image').length > 0)).length,
    vis: vis.length,
    visDrawn: vis.filter(d => d.children.length > 0 && d.innerText.trim().length > 0
                              || d.querySelector('canvas, svg')).length,
    math: mathNodes.length,
    mathTypeset: mathNodes.filter(n => n.querySelector('mjx-container')).length,
    harness: (document.body.innerText.match(/NBVAL|nbval/g) || []).length,
    stderr: document.querySelectorAll('.output.stderr, .stderr').length,
    collapsed: document.querySelectorAll('.tag_hide-input').length,
    overflowing: overflowingTables(),
  };
  // Tables (and printed outputs) whose visible box reaches past the text column: an element
  // inside a scroll container that itself fits the column does not overflow, it scrolls.
  function overflowingTables() {
    const column = document.querySelector('.bd-article') || document.querySelector('main') || document.body;
    const right = column.getBoundingClientRect().right + 1;
    const found = [];
    for (const el of column.querySelectorAll('table, pre')) {
      let box = el.getBoundingClientRect().right;
      for (let a = el; a && a !== column; a = a.parentElement) {
        const style = getComputedStyle(a);
        if (['auto', 'scroll', 'hidden'].includes(style.overflowX)) {
          box = Math.min(box, a.getBoundingClientRect().right);
        }
      }
      if (box > right) found.push(el.tagName.toLowerCase() + ': ' + el.innerText.slice(0, 60).replace(/\s+/g, ' '));
    }
    return found;
  }
}
"""


def find_chromium() -> str:
    """Path of the system Chromium (Debian's `chromium` package)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(
        "no Chromium found: install Debian's package (`apt-get install chromium`); "
        "Playwright's own browser download does not work offline"
    )


@dataclass
class PageReport:
    """What one page did in the browser."""

    page: str
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    plots: int = 0
    plots_drawn: int = 0
    vis: int = 0
    vis_drawn: int = 0
    math: int = 0
    math_typeset: int = 0
    harness: int = 0  # "NBVAL" shown on the page
    stderr: int = 0  # stderr outputs shown on the page
    collapsed: int = 0  # cells whose code is behind a toggle
    overflowing: list[str] = field(default_factory=list)  # tables/outputs wider than the text column

    @property
    def ok(self) -> bool:
        return (
            not self.blocked
            and not self.console_errors
            and not self.harness
            and not self.stderr
            and not self.overflowing
            and self.plots == self.plots_drawn
            and self.vis == self.vis_drawn
            and self.math == self.math_typeset
        )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``root`` on 127.0.0.1 (a free port) in a daemon thread."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def check_site(html_root: Path, screenshot_dir: Path, timeout_ms: int = 30_000) -> list[PageReport]:
    """Visit every page with only the local server reachable; return one report per page."""
    from playwright.sync_api import sync_playwright

    pages = sorted(
        p.relative_to(html_root).as_posix()
        for p in html_root.rglob("*.html")
        if not p.relative_to(html_root).as_posix().startswith("_")  # theme templates, not pages
    )
    screenshot_dir.mkdir(parents=True, exist_ok=True)
    httpd, base = serve(html_root)
    local_host = urlparse(base).netloc
    reports = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            for rel in pages:
                report = PageReport(rel)

                def route(r, report=report):
                    url = r.request.url
                    if urlparse(url).scheme in ("data", "blob") or urlparse(url).netloc == local_host:
                        return r.continue_()
                    report.blocked.append(url)
                    return r.abort()

                page = context.new_page()
                page.route("**/*", route)
                page.on(
                    "console", lambda m, rep=report: rep.console_errors.append(m.text) if m.type == "error" else None
                )
                page.on("pageerror", lambda e, rep=report: rep.console_errors.append(str(e)))
                page.goto(f"{base}/{rel}", wait_until="load", timeout=timeout_ms)
                try:
                    page.wait_for_load_state("networkidle", timeout=timeout_ms)
                except Exception:  # a page that keeps polling still gets probed
                    pass
                # give MathJax, plotly and React a moment to finish drawing
                page.wait_for_function(
                    "() => !window.MathJax || !MathJax.startup || MathJax.startup.promise",
                    timeout=timeout_ms,
                )
                page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
                page.wait_for_timeout(500)
                probe = page.evaluate(PAGE_PROBE)
                report.plots, report.plots_drawn = probe["plots"], probe["plotsDrawn"]
                report.vis, report.vis_drawn = probe["vis"], probe["visDrawn"]
                report.math, report.math_typeset = probe["math"], probe["mathTypeset"]
                report.harness, report.stderr = probe["harness"], probe["stderr"]
                report.collapsed, report.overflowing = probe["collapsed"], probe["overflowing"]
                shot = screenshot_dir / (rel.replace("/", "__").removesuffix(".html") + ".png")
                page.screenshot(path=str(shot), full_page=True)
                page.close()
                reports.append(report)
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    return reports


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html")
    results = check_site(root, root.parent / "screenshots")
    for rep in results:
        print(("ok  " if rep.ok else "FAIL"), rep)
    sys.exit(0 if all(r.ok for r in results) else 1)
