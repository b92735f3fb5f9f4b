"""Drive the "Try it" page in headless Chromium, offline: its forward pass against PyTorch, and its controls.

Used by tests/book/test_live.py (on the built site) and by benchmarks/bench_live.py; every request
that is not for a local file or the local server is aborted, so a page that needs the network fails.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from site_check import CHROMIUM_ARGS, find_chromium, serve

FORWARD_ALL = """
([sequences, settings]) => {
  const W = window.PALINDROME_LIVE_WEIGHTS;
  const out = [];
  for (const [head, kind] of settings) {
    const ablations = head === null ? {} : {[head]: kind};
    out.push(sequences.map((tokens) => {
      const r = window.palindromeLive.forward(W, tokens, ablations);
      return {
        p: r.pPalindrome, diff: r.logitDiff,
        patterns: window.palindromeLive.HEADS.map((h) => r.patterns[h]),
        dla: Object.values(r.attribution).map((a) => a.dla),
        direct: Object.values(r.attribution).map((a) => a.direct),
        unembedBias: r.unembedBias,
      };
    }));
  }
  return out;
}
"""


@contextlib.contextmanager
def served(directory: Path) -> Iterator[str]:
    """Serve ``directory`` locally (``site_check.serve``) for the duration of the block; yields the base URL."""
    httpd, base = serve(directory)
    try:
        yield base
    finally:
        httpd.shutdown()
        httpd.server_close()


LIVE_READY: str = "() => document.querySelector('.palindrome-live')?.dataset.updates >= 1"
"""Page condition: the "Try it" widget has drawn once."""


@contextlib.contextmanager
def live_page(url: str, ready: str = LIVE_READY) -> Iterator[tuple[object, list[str], list[str]]]:
    """Open ``url`` with every non-local request blocked, wait for ``ready``; yield (page, blocked, console errors)."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    errors: list[str] = []

    def route(r) -> None:
        target = urlparse(r.request.url)
        if target.scheme == "file" or target.hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1800})
            page.route("**/*", route)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="load")
            page.wait_for_function(ready)
            yield page, blocked, errors
        finally:
            browser.close()


def forward_all(page, sequences: list[list[int]], settings: list[tuple]) -> list[list[dict]]:
    """The page's forward pass on every sequence (22 tokens) under every (head, kind) setting (None: none)."""
    return page.evaluate(FORWARD_ALL, [sequences, [list(s) for s in settings]])
