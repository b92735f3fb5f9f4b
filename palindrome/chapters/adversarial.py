"""Inputs that fool the model: the original's four hand-made non-palindromes, and single edits of a palindrome."""

from __future__ import annotations

from typing import Iterable

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from palindrome.attribution import h00_output_attribution
from palindrome.circuits import attention_pattern
from palindrome.constants import (
    END,
    END_POS,
    FIRST_HALF,
    HALF_LENGTH,
    MIRROR,
    SECOND_HALF,
    START,
)
from palindrome.inputs import single_edits
from palindrome.metrics import p_palindrome
from palindrome.tokens import TokensLike, mismatch_mask, validate_tokens

HANDMADE_ADVERSARIAL: Int[Tensor, "4 seq"] = torch.tensor(
    [
        [START, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 9, 8, 7, 6, 5, 4, 3, 15, 1, END],
        [START, 1, 2, 3, 15, 5, 6, 7, 8, 9, 10, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, END],
        [START, 1, 2, 3, 3, 3, 6, 7, 8, 9, 10, 10, 9, 8, 7, 6, 3, 3, 3, 2, 3, END],
        [START, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 9, 8, 7, 6, 5, 15, 3, 15, 1, END],
    ]
)
"""The original's four hand-made non-palindromes (all labelled 0)."""

BASE_PALINDROME: Int[Tensor, " seq"] = torch.tensor(
    [START, *range(1, HALF_LENGTH + 1), *range(HALF_LENGTH, 0, -1), END]
)
"""The palindrome 1, 2, ..., 10, 10, ..., 2, 1 that the hand-made examples edit."""


def handmade_adversarial_probs(model: HookedTransformer) -> Float[Tensor, " 4"]:
    """P(palindrome) the model gives each of the four hand-made non-palindromes."""
    return p_palindrome(model, HANDMADE_ADVERSARIAL)


def broken_pairs(toks: TokensLike) -> list[list[tuple[int, int]]]:
    """For each sequence, the mirror pairs (p, 21 - p), p in the first half, whose tokens differ."""
    broken = mismatch_mask(validate_tokens(toks))
    return [[(p, MIRROR[p]) for p in FIRST_HALF if row[p]] for row in broken.tolist()]


def broken_position_attention(model: HookedTransformer, toks: TokensLike) -> pd.DataFrame:
    """One row per broken second-half position: where H0.0 looks from it, what that votes via H1.0, and H1.0's look.

    "vote via H1.0" is H0.0's output there through H1.0's OV circuit, dotted with the non-palindrome
    direction (``h00_output_attribution``): what H1.0 would add to the logit difference by attending there.
    """
    toks = validate_tokens(toks)
    h00 = attention_pattern(model, toks, 0, 0)
    h10 = attention_pattern(model, toks, 1, 0)
    votes = h00_output_attribution(model, toks, SECOND_HALF)
    rows = []
    for example, pairs in enumerate(broken_pairs(toks)):
        for mirror, position in pairs:
            rows.append(
                {
                    "example": example,
                    "position": position,
                    "mirror": mirror,
                    "H0.0 to self": h00[example, position, position].item(),
                    "H0.0 to mirror": h00[example, position, mirror].item(),
                    "H0.0 top key": int(h00[example, position].argmax()),
                    "vote via H1.0": votes[example, SECOND_HALF.index(position)].item(),
                    "H1.0 END to it": h10[example, END_POS, position].item(),
                    "H1.0 END top key": int(h10[example, END_POS].argmax()),
                }
            )
    return pd.DataFrame(rows).set_index(["example", "position"])


def single_edit_probs(
    model: HookedTransformer,
    base: TokensLike = BASE_PALINDROME,
    positions: Iterable[int] = SECOND_HALF,
    values: Iterable[int] = (15,),
) -> Float[Tensor, "pos value"]:
    """P(palindrome) after setting one position of ``base`` to one value, for every (position, value)."""
    edits = single_edits(base, positions, values)
    n_pos, n_val, seq = edits.shape
    return p_palindrome(model, edits.reshape(-1, seq)).reshape(n_pos, n_val).cpu()
