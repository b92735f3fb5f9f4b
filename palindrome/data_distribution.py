"""What the data generator produces: closed-form and measured distributions of mismatched mirror pairs.

Half of every dataset are palindromes (no mismatched pair). The other half are
near-palindromes: each of the ``half_length`` second-half slots keeps its mirror's value or,
with probability 1/2, takes a fresh uniform value in 0..max_value, which equals the mirror with
probability 1/(max_value+1). Slots are independent, so the number of mismatched pairs in a
near-palindrome is Binomial(half_length, 1/2 * max_value/(max_value+1)). The same independence
gives the chance that every mismatch of an input sits at chosen positions (in closed form, and
by enumerating every pattern of broken slots).
"""

from __future__ import annotations

import itertools
from typing import Iterable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from palindrome.constants import HALF_LENGTH, MAX_VALUE
from palindrome.inputs import check_second_half, check_second_half_position
from palindrome.tokens import MAX_SIZE, TokensLike, check_int, check_sizes, mismatch_mask, validate_tokens


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


def only_blind_mismatch_probability(
    blind: Iterable[int], half_length: int = HALF_LENGTH, max_value: int = MAX_VALUE
) -> float:
    """Closed-form chance that the data generator emits an input whose mismatches all sit at ``blind`` (>= 1).

    Half the data are near-palindromes whose second-half slots each differ from their mirror
    independently with probability q = 1/2 * max_value / (max_value + 1); with k blind slots out
    of half_length the answer is 1/2 * (1 - q)^(half_length - k) * (1 - (1 - q)^k).
    """
    half_length = check_int("half_length", half_length, 1, maximum=MAX_SIZE)
    k = len(check_second_half(blind, half_length))
    stay = 1 - mismatch_probability(check_int("max_value", max_value, 1, maximum=MAX_SIZE))
    return 0.5 * stay ** (half_length - k) * (1 - stay**k)


def enumerated_only_blind_probability(
    blind: Iterable[int], half_length: int = HALF_LENGTH, max_value: int = MAX_VALUE
) -> float:
    """The closed form's quantity by brute force: sum over all 2^half_length patterns of broken slots."""
    half_length = check_int("half_length", half_length, 1, maximum=MAX_SIZE)
    blind_idx = {p - half_length - 1 for p in check_second_half(blind, half_length)}
    q = mismatch_probability(check_int("max_value", max_value, 1, maximum=MAX_SIZE))
    total = 0.0
    for pattern in itertools.product((False, True), repeat=half_length):
        broken = {i for i, b in enumerate(pattern) if b}
        if broken and broken <= blind_idx:
            total += q ** len(broken) * (1 - q) ** (half_length - len(broken))
    return 0.5 * total


def only_pair_probability(position: int) -> float:
    """Closed-form fraction of the training distribution whose only broken pair is the one at second-half
    ``position``."""
    return only_blind_mismatch_probability([check_second_half_position(position)])
