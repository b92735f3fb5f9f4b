"""Helpers for the book on how a 2-layer attention-only transformer detects palindromes."""

import warnings

# tqdm.auto falls back to a text bar in notebooks without ipywidgets; the bar is fine, the
# warning about it would otherwise appear under every chapter's import cell.
warnings.filterwarnings("ignore", message="IProgress not found")

from palindrome.checkpoint import (  # noqa: E402
    CheckpointDownloadError,
    CheckpointError,
    CheckpointNotFoundError,
    ChecksumMismatchError,
    StateDictMismatchError,
    resolve_checkpoint,
)
from palindrome.constants import END, END_POS, MIRROR, SEQ_LEN, START  # noqa: E402
from palindrome.data import PalindromeDataset, display_seq, format_seq  # noqa: E402
from palindrome.metrics import Metrics, accuracy, cross_entropy, evaluate, logit_diff  # noqa: E402
from palindrome.model import create_model, load_model  # noqa: E402
from palindrome.quickstart import classify, explain  # noqa: E402
from palindrome.tokens import validate_tokens  # noqa: E402

__all__ = [
    "CheckpointDownloadError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "ChecksumMismatchError",
    "END",
    "END_POS",
    "MIRROR",
    "Metrics",
    "PalindromeDataset",
    "SEQ_LEN",
    "START",
    "StateDictMismatchError",
    "accuracy",
    "classify",
    "create_model",
    "cross_entropy",
    "display_seq",
    "evaluate",
    "explain",
    "format_seq",
    "load_model",
    "logit_diff",
    "resolve_checkpoint",
    "validate_tokens",
]
