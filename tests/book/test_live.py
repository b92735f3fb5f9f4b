"""The "Try it" page: the model's forward pass in the browser equals PyTorch's, and its controls work offline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from live_check import forward_all, live_page, served

from palindrome import inputs, quickstart
from palindrome.book import live
from palindrome.chapters.adversarial import HANDMADE_ADVERSARIAL
from palindrome.checkpoint import sha256_file
from palindrome.constants import HEAD_NAMES, SECOND_HALF
from palindrome.data import PalindromeDataset
from palindrome.model import load_model

REPO = Path(__file__).resolve().parents[2]
SETTINGS = [(None, "none")] + [(head, kind) for head in HEAD_NAMES for kind in ("zero", "mean")]


def parity_inputs() -> torch.Tensor:
    """204 sequences: the training distribution, palindromes, random values, the hand-made examples,
    blind-pair inputs and decoys (single mismatches whose new value occurs earlier)."""
    generator = torch.Generator().manual_seed(11)
    natural = PalindromeDataset(60, seed=11).toks
    palindromes = inputs.random_palindromes(40, generator)
    uniform = quickstart.as_tokens(torch.randint(0, 31, (20, 20), generator=generator))[0]
    blind = torch.cat([inputs.break_pairs(inputs.random_palindromes(20, generator), [p], generator) for p in (17, 19)])
    _, broken = inputs.broken_at_each_position(40, seed=12)
    decoys = torch.cat([broken[i][inputs.decoy_mask(broken[i], p)] for i, p in enumerate(SECOND_HALF)])[:40]
    toks = torch.cat([natural, palindromes, uniform, HANDMADE_ADVERSARIAL, blind, decoys])
    assert len(decoys) == 40 and len(toks) == 204
    return toks


@pytest.fixture(scope="module")
def site_page(built_book):
    page = built_book / "try_it.html"
    assert page.is_file(), "the built site has no try_it.html (is try_it in _toc.yml?)"
    with served(built_book) as base, live_page(f"{base}/try_it.html") as opened:
        yield opened


@pytest.mark.slow
def test_the_page_matches_pytorch_with_and_without_each_ablation(site_page, model):
    page, blocked, errors = site_page
    toks = parity_inputs()
    results = forward_all(page, toks.tolist(), SETTINGS)
    for (head, kind), got in zip(SETTINGS, results, strict=True):
        want = live.page_outputs(model, toks, head, kind)
        where = f"{kind}-ablated {head}" if head else "no ablation"
        p = torch.tensor([r["p"] for r in got], dtype=torch.float64)
        assert (p - want["p_palindrome"].double()).abs().max() < 1e-5, where
        patterns = torch.tensor([r["patterns"] for r in got], dtype=torch.float64)
        assert (patterns - want["patterns"].double()).abs().max() < 1e-5, where
        diff = torch.tensor([r["diff"] for r in got], dtype=torch.float64)
        assert (diff - want["logit_diff"].double()).abs().max() < 1e-4, where
        for key in ("dla", "direct"):
            values = torch.tensor([r[key] for r in got], dtype=torch.float64)
            assert (values - want[key].double()).abs().max() < 1e-4, (where, key)
        # the parts shown on the page add up to the logit difference shown beside them
        total = torch.tensor([sum(r["direct"]) + r["unembedBias"] for r in got], dtype=torch.float64)
        assert (total - diff).abs().max() < 1e-4, where
    assert not blocked and not errors, (blocked, errors)


@pytest.mark.slow
def test_editing_a_value_updates_the_page(site_page):
    page, blocked, errors = site_page
    page.select_option("#palindrome-live-example", "palindrome")
    before = page.inner_text(".pl-summary")
    assert "P(palindrome) = 0.9" in before and "0 position(s) differ" in before
    page.fill("#palindrome-live-v13", "2")  # break pair (8, 13)
    after = page.inner_text(".pl-summary")
    assert after != before and "2 position(s) differ" in after
    assert page.locator(".pl-sequence .pl-broken").count() == 2
    page.wait_for_function(
        "() => document.querySelector('.pl-patterns').innerText.includes('H1.1')"
    )  # circuitsvis drew
    page.select_option("#palindrome-live-ablate-1-1", "zero")
    assert page.inner_text(".pl-summary") != after
    page.select_option("#palindrome-live-ablate-1-1", "none")
    (REPO / "_build" / "screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(REPO / "_build" / "screenshots" / "try_it_after_edit.png"), full_page=True)
    assert not blocked and not errors, (blocked, errors)


@pytest.mark.parametrize(
    "selector, text, message",
    [
        ("#palindrome-live-v5", "31", "outside 0-30"),
        ("#palindrome-live-v5", "x", "not a whole number"),
        ("#palindrome-live-text", "1 2 3", "exactly 20 values (got 3)"),
        ("#palindrome-live-text", " ".join(["1"] * 19 + ["-4"]), "not a whole number"),
    ],
)
@pytest.mark.slow
def test_bad_input_shows_a_message_and_keeps_the_last_result(site_page, selector, text, message):
    page, _, errors = site_page
    page.select_option("#palindrome-live-example", "palindrome")
    summary = page.inner_text(".pl-summary")
    page.fill(selector, text)
    assert message in page.inner_text(".palindrome-live")
    assert page.get_attribute(selector, "aria-invalid") == "true"
    assert page.inner_text(".pl-summary") == summary
    assert not errors, errors


@pytest.mark.slow
def test_every_control_is_reached_by_tab_and_labelled(site_page):
    page, _, _ = site_page
    controls = page.eval_on_selector_all(
        ".palindrome-live > .pl-row input, .palindrome-live > .pl-row select",  # the page's own (not circuitsvis's)
        "els => els.map(e => "
        "({id: e.id, label: e.labels.length ? e.labels[0].innerText : e.getAttribute('aria-label')}))",
    )
    assert len(controls) == 1 + 1 + 20 + 4 and all(c["label"] for c in controls), controls
    page.focus("#palindrome-live-example")
    reached = {page.evaluate("document.activeElement.id")}
    for _ in range(len(controls) + 5):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id"))
    assert {c["id"] for c in controls} <= reached
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


@pytest.mark.slow
def test_the_built_export_is_the_checkpoints(built_book, checkpoint_path):
    export = live.read_export(built_book / "_static" / live.EXPORT_NAME)
    assert export["checkpoint_sha256"] == sha256_file(checkpoint_path)
    rebuilt = live.read_export(live.write_export(REPO / "_build" / "export-check", checkpoint_path))
    assert rebuilt == export


def test_the_export_is_never_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert live.EXPORT_NAME not in tracked
    for path in tracked.splitlines():
        if path.endswith((".ipynb", ".md", ".js", ".html")) and (REPO / path).is_file():
            assert live.GLOBAL not in (REPO / path).read_text(errors="ignore") or path.endswith(
                ("palindrome_live.js", "live.py")
            ), path


def test_export_round_trip_and_errors(tmp_path, checkpoint_path):
    path = live.write_export(tmp_path, checkpoint_path)
    data = live.read_export(path)
    model = load_model(checkpoint_path, device="cpu")
    assert torch.allclose(torch.tensor(data["W_E"]), model.W_E.detach().cpu())
    assert set(data["examples"]) >= {"palindrome", "random input", "hand-made adversarial 4"}
    assert all(len(v) == 20 and all(0 <= x <= 30 for x in v) for v in data["examples"].values())
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        live.write_export(a_file, checkpoint_path)
    with pytest.raises(ValueError, match="not a palindrome live export"):
        live.read_export(a_file)
    with pytest.raises(ValueError, match="kind must be one of"):
        live.page_outputs(model, PalindromeDataset(2).toks, "0.0", "banana")
    with pytest.raises(ValueError, match="head must be one of"):
        live.page_outputs(model, PalindromeDataset(2).toks, "2.0", "zero")
