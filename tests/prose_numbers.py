"""Every number in a chapter's prose is a number the chapter prints, or says where it comes from.

The guard reads each chapter notebook as committed (nbval re-executes the same notebooks and fails
when a checked cell prints anything else, so the stored outputs are the live ones). It collects
the numbers that checked cells print (cells tagged ``nbval-check-output``: their ``stdout`` and
``text/plain`` outputs) and then every number in the chapter's markdown cells, and requires each
prose number to be one of:

* **printed**: it equals a printed number of the same page after rounding (rules below);
* **marked** in the markdown cell's metadata, under the key ``prose_numbers``: a mapping from the
  number exactly as written in that cell to one of
    - ``"derived: <the closed form or definition>"``: a closed form written out in the text, a
      definition, a threshold or a setting (for example ``"0.5": "derived: the decision
      threshold"``);
    - ``"quoted: <source>"``: a quotation of a cited source (the original write-up, the other
      analysis, a paper);
    - ``"chapter N"`` or ``"appendix X"``: a citation of another page of the book, which must
      print the number itself (the guard then looks there, by the same rules).
  A mark whose number no longer appears in its cell is itself an error, so marks cannot go stale.

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
``heads 0.0 and 0.1``), numbers inside links, and numbers that are part of a word or an
identifier (``a_1``, ``W_U``, ``1e-4`` in a code span).

Matching rules:

* **rounding**: a prose number written with d decimals matches a printed number that rounds to it
  at d decimals (half up or half to even); printed numbers may carry more digits than the prose,
  never fewer;
* **percentages**: ``p%`` with d decimals matches a printed fraction y when 100 y rounds to p, or a
  printed percentage that rounds to p; a prose fraction likewise matches a printed percentage;
* **signs**: prose often puts the sign into words ("falls by 0.3", "a vote of -3.1"), so a prose
  number matches a printed number of the same magnitude, whatever either sign;
* **ranges**: ``0.56 to 0.70``, ``0.9954-0.9996`` and ``6-12%`` are two numbers, each checked (a
  percent sign after the second end applies to both);
* **integers** match printed integers exactly (digit grouping and underscores ignored).

On failure the guard names the page, the number and the sentence it stands in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

CHECK_TAG = "nbval-check-output"
MARK_KEY = "prose_numbers"
MARK_KINDS = ("derived:", "quoted:")
CHAPTER_MARK = re.compile(r"^(chapter|appendix) ([0-9]+|[A-Z])$")

# A number (its magnitude: signs do not count, see the rules): digits with optional grouping,
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
_COUNT = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)\s+(?:out\s+)?of\s+(?:the\s+|its\s+|all\s+|these\s+|those\s+)?"
    r"(\d{1,3}(?:,\d{3})+|\d+)(?![\w.])"
)
_RANGE_PCT = re.compile(r"(\d+(?:\.\d+)?)(\s+to\s+)(\d+(?:\.\d+)?)\s?%")


@dataclass(frozen=True)
class ProseNumber:
    """One number as written in a markdown cell."""

    text: str  # as written, for messages and marks
    value: Decimal  # magnitude
    decimals: int
    percent: bool
    integer: bool
    sentence: str


def _strip(markdown: str) -> tuple[str, str]:
    """Markdown without code, links, HTML and head names; and a copy with math blanked out too."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"<[^>]+>", " ", text)
    text = _HEAD_LIST.sub(" ", text)
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
                value=value,
                decimals=len(frac) - 1 if frac else 0,
                percent=percent,
                integer=integer,
                sentence=_sentence_at(text, match.start()),
            )
        )
    return found


def printed_numbers(outputs_text: str) -> list[tuple[Decimal, bool, bool, int]]:
    """(magnitude, is a percentage, is an integer, decimals) for every number a checked cell prints."""
    numbers = []
    for token in _OUTPUT_NUMBER.findall(outputs_text):
        percent = token.endswith("%")
        raw = token.rstrip("%").lstrip("+-").replace(",", "").replace("_", "")
        try:
            value = Decimal(raw)
        except InvalidOperation:
            continue
        integer = re.fullmatch(r"\d+", raw) is not None
        decimals = len(raw.split(".", 1)[1]) if "." in raw and "e" not in raw.lower() else (0 if integer else 99)
        numbers.append((abs(value), percent, integer, decimals))
    return numbers


def _rounds_to(value: Decimal, target: Decimal, decimals: int) -> bool:
    quantum = Decimal(1).scaleb(-decimals)
    return any(value.quantize(quantum, rounding=mode) == target for mode in (ROUND_HALF_UP, ROUND_HALF_EVEN))


def matches(number: ProseNumber, printed: list[tuple[Decimal, bool, bool, int]]) -> bool:
    """Whether a prose number is one of the printed numbers, by the module's rules."""
    for value, percent, integer, decimals in printed:
        if number.integer:
            if integer and value == number.value:
                return True
            continue
        if number.percent and not percent:
            value, decimals = value * 100, decimals - 2
        elif percent and not number.percent:
            value, decimals = value / 100, decimals + 2
        if decimals >= number.decimals and _rounds_to(value, number.value, number.decimals):
            return True
    return False


def code_integers(notebook: dict) -> list[tuple[Decimal, bool, bool, int]]:
    """The integer literals of the page's code cells (settings such as dataset sizes)."""
    numbers = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            for token in re.findall(r"(?<![\w.])\d[\d_]*(?![\w.])", "".join(cell["source"])):
                numbers.append((Decimal(token.replace("_", "")), False, True, 0))
    return numbers


def checked_output_text(notebook: dict) -> str:
    """Everything the notebook's checked cells print (stdout and text/plain)."""
    parts = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code" or CHECK_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                parts.append("".join(output["text"]))
            elif "data" in output and "text/plain" in output["data"]:
                parts.append("".join(output["data"]["text/plain"]))
    return "\n".join(parts)


def page_key(path: Path) -> str:
    """How marks name a page: ``chapters/08_name.ipynb`` is "chapter 8", ``chapters/A_name.ipynb`` "appendix A"."""
    prefix = path.name.split("_", 1)[0]
    if prefix.isdigit():
        return f"chapter {int(prefix)}"
    if re.fullmatch(r"[A-Z]", prefix):
        return f"appendix {prefix}"
    raise ValueError(f"{path.name}: a page of the book is named NN_name.ipynb (chapter) or X_name.ipynb (appendix)")


def problems(path: Path, chapters: dict[str, Path]) -> list[str]:
    """Every prose number of one chapter that is neither printed nor validly marked."""
    notebook = json.loads(path.read_text())
    printed = printed_numbers(checked_output_text(notebook)) + code_integers(notebook)
    cited_cache: dict[str, list] = {}
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"])
        marks = cell.get("metadata", {}).get(MARK_KEY, {})
        numbers = prose_numbers(source)
        written = {n.text for n in numbers}
        for text, reason in marks.items():
            if text not in written:
                found.append(f"{path.name} cell {index}: the mark for {text!r} names no number of this cell")
            elif not (reason.startswith(MARK_KINDS) or CHAPTER_MARK.match(reason)):
                found.append(
                    f"{path.name} cell {index}: mark {text!r}: {reason!r} is not 'derived: ...', "
                    f"'quoted: ...', 'chapter N' or 'appendix X'"
                )
        for number in numbers:
            if matches(number, printed):
                continue
            reason = marks.get(number.text)
            if reason is not None and reason.startswith(MARK_KINDS):
                continue
            cited = CHAPTER_MARK.match(reason) if reason else None
            if cited:
                n = reason
                if n not in chapters:
                    found.append(f"{path.name} cell {index}: {number.text} cites {n}, which does not exist")
                    continue
                if n not in cited_cache:
                    cited_cache[n] = printed_numbers(checked_output_text(json.loads(chapters[n].read_text())))
                if matches(number, cited_cache[n]):
                    continue
                found.append(
                    f"{path.name} cell {index}: {number.text} is cited from {n}, which prints no such "
                    f'number; sentence: "{number.sentence}"'
                )
                continue
            found.append(
                f"{path.name} cell {index}: {number.text} is not printed by a checked cell of this page and "
                f'not marked; sentence: "{number.sentence}"'
            )
    return found
