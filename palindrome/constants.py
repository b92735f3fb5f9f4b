"""Every fixed fact about the task and the July-2023 checkpoint, in one place."""

from __future__ import annotations

# --- the task -----------------------------------------------------------------
HALF_LENGTH: int = 10
"""Number of values in each half of a sequence."""
MAX_VALUE: int = 30
"""Values are integers 0..MAX_VALUE inclusive."""
START: int = MAX_VALUE + 1
"""Token id of the START token (31)."""
END: int = MAX_VALUE + 2
"""Token id of the END token (32); the model classifies at this position."""
D_VOCAB: int = MAX_VALUE + 3
"""Input vocabulary: the 31 values plus START and END (33)."""
SEQ_LEN: int = 2 * HALF_LENGTH + 2
"""START + 20 values + END (22)."""
END_POS: int = SEQ_LEN - 1
"""Position of the END token (21)."""
FIRST_HALF: tuple[int, ...] = tuple(range(1, HALF_LENGTH + 1))
"""Positions 1..10."""
SECOND_HALF: tuple[int, ...] = tuple(range(HALF_LENGTH + 1, 2 * HALF_LENGTH + 1))
"""Positions 11..20."""
VALUE_POSITIONS: tuple[int, ...] = FIRST_HALF + SECOND_HALF
"""Positions 1..20, the ones holding values."""
MIRROR: dict[int, int] = {p: SEQ_LEN - 1 - p for p in VALUE_POSITIONS}
"""Mirror map on value positions: p <-> 21 - p (1<->20, ..., 10<->11)."""
NOT_PALINDROME, PALINDROME = 0, 1

# --- the architecture -----------------------------------------------------------
N_LAYERS: int = 2
N_HEADS: int = 2
D_MODEL: int = 28
D_HEAD: int = 14
D_VOCAB_OUT: int = 2
HEADS: tuple[tuple[int, int], ...] = tuple((layer, h) for layer in range(N_LAYERS) for h in range(N_HEADS))
"""Every (layer, head) of the model, in the order used for components, tables and plots."""
HEAD_NAMES: tuple[str, ...] = tuple(f"{layer}.{head}" for layer, head in HEADS)
"""Head names "0.0", "0.1", "1.0", "1.1" (the book writes H0.0 and so on)."""

# --- the checkpoint -------------------------------------------------------------
CHECKPOINT_URL: str = (
    "https://github.com/callummcdougall/ARENA_2.0/raw/main/chapter1_transformers/"
    "exercises/monthly_algorithmic_problems/july23_palindromes/palindrome_classifier.pt"
)
"""Public origin of the third-party checkpoint (never committed here)."""
CHECKPOINT_SHA256: str = "2e02564bcfab9028e9b86c96ab030c2235d60e7e2043cc29d69b473998038936"
CHECKPOINT_SIZE: int = 44_971
CHECKPOINT_FILENAME: str = "palindrome_classifier.pt"
CHECKPOINT_ENV: str = "PALINDROME_CHECKPOINT"
"""Environment variable naming a local copy of the checkpoint."""
CACHE_DIR_ENV: str = "PALINDROME_CACHE_DIR"
"""Environment variable overriding the per-user cache directory."""

# --- the book ---------------------------------------------------------------------
REPO_URL: str = "https://github.com/palindrome-circuits/palindrome-book"
"""The book's repository; chapters install the package from here in Colab."""
