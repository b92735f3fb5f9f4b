"""Chapter 10's controls: whether its numbers at position 20 and under resampling hold beyond one measurement.

Method. Position 20 (``position20_controls``): the misses on the hard subset's inputs broken at 20 are counted
under edge cuts at 20 only, with the full model and with H0.1 -> H1.1 cut, paired on the same inputs (exact McNemar,
``paired_misses``), and again with the layer-1 LayerNorm scale held at its clean value, so that a change read through
the scale is told apart from one read through H1.1's check; ``added_head_paired`` pairs the circuits with one head
added, and ``resampled_edit_sources`` asks which borrowed rows a resampled cut injects. Resampling
(``resample_draws``): the inputs stay fixed and only the partners that resampling borrows are redrawn, with each of
``DRAW_SEEDS``, through the chapter's own functions (``path_contributions``, ``hard_subset_errors``,
``hard_subset_position_errors``); ``draw_spread`` sets the chapter's one draw (``chapter_draw``) against them.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from palindrome.chapters.faithfulness import (
    CLEAN,
    H01_TO_H11,
    HARD_BASES,
    HARD_SEED,
    HARD_VARIANTS,
    POSITION_VARIANTS,
    TARGET_POSITION,
    VARIANTS,
    hard_subset_ablator,
    hard_subset_errors,
    hard_subset_position_errors,
    main_dataset,
    path_contributions,
)
from palindrome.constants import SECOND_HALF
from palindrome.hooks import hold_scale, ln_scale_name
from palindrome.inputs import broken_at_each_position, check_second_half_position
from palindrome.path_patching import (
    ALL,
    EXTENDED,
    HYPOTHESIS,
    PathAblator,
)
from palindrome.stats import mcnemar_exact
from palindrome.tokens import MAX_SEED, check_finite, check_int, mismatch_mask

# --- position 20: paired counts and the layer-1 scale held ------------------------------------------

HELD_SCALE: str = ", layer-1 scale held"
"""Suffix of a row scored with the layer-1 LayerNorm scale held at each input's clean value."""


def paired_misses(first: Tensor, second: Tensor) -> tuple[int, int, float]:
    """Paired counts of two boolean miss vectors on the same inputs: (missed by ``first`` only, missed by ``second``
    only, exact two-sided McNemar p)."""
    if not (isinstance(first, Tensor) and isinstance(second, Tensor)) or first.shape != second.shape:
        raise ValueError(f"first and second must be boolean tensors of one shape, got {first!r:.60}, {second!r:.60}")
    if first.dtype != torch.bool or second.dtype != torch.bool:
        raise ValueError(f"first and second must be boolean tensors of one shape, got {first.shape}, {second.shape}")
    only_first, only_second = int((first & ~second).sum()), int((~first & second).sum())
    return only_first, only_second, mcnemar_exact(only_first, only_second)


def position20_controls(
    model: HookedTransformer, method: str = "mean", seed: int = HARD_SEED, position: int = TARGET_POSITION
) -> pd.DataFrame:
    """On the hard subset, misses at ``position`` for H0.1's edges into H1.1 cut there only and for the full model
    without H0.1, each also with the layer-1 LayerNorm scale held at its clean value, paired against the full model
    (columns ``missed``, ``only_full_missed``, ``only_row_missed``, ``p``)."""
    position = check_second_half_position(position)
    broken, ablator = hard_subset_ablator(model, method, None, HARD_BASES, seed)
    scale = ln_scale_name(1)
    with torch.inference_mode():
        _, cache = model.run_with_cache(ablator.toks, names_filter=[scale])
    held = [(scale, hold_scale(cache[scale].clone()))]
    index = list(SECOND_HALF).index(position)

    def missed(logits: Tensor) -> Tensor:
        return (logits.argmax(-1).cpu() == 1).view(broken.shape[:2])[index]

    full = missed(ablator.logits(ALL))
    edit = dict(keep=ALL, replaced=ablator.ablated, edges=H01_TO_H11, positions=(position,))
    rows = {
        f"H0.1 -> H1.1 at {position} only": missed(ablator.logits(**edit)),
        f"H0.1 -> H1.1 at {position} only{HELD_SCALE}": missed(ablator.logits(**edit, extra_hooks=held)),
        "full - H0.1": missed(ablator.logits(HARD_VARIANTS["full - H0.1"])),
        f"full - H0.1{HELD_SCALE}": missed(ablator.logits(HARD_VARIANTS["full - H0.1"], extra_hooks=held)),
    }
    table = pd.DataFrame(
        {name: (m.float().mean().item(), *paired_misses(full, m)) for name, m in rows.items()},
        index=["missed", "only_full_missed", "only_row_missed", "p"],
    ).T
    table.index.name = f"{method}, misses at {position}"
    return table


def added_head_paired(
    model: HookedTransformer,
    method: str = "mean",
    base: str = "hypothesis",
    added: str = "+ H0.1",
    positions: Sequence[int] = (17, 19, 20),
    seed: int = HARD_SEED,
) -> pd.DataFrame:
    """Hard-subset misses of two circuits on the same inputs, per position: paired counts and exact McNemar p."""
    for name in (base, added):
        if not isinstance(name, str) or name not in HARD_VARIANTS:
            raise ValueError(f"{name!r} is not a hard-subset circuit; choose from {sorted(HARD_VARIANTS)}")
    if isinstance(positions, (str, bytes)) or not isinstance(positions, Sequence) or not positions:
        raise ValueError(f"positions must be a non-empty list of second-half positions, got {positions!r:.60}")
    positions = [check_second_half_position(p) for p in positions]
    broken, ablator = hard_subset_ablator(model, method, None, HARD_BASES, seed)
    a, b = ((ablator.logits(HARD_VARIANTS[n]).argmax(-1).cpu() == 1).view(broken.shape[:2]) for n in (base, added))
    rows = {}
    for p in positions:
        i = list(SECOND_HALF).index(p)
        rows[p] = (*paired_misses(a[i], b[i]),)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=[f"only {base}", f"only {added}", "p"])
    table.index.name = "broken position"
    return table


def resampled_edit_sources(
    model: HookedTransformer,
    seed: int = HARD_SEED,
    position: int = TARGET_POSITION,
    positions: Sequence[int] = (17, 19),
) -> dict[str, float]:
    """What the resampled cut of H0.1's edges into H1.1 at ``position`` does besides removing a signal: at each of
    ``positions``, how many inputs it newly catches and how many of those borrowed a row with the pair at ``position``
    broken (against that rate over all rows), and how many of the hard subset's palindromes it rejects."""
    position = check_second_half_position(position)
    broken, ablator = hard_subset_ablator(model, "resample", None, HARD_BASES, seed)
    edit = dict(edges=H01_TO_H11, positions=(position,))
    full = (ablator.logits(ALL).argmax(-1).cpu() == 1).view(broken.shape[:2])
    cut = (ablator.logits(ALL, replaced=ablator.ablated, **edit).argmax(-1).cpu() == 1).view(broken.shape[:2])
    borrowed = mismatch_mask(ablator.source.cpu())[:, position].view(broken.shape[:2])
    out: dict[str, float] = {}
    if isinstance(positions, (str, bytes)) or not isinstance(positions, Sequence) or not positions:
        raise ValueError(f"positions must be a non-empty list of second-half positions, got {positions!r:.60}")
    for p in positions:
        i = list(SECOND_HALF).index(check_second_half_position(p))
        newly = full[i] & ~cut[i]
        out[f"newly_caught_pos_{p}"] = float(newly.sum())
        out[f"newly_caught_borrowed_broken_pos_{p}"] = float((newly & borrowed[i]).sum())
        out[f"borrowed_broken_rate_pos_{p}"] = borrowed[i].float().mean().item()
    bases = broken_at_each_position(HARD_BASES, seed)[0]
    pals = PathAblator(model, bases, "resample", main_dataset().toks, seed)
    for name, logits in (("clean", pals.logits(ALL)), ("cut", pals.logits(ALL, replaced=pals.ablated, **edit))):
        out[f"palindromes_rejected_{name}"] = (logits.argmax(-1).cpu() == 0).float().mean().item()
    return out


# --- resampling: how far one draw of partners moves the chapter's numbers ----------------------------

DRAW_SEEDS: tuple[int, ...] = tuple(range(100, 120))
"""Twenty draws of resampling partners, none of them the chapter's own (seed 0 on the main batch, 4 on the hard
subset)."""


DRAW_MAIN: dict[str, frozenset[str]] = {
    "hypothesis": HYPOTHESIS,
    "extended": EXTENDED,
    "full - H0.1": VARIANTS["full - H0.1"],
    "full - H1.1": VARIANTS["full - H1.1"],
}
"""Circuits whose resampled loss the chapter cites, on the main batch."""


DRAW_HARD: tuple[str, ...] = ("+ H1.1", "full - H1.1", "full - H0.1")
"""Hard-subset circuits whose resampled misses at position 20 the chapter cites."""


DRAW_EDIT: str = "H0.1 -> H1.1 at 20 only"
"""The position-20 edit whose resampled misses at 20 the chapter cites."""


def _draw_row(main: pd.DataFrame, hard: pd.DataFrame, edit: pd.DataFrame) -> dict[str, float]:
    clean = main.loc[CLEAN, "loss"]
    row = {
        "hypothesis loss recovered": main.loc["hypothesis", "loss_recovered"],
        "hypothesis accuracy": main.loc["hypothesis", "accuracy"],
        "extended loss recovered": main.loc["extended", "loss_recovered"],
        "full - H0.1 loss increase": main.loc["full - H0.1", "loss"] - clean,
        "full - H1.1 loss increase": main.loc["full - H1.1", "loss"] - clean,
    }
    row |= {f"{name} missed at 20": hard.loc[name, TARGET_POSITION] for name in DRAW_HARD}
    row[f"{DRAW_EDIT} missed at 20"] = edit.loc[DRAW_EDIT, TARGET_POSITION]
    return {name: float(value) for name, value in row.items()}


def chapter_draw(
    contributions: Mapping[str, pd.DataFrame], hard: Mapping[str, pd.DataFrame], targeted: Mapping[str, pd.DataFrame]
) -> dict[str, float]:
    """The chapter's own resampled numbers (``path_contributions``, ``hard_subset_errors`` and
    ``hard_subset_position_errors`` under ``"resample"``), named as the columns of ``resample_draws``."""
    for name, tables in (("contributions", contributions), ("hard", hard), ("targeted", targeted)):
        if not isinstance(tables, Mapping) or "resample" not in tables:
            raise ValueError(f"{name} must map methods to tables and include 'resample', got {tables!r:.60}")
    return _draw_row(contributions["resample"], hard["resample"], targeted["resample"])


def resample_draws(model: HookedTransformer, seeds: Sequence[int] = DRAW_SEEDS, progress: bool = True) -> pd.DataFrame:
    """The chapter's resampled numbers redrawn: one row per seed of the resampling partners, the inputs held fixed
    (the main batch, and the hard subset of ``HARD_SEED``), partners from the main batch as in the chapter."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r:.60}")
    seeds = [check_int(f"seeds[{i}]", s, 0, maximum=MAX_SEED) for i, s in enumerate(seeds)]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds!r:.80}")
    data = main_dataset()
    hard_variants = {name: HARD_VARIANTS[name] for name in DRAW_HARD}
    edit = {DRAW_EDIT: POSITION_VARIANTS[DRAW_EDIT]}
    rows = {}
    for seed in tqdm(seeds, desc="resampling draws", disable=not progress):
        rows[seed] = _draw_row(
            path_contributions(model, data.toks, data.is_palindrome, "resample", DRAW_MAIN, seed=seed, progress=False),
            hard_subset_errors(model, "resample", hard_variants, data.toks, progress=False, partner_seed=seed),
            hard_subset_position_errors(model, "resample", edit, data.toks, partner_seed=seed),
        )
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "partner seed"
    return table


def draw_spread(draws: pd.DataFrame, chapter: Mapping[str, float]) -> pd.DataFrame:
    """Per quantity: the chapter's draw, the other draws' minimum, median and maximum, and how many of them lie below
    the chapter's value."""
    if not isinstance(draws, pd.DataFrame) or draws.empty:
        raise ValueError("draws must be the non-empty table of resample_draws")
    if not isinstance(chapter, Mapping) or set(chapter) != set(draws.columns):
        raise ValueError(f"chapter must give exactly the quantities {list(draws.columns)}, got {chapter!r:.80}")
    for name, value in chapter.items():
        check_finite(f"chapter[{name!r}]", value)
    if not draws.map(lambda x: isinstance(x, (int, float)) and math.isfinite(x)).all().all():
        raise ValueError("draws must hold finite numbers only (NaN or inf found, or a non-number)")
    chapter = pd.Series(chapter)[draws.columns]
    table = pd.DataFrame(
        {
            "chapter": chapter,
            "min": draws.min(),
            "median": draws.median(),
            "max": draws.max(),
            "draws below": (draws < chapter).sum(),
        }
    )
    table.index.name = f"over {len(draws)} other draws"
    return table
