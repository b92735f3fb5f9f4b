"""The first-use path: README's and the introduction's three lines run as written, and every input form works."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import palindrome as pal
from palindrome import quickstart
from palindrome.chapters.adversarial import BASE_PALINDROME, HANDMADE_ADVERSARIAL
from palindrome.metrics import p_palindrome

REPO = Path(__file__).resolve().parents[1]


def first_use_block(page: str) -> str:
    """The code block after the ``<!-- first-use -->`` marker of a page."""
    text = (REPO / page).read_text()
    after = text.split("<!-- first-use -->", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("page", ["README.md", "intro.md"])
def test_the_first_use_lines_run_as_written(page, model, monkeypatch):
    monkeypatch.setattr(quickstart, "_model", model)  # the session's model, not a second load
    code = first_use_block(page)
    lines = code.strip().splitlines()
    assert len(lines) == 3, lines
    namespace: dict = {}
    tree = ast.parse(code)
    results = []
    for node in tree.body:  # run each line exactly as written, keeping what the expressions return
        if isinstance(node, ast.Expr):
            results.append(eval(compile(ast.Expression(node.value), page, "eval"), namespace))
        else:
            exec(compile(ast.Module([node], []), page, "exec"), namespace)
    probability, reading = results
    assert isinstance(probability, float) and 0.99 < probability <= 1.0
    assert isinstance(reading, quickstart.Reading) and reading.patterns.shape == (1, 4, 22, 22)
    assert "circuits-vis" in reading._repr_html_()
    assert first_use_block("README.md") == first_use_block("intro.md")


def test_every_input_form_gives_the_same_answer(model):
    toks = torch.cat([BASE_PALINDROME[None], HANDMADE_ADVERSARIAL])
    want = p_palindrome(model, toks).cpu()
    values = toks[:, 1:-1]
    assert pal.classify(values[0].tolist(), model) == pytest.approx(want[0].item(), abs=1e-6)
    assert pal.classify(toks[0], model) == pytest.approx(want[0].item(), abs=1e-6)
    for form in (values, values.tolist(), toks, toks.tolist()):
        torch.testing.assert_close(pal.classify(form, model), want, atol=1e-6, rtol=0)
    reading = pal.explain(values, model)
    torch.testing.assert_close(reading.p_palindrome, want, atol=1e-6, rtol=0)
    assert reading.patterns.shape == (5, 4, 22, 22)
    torch.testing.assert_close(reading.patterns.sum(-1), torch.ones(5, 4, 22), atol=1e-5, rtol=0)
    assert "P(palindrome)" in repr(reading)
    with pytest.raises(ValueError, match="index must be"):
        reading.view(5)


@pytest.mark.parametrize(
    "bad, message",
    [
        ([1, 2, 3], "20 values or 22 tokens"),
        ([31] * 20, "values must lie in 0..30"),
        ([-1] + [0] * 19, "values must lie in 0..30"),
        ([0.5] * 20, "integers"),
        ("1 2 3", "not a string"),
        ([[1, 2], [3]], "could not read"),
        ([0] * 22, "START"),
        (torch.zeros(2, 3, 20, dtype=torch.long), "20 values or 22 tokens"),
    ],
)
def test_bad_input_says_what_is_wrong(bad, message, model):
    with pytest.raises(ValueError, match=message):
        pal.classify(bad, model)
    with pytest.raises(ValueError, match=message):
        pal.explain(bad, model)
