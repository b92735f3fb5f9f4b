"""Chapter 13's second question: the July model's errors, by type, on its own training data and on fresh inputs.

Method. Why did training on 100,000 inputs never fix the July model's blind pairs? ``july_errors`` counts the July
model's errors by which mirror pairs each misclassified input breaks (``ERROR_TYPES``), on the recipe's training set
(``PalindromeDataset(100_000, seed=42)``, the recipe's seed: an inference from the recipe, since the seed-42 replica
is not the July model) and on as many fresh inputs from the same generator (chapter 8's ``natural_sample``). The
blind pairs are the model's own, found as ``run_analysis`` finds a run's (``own_blind_pairs``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd
from transformer_lens import HookedTransformer

from palindrome.chapters.blindspots import NATURAL_SEED, natural_sample
from palindrome.chapters.run_analysis import (
    ANALYSIS_THREADS,
    blind_in,
    single_mismatch_map,
)
from palindrome.fast import num_threads
from palindrome.tokens import (
    check_int,
)
from palindrome.train import TrainConfig

JULY_TRAIN_SEED: int = TrainConfig.seed
"""The recipe's seed (42): the July model's training set is inferred to be PalindromeDataset(100_000, seed=42)."""


JULY_TRAIN_SIZE: int = TrainConfig.train_size
"""The recipe's training-set size (100,000)."""


FRESH_SEED: int = NATURAL_SEED
"""Seed of the fresh sample from the same generator (chapter 8's natural sample, here 100,000 inputs)."""


ERROR_TYPES: tuple[str, ...] = (
    "only blind pairs broken",
    "blind and visible pairs broken",
    "visible pairs only",
    "false negatives",
)
"""The July model's errors, by which mirror pairs the misclassified input breaks."""


def own_blind_pairs(model: HookedTransformer) -> tuple[int, ...]:
    """A model's blind positions from the chapter's single-mismatch map (as ``analyse_run`` finds them)."""
    return blind_in(single_mismatch_map(model)[0])


def july_errors(
    model: HookedTransformer, blind: Optional[Sequence[int]] = None, size: int = JULY_TRAIN_SIZE
) -> pd.DataFrame:
    """The July model's errors by type on its (inferred) training set and on fresh inputs of the same generator."""
    with num_threads(ANALYSIS_THREADS):
        return _july_errors(model, own_blind_pairs(model) if blind is None else tuple(blind), size)


def _july_errors(model: HookedTransformer, blind: tuple[int, ...], size: int) -> pd.DataFrame:
    rows = {}
    for name, seed in (
        ("training set (seed 42, inferred)", JULY_TRAIN_SEED),
        (f"fresh (seed {FRESH_SEED})", FRESH_SEED),
    ):
        sample = natural_sample(model, check_int("size", size, 2), seed)
        counts = sample.counts(blind)
        rows[name] = {
            "inputs": int(counts["size"]),
            "inputs breaking only blind pairs": int(counts["only_blind_inputs"]),
            "errors": int(counts["false_positives"] + counts["false_negatives"]),
            ERROR_TYPES[0]: int(counts["fp_only_blind"]),
            ERROR_TYPES[1]: int(counts["fp_blind_and_other"]),
            ERROR_TYPES[2]: int(counts["fp_no_blind"]),
            ERROR_TYPES[3]: int(counts["false_negatives"]),
            "mean loss": counts["mean_loss"],
            "loss share of only-blind inputs": counts["loss_share_only_blind"],
        }
    return pd.DataFrame.from_dict(rows, orient="index")
