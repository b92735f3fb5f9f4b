"""What the data generator produces: closed-form and measured distributions of mismatched mirror pairs.

Half of every dataset are palindromes (no mismatched pair). The other half are
near-palindromes: each of the ``half_length`` second-half slots keeps its mirror's value or,
with probability 1/2, takes a fresh uniform value in 0..max_value, which equals the mirror with
probability 1/(max_value+1). Slots are independent, so the number of mismatched pairs in a
near-palindrome is Binomial(half_length, 1/2 * max_value/(max_value+1)).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from palindrome.constants import HALF_LENGTH, MAX_VALUE
from palindrome.tokens import TokensLike, check_sizes, mismatch_mask, validate_tokens


def mismatch_probability(max_value: int = MAX_VALUE) -> float:
    """Chance that one second-half slot of a near-palindrome differs from its mirror: 1/2 * max_value/(max_value+1)."""
    check_sizes(1, max_value)
    return 0.5 * max_value / (max_value + 1)


def mismatch_count_pmf(half_length: int = HALF_LENGTH, max_value: int = MAX_VALUE) -> Float[Tensor, " k"]:
    """P(k mismatched pairs), k = 0..half_length, for a generated near-palindrome (a binomial)."""
    check_sizes(half_length, max_value)
    binomial = torch.distributions.Binomial(
        total_count=half_length, probs=torch.tensor(mismatch_probability(max_value), dtype=torch.float64)
    )
    return binomial.log_prob(torch.arange(half_length + 1, dtype=torch.float64)).exp()


def dataset_mismatch_pmf(half_length: int = HALF_LENGTH, max_value: int = MAX_VALUE) -> Float[Tensor, " k"]:
    """P(k mismatched pairs) for a whole dataset: half palindromes (k = 0), half near-palindromes."""
    pmf = 0.5 * mismatch_count_pmf(half_length, max_value)
    pmf[0] += 0.5
    return pmf


def single_mismatch_fraction(half_length: int = HALF_LENGTH, max_value: int = MAX_VALUE) -> float:
    """Closed-form fraction of all dataset sequences with exactly one mismatched mirror pair."""
    return dataset_mismatch_pmf(half_length, max_value)[1].item()


def palindrome_fraction(half_length: int = HALF_LENGTH, max_value: int = MAX_VALUE) -> float:
    """Closed-form fraction of dataset sequences that are palindromes (by design or by chance)."""
    return dataset_mismatch_pmf(half_length, max_value)[0].item()


def mismatch_counts(
    toks: TokensLike, half_length: int = HALF_LENGTH, max_value: int = MAX_VALUE
) -> Int[Tensor, " batch"]:
    """Number of mirror PAIRS (p, 21-p) whose values differ, per sequence."""
    toks = validate_tokens(toks, half_length, max_value)
    # mismatch_mask flags both members of a pair, so count only the first half.
    return mismatch_mask(toks, max_value)[:, 1 : half_length + 1].sum(-1)


def empirical_mismatch_pmf(
    toks: TokensLike, half_length: int = HALF_LENGTH, max_value: int = MAX_VALUE
) -> Float[Tensor, " k"]:
    """Measured fraction of sequences with k mismatched pairs, k = 0..half_length."""
    counts = mismatch_counts(toks, half_length, max_value)
    return torch.bincount(counts, minlength=half_length + 1).double() / counts.shape[0]
