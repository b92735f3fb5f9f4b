"""Named findings: declared keys are checked where they are computed and where they are cited."""

from __future__ import annotations

import pytest

from palindrome.book import reconciliation
from palindrome.chapters import backup, blindspots, faithfulness, roles
from palindrome.findings import FindingKeyError, Findings, MissingFindingsError, check_declared, join, slug


@pytest.mark.parametrize(
    "label, key",
    [
        ("H0.1 mean at 20 only", "h0_1_mean_at_20_only"),
        ("- H0.0 -> H1.0 K", "minus_h0_0_to_h1_0_k"),
        ("+ H0.1 + H1.1", "plus_h0_1_plus_h1_1"),
        ("P(palindrome)", "p_palindrome"),
        ("H1.1 END->20", "h1_1_end_to_20"),
    ],
)
def test_slug(label, key):
    assert slug(label) == key


def test_join_keeps_numbers_and_slugs_labels():
    assert join("H0.1 zero", "pos-20 mismatches", "accuracy") == "h0_1_zero__pos_20_mismatches__accuracy"
    assert join("x", 20) == "x__20"


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_slug_rejects_empty_or_non_text(bad):
    with pytest.raises(ValueError, match="non-empty label"):
        slug(bad)


def test_a_declared_key_that_was_not_computed_fails_at_construction():
    with pytest.raises(MissingFindingsError, match=r"declared finding\(s\) \['b'\]"):
        Findings("m", {"a": 1.0}, {"a", "b"})


def test_an_unknown_key_names_the_nearest_ones():
    findings = Findings("m", {"h1_1_mean__dataset__loss": 0.1}, ())
    with pytest.raises(FindingKeyError, match="did you mean"):
        findings["H11_mean__dataset__loss"]
    assert findings["h1_1_mean__dataset__loss"] == 0.1
    assert dict(findings) == {"h1_1_mean__dataset__loss": 0.1}


@pytest.mark.parametrize("value", [True, "0.5", None])
def test_values_must_be_numbers(value):
    with pytest.raises(MissingFindingsError, match="numbers"):
        Findings("m", {"a": value}, ())


def test_check_declared_names_the_undeclared_keys():
    check_declared("m", {"a", "b"}, ["a"])
    with pytest.raises(FindingKeyError, match=r"\['c'\]"):
        check_declared("m", {"a"}, ["a", "c"])


def test_every_key_the_reconciliation_cites_is_declared_by_its_module():
    for claim in reconciliation.CLAIMS:
        for evidence in claim.evidence:
            assert evidence.key in reconciliation.MODULES[evidence.module].KEYS, (claim.claim, evidence.key)


def test_every_chapter_with_findings_declares_its_keys():
    for module in (blindspots, backup, faithfulness, roles):
        assert module.KEYS and all(isinstance(k, str) and k for k in module.KEYS), module.__name__


def test_reconciliation_checks_findings_passed_in_against_declared_keys():
    partial = {"faithfulness": {"clean_loss": 0.01}}
    with pytest.raises(MissingFindingsError, match="palindrome.chapters.faithfulness"):
        reconciliation.cited_numbers(partial)
    with pytest.raises(ValueError, match="modules among"):
        reconciliation.cited_numbers({"circuits": {}})
