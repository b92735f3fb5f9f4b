"""Chapter 12's scoring: every level's calls beside the model's on fixed input sets, and the tables that compare them.

Method. The evaluation sets (``input_sets``) are (a) a fresh sample of the training distribution,
(b) chapter 8's whole single-mismatch sweep, (c) two broken pairs, (d) random palindromes, (e) the
hand-made adversarial examples and (f) single mismatches on bases of a seed no level was built or chosen
on (``fresh_tokens``; ``fresh_overlaps`` checks that it shares no sequence with the other inputs).
``score`` runs the model and every level once on all of them (``LevelCalls``). Besides agreement,
each level is scored by the model's own errors it reproduces (``own_errors``) and the errors it adds
(``added_errors``) and, on the same single mismatches, by the model's misses it reproduces and the misses
it adds (``miss_overlap``, ``paired_comparison`` with an exact McNemar test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from palindrome.chapters.adversarial import HANDMADE_ADVERSARIAL
from palindrome.chapters.blindspots import N_BASES, PAIR_BASES, PAIR_SEED, SWEEP_SEED, pair_mismatch_tokens
from palindrome.chapters.explanation import (
    BLIND_PAIRS,
    CIRCUIT_LEVELS,
    DEVELOPMENT_BASES,
    DEVELOPMENT_SEED,
    LEVELS,
    WELL_CHECKED,
    Explanation,
    PairStatus,
    check_level,
    development_inputs,
    level_reference_data,
    logit_diffs,
)
from palindrome.constants import SECOND_HALF
from palindrome.data import PalindromeDataset
from palindrome.inputs import broken_at_each_position, check_second_half, random_palindromes, single_mismatch_tokens
from palindrome.stats import mcnemar_exact
from palindrome.tokens import TokensLike, check_floats, check_int, check_seed, check_type, validate_tokens

NATURAL_SIZE: int = 20_000
"""Input set (a), a fresh sample of the training distribution: ``PalindromeDataset(NATURAL_SIZE,
seed=NATURAL_SEED)``."""
NATURAL_SEED: int = 13
PALINDROME_SIZE: int = 5000
"""Input set (d): random palindromes (``inputs.random_palindromes``, seed ``PALINDROME_SEED``)."""
PALINDROME_SEED: int = 14
INPUT_SETS: tuple[str, ...] = (
    "(a) natural",
    "(b) single mismatches",
    "(c) two broken pairs",
    "(d) palindromes",
    "(e) hand-made",
    "(f) fresh single mismatches",
)
"""The evaluation sets: the issue's five, then (f), held out from every choice the chapter makes (``fresh_tokens``)."""
FRESH_BASES: int = 2000
"""Set (f): ``broken_at_each_position(FRESH_BASES, FRESH_SEED)``, single mismatches on bases of a seed no level saw."""
FRESH_SEED: int = 16
MIN_CORRELATION_INPUTS: int = 100
"""Input sets smaller than this (the four hand-made examples) get no correlation: a handful of points says nothing."""
PAIRED: tuple[str, str] = ("words", "refined")
"""The two levels ``paired_comparison`` sets against each other, input by input."""
OVERLAP_POSITIONS: dict[str, tuple[int, ...]] = {"20": (20,), "well_checked": WELL_CHECKED}
"""The groups of broken positions ``miss_overlap`` is reported for: the weak pair and the seven well-checked pairs."""
OVERLAP_SETS: tuple[str, ...] = (INPUT_SETS[1], INPUT_SETS[5])
"""The single-mismatch sets ``miss_overlap`` is reported on: chapter 8's sweep and the fresh set."""
AIMS: tuple[str, ...] = ("natural >= 0.99", "single mismatches >= 0.95", "blind pairs > 0.9", "weak pair within x2")
"""The aims a circuit level is held to (``aim_table``)."""


def overlap(a: TokensLike, b: TokensLike) -> int:
    """How many sequences of ``a`` also occur in ``b`` (exact token match: sorted rows of ``b``, then a row-by-row
    check)."""
    a, b = validate_tokens(a).cpu(), validate_tokens(b).cpu()
    if a.shape[1] != b.shape[1]:
        return 0
    weights = torch.randint(1, 2**31, (a.shape[1],), generator=torch.Generator().manual_seed(0))
    key_a, key_b = a @ weights, b @ weights  # equal rows have equal keys; a key match is then checked exactly
    order = key_b.argsort()
    sorted_b = key_b[order]
    at = torch.searchsorted(sorted_b, key_a).clamp(max=len(sorted_b) - 1)
    candidates = (sorted_b[at] == key_a).nonzero().flatten().tolist()
    found = 0
    for i in candidates:  # rows of b sharing the key, compared token by token
        lo, hi = (
            torch.searchsorted(sorted_b, key_a[i]).item(),
            torch.searchsorted(sorted_b, key_a[i], right=True).item(),
        )
        found += bool((b[order[lo:hi]] == a[i]).all(-1).any())
    return found


def sweep_tokens(n_bases: int = N_BASES, seed: int = SWEEP_SEED) -> Int[Tensor, "position base pair seq"]:
    """Chapter 8's single-mismatch sweep as tokens: every (a, b) at every second-half pair of its random bases."""
    bases = random_palindromes(check_int("n_bases", n_bases, 1), torch.Generator().manual_seed(check_seed(seed)))
    return torch.stack([single_mismatch_tokens(bases, p) for p in SECOND_HALF])


def fresh_tokens(n_bases: int = FRESH_BASES, seed: int = FRESH_SEED) -> Int[Tensor, "position base seq"]:
    """Set (f): ``n_bases`` random palindromes of a seed no level was built or chosen on, broken at each second-half
    pair in turn."""
    return broken_at_each_position(n_bases, seed)[1]


def input_sets() -> dict[str, Int[Tensor, "batch seq"]]:
    """The evaluation sets (a)-(f) of ``INPUT_SETS``: batches of tokens, (b) and (f) shaped [position, input, seq]."""
    palindromes = random_palindromes(PALINDROME_SIZE, torch.Generator().manual_seed(PALINDROME_SEED))
    return dict(
        zip(
            INPUT_SETS,
            (
                PalindromeDataset(NATURAL_SIZE, seed=NATURAL_SEED).toks,
                sweep_tokens().flatten(1, 2),
                pair_mismatch_tokens(PAIR_BASES, PAIR_SEED, distinct=True).flatten(0, 1),
                palindromes,
                HANDMADE_ADVERSARIAL,
                fresh_tokens(),
            ),
            strict=True,
        )
    )


def _check_sets(sets: object) -> dict[str, Int[Tensor, "batch seq"]]:
    """``sets`` (names -> tokens of any batch shape) as flat validated batches, or ValueError."""
    if not isinstance(sets, Mapping):
        raise ValueError(
            f"sets must be a dict of input-set names to tokens (such as input_sets()), got {type(sets).__name__}"
        )
    return {
        name: validate_tokens(toks.flatten(0, -2) if isinstance(toks, Tensor) and toks.ndim > 2 else toks)
        for name, toks in sets.items()
    }


def development_overlaps(sets: Optional[Mapping[str, TokensLike]] = None) -> dict[str, int]:
    """How many of the development single mismatches also occur in each evaluation set (default ``input_sets()``)."""
    sets = _check_sets(input_sets() if sets is None else sets)
    _, broken = broken_at_each_position(DEVELOPMENT_BASES, DEVELOPMENT_SEED)
    dev = broken.flatten(0, 1)
    return {name: overlap(dev, toks) for name, toks in sets.items()}


def fresh_overlaps(sets: Optional[Mapping[str, TokensLike]] = None) -> dict[str, int]:
    """How many inputs of the fresh set (f) also occur in the reference batch, the development inputs and each other
    evaluation set."""
    sets = _check_sets(input_sets() if sets is None else sets)
    fresh = INPUT_SETS[5]
    if fresh not in sets:
        raise ValueError(f"sets must hold the fresh set {fresh!r} (input_sets()), got {list(sets)}")
    others = {"reference batch": level_reference_data().toks, "development inputs": development_inputs()}
    others |= {name: toks for name, toks in sets.items() if name != fresh}
    return {name: overlap(sets[fresh], toks) for name, toks in others.items()}


def set_key(name: str) -> str:
    """The key fragment of an input set: "(a) natural" -> "a"."""
    if not isinstance(name, str) or len(name) < 3 or name[0] != "(" or name[2] != ")":
        raise ValueError(
            f"name must be an input set's name such as {INPUT_SETS[0]!r} (a letter in brackets first), got {name!r}"
        )
    return name[1]


@dataclass(frozen=True)
class LevelCalls:
    """Each level's calls (and the circuit levels' logit differences) beside the model's, on each input set."""

    model_ld: dict[str, Float[Tensor, " batch"]]
    level_ld: dict[str, dict[str, Float[Tensor, " batch"]]]
    calls: dict[str, dict[str, Bool[Tensor, " batch"]]]
    shapes: dict[str, tuple[int, ...]]
    """Per input set: its batch shape as given ([position, input] for (b) and (f))."""
    decoy_at_broken: dict[str, Bool[Tensor, " batch"]]
    """Per input set: whether some broken pair of the input has a decoy."""

    def agreement(self) -> pd.DataFrame:
        """Fraction of each input set (columns) on which each level's decision (rows) agrees with the model's."""
        return pd.DataFrame(
            {
                name: {level: (calls[level] == (self.model_ld[name] > 0)).float().mean().item() for level in LEVELS}
                for name, calls in self.calls.items()
            }
        )

    def correlation(self) -> pd.DataFrame:
        """Correlation of each circuit level's logit difference with the model's, per input set of at least
        ``MIN_CORRELATION_INPUTS`` inputs."""
        return pd.DataFrame(
            {
                name: {level: correlation(lds[level], self.model_ld[name]) for level in CIRCUIT_LEVELS}
                for name, lds in self.level_ld.items()
                if self.model_ld[name].numel() >= MIN_CORRELATION_INPUTS
            }
        )

    def miss_rates(self, name: str = INPUT_SETS[1]) -> pd.DataFrame:
        """Per broken pair of a single-mismatch set ((b) or (f)): the fraction the model (first row) and each level
        call palindromes."""
        n_positions = self.n_positions(name)
        rows = {"model": self.model_ld[name] > 0} | {lv: c for lv, c in self.calls[name].items() if lv != "ideal"}
        return pd.DataFrame(
            {k: v.view(n_positions, -1).float().mean(1).tolist() for k, v in rows.items()},
            index=pd.Index(SECOND_HALF[:n_positions], name="broken position"),
        ).T

    def n_positions(self, name: str) -> int:
        """How many second-half positions the single-mismatch set ``name`` is broken at (its first axis)."""
        if not isinstance(name, str) or name not in self.shapes or len(self.shapes[name]) != 2:
            per_position = [n for n, shape in self.shapes.items() if len(shape) == 2]
            raise ValueError(
                f"name must be a set with one row per broken position, one of {per_position}, got {name!r}"
            )
        return self.shapes[name][0]


def score(expl: Explanation, sets: Optional[dict[str, TokensLike]] = None, progress: bool = True) -> LevelCalls:
    """Run the model and every level once on each input set (default ``input_sets()``), all sets in one fast-path
    pass."""
    check_type("expl", expl, Explanation, "explanation.explanation(model)")
    sets = input_sets() if sets is None else sets
    flat = _check_sets(sets)
    if list(sets) != list(INPUT_SETS):
        raise ValueError(f"sets must hold the input sets {INPUT_SETS} in that order, got {list(sets)}")
    sizes = [len(toks) for toks in flat.values()]
    variants = {level: expl.refinements(level) for level in CIRCUIT_LEVELS}
    lds = logit_diffs(
        expl.model,
        torch.cat(list(flat.values())),
        expl.stats,
        variants,
        progress="model and circuit levels" if progress else None,
    )
    split = {key: dict(zip(flat, value.split(sizes), strict=True)) for key, value in lds.items()}
    model_ld = split["model"]
    level_ld = {name: {level: split[level][name] for level in CIRCUIT_LEVELS} for name in flat}
    status = {name: PairStatus.of(toks) for name, toks in flat.items()}
    calls = {
        name: {
            level: (level_ld[name][level] > 0 if level in CIRCUIT_LEVELS else expl.decisions(toks, level, status[name]))
            for level in LEVELS
        }
        for name, toks in flat.items()
    }
    shapes = {name: tuple(torch.as_tensor(toks).shape[:-1]) for name, toks in sets.items()}
    return LevelCalls(model_ld, level_ld, calls, shapes, {name: st.decoy_at_broken() for name, st in status.items()})


def decoy_catch_rate(scores: LevelCalls) -> float:
    """Fraction of single mismatches at a checked pair (not ``BLIND_PAIRS``) with a decoy there that the model
    catches."""
    check_type("scores", scores, LevelCalls, "level_calls.score(expl)")
    name = INPUT_SETS[1]
    n_positions = scores.n_positions(name)
    checked = torch.tensor([p not in BLIND_PAIRS for p in SECOND_HALF[:n_positions]])
    decoy = scores.decoy_at_broken[name].view(n_positions, -1)[checked]
    caught = (scores.model_ld[name] <= 0).view(n_positions, -1)[checked]
    if not decoy.any():
        raise ValueError(
            f"no single mismatch at a checked pair of {name!r} has a decoy there: the catch rate is undefined; score "
            "more inputs"
        )
    return caught[decoy].float().mean().item()


def correlation(a: Float[Tensor, " batch"], b: Float[Tensor, " batch"]) -> float:
    """Pearson correlation of two batches of numbers."""
    a, b = check_floats("a", a).double().flatten(), check_floats("b", b).double().flatten()
    if a.shape != b.shape or a.numel() < 2:
        raise ValueError(
            f"correlation needs two equally long batches of at least 2 numbers, got {a.numel()} and {b.numel()}"
        )
    if a.std() == 0 or b.std() == 0:
        raise ValueError("correlation is undefined for a constant batch; pass batches whose numbers vary")
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def disagreements(scores: LevelCalls, name: str, levels: Sequence[str]) -> pd.DataFrame:
    """Where levels disagree with the model on input set ``name``: counts by the model's call and by decoys at broken
    pairs."""
    check_type("scores", scores, LevelCalls, "level_calls.score(expl)")
    if isinstance(levels, str):
        raise ValueError(f"levels must be a collection of names from {LEVELS}, not the string {levels!r}")
    if not isinstance(name, str) or name not in scores.calls:
        raise ValueError(f"name must be one of the scored input sets {list(scores.calls)}, got {name!r}")
    called, decoy = scores.model_ld[name] > 0, scores.decoy_at_broken[name]
    rows = {}
    for level in levels:
        wrong = scores.calls[name][check_level(level)] != called
        rows[level] = {
            "inputs": int(wrong.sum()),
            "model says palindrome": int((wrong & called).sum()),
            "with a decoy at a broken pair": int((wrong & decoy).sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def own_errors(scores: LevelCalls) -> pd.DataFrame:
    """Per input set (columns): the model's own errors (its call differs from the truth, the ideal level's call), and
    how many of them each level (rows) reproduces (makes the same call)."""
    check_type("scores", scores, LevelCalls, "level_calls.score(expl)")
    out = {}
    for name, calls in scores.calls.items():
        model_calls = scores.model_ld[name] > 0
        errors = model_calls != calls["ideal"]
        out[name] = {"model errors": int(errors.sum())} | {
            level: int((errors & (calls[level] == model_calls)).sum()) for level in LEVELS
        }
    return pd.DataFrame(out)


def miss_overlap(
    scores: LevelCalls, positions: Sequence[int], levels: Sequence[str] = LEVELS[1:], name: str = INPUT_SETS[1]
) -> pd.DataFrame:
    """On the same single mismatches of set ``name`` broken at ``positions``: the model's misses, how many of them each
    level reproduces, and how many misses of its own (the model catches them) it adds."""
    check_type("scores", scores, LevelCalls, "level_calls.score(expl)")
    if isinstance(levels, str):
        raise ValueError(f"levels must be a collection of names from {LEVELS}, not the string {levels!r}")
    levels = [check_level(level) for level in levels]
    n_positions = scores.n_positions(name)
    positions = check_second_half(positions)
    if not positions or any(p not in SECOND_HALF[:n_positions] for p in positions):
        raise ValueError(f"positions must be a non-empty list of the set's positions {SECOND_HALF[:n_positions]}")
    rows = torch.tensor([SECOND_HALF.index(p) for p in positions])
    model_missed = (scores.model_ld[name] > 0).view(n_positions, -1)[rows]
    out = {}
    for level in levels:
        missed = scores.calls[name][level].view(n_positions, -1)[rows]
        out[level] = {
            "model misses": int(model_missed.sum()),
            "reproduced": int((missed & model_missed).sum()),
            "added": int((missed & ~model_missed).sum()),
        }
    return pd.DataFrame.from_dict(out, orient="index")


def added_errors(scores: LevelCalls) -> pd.DataFrame:
    """Per input set (columns): the errors each level (rows) adds, inputs the model gets right (its call is the
    truth, the ideal level's call) that the level gets wrong; the counterpart of ``own_errors``."""
    check_type("scores", scores, LevelCalls, "level_calls.score(expl)")
    out = {}
    for name, calls in scores.calls.items():
        model_calls = scores.model_ld[name] > 0
        right = model_calls == calls["ideal"]
        out[name] = {level: int((right & (calls[level] != model_calls)).sum()) for level in LEVELS}
    return pd.DataFrame(out)


def paired_comparison(
    scores: LevelCalls, name: str = INPUT_SETS[1], pair: Sequence[str] = PAIRED, groups: Optional[Mapping] = None
) -> pd.DataFrame:
    """Per group of broken positions (default ``OVERLAP_POSITIONS``) of the single-mismatch set ``name``: the inputs
    where only the first or only the second level of ``pair`` agrees with the model, the exact McNemar p of that
    split, and how many of the model's misses the second level would reproduce by chance (calling its misses
    independently of the model's)."""
    check_type("scores", scores, LevelCalls, "level_calls.score(expl)")
    if isinstance(pair, str) or len(pair) != 2:
        raise ValueError(f"pair must be two level names from {LEVELS}, got {pair!r}")
    a, b = (check_level(level) for level in pair)
    n_positions = scores.n_positions(name)
    groups = OVERLAP_POSITIONS if groups is None else groups
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(
            f"groups must map labels to lists of broken positions, like {OVERLAP_POSITIONS}; got {groups!r}"
        )
    rows = {}
    for label, positions in groups.items():
        positions = check_second_half(positions)
        if not positions or any(p not in SECOND_HALF[:n_positions] for p in positions):
            raise ValueError(f"groups must hold non-empty lists of the set's positions {SECOND_HALF[:n_positions]}")
        index = torch.tensor([SECOND_HALF.index(p) for p in positions])
        model = (scores.model_ld[name] > 0).view(n_positions, -1)[index]
        agree_a = scores.calls[name][a].view(n_positions, -1)[index] == model
        agree_b = scores.calls[name][b].view(n_positions, -1)[index] == model
        only_a, only_b = int((agree_a & ~agree_b).sum()), int((agree_b & ~agree_a).sum())
        b_misses = int(scores.calls[name][b].view(n_positions, -1)[index].sum())
        rows[label] = {
            f"only {a} agrees": only_a,
            f"only {b} agrees": only_b,
            "p (exact McNemar)": mcnemar_exact(only_a, only_b),
            "model misses": int(model.sum()),
            f"{b} reproduces": int((model & (scores.calls[name][b].view(n_positions, -1)[index])).sum()),
            "by chance": int(model.sum()) * b_misses / model.numel(),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "broken at"
    return table


def gap_closed(table: pd.DataFrame) -> pd.Series:
    """Per input set (columns of an agreement or correlation table): the share of the gap from the constant-scale
    circuit to the refined one that the position scale closes."""
    check_type("table", table, pd.DataFrame, "scores.agreement() or scores.correlation()")
    missing = [lv for lv in CIRCUIT_LEVELS if lv not in table.index]
    if missing:
        raise ValueError(f"table must have a row per circuit level {CIRCUIT_LEVELS}; missing {missing}")
    gap = table.loc["refined"] - table.loc["circuit"]
    if (gap == 0).any():
        raise ValueError("the refined and constant-scale circuits score the same on some set: the share is undefined")
    return (table.loc["position scale"] - table.loc["circuit"]) / gap


def class_correlation(scores: LevelCalls, name: str = INPUT_SETS[0]) -> pd.DataFrame:
    """Correlation of each circuit level's logit difference with the model's within each true class of input set
    ``name`` (palindromes, non-palindromes), free of the gap between the classes."""
    check_type("scores", scores, LevelCalls, "level_calls.score(expl)")
    if not isinstance(name, str) or name not in scores.calls:
        raise ValueError(f"name must be one of the scored input sets {list(scores.calls)}, got {name!r}")
    truth = scores.calls[name]["ideal"]
    out = {}
    for label, mask in (("palindromes", truth), ("non-palindromes", ~truth)):
        if int(mask.sum()) < 2:
            raise ValueError(f"{name!r} holds fewer than 2 {label}: a within-class correlation needs more")
        out[label] = {
            lv: correlation(scores.level_ld[name][lv][mask], scores.model_ld[name][mask]) for lv in CIRCUIT_LEVELS
        }
    return pd.DataFrame(out)


def aim_table(scores: LevelCalls) -> pd.DataFrame:
    """Per circuit level (rows): whether it meets each of ``AIMS`` on (b) and on (f) (natural inputs: set (a))."""
    check_type("scores", scores, LevelCalls, "level_calls.score(expl)")
    agreement = scores.agreement()
    rows = {}
    for level in CIRCUIT_LEVELS:
        row = {}
        for name in OVERLAP_SETS:
            misses = scores.miss_rates(name)
            model_20, level_20 = misses.loc["model", 20], misses.loc[level, 20]
            for aim, met in zip(
                AIMS,
                (
                    agreement.loc[level, INPUT_SETS[0]] >= 0.99,
                    agreement.loc[level, name] >= 0.95,
                    all(misses.loc[level, p] > 0.9 for p in BLIND_PAIRS),
                    model_20 / 2 <= level_20 <= 2 * model_20,
                ),
                strict=True,
            ):
                row[(set_key(name), aim)] = bool(met)
        rows[level] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["set", "aim"])
    return table
