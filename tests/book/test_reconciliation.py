"""The reconciliation's chapter-8 verdict in words (the table itself is tested with chapter 10's findings)."""

from __future__ import annotations

from palindrome.book.reconciliation import blind_spot_verdict
from palindrome.chapters.blindspots import ablation_blindness, attention_on_mismatch, single_mismatch_sweep


def test_verdict_on_the_other_analysis(model):
    sweep = single_mismatch_sweep(model, n_bases=2, seed=5, progress=False)
    text = blind_spot_verdict(sweep, attention_on_mismatch(model), ablation_blindness(model))
    assert "first account (H1.0 ignores 20, H1.1 covers it): supported" in text
    assert "final account (a blind spot of H0.0's QK circuit at 20): contradicted" in text
    assert "difference vectors are not examined here" in text
