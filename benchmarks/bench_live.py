"""Time from an edit on the "Try it" page to the updated display, measured in headless Chromium.

    python benchmarks/bench_live.py [--edits 100] [--page _build/html/try_it.html]

Without ``--page`` a standalone copy of the widget is written to a temporary folder
(``palindrome.book.live.write_page``) and opened from file://. Each edit sets one random position to a
random value through the page's own input; the page records, in JavaScript, the time from the
input event to the end of its redraw (forward pass, attribution table, the four circuitsvis
patterns) and to the frames that paint the numbers and then circuitsvis's four patterns (drawn
after the numbers); the script also reports the wall time from Playwright's edit to that last
paint, which adds the browser-automation round trips.
Every non-local request is blocked. Target: under 50 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from live_check import live_page  # noqa: E402

from palindrome.book.live import write_page  # noqa: E402

TARGET_MS = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--page", type=Path, default=None, help="a built try_it.html (default: a standalone copy)")
    args = parser.parse_args()
    if args.edits < 1:
        parser.error(f"--edits must be a positive integer, got {args.edits}")
    if args.page is not None and not args.page.is_file():
        parser.error(f"--page must be a built try_it.html, and {args.page} is not a file")
    with tempfile.TemporaryDirectory() as tmp:
        page_path = args.page.resolve() if args.page else write_page(tmp)
        rng = random.Random(0)
        in_page, numbers, painted, wall = [], [], [], []
        with live_page(page_path.as_uri()) as (page, blocked, errors):
            for _ in range(args.edits):
                position, value = rng.randrange(1, 21), rng.randrange(0, 31)
                before = page.evaluate("document.querySelector('.palindrome-live').dataset.painted")
                start = time.perf_counter()
                page.fill(f"#palindrome-live-v{position}", str(value))
                page.wait_for_function(
                    f"() => document.querySelector('.palindrome-live').dataset.painted !== '{before}'"
                )
                wall.append((time.perf_counter() - start) * 1000)
                root = page.evaluate("({...document.querySelector('.palindrome-live').dataset})")
                in_page.append(float(root["lastUpdateMs"]))
                numbers.append(float(root["lastNumbersPaintMs"]))
                painted.append(float(root["lastPatternsPaintMs"]))
            if blocked or errors:
                raise SystemExit(f"the page made network requests {blocked} or logged errors {errors}")
    for name, times in (
        ("in the page: edit to numbers in the DOM", in_page),
        ("in the page: edit to numbers painted", numbers),
        ("in the page: edit to patterns painted", painted),
        ("edit to patterns painted (Playwright)", wall),
    ):
        times = sorted(times)
        print(
            f"{name:40s} median {statistics.median(times):6.1f} ms, 90th percentile "
            f"{times[int(0.9 * len(times))]:6.1f} ms"
        )
    for name, times in (("numbers", numbers), ("patterns", painted)):
        verdict = "met" if statistics.median(times) < TARGET_MS else "NOT met"
        print(f"target: edit to {name} painted under {TARGET_MS:.0f} ms (median, in the page): {verdict}")


if __name__ == "__main__":
    main()
