"""Every number in a chapter's prose is a number its own section prints, or says where it comes from.

The guard reads each chapter notebook as committed (nbval re-executes the same notebooks and fails
when a checked cell prints anything else, so the stored outputs are the live ones). It collects
the numbers that checked cells print (cells tagged ``nbval-check-output``: their ``stdout`` and
``text/plain`` outputs) and then every number in the chapter's markdown cells. A page is cut into
**sections** at its Markdown headings (a section runs from one heading to the next, across cells;
what comes before the first heading is a section too). Each prose number must be one of:

* **printed**: it equals, at the precision printed and with the same sign, a number that a checked cell of
  the **same section** prints (rules below); a number printed elsewhere on the page does not count;
* **marked** in the markdown cell's metadata, under the key ``prose_numbers``: a mapping from the
  number exactly as written in that cell to one of
    - ``"section: <heading>"``: an introduction or summary restating a result; the number must be
      printed (same rules) by the section under that heading of the same page;
    - ``"abs: <printed line>"``: the prose carries the sign in words ("falls by 0.3", "a drop of
      1.2"); the number must match, by magnitude, a number on a line of the page's checked output
      that contains the text ``<printed line>``;
    - ``"derived: <the closed form or definition>"``: a closed form written out in the text, a
      definition, a threshold or a setting (for example ``"0.5": "derived: the decision
      threshold"``);
    - ``"quoted: <source>"``: a quotation of a cited source (the original write-up, the other
      analysis, a paper);
    - ``"chapter N"`` or ``"appendix X"``: a citation of another page of the book, which must
      print the number itself (anywhere on that page, same sign, same precision rules).
  A mark whose number no longer appears in its cell is itself an error, so marks cannot go stale;
  so is a ``derived:`` or ``quoted:`` mark on a number that a checked cell of its section prints
  (a printed number is checked, so it takes no mark), a ``section:`` mark naming no heading of the
  page and an ``abs:`` mark naming no printed line.

What counts as a prose number:

* every decimal (``0.083``, ``-3.1``, ``17.7``) and every percentage (``8.3%``, ``100%``);
* every integer written with digit grouping or of at least 100 (``29,760``, ``500``), except
  four-digit years 1900-2099 written without grouping;
* every integer in a count phrase "k of n" or "k out of n" (``7 of the 10``, ``9 of 11``);
  other integers below 100 name things (positions, heads, layers, chapters, sizes) far more
  often than they count, and are not checked.

Besides printed numbers, an integer matches a literal integer in the page's own code cells: an
input size or setting written in the code (``PalindromeDataset(500)``, ``n_samples=300``) is what
the code runs, so the prose may name it.

Not counted: numbers in code spans and code blocks, integers inside math (indices, exponents,
fractions in closed forms; decimals inside math are checked), head names (``H0.0``, ``head 1.1``,
``heads 0.0 and 0.1``, ``$h^{0.0}$``), numbers inside links, and numbers that are part of a word or an
identifier (``a_1``, ``W_U``, ``1e-4`` in a code span).

Matching rules:

* **precision**: a prose number is written at the precision printed: with d decimals it matches a
  printed number with exactly d decimals and the same value (``0.95`` matches a printed ``0.95``, not
  ``0.953``; ``0.953`` does not match ``0.95``); to restate a printed number more roughly, print it
  at that precision in a checked cell or write the printed digits. A prose number that could match
  any printed number close to it would let a changed digit through on a page that prints many
  numbers (the digit-shift experiment below);
* **percentages**: ``p%`` with d decimals matches a printed percentage with d decimals or a printed
  fraction with d + 2 decimals (``31%`` matches ``31%`` and ``0.31``, not ``0.312``; ``31.2%``
  matches ``0.312``); a prose fraction likewise matches a printed percentage with 2 decimals fewer;
* **signs**: a prose number is negative when a minus sign (``-`` or ``\u2212``) stands right before
  it, and matches only a printed number of the same sign (a printed zero such as ``-0.00`` matches
  either); where the prose puts the sign into words, an ``abs:`` mark says so;
* **ranges**: ``0.56 to 0.70``, ``0.9954-0.9996`` and ``6-12%`` are two numbers, each checked (a
  percent sign after the second end applies to both);
* **integers** match printed integers exactly (digit grouping and underscores ignored).

On failure the guard names the page, the number and the sentence it stands in.

``digit_shift_edits`` is the experiment of ``tests/test_prose_numbers.py``: every decimal and
percentage of the prose moved by one in its last digit, one edit at a time, must be caught.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterator

CHECK_TAG = "nbval-check-output"
MARK_KEY = "prose_numbers"
MARK_KINDS = ("derived:", "quoted:")
"""Marks for numbers no checked cell prints (a derived number, a quotation)."""
SECTION_MARK = "section: "
ABS_MARK = "abs: "
CHAPTER_MARK = re.compile(r"^(chapter|appendix) ([0-9]+|[A-Z])$")

# A number (its magnitude; the sign is read from the character before it, see _sign): digits with optional grouping,
# optional decimals, optional percent. Scientific notation is read as one token.
_NUMBER = re.compile(
    r"(?<![\w.])"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)"
    r"(?P<frac>\.\d+)?"
    r"(?P<exp>[eE][-+]?\d+)?"
    r"(?![\w])"
    r"(?P<pct>\s?%)?"
)
_OUTPUT_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:[,_]\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?")
_HEAD_LIST = re.compile(r"\b(?:H|[Hh]eads?\s+)[01]\.[01](?:(?:,\s*|\s+and\s+|\s+or\s+|/)(?:H)?[01]\.[01])*")
_MATH_HEAD = re.compile(r"\^\{[01]\.[01](?=[\\}])")  # a head as a superscript in math: $h^{0.0}$, $W_K^{0.0\,T}$
_COUNT = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)\s+(?:out\s+)?of\s+(?:the\s+|its\s+|all\s+|these\s+|those\s+)?"
    r"(\d{1,3}(?:,\d{3})+|\d+)(?![\w.])"
)
_RANGE_PCT = re.compile(r"(\d+(?:\.\d+)?)(\s+to\s+)(\d+(?:\.\d+)?)\s?%")


@dataclass(frozen=True)
class ProseNumber:
    """One number as written in a markdown cell."""

    text: str  # as written (without its sign), for messages and marks
    value: Decimal  # signed
    decimals: int
    percent: bool
    integer: bool
    sentence: str


Printed = tuple[Decimal, bool, bool, int]
"""(signed value, is a percentage, is an integer, decimals) of one printed number."""


def _strip(markdown: str) -> tuple[str, str]:
    """Markdown without code, links, HTML and head names; and a copy with math blanked out too."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"<[^>]+>", " ", text)
    text = _HEAD_LIST.sub(" ", text)
    text = _MATH_HEAD.sub("^{h", text)
    text = re.sub(r"(?<=\d)[-\u2013](?=\d)", " to ", text)  # ranges: 0.9954-0.9996
    # percentages of a range apply to both ends: "6-12%" -> "6% to 12%"
    text = _RANGE_PCT.sub(lambda m: f"{m.group(1)}%{m.group(2)}{m.group(3)}%", text)
    no_math = re.sub(r"\$\$.*?\$\$", lambda m: " " * len(m.group(0)), text, flags=re.S)
    no_math = re.sub(r"(?<!\\)\$[^$\n]+?(?<!\\)\$", lambda m: " " * len(m.group(0)), no_math)
    return text, no_math


def _sentence_at(text: str, index: int) -> str:
    start = max(text.rfind(". ", 0, index), text.rfind("\n\n", 0, index), text.rfind("\n- ", 0, index))
    end_candidates = [i for i in (text.find(". ", index), text.find("\n\n", index)) if i != -1]
    end = min(end_candidates) if end_candidates else len(text)
    return " ".join(text[start + 1 : end + 1].split())


def _negative(text: str, start: int) -> bool:
    """Whether a minus sign stands right before the number starting at ``start`` (not a hyphen inside a word)."""
    if start == 0 or text[start - 1] not in "-\u2212":
        return False
    return start == 1 or not text[start - 2].isalnum()


def prose_numbers(markdown: str) -> list[ProseNumber]:
    """The numbers of one markdown cell that the guard checks (see the module docstring)."""
    text, no_math = _strip(markdown)
    counts: set[int] = set()
    for match in _COUNT.finditer(no_math):
        counts.update({match.start(1), match.start(2)})
    found = []
    for match in _NUMBER.finditer(text):
        in_math = no_math[match.start() : match.end()].strip() == ""
        int_part, frac = match.group("int"), match.group("frac")
        if match.group("exp"):
            continue  # 1e-4 style tolerances are written in math or code in this book
        percent = bool(match.group("pct"))
        digits = int_part.replace(",", "")
        integer = frac is None and not percent
        if integer:
            number_start = match.start("int")
            grouped = "," in int_part
            year = not grouped and len(digits) == 4 and 1900 <= int(digits) <= 2099
            if in_math or year:
                continue
            if not (grouped or int(digits) >= 100 or number_start in counts):
                continue
        value = Decimal(digits + (frac or ""))
        found.append(
            ProseNumber(
                text=match.group(0).strip(),
                value=-value if _negative(text, match.start()) else value,
                decimals=len(frac) - 1 if frac else 0,
                percent=percent,
                integer=integer,
                sentence=_sentence_at(text, match.start()),
            )
        )
    return found


def printed_numbers(outputs_text: str) -> list[Printed]:
    """(signed value, is a percentage, is an integer, decimals) for every number a checked cell prints."""
    numbers = []
    for token in _OUTPUT_NUMBER.findall(outputs_text):
        percent = token.endswith("%")
        raw = token.rstrip("%").lstrip("+").replace(",", "").replace("_", "")
        try:
            value = Decimal(raw)
        except InvalidOperation:
            continue
        raw = raw.lstrip("-")
        integer = re.fullmatch(r"\d+", raw) is not None
        decimals = len(raw.split(".", 1)[1]) if "." in raw and "e" not in raw.lower() else (0 if integer else 99)
        numbers.append((value, percent, integer, decimals))
    return numbers


def matches(number: ProseNumber, printed: list[Printed], signed: bool = True) -> bool:
    """Whether a prose number is one of the printed numbers, by the module's rules (``signed=False``: by magnitude)."""
    target = number.value if signed else abs(number.value)
    for value, percent, integer, decimals in printed:
        if not signed:
            value = abs(value)
        if number.integer:
            if integer and value == target:
                return True
            continue
        if number.percent and not percent:
            value, decimals = value * 100, decimals - 2
        elif percent and not number.percent:
            value, decimals = value / 100, decimals + 2
        if decimals == number.decimals and value == target:
            return True
    return False


def code_integers(notebook: dict) -> list[Printed]:
    """The integer literals of the page's code cells (settings such as dataset sizes)."""
    numbers = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            for token in re.findall(r"(?<![\w.])\d[\d_]*(?![\w.])", "".join(cell["source"])):
                numbers.append((Decimal(token.replace("_", "")), False, True, 0))
    return numbers


def _checked_outputs(cell: dict) -> Iterator[str]:
    if cell["cell_type"] != "code" or CHECK_TAG not in cell.get("metadata", {}).get("tags", []):
        return
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            yield "".join(output["text"])
        elif "data" in output and "text/plain" in output["data"]:
            yield "".join(output["data"]["text/plain"])


def checked_output_text(notebook: dict) -> str:
    """Everything the notebook's checked cells print (stdout and text/plain)."""
    return "\n".join(text for cell in notebook["cells"] for text in _checked_outputs(cell))


_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def _chunks(source: str) -> list[tuple[str | None, str]]:
    """A markdown cell cut at its headings: (the heading that starts the chunk or None, the chunk's text)."""
    chunks: list[tuple[str | None, str]] = [(None, "")]
    fence = False
    for line in source.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fence = not fence
        heading = None if fence else _HEADING.match(line)
        if heading:
            chunks.append((heading.group(1), ""))
        chunks[-1] = (chunks[-1][0], chunks[-1][1] + line)
    return chunks


@dataclass
class Page:
    """One notebook as the guard sees it: its sections' printed numbers and lines, and its markdown cells."""

    name: str
    headings: list[str] = field(default_factory=list)  # section i starts at headings[i] ("" before the first)
    printed: list[list[Printed]] = field(default_factory=list)
    lines: list[list[str]] = field(default_factory=list)
    code_ints: list[Printed] = field(default_factory=list)
    cells: list[tuple[int, int, str, dict]] = field(default_factory=list)  # (cell index, section, source, marks)

    @classmethod
    def read(cls, path: Path) -> "Page":
        """The page of a notebook file."""
        return cls.of(path.name, json.loads(path.read_text()))

    @classmethod
    def of(cls, name: str, notebook: dict) -> "Page":
        """The page of a notebook (a dict as in the file)."""
        page = cls(name, [""], [[]], [[]], code_integers(notebook))
        for index, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] == "markdown":
                source = "".join(cell["source"])
                page.cells.append((index, len(page.headings) - 1, source, cell.get("metadata", {}).get(MARK_KEY, {})))
                for heading, _ in _chunks(source)[1:]:
                    page.headings.append(heading)
                    page.printed.append([])
                    page.lines.append([])
            for text in _checked_outputs(cell):
                page.printed[-1].extend(printed_numbers(text))
                page.lines[-1].extend(line.strip() for line in text.splitlines() if line.strip())
        return page

    def all_printed(self) -> list[Printed]:
        """Every number the page's checked cells print."""
        return [number for section in self.printed for number in section]

    def cell_problems(
        self, index: int, section: int, source: str, marks: dict, pages: dict[str, Path], cache: dict[str, "Page"]
    ) -> list[str]:
        """The problems of one markdown cell (whose first chunk is in ``section``), by the module's rules."""
        where = f"{self.name} cell {index}"
        found = []
        numbers: list[tuple[int, ProseNumber]] = []
        for offset, (_, chunk) in enumerate(_chunks(source)):
            numbers.extend((section + offset, n) for n in prose_numbers(chunk))
        written = {n.text for _, n in numbers}
        for text, reason in marks.items():
            if text not in written:
                found.append(f"{where}: the mark for {text!r} names no number of this cell")
            elif not (reason.startswith(MARK_KINDS + (SECTION_MARK, ABS_MARK)) or CHAPTER_MARK.match(reason)):
                found.append(
                    f"{where}: mark {text!r}: {reason!r} is not 'section: <heading>', 'abs: <printed line>', "
                    f"'derived: ...', 'quoted: ...', 'chapter N' or 'appendix X'"
                )
        for number_section, number in numbers:
            problem = self._number_problem(number, number_section, marks.get(number.text), pages, cache)
            if problem:
                found.append(f'{where}: {number.text} {problem}; sentence: "{number.sentence}"')
        return found

    def _number_problem(
        self, number: ProseNumber, section: int, reason: str | None, pages: dict[str, Path], cache: dict[str, "Page"]
    ) -> str | None:
        own = self.printed[section] + (self.code_ints if number.integer else [])
        if reason is None:
            return None if matches(number, own) else "is not printed by a checked cell of its section and not marked"
        if reason.startswith(MARK_KINDS):
            if matches(number, self.printed[section]):
                return f"is printed by a checked cell of its section, so its mark {reason!r} must go"
            return None
        if matches(number, own):
            return None  # the same text elsewhere in the cell needs the mark; this one is printed here
        if reason.startswith(SECTION_MARK):
            heading = reason[len(SECTION_MARK) :].strip()
            sections = [i for i, h in enumerate(self.headings) if h == heading and i]
            if not sections:
                return f"is marked {reason!r}, but no heading of this page reads {heading!r}"
            if any(matches(number, self.printed[i]) for i in sections):
                return None
            return f"is marked {reason!r}, but that section prints no such number (same sign)"
        if reason.startswith(ABS_MARK):
            wanted = reason[len(ABS_MARK) :].strip()
            lines = [line for section_lines in self.lines for line in section_lines if wanted and wanted in line]
            if not lines:
                return f"is marked {reason!r}, but no line of the page's checked output contains {wanted!r}"
            if any(matches(number, printed_numbers(line), signed=False) for line in lines):
                return None
            return f"is marked {reason!r}, but that printed line holds no number of this magnitude"
        cited = CHAPTER_MARK.match(reason)
        if cited:
            if reason not in pages:
                return f"cites {reason}, which does not exist"
            if reason not in cache:
                cache[reason] = Page.read(pages[reason])
            if matches(number, cache[reason].all_printed()):
                return None
            return f"is cited from {reason}, which prints no such number"
        return "has a mark of no known kind"

    def problems(self, pages: dict[str, Path], cache: dict[str, "Page"] | None = None) -> list[str]:
        """Every prose number of the page that is neither printed by its section nor validly marked."""
        cache = {} if cache is None else cache
        return [
            problem
            for index, section, source, marks in self.cells
            for problem in self.cell_problems(index, section, source, marks, pages, cache)
        ]


def page_key(path: Path) -> str:
    """How marks name a page: ``chapters/08_name.ipynb`` is "chapter 8", ``chapters/A_name.ipynb`` "appendix A"."""
    prefix = path.name.split("_", 1)[0]
    if prefix.isdigit():
        return f"chapter {int(prefix)}"
    if re.fullmatch(r"[A-Z]", prefix):
        return f"appendix {prefix}"
    raise ValueError(f"{path.name}: a page of the book is named NN_name.ipynb (chapter) or X_name.ipynb (appendix)")


def problems(path: Path, chapters: dict[str, Path]) -> list[str]:
    """Every prose number of one chapter that is neither printed by its section nor validly marked."""
    return Page.read(path).problems(chapters)


_EDITABLE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)\.(\d+)(?![\w.])|(?<![\w.,])(\d+(?:\.\d+)?)(?=\s?%)")


def _shift(text: str, step: int) -> str | None:
    """``text`` (digits, maybe a decimal point and grouping) moved by ``step`` in its last digit, same digits after
    the point; None below zero."""
    digits = text.replace(",", "")
    decimals = len(digits.split(".", 1)[1]) if "." in digits else 0
    value = Decimal(digits) + Decimal(step).scaleb(-decimals)
    if value < 0:
        return None
    return f"{value:.{decimals}f}"


def digit_shift_edits(source: str) -> Iterator[tuple[str, str, str]]:
    """Every decimal and percentage of a markdown cell moved by +-1 in its last digit, one at a time:
    (the number as written, as edited, the edited cell). Numbers the guard does not count are left out."""
    before = Counter(n.text.rstrip("%").strip() for n in prose_numbers(source))
    for match in _EDITABLE.finditer(source):
        written = match.group(0)
        for step in (1, -1):
            edited = _shift(written, step)
            if edited is None:
                continue
            cell = source[: match.start()] + edited + source[match.end() :]
            after = Counter(n.text.rstrip("%").strip() for n in prose_numbers(cell))
            # an edit of a counted number: one written number replaced by the edited one (a head name such as
            # H1.0 edited to H0.9 is no prose number, though the guard then reads a number 0.9)
            if before - after == Counter([written]) and after - before == Counter([edited]):
                yield written, edited, cell


def digit_shift_share(path: Path, pages: dict[str, Path]) -> tuple[int, int, list[str]]:
    """(edits, edits the guard lets through, a description of each) for one page."""
    page = Page.read(path)
    cache: dict[str, Page] = {}
    edits, passed = 0, []
    for index, section, source, marks in page.cells:
        for written, edited, cell in digit_shift_edits(source):
            edits += 1
            if not page.cell_problems(index, section, cell, marks, pages, cache):
                passed.append(f"{path.name} cell {index}: {written} -> {edited}")
    return edits, len(passed), passed
