"""Inputs that fool the model: the original's four hand-made non-palindromes."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from palindrome.constants import END, START
from palindrome.metrics import p_palindrome

HANDMADE_ADVERSARIAL: Int[Tensor, "4 seq"] = torch.tensor(
    [
        [START, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 9, 8, 7, 6, 5, 4, 3, 15, 1, END],
        [START, 1, 2, 3, 15, 5, 6, 7, 8, 9, 10, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, END],
        [START, 1, 2, 3, 3, 3, 6, 7, 8, 9, 10, 10, 9, 8, 7, 6, 3, 3, 3, 2, 3, END],
        [START, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 9, 8, 7, 6, 5, 15, 3, 15, 1, END],
    ]
)
"""The original's four hand-made non-palindromes (all labelled 0)."""


def handmade_adversarial_probs(model: HookedTransformer) -> Float[Tensor, "4"]:
    """P(palindrome) the model gives each of the four hand-made non-palindromes."""
    return p_palindrome(model, HANDMADE_ADVERSARIAL)
