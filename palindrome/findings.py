"""Named findings: the numbers a chapter's verdicts rest on, under keys each chapter module declares once.

Method. A chapter module computes its key numbers into a plain dict, then wraps it in
``Findings`` together with the keys it declares (a module constant ``KEYS``): construction fails
with ``MissingFindingsError`` when a declared key was not computed (a relabelled table row, say),
and looking up an undeclared key fails with ``FindingKeyError`` naming the nearest declared ones.
So a renamed key breaks the chapter's unit test, not a notebook. Keys that come from the label of
a table row or column are made by ``slug``, the package's one function for that.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from typing import Iterable


class FindingKeyError(KeyError):
    """A finding was looked up under a key its module does not declare."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


class MissingFindingsError(ValueError):
    """A module's computed findings lack keys it declares (or hold values that are not finite floats)."""


def slug(text: str) -> str:
    """A label as a key fragment: lower case, words joined by "_", "->" as "to": "H0.1 -> H1.1 K" ->
    "h0_1_to_h1_1_k"."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"slug needs a non-empty label, got {text!r}")
    text = text.strip()
    if text[:2] in ("- ", "+ "):
        text = ("minus " if text[0] == "-" else "plus ") + text[2:]
    text = text.replace("->", " to ").replace(" + ", " plus ").replace(" - ", " minus ")
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def join(*parts: object) -> str:
    """Key fragments joined by "__" (labels through ``slug``, numbers as they are)."""
    return "__".join(str(p) if isinstance(p, int) else slug(str(p)) for p in parts)


class Findings(Mapping[str, float]):
    """A read-only mapping of finding keys to numbers (floats, or ints for counts), checked against the keys its module
    declares."""

    def __init__(self, module: str, values: Mapping[str, float], declared: Iterable[str]) -> None:
        self.module = module
        self.declared = frozenset(declared)
        missing = sorted(self.declared - set(values))
        if missing:
            raise MissingFindingsError(
                f"palindrome.chapters.{module} computed no value for its declared finding(s) {missing}; "
                f"a table label or key changed. Computed keys include {sorted(values)[:20]}"
            )
        bad = [k for k, v in values.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
        if bad:
            raise MissingFindingsError(
                f"palindrome.chapters.{module} findings must be numbers (counts or floats); {bad[:5]} are not"
            )
        self._values = dict(values)

    def __getitem__(self, key: str) -> float:
        if key not in self._values:
            close = difflib.get_close_matches(str(key), list(self._values), n=3, cutoff=0.5)
            raise FindingKeyError(
                f"palindrome.chapters.{self.module} has no finding {key!r}"
                + (f"; did you mean {close}?" if close else "")
            )
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Findings({self.module!r}, {len(self)} values)"


def check_declared(module: str, declared: Iterable[str], keys: Iterable[str]) -> None:
    """Raise FindingKeyError unless every key in ``keys`` is among the keys ``module`` declares (run at import)."""
    declared = frozenset(declared)
    unknown = sorted(set(keys) - declared)
    if unknown:
        raise FindingKeyError(f"palindrome.chapters.{module} does not declare the finding key(s) {unknown}")
