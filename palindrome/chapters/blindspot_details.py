"""Appendix A: checks of chapter 8's blind-spot map, from its sweep: both sides of a pair, value pairs, and attention.

Editing the first-half member of a pair instead of the second gives the same inputs
(``compare_sides``); H0.0's token-token scores say which value pairs look alike to it, and the
miss rate rises with that likeness (``token_score_gap``, ``miss_rate_by_token_score``); and the
attention at a broken position differs between the inputs the model misses and those it catches
(``attention_by_outcome``). Every function reads a sweep of ``palindrome.chapters.blindspots``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from palindrome.chapters.blindspots import SweepResult, single_mismatch_sweep
from palindrome.circuits import embedding_qk_circuit
from palindrome.constants import END_POS, MIRROR, SECOND_HALF
from palindrome.hooks import activations
from palindrome.inputs import check_second_half, single_mismatch_tokens
from palindrome.tokens import MAX_SAMPLES, MAX_SIZE, check_floats, check_int

SIDE_CHECK_BASES: int = 8
"""Bases of the main sweep re-swept with the first-half member edited, to compare the two sides."""
OUTCOME_BASES: int = 3
"""Bases of the main sweep whose attention patterns are split by outcome (missed or caught)."""


def swapped_pair_index(values_a: Int[Tensor, " pair"], values_b: Int[Tensor, " pair"]) -> Int[Tensor, " pair"]:
    """For each pair (a, b), the index of (b, a) in the same list."""
    for name, v in (("values_a", values_a), ("values_b", values_b)):
        if (
            not isinstance(v, Tensor)
            or v.is_floating_point()
            or v.dtype == torch.bool
            or v.ndim != 1
            or (len(v) and int(v.min()) < 0)
        ):
            raise ValueError(f"{name} must be a 1-D tensor of values >= 0 (inputs.ordered_value_pairs), got {v!r:.60}")
    if values_a.shape != values_b.shape or not len(values_a):
        raise ValueError(
            f"values_a and values_b must list the same non-zero number of pairs, got {len(values_a)} and "
            f"{len(values_b)}"
        )
    n = int(max(values_a.max(), values_b.max())) + 1
    lookup = torch.full((n, n), -1, dtype=torch.long)
    lookup[values_a, values_b] = torch.arange(values_a.shape[0])
    swapped = lookup[values_b, values_a]
    if (swapped < 0).any():
        raise ValueError("the pairs must contain (b, a) for every (a, b)")
    return swapped


def compare_sides(
    model: HookedTransformer, sweep: SweepResult, n_bases: int = SIDE_CHECK_BASES, progress: bool = True
) -> pd.DataFrame:
    """Re-sweep the first ``n_bases`` bases of a second-side sweep editing the first-half member instead.

    Editing the mirror of p to b in a base holding a gives the same input as editing p to a in a
    base holding b, so per position the two sweeps cover the same inputs. The table shows both
    misclassified fractions and the largest |P(palindrome)| difference between identical inputs.
    """
    if not isinstance(sweep, SweepResult) or sweep.side != "second":
        raise ValueError("sweep must be a SweepResult of the second side (side='second')")
    n_bases = check_int("n_bases", n_bases, 1, maximum=MAX_SAMPLES)
    if n_bases > sweep.bases.shape[0]:
        raise ValueError(f"n_bases must be at most the sweep's {sweep.bases.shape[0]} bases, got {n_bases}")
    first = single_mismatch_sweep(model, side="first", bases=sweep.bases[:n_bases], progress=progress)
    second = sweep.p_palindrome[:, :n_bases]
    same_input = second[:, :, swapped_pair_index(sweep.values_a, sweep.values_b)]
    return pd.DataFrame(
        {
            "misclassified (second-half member edited)": (second > 0.5).flatten(1).float().mean(1).tolist(),
            "misclassified (first-half member edited)": first.misclassified_frac.tolist(),
            "max |P difference| on identical inputs": (first.p_palindrome - same_input)
            .abs()
            .flatten(1)
            .max(1)
            .values.tolist(),
        },
        index=pd.Index(SECOND_HALF, name="position"),
    )


def attention_by_outcome(
    model: HookedTransformer, sweep: SweepResult, position: int, n_bases: int = OUTCOME_BASES
) -> pd.DataFrame:
    """Mean attention at a broken ``position`` for its sweep inputs split by outcome and by decoy.

    Uses the first ``n_bases`` bases of a second-side sweep (930 inputs each). Rows: "caught"/"missed"
    with or without a decoy; columns: input count, H0.0 from p to itself and to its mirror, and
    attention from END to p in H1.0 and H1.1.
    """
    if not isinstance(sweep, SweepResult) or sweep.side != "second":
        raise ValueError("sweep must be a SweepResult of the second side (side='second')")
    i = sweep.index(position)
    n_bases = check_int("n_bases", n_bases, 1, maximum=MAX_SAMPLES)
    if n_bases > sweep.bases.shape[0]:
        raise ValueError(f"n_bases must be at most the sweep's {sweep.bases.shape[0]} bases, got {n_bases}")
    toks = single_mismatch_tokens(sweep.bases[:n_bases], position).flatten(0, 1)
    missed = sweep.misclassified[i, :n_bases].flatten()
    decoy = sweep.decoy[i, :n_bases].flatten()
    names = [get_act_name("pattern", layer) for layer in (0, 1)]
    cache = activations(model, toks, names)  # one pass for both layers' patterns
    h00 = cache[names[0]][:, 0].cpu()
    h10, h11 = cache[names[1]][:, :, END_POS, position].cpu().unbind(1)
    rows = []
    for outcome, was_missed in (("caught", False), ("missed", True)):
        for has_decoy in (False, True):
            sel = (missed == was_missed) & (decoy == has_decoy)
            rows.append(
                {
                    "outcome": f"{outcome}, {'decoy' if has_decoy else 'no decoy'}",
                    "inputs": int(sel.sum()),
                    "H0.0 p->p": h00[sel, position, position].mean().item(),
                    "H0.0 p->mirror": h00[sel, position, MIRROR[position]].mean().item(),
                    "H1.0 END->p": h10[sel].mean().item(),
                    "H1.1 END->p": h11[sel].mean().item(),
                }
            )
    return pd.DataFrame(rows).set_index("outcome")


def token_score_gap(model: HookedTransformer, scale: float) -> Float[Tensor, "a b"]:
    """H0.0's token-token score of key token a for query token b minus its score for a key equal to b.

    From the embedding QK circuit (``circuits.embedding_qk_circuit``, scores through a constant
    LayerNorm ``scale``). Near 0 or positive: to H0.0, value a at the mirror looks like a copy of b.
    """
    n = model.cfg.d_vocab - 2  # value tokens only
    scores = embedding_qk_circuit(model, 0, 0, scale, pattern=False)[:n, :n]  # [query b, key a]
    return (scores - scores.diagonal()[:, None]).T


def miss_rate_by_token_score(
    sweep: SweepResult,
    gap: Float[Tensor, "a b"],
    positions: Sequence[int],
    n_bins: int = 4,
    decoy: Optional[bool] = None,
) -> pd.DataFrame:
    """Misclassified fraction per position for value pairs (a, b) binned by ``gap`` quantile (bin 1: least alike).

    ``decoy`` selects the inputs: None takes all of them, False only those without a decoy, True
    only those with one. A bin with no selected input gives NaN.
    """
    n_bins = check_int("n_bins", n_bins, 2, maximum=MAX_SIZE)
    if decoy is not None and not isinstance(decoy, bool):
        raise ValueError(f"decoy must be None, True or False, got {decoy!r}")
    if not isinstance(sweep, SweepResult):
        raise ValueError(f"sweep must be a SweepResult (single_mismatch_sweep), got {type(sweep).__name__}")
    positions = check_second_half(positions)
    gap = check_floats("gap", gap).float().cpu()
    needed = int(max(sweep.values_a.max(), sweep.values_b.max())) + 1
    if gap.ndim != 2 or min(gap.shape) < needed:
        raise ValueError(
            f"gap must be a (value, value) matrix covering values 0..{needed - 1} (token_score_gap), got shape "
            f"{tuple(gap.shape)}"
        )
    values = gap[sweep.values_a, sweep.values_b]
    edges = torch.quantile(values, torch.linspace(0, 1, n_bins + 1)[1:-1])
    bins = torch.bucketize(values, edges)
    rows = {}
    for p in positions:
        i = sweep.index(p)
        missed = sweep.misclassified[i]  # [base, pair]
        keep = torch.ones_like(missed) if decoy is None else sweep.decoy[i] == decoy
        rows[p] = {
            f"bin {k + 1}": (
                missed[keep & (bins == k)].float().mean().item() if (keep & (bins == k)).any() else float("nan")
            )
            for k in range(n_bins)
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "position"
    return table
