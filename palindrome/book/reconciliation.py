"""The reconciliation: every published claim about the model against the numbers this book measures.

The claims, their evidence and their verdict rules are ``palindrome.book.claims``; this module
draws the numbers (each chapter module's ``key_findings``), checks every cited key against the
keys its module declares (at import), and computes the table, never types it: a verdict changes
when the numbers do. It also writes chapter 8's verdict in words (``blind_spot_verdict``), with
the same position-20 rules. This module sits on top of the chapter modules and may import any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pandas as pd
from transformer_lens import HookedTransformer

from palindrome.book.claims import (  # noqa: F401 (the table's types, re-exported)
    CLAIMS,
    VERDICT_KINDS,
    Claim,
    Evidence,
    Findings,
    h00_reads_mirror_at_20,
    h11_covers_20,
)
from palindrome.chapters import backup, blindspots, faithfulness
from palindrome.chapters.blindspots import BLIND_THRESHOLD, ORIGINAL_CLAIM, OTHER_CLAIM_QK, SweepResult, blind_positions
from palindrome.constants import MIRROR
from palindrome.findings import Findings as ModuleFindings
from palindrome.findings import check_declared

MODULES = {"faithfulness": faithfulness, "blindspots": blindspots, "backup": backup}
"""The chapter modules whose ``key_findings(model)`` the reconciliation table draws on (chapters 10, 8 and 9)."""
FINDINGS_MODULES: tuple[str, ...] = tuple(MODULES)

for _name, _module in MODULES.items():  # a renamed finding key fails here, at import
    check_declared(_name, _module.KEYS, [e.key for c in CLAIMS for e in c.evidence if e.module == _name])


def _checked(findings: Findings) -> dict[str, ModuleFindings]:
    """``findings`` with each module's numbers checked against the keys it declares."""
    unknown = [m for m in findings if m not in MODULES]
    if unknown:
        raise ValueError(f"findings must be keyed by modules among {FINDINGS_MODULES}, got {unknown}")
    return {
        m: f if isinstance(f, ModuleFindings) else ModuleFindings(m, f, MODULES[m].KEYS) for m, f in findings.items()
    }


def collect_findings(
    model: HookedTransformer, modules: Sequence[str] = FINDINGS_MODULES
) -> dict[str, dict[str, float]]:
    """``key_findings(model)`` of each module named in ``modules`` (chapters 10, 8 and 9)."""
    unknown = [m for m in modules if m not in FINDINGS_MODULES]
    if unknown:
        raise ValueError(f"modules must be among {FINDINGS_MODULES}, got {unknown}")
    return {name: MODULES[name].key_findings(model) for name in modules}


def missing_modules(findings: Findings) -> list[str]:
    """The modules of ``FINDINGS_MODULES`` whose key findings ``findings`` lacks."""
    return [m for m in FINDINGS_MODULES if m not in findings]


def cited_numbers(findings: Findings) -> dict[tuple[str, str], float]:
    """Every number the reconciliation table cites, keyed by (claim, evidence label); missing ones are left out."""
    out = {}
    findings = _checked(findings)
    for claim in CLAIMS:
        for e in claim.evidence:
            value = e.value(findings)
            if value is not None:
                out[(claim.claim, e.label)] = value
    return out


def reconciliation_table(
    model: Optional[HookedTransformer] = None, findings: Optional[Findings] = None
) -> pd.DataFrame:
    """Each claim of the original write-up and of the other analysis, the numbers that test it, and the verdict.

    Pass ``findings`` (from ``collect_findings``) to reuse computed numbers; otherwise they are computed
    from ``model``. A claim whose numbers come from a missing module says so instead of a verdict.
    """
    if findings is None:
        if model is None:
            raise ValueError("reconciliation_table needs a model or precomputed findings")
        findings = collect_findings(model)
    findings = _checked(findings)
    rows = []
    for claim in CLAIMS:
        values = {e.label: e.value(findings) for e in claim.evidence}
        evidence = "; ".join(
            f"{e.label}: "
            + (
                f"{values[e.label]:{e.fmt}}"
                if values[e.label] is not None
                else f"missing (palindrome.chapters.{e.module})"
            )
            for e in claim.evidence
        )
        absent = sorted({e.module for e in claim.evidence if values[e.label] is None})
        if absent:
            verdict = "Not settled here: needs " + ", ".join(f"palindrome.chapters.{m}.key_findings" for m in absent)
        else:
            verdict = claim.verdict(values)
        rows.append({"source": claim.source, "claim": claim.claim, "evidence": evidence, "verdict": verdict})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class MarkdownTable:
    """A table shown as Markdown in the book and as the same text wherever only plain text is kept (what nbval
    compares in a checked cell)."""

    text: str

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def markdown_table(table: pd.DataFrame) -> MarkdownTable:
    """``table`` (e.g. ``reconciliation_table``'s verdicts) as a ``MarkdownTable``, without its index."""
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise ValueError(f"table must be a non-empty DataFrame such as reconciliation_table(), got {table!r:.60}")
    return MarkdownTable(table.to_markdown(index=False))


# --- chapter 8's verdict in words ---------------------------------------------------------------


def _pair(p: int) -> str:
    return f"{MIRROR[p]}-{p}"


def blind_spot_verdict(
    sweep: SweepResult,
    attention: pd.DataFrame,
    ablation: pd.DataFrame,
    threshold: float = BLIND_THRESHOLD,
) -> str:
    """The chapter's verdict as text: blindness per mirror pair, the two claims checked, and the reason."""
    blind = blind_positions(sweep, threshold)
    lines = ["misclassified fraction of single-mismatch inputs, per mirror pair (first-second):"]
    lines += [f"  {_pair(p)}: {sweep.fraction(p):.3f}" for p in sweep.positions]
    lines.append(f"blind (> {threshold}): " + (", ".join(_pair(p) for p in blind) or "none"))
    for name, claim in (
        ("original (1, 2, 4 / 17, 19, 20)", ORIGINAL_CLAIM),
        ("other analysis (17, 19)", OTHER_CLAIM_QK),
    ):
        right = [p for p in claim if p in blind]
        wrong = [p for p in claim if p not in blind]
        missed = [p for p in blind if p not in claim]
        text = f"{name}: blind as claimed {[_pair(p) for p in right]}"
        text += f"; not blind {[f'{_pair(p)} ({sweep.fraction(p):.3f})' for p in wrong]}" if wrong else ""
        text += f"; missed {[_pair(p) for p in missed]}" if missed else ""
        lines.append(text)
    others = [p for p in sweep.positions if p not in blind]
    col = "H0.0 p->mirror (pal)"
    lines.append(
        "H0.0 attention from p to its mirror on palindromes: "
        + ", ".join(f"{p}: {attention.loc[p, col]:.2f}" for p in blind)
        + f"; other positions {min(attention.loc[others, col]):.2f} to {max(attention.loc[others, col]):.2f}"
    )
    for layer_head in ("H1.0", "H1.1"):
        c = f"{layer_head} END->p (broken)"
        lines.append(
            f"{layer_head} attention from END to a broken p: "
            + ", ".join(f"{p}: {attention.loc[p, c]:.2f}" for p in sorted(set(blind) | {max(sweep.positions)}))
        )
    for head in ablation.index.drop("none"):
        weak = [p for p in sweep.positions if p not in blind and ablation.loc[head, p] > threshold]
        lines.append(
            f"mean-ablating {head} makes blind: "
            + (", ".join(f"{_pair(p)} ({ablation.loc[head, p]:.2f})" for p in weak) or "nothing")
        )
    lines += _position_20_accounts(attention, ablation, threshold)
    return "\n".join(lines)


def _position_20_accounts(attention: pd.DataFrame, ablation: pd.DataFrame, threshold: float) -> list[str]:
    """The other analysis's two accounts of position 20 (its claims 2 and 3), each against the read-outs.

    First account: H1.0 ignores 20 and H1.1 covers it (``h11_covers_20``). Final account: 20 is a
    blind spot of H0.0's QK circuit (contradicted by ``h00_reads_mirror_at_20``). The account's own
    evidence (its "difference vectors") is not computed here, and the line says so.
    """
    p = 20
    h10, h11 = attention.loc[p, "H1.0 END->p (broken)"], attention.loc[p, "H1.1 END->p (broken)"]
    h11_ablated = ablation.loc["H1.1", p] if "H1.1" in ablation.index else float("nan")
    first = h11_covers_20(h10, h11, h11_ablated, threshold)
    mirror, self_broken = attention.loc[p, "H0.0 p->mirror (pal)"], attention.loc[p, "H0.0 p->p (broken)"]
    final_contradicted = h00_reads_mirror_at_20(
        mirror, attention.loc[18, "H0.0 p->mirror (pal)"], attention.loc[p, "H0.0 p->p (pal)"], self_broken
    )
    return [
        f"other analysis on 20, first account (H1.0 ignores 20, H1.1 covers it): "
        f"{'supported' if first else 'not supported'} (END to a broken 20: H1.0 {h10:.2f}, H1.1 {h11:.2f}; "
        f"H1.1 mean-ablated: 1-20 misclassified {h11_ablated:.2f})",
        f"other analysis on 20, final account (a blind spot of H0.0's QK circuit at 20): "
        f"{'contradicted' if final_contradicted else 'not contradicted'} (H0.0 at 20 to its mirror "
        f"{mirror:.2f} on palindromes, to itself {self_broken:.2f} when broken); "
        f"its difference vectors are not examined here",
    ]
