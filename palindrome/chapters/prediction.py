"""Chapter 12: the explanation as code, in levels, scored against the model; and edits of H0.0's mismatch signal.

Method. Each *level* maps tokens to a prediction of the model's answer, written from the
mechanism the earlier chapters establish, never fitted to the model's outputs or to the labels:

* ``"ideal"``: a perfect palindrome check (all ten mirror pairs compared);
* ``"words"``: the mechanism in words: a broken pair is caught unless it is one of chapter 8's two
  blind pairs (position 20 is caught, by H1.1: chapter 9); ``"words + decoys"`` also lets
  a decoy (an earlier copy of the new value, chapter 8) hide a broken pair;
* ``"circuit"``: a reconstruction from the weights. Layer 0's residual at a position is
  ``W_E[token] + W_pos[position]``; both layer-0 heads attend by their QK circuits and write
  through their OV circuits, with the layer-0 LayerNorm as one constant scale (chapter 2). Layer
  1 reads token, position and both layer-0 heads' outputs; END's attention in H1.0 and H1.1 comes
  from their K-composition with the *mean* END query, with layer 1's LayerNorm as a constant
  scale per position; their votes through the OV circuits and the END residual's own direct path
  are summed into a logit difference, with the final LayerNorm as a constant. The four
  approximations (constant layer-0, layer-1 and final scales, the mean query) are the only
  departures from the model: refining all four (``REFINEMENTS``, each the exact quantity of the
  input at hand, no data needed) gives the model back exactly, which the tests check;
* ``"position scale"``: the circuit with the layer-0 scale held at its reference mean *per position*
  (``POSITION_SCALE``), the control between chapter 2's one constant and the exact scale;
* ``"refined"``: the circuit with the one approximation refined that costs most on a development
  set (``development_inputs``, disjoint from every evaluation set).

Besides agreement, each level is scored by the model's own errors it reproduces (``own_errors``) and,
on the same single mismatches, by the model's misses it reproduces and the misses it adds
(``miss_overlap``). Set (f) (``fresh_tokens``) is held out from every choice: no level was built or
chosen on it, and ``fresh_overlaps`` checks that it shares no sequence with the other inputs.

The activation statistics (mean LayerNorm scales, mean END query) come from ``reference_data()``, a
batch of the training distribution with its own seed, checked to share no sequence with the
evaluation sets (``overlap``).

Every level that runs the weights runs on the fast path (``palindrome.fast``): layer 0 is its
table lookup (the constant-scale tables for the circuit level, ``EndOnlyForward.tables(ln0_scale)``),
layer 1 is the circuit level's own (``_Layer1``) or the model's (``logits_from_layer0``); the model
and every level share one layer-0 pass per chunk and kind of scale (``logit_diffs``). The edits
are added to the fast path's residual stream after layer 0, and H0.0's output comes from its tables.

The mismatch direction of a second-half position p is the mean difference of H0.0's output at p
between inputs with the pair at p broken and the same palindromes intact (``mismatch_directions``).
An edit adds ``strength`` times that mean difference to the residual stream at p after layer 0
(``steered_p_palindrome``): strength 1 moves an intact position by exactly the typical
broken-minus-intact shift, and -1 removes it from a broken one. The other analysis's "difference
vectors" ``(W_pos[p] / s_p - W_pos[21-p] / s_{21-p}) W_OV^{0.0}`` are computed for comparison.
Controls: ``RANDOM_DRAWS`` random directions as long as the shared one (``random_flip_rates``), and
the edits with one layer-1 head's attention pattern, values or output computed from the unedited
input (``head_edit_table``, ``layer1_logits_held``), which credit a reading to one head.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Iterable, Mapping, Optional, Sequence

import einops
import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from palindrome.chapters.adversarial import HANDMADE_ADVERSARIAL
from palindrome.chapters.blindspots import N_BASES, PAIR_BASES, PAIR_SEED, SWEEP_SEED, pair_mismatch_tokens
from palindrome.circuits import LNScaleStats, scale_values
from palindrome.constants import (
    END_POS,
    HALF_LENGTH,
    MAX_VALUE,
    MIRROR,
    N_HEADS,
    NOT_PALINDROME,
    PALINDROME,
    SECOND_HALF,
    SEQ_LEN,
)
from palindrome.data import PalindromeDataset
from palindrome.fast import (
    DEFAULT_BATCH_SIZE,
    EndOnlyForward,
    InferenceTables,
    check_architecture,
    fast_end_logits,
    map_chunks,
)
from palindrome.findings import Findings, slug
from palindrome.hooks import FINAL_SCALE, HookFn, activations, ln_scale_name
from palindrome.inputs import (
    broken_and_bases,
    broken_at_each_position,
    check_second_half,
    decoy_masks,
    random_palindromes,
    single_mismatch_tokens,
)
from palindrome.stats import mcnemar_exact
from palindrome.tokens import (
    MAX_SEED,
    MAX_SIZE,
    TokensLike,
    check_floats,
    check_int,
    check_positive,
    check_seed,
    check_type,
    mismatch_mask,
    validate_tokens,
)

# --- the chapter's fixed inputs ----------------------------------------------------------------
REFERENCE_SIZE: int = 2000
"""The reference batch ``PalindromeDataset(REFERENCE_SIZE, seed=REFERENCE_SEED)`` for activation statistics."""
REFERENCE_SEED: int = 12
NATURAL_SIZE: int = 20_000
"""Input set (a), a fresh sample of the training distribution: ``PalindromeDataset(NATURAL_SIZE,
seed=NATURAL_SEED)``."""
NATURAL_SEED: int = 13
PALINDROME_SIZE: int = 5000
"""Input set (d): random palindromes (``inputs.random_palindromes``, seed ``PALINDROME_SEED``)."""
PALINDROME_SEED: int = 14
DEVELOPMENT_BASES: int = 100
"""The development set that chooses the refinement: ``broken_at_each_position(DEVELOPMENT_BASES, DEVELOPMENT_SEED)``
(single mismatches on fresh bases) plus the reference batch."""
DEVELOPMENT_SEED: int = 15
DIRECTION_BASES: int = 200
"""Palindromes per position whose broken and intact copies define the mismatch direction."""
DIRECTION_SEED: int = 1600
"""Position p's direction palindromes use seed ``DIRECTION_SEED + p`` (``position_seeds``)."""
STEER_BASES: int = 200
"""Palindromes per position edited by the steering experiments (seed ``STEER_SEED + p``)."""
STEER_SEED: int = 1700
"""At least ``SEED_GAP`` above ``DIRECTION_SEED``, so no position's edited palindromes build any position's
direction."""
SEED_GAP: int = 100
"""Per-position seeds of one experiment span ``seed + 11 .. seed + 20``; experiments' base seeds differ by at least
this."""
CONTROL_SEED: int = 1800
"""Seed of the random control directions (``random_directions``)."""
RANDOM_DRAWS: int = 100
"""Random directions drawn for the control (``random_control_table``): each is added at every position."""
HELD_PARTS: tuple[str, ...] = ("attention", "values", "output")
"""What of one layer-1 head an edit can leave clean (``head_edit_table``): its attention pattern, the values it
reads, or both (its whole output)."""
STRENGTHS: tuple[float, ...] = (0.5, 1.0, 2.0)
"""Edit strengths, in units of the mean broken-minus-intact shift of H0.0's output at the position."""


def position_seeds(seed: int) -> dict[int, int]:
    """The seed of each second-half position's batch in an experiment with base seed ``seed``: ``seed + p``."""
    seed = check_int(
        "seed", seed, 0, f" (each position adds up to {max(SECOND_HALF)} to it)", maximum=MAX_SEED - max(SECOND_HALF)
    )
    return {p: seed + p for p in SECOND_HALF}


if not abs(STEER_SEED - DIRECTION_SEED) >= SEED_GAP > max(SECOND_HALF) - min(SECOND_HALF):
    raise ValueError(
        "DIRECTION_SEED and STEER_SEED must differ by at least SEED_GAP, which must exceed the span of positions"
    )

BLIND_PAIRS: tuple[int, ...] = (17, 19)
"""Chapter 8's blind pairs (second-half positions), the one thing the words level is told."""
LEVELS: tuple[str, ...] = ("ideal", "words", "words + decoys", "circuit", "position scale", "refined")
"""The levels of the explanation, from the task itself to the weights."""
CIRCUIT_LEVELS: tuple[str, ...] = ("circuit", "position scale", "refined")
"""Levels that predict a logit difference, not only a decision."""
REFINEMENTS: tuple[str, ...] = ("ln0", "ln1", "final", "query")
"""Approximations of the circuit level that can be replaced by the exact quantity, computed from the weights:
the layer-0 LayerNorm scale, the layer-1 LayerNorm scale, the final LayerNorm scale, END's layer-1 query."""
POSITION_SCALE: str = "ln0_position"
"""A half refinement of "ln0": the layer-0 scale held at its reference mean *per position* (the scale of the
difference vectors' p-hat), between chapter 2's one constant and the exact scale; the "position scale" level."""
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


def check_level(level: str) -> str:
    """Return ``level`` or raise ValueError naming the valid levels."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return level


def check_refinements(refine: Iterable[str]) -> tuple[str, ...]:
    """Return ``refine`` as a tuple of known refinements (``REFINEMENTS`` or ``POSITION_SCALE``), or raise
    ValueError."""
    valid = REFINEMENTS + (POSITION_SCALE,)
    if isinstance(refine, str):
        raise ValueError(f"refine must be a collection of names from {valid}, not the string {refine!r}")
    refine = tuple(refine)
    bad = [r for r in refine if r not in valid]
    if bad:
        raise ValueError(f"unknown refinement(s) {bad}; valid: {valid}")
    if "ln0" in refine and POSITION_SCALE in refine:
        raise ValueError(f"refine names two layer-0 scales, 'ln0' (exact) and {POSITION_SCALE!r}: keep one")
    return refine


def layer0_kind(refine: Iterable[str]) -> str:
    """Which layer-0 scale a set of refinements runs with: "exact", "position" (its mean per position) or
    "constant"."""
    refine = check_refinements(refine)
    return "exact" if "ln0" in refine else "position" if POSITION_SCALE in refine else "constant"


def check_model(model: HookedTransformer) -> HookedTransformer:
    """Raise ValueError unless ``model`` has the palindrome classifier's shape (2 layers of 2 heads, 22 positions, 33
    tokens)."""
    check_architecture(model)
    cfg = model.cfg
    want = {"n_heads": N_HEADS, "n_ctx": 2 * HALF_LENGTH + 2, "d_vocab": MAX_VALUE + 3}
    wrong = [f"{k}={getattr(cfg, k)} (need {v})" for k, v in want.items() if getattr(cfg, k) != v]
    if wrong:
        raise ValueError("chapter 12 needs the palindrome classifier's shape; this model has " + ", ".join(wrong))
    return model


def _check_strength(strength: object) -> float:
    if (
        isinstance(strength, bool)
        or not isinstance(strength, Real)
        or not torch.isfinite(torch.tensor(float(strength)))
    ):
        raise ValueError(
            f"strength must be a finite number (multiples of the mean broken-minus-intact shift), got {strength!r}"
        )
    return float(strength)


# --- inputs ------------------------------------------------------------------------------------


def reference_data() -> PalindromeDataset:
    """The named reference batch of the training distribution that every activation statistic comes from."""
    return PalindromeDataset(REFERENCE_SIZE, seed=REFERENCE_SEED)


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


def development_inputs() -> Int[Tensor, "batch seq"]:
    """Inputs that choose the refinement: the reference batch and fresh single mismatches (no evaluation set)."""
    _, broken = broken_at_each_position(DEVELOPMENT_BASES, DEVELOPMENT_SEED)
    return torch.cat([reference_data().toks, broken.flatten(0, 1)])


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
    others = {"reference batch": reference_data().toks, "development inputs": development_inputs()}
    others |= {name: toks for name, toks in sets.items() if name != fresh}
    return {name: overlap(sets[fresh], toks) for name, toks in others.items()}


def layer0_scale_table(model: HookedTransformer) -> Float[Tensor, "seq vocab"]:
    """The exact layer-0 LayerNorm scale of every (position, token) row, from W_pos and W_E alone (what "ln0"
    refines)."""
    check_model(model)
    with torch.inference_mode():
        resid = model.W_pos[:, None, :] + model.W_E[None, :, :]
        centred = resid - resid.mean(-1, keepdim=True)
        return (centred.square().mean(-1) + model.cfg.eps).sqrt().cpu()


# --- the reference statistics ------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceStats:
    """The activation statistics the circuit level uses, from the reference batch."""

    ln0_scale: float
    """Mean layer-0 LayerNorm scale over every position (chapter 2's constant)."""
    ln0_scale_by_position: Float[Tensor, " seq"]
    """Mean layer-0 LayerNorm scale at each position (for the other analysis's difference vectors)."""
    ln1_scale: Float[Tensor, " seq"]
    """Mean layer-1 LayerNorm scale at each position."""
    final_scale: float
    """Mean final LayerNorm scale at END."""
    end_query: Float[Tensor, "head d_head"]
    """Mean query of each layer-1 head at END."""

    def table(self) -> pd.DataFrame:
        """The statistics as printable rows."""
        return pd.DataFrame(
            {
                "value": [
                    self.ln0_scale,
                    self.ln1_scale[1:END_POS].mean().item(),
                    self.ln1_scale[END_POS].item(),
                    self.final_scale,
                    self.end_query[0].norm().item(),
                    self.end_query[1].norm().item(),
                ]
            },
            index=[
                "layer-0 scale (all positions)",
                "layer-1 scale (mean over 1..20)",
                "layer-1 scale at END",
                "final scale at END",
                "|mean END query| H1.0",
                "|mean END query| H1.1",
            ],
        )


def reference_stats(model: HookedTransformer, toks: Optional[TokensLike] = None) -> ReferenceStats:
    """Mean LayerNorm scales and mean END query of the layer-1 heads over ``toks`` (default: ``reference_data()``), from
    one run."""
    check_model(model)
    toks = reference_data().toks if toks is None else validate_tokens(toks)
    q_name = get_act_name("q", 1)
    acts = activations(model, toks, [ln_scale_name(0), ln_scale_name(1), q_name, FINAL_SCALE])
    ln0 = LNScaleStats.from_scales(scale_values(acts[ln_scale_name(0)]))
    return ReferenceStats(
        ln0_scale=ln0.overall_mean,
        ln0_scale_by_position=ln0.mean,
        ln1_scale=LNScaleStats.from_scales(scale_values(acts[ln_scale_name(1)])).mean,
        final_scale=acts[FINAL_SCALE][:, END_POS, 0].mean().item(),
        end_query=acts[q_name][:, END_POS].mean(0).detach().cpu(),
    )


# --- the levels --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairStatus:
    """Which mirror pairs of each input are broken, and where a decoy sits at a second-half position."""

    broken: Bool[Tensor, "batch seq"]
    """``tokens.mismatch_mask``."""
    decoy: Bool[Tensor, "batch position"]
    """``inputs.decoy_masks`` at every second-half position."""

    @classmethod
    def of(cls, toks: TokensLike) -> "PairStatus":
        """Measure both on ``toks``."""
        toks = validate_tokens(toks).cpu()
        return cls(mismatch_mask(toks), decoy_masks(toks))

    def broken_second_half(self) -> Bool[Tensor, "batch position"]:
        """Broken pairs, by second-half position."""
        return self.broken[:, list(SECOND_HALF)]

    def decoy_at_broken(self) -> Bool[Tensor, " batch"]:
        """Whether some broken pair has a decoy."""
        return (self.broken_second_half() & self.decoy).any(-1)


def words_decisions(
    toks: TokensLike, decoys: bool = False, status: Optional[PairStatus] = None
) -> Bool[Tensor, " batch"]:
    """The mechanism in words: palindrome unless a pair outside ``BLIND_PAIRS`` is broken (and, with ``decoys``, not
    hidden by a decoy)."""
    status = PairStatus.of(toks) if status is None else status
    seen = status.broken_second_half()
    if decoys:
        seen = seen & ~status.decoy
    checked = torch.tensor([p not in BLIND_PAIRS for p in SECOND_HALF])
    return ~(seen & checked).any(-1)


@dataclass(frozen=True)
class _Layer1:
    """The token-independent pieces of the circuit level's layer 1 and readout, on the fast path's centred residuals."""

    tables: InferenceTables
    inv_ln1: Float[Tensor, " seq"]
    mean_key_dir: Float[Tensor, " head_d_model"]
    final_scale: float
    u: Float[Tensor, " d_model"]
    b_u: float

    @classmethod
    def build(cls, fc: EndOnlyForward, tables: InferenceTables, stats: ReferenceStats) -> "_Layer1":
        m = fc.model
        device = m.W_E.device
        # The mean END query pulled back through W_K: score(key) = normed_key . key_dir (q . b_K is the
        # same for every key); on centred residuals c the keys are scale * c * w (+ b, the same for every key).
        key_dir = einops.einsum(m.W_K[1], stats.end_query.to(device), "h d e, h e -> h d") / fc.attn_scales[1]
        return cls(
            tables=tables,
            inv_ln1=(1 / stats.ln1_scale).to(device),
            mean_key_dir=key_dir.flatten() * m.blocks[1].ln1.w.repeat(m.cfg.n_heads),
            final_scale=stats.final_scale,
            u=m.W_U[:, PALINDROME] - m.W_U[:, NOT_PALINDROME],
            b_u=(m.b_U[PALINDROME] - m.b_U[NOT_PALINDROME]).item(),
        )

    def logit_diff(
        self, fc: EndOnlyForward, resid: Float[Tensor, "batch seq d_model"], refine: frozenset[str]
    ) -> Float[Tensor, " batch"]:
        """Layer 1 and the readout on centred residuals, with the approximations not in ``refine``."""
        m, t = fc.model, self.tables
        batch, seq, d_model = resid.shape
        n_heads = m.cfg.n_heads
        if "ln1" in refine:
            scale = (resid.square().mean(-1) + fc.eps).rsqrt()  # [batch, seq]: 1 / LayerNorm scale
        else:
            scale = self.inv_ln1.expand(batch, seq)
        end = resid[:, -1]
        if "query" in refine:
            key_dir = torch.addmm(t.b_key, end * scale[:, -1:], t.W_key)
        else:
            key_dir = self.mean_key_dir.expand(batch, -1)
        scores = torch.bmm(key_dir.reshape(batch, n_heads, d_model), resid.transpose(1, 2)) * scale[:, None]
        weights = scores.softmax(-1) * scale[:, None]  # [batch, head, key]
        final = torch.addmm(end, torch.bmm(weights, resid).flatten(1), t.W_out) + t.b_out
        ln = m.ln_final
        if "final" in refine:
            final = F.layer_norm(final, (d_model,), ln.w, ln.b, fc.eps)
        else:
            final = (final - final.mean(-1, keepdim=True)) / self.final_scale * ln.w + ln.b
        return final @ self.u + self.b_u


def logit_diffs(
    model: HookedTransformer,
    toks: TokensLike,
    stats: ReferenceStats,
    variants: Mapping[str, Iterable[str]],
    include_model: bool = True,
    progress: Optional[str] = None,
) -> dict[str, Float[Tensor, " batch"]]:
    """The model's logit difference (key "model") and each circuit variant's (name -> refinements), on the fast path.

    Layer 0 is the fast path's table lookup (``fast.EndOnlyForward.centred_layer0``), with the
    constant layer-0 scale unless "ln0" (exact) or ``POSITION_SCALE`` (mean per position) is refined;
    it runs once per chunk and kind of scale (``layer0_kind``), shared by every variant and the model.
    """
    check_model(model)
    check_type("stats", stats, ReferenceStats, "prediction.reference_stats(model)")
    if not isinstance(variants, Mapping):
        raise ValueError(
            f"variants must be a dict of names to refinements (from {REFINEMENTS}), got {type(variants).__name__}"
        )
    variants = {name: frozenset(check_refinements(r)) for name, r in variants.items()}
    fc = EndOnlyForward(model)
    toks = fc.validate(toks)
    exact = fc.inference_tables()
    layer1 = _Layer1.build(fc, exact, stats)
    scales = {"exact": None, "constant": stats.ln0_scale, "position": stats.ln0_scale_by_position}
    kinds = {layer0_kind(r) for r in variants.values()} | ({"exact"} if include_model else set())
    tables = {kind: exact if kind == "exact" else fc.inference_tables(scales[kind]) for kind in kinds}

    def run(chunk: Tensor) -> Tensor:
        resid = {kind: fc.centred_layer0(tables[kind], chunk, scales[kind]) for kind in kinds}
        out = []
        if include_model:
            logits = fc.logits_from_layer0(exact, resid["exact"])
            out.append(logits[:, PALINDROME] - logits[:, NOT_PALINDROME])
        out += [layer1.logit_diff(fc, resid[layer0_kind(r)], r) for r in variants.values()]
        return torch.stack(out)

    results = torch.cat(map_chunks(run, toks.split(DEFAULT_BATCH_SIZE), progress), dim=1).float().cpu()
    names = (("model",) if include_model else ()) + tuple(variants)
    return dict(zip(names, results, strict=True))


def circuit_logit_diff(
    model: HookedTransformer,
    toks: TokensLike,
    stats: ReferenceStats,
    refine: Iterable[str] = (),
    progress: bool = False,
) -> Float[Tensor, " batch"]:
    """The circuit level's logit difference (palindrome minus not palindrome), with the named approximations refined."""
    return logit_diffs(
        model, toks, stats, {"circuit": refine}, include_model=False, progress="circuit level" if progress else None
    )["circuit"]


def model_logit_diff(model: HookedTransformer, toks: TokensLike) -> Float[Tensor, " batch"]:
    """The model's own logit difference (palindrome minus not palindrome) at END, on the fast path."""
    logits = fast_end_logits(model, toks)
    return (logits[:, PALINDROME] - logits[:, NOT_PALINDROME]).float().cpu()


@dataclass(frozen=True)
class Explanation:
    """The levels ready to run: the model, the reference statistics and the refinement the development set chose."""

    model: HookedTransformer
    stats: ReferenceStats
    refined: tuple[str, ...]

    def refinements(self, level: str) -> tuple[str, ...]:
        """What a circuit level refines: nothing ("circuit"), the per-position layer-0 scale, or the chosen
        refinement."""
        if check_level(level) not in CIRCUIT_LEVELS:
            raise ValueError(f"only the levels {CIRCUIT_LEVELS} predict a logit difference, got {level!r}")
        return {"circuit": (), "position scale": (POSITION_SCALE,), "refined": self.refined}[level]

    def logit_diff(self, toks: TokensLike, level: str) -> Float[Tensor, " batch"]:
        """A circuit level's predicted logit difference (palindrome minus not palindrome)."""
        return circuit_logit_diff(self.model, toks, self.stats, self.refinements(level))

    def decisions(self, toks: TokensLike, level: str, status: Optional[PairStatus] = None) -> Bool[Tensor, " batch"]:
        """Whether the level calls each input a palindrome (``status``: the inputs' ``PairStatus``, if already
        measured)."""
        level = check_level(level)
        if level in CIRCUIT_LEVELS:
            return self.logit_diff(toks, level) > 0
        status = PairStatus.of(toks) if status is None else status
        if level == "ideal":
            return ~status.broken.any(-1)
        return words_decisions(toks, decoys=level == "words + decoys", status=status)


def approximation_costs(
    model: HookedTransformer, stats: ReferenceStats, toks: Optional[TokensLike] = None
) -> pd.Series:
    """Disagreement with the model on the development inputs when each approximation alone is refined (and none,
    all, and the layer-0 scale only per position)."""
    check_model(model)
    check_type("stats", stats, ReferenceStats, "prediction.reference_stats(model)")
    toks = development_inputs() if toks is None else validate_tokens(toks)
    rows = {"none": ()} | {r: (r,) for r in REFINEMENTS} | {POSITION_SCALE: (POSITION_SCALE,), "all": REFINEMENTS}
    lds = logit_diffs(model, toks, stats, rows)
    called = lds["model"] > 0
    out = {name: ((lds[name] > 0) != called).float().mean().item() for name in rows}
    return pd.Series(out, name="disagreement with the model")


def _check_costs(costs: object) -> pd.Series:
    check_type("costs", costs, pd.Series, "prediction.approximation_costs(model, stats)")
    missing = [r for r in REFINEMENTS if r not in costs.index]
    if missing:
        raise ValueError(
            f"costs must have a row for every refinement {REFINEMENTS} (approximation_costs), missing {missing}"
        )
    check_floats("costs", costs[list(REFINEMENTS)].tolist())
    return costs


def choose_refinement(costs: pd.Series) -> tuple[str, ...]:
    """The single refinement that lowers the development disagreement most (the approximation that costs most)."""
    single = _check_costs(costs)[list(REFINEMENTS)]
    return (str(single.idxmin()),)


def explanation(model: HookedTransformer, progress: bool = False) -> Explanation:
    """The levels for ``model``: reference statistics from ``reference_data()``, refinement chosen on
    ``development_inputs()``."""
    stats = reference_stats(check_model(model))
    return Explanation(model, stats, choose_refinement(approximation_costs(model, stats)))


# --- scoring the levels ------------------------------------------------------------------------


MIN_CORRELATION_INPUTS: int = 100
"""Input sets smaller than this (the four hand-made examples) get no correlation: a handful of points says nothing."""


@dataclass(frozen=True)
class Scores:
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


def score(expl: Explanation, sets: Optional[dict[str, TokensLike]] = None, progress: bool = True) -> Scores:
    """Run the model and every level once on each input set (default ``input_sets()``), all sets in one fast-path
    pass."""
    check_type("expl", expl, Explanation, "prediction.explanation(model)")
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
    return Scores(model_ld, level_ld, calls, shapes, {name: st.decoy_at_broken() for name, st in status.items()})


def decoy_catch_rate(scores: Scores) -> float:
    """Fraction of single mismatches at a checked pair (not ``BLIND_PAIRS``) with a decoy there that the model
    catches."""
    check_type("scores", scores, Scores, "prediction.score(expl)")
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


def disagreements(scores: Scores, name: str, levels: Sequence[str]) -> pd.DataFrame:
    """Where levels disagree with the model on input set ``name``: counts by the model's call and by decoys at broken
    pairs."""
    check_type("scores", scores, Scores, "prediction.score(expl)")
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


def own_errors(scores: Scores) -> pd.DataFrame:
    """Per input set (columns): the model's own errors (its call differs from the truth, the ideal level's call), and
    how many of them each level (rows) reproduces (makes the same call)."""
    check_type("scores", scores, Scores, "prediction.score(expl)")
    out = {}
    for name, calls in scores.calls.items():
        model_calls = scores.model_ld[name] > 0
        errors = model_calls != calls["ideal"]
        out[name] = {"model errors": int(errors.sum())} | {
            level: int((errors & (calls[level] == model_calls)).sum()) for level in LEVELS
        }
    return pd.DataFrame(out)


def miss_overlap(
    scores: Scores, positions: Sequence[int], levels: Sequence[str] = LEVELS[1:], name: str = INPUT_SETS[1]
) -> pd.DataFrame:
    """On the same single mismatches of set ``name`` broken at ``positions``: the model's misses, how many of them each
    level reproduces, and how many misses of its own (the model catches them) it adds."""
    check_type("scores", scores, Scores, "prediction.score(expl)")
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


# --- the mismatch direction and edits of it ----------------------------------------------------


EDIT_HOOK: str = get_act_name("resid_post", 0)
"""Where an edit is added: the residual stream after layer 0, which every layer-1 reader sees (``add_at`` hooks it)."""


def h00_output(model: HookedTransformer, toks: TokensLike) -> Float[Tensor, "batch seq d_model"]:
    """H0.0's output (z @ W_O) at every position, on the fast path's layer-0 tables
    (``fast.EndOnlyForward.head_output``)."""
    return EndOnlyForward(model).head_output(toks, 0).cpu()


@dataclass(frozen=True)
class MismatchDirections:
    """Per second-half position: the mean broken-minus-intact shift of H0.0's output there."""

    shift: Float[Tensor, "position d_model"]
    change_size: Float[Tensor, " position"]
    """Mean over the inputs of the length of each input's own broken-minus-intact change."""
    positions: tuple[int, ...] = SECOND_HALF
    changes: Optional[Float[Tensor, "position input d_model"]] = None
    """Each input's own broken-minus-intact change (``projection_table``)."""

    def cosine(self) -> Float[Tensor, "position position"]:
        """Cosine similarity between the positions' shifts."""
        return cosine_matrix(self.shift)

    def vector(self, position: int) -> Float[Tensor, " d_model"]:
        """The shift at one swept position."""
        (position,) = check_second_half([position])
        if position not in self.positions:
            raise ValueError(f"position must be one of {self.positions}, got {position!r}")
        return self.shift[self.positions.index(position)]


def cosine_matrix(vectors: Float[Tensor, "n d"]) -> Float[Tensor, "n n"]:
    """Pairwise cosine similarity of the rows."""
    vectors = check_floats("vectors", vectors)
    if vectors.ndim != 2 or not len(vectors):
        raise ValueError(
            f"vectors must be a non-empty 2-d tensor (one vector per row), got shape {tuple(vectors.shape)}"
        )
    unit = F.normalize(vectors.float(), dim=-1)
    return unit @ unit.T


def mismatch_directions(
    model: HookedTransformer, n_bases: int = DIRECTION_BASES, seed: int = DIRECTION_SEED
) -> MismatchDirections:
    """Mean of H0.0's output at p on palindromes broken at p minus on the same palindromes intact, for every second-half
    p."""
    check_model(model)
    shifts, sizes, changes = [], [], []
    for p, p_seed in position_seeds(seed).items():
        broken, bases = broken_and_bases(n_bases, p_seed, p)
        change = h00_output(model, broken)[:, p] - h00_output(model, bases)[:, p]
        shifts.append(change.mean(0))
        sizes.append(change.norm(dim=-1).mean())
        changes.append(change)
    return MismatchDirections(torch.stack(shifts), torch.stack(sizes), changes=torch.stack(changes))


def difference_vectors(model: HookedTransformer, stats: ReferenceStats) -> Float[Tensor, "position d_model"]:
    """The other analysis's difference vectors (W_pos[p]/s_p - W_pos[21-p]/s_{21-p}) W_OV^{0.0}, s the mean layer-0
    scale per position."""
    check_model(model)
    check_type("stats", stats, ReferenceStats, "prediction.reference_stats(model)")
    p_hat = model.W_pos / stats.ln0_scale_by_position.to(model.W_pos.device)[:, None]
    second = list(SECOND_HALF)
    mirror = [MIRROR[p] for p in SECOND_HALF]
    with torch.inference_mode():
        return ((p_hat[second] - p_hat[mirror]) @ model.W_V[0, 0] @ model.W_O[0, 0]).detach().cpu()


WELL_CHECKED: tuple[int, ...] = (11, 12, 13, 14, 15, 16, 18)
"""Chapter 8's seven well-checked second-half positions (neither blind nor the backup position 20)."""


def shared_direction(
    directions: MismatchDirections, positions: Sequence[int] = WELL_CHECKED
) -> Float[Tensor, " d_model"]:
    """The mean of the unit shifts at ``positions``, rescaled to their median shift length (one typical shift)."""
    check_type("directions", directions, MismatchDirections, "prediction.mismatch_directions(model)")
    positions = check_second_half(positions)
    shifts = torch.stack([directions.vector(p) for p in positions])
    unit = F.normalize(F.normalize(shifts, dim=-1).mean(0), dim=0)
    return unit * shifts.norm(dim=-1).median()


def random_directions(
    length: float, d_model: int, seed: int = CONTROL_SEED, n_draws: int = RANDOM_DRAWS
) -> Float[Tensor, "draw d_model"]:
    """``n_draws`` random centred directions, each of length ``length`` (the control for the edits)."""
    length = check_positive("length", length)
    vectors = torch.randn(
        check_int("n_draws", n_draws, 1, maximum=MAX_SIZE),
        check_int("d_model", d_model, 2, maximum=MAX_SIZE),
        generator=torch.Generator().manual_seed(check_seed(seed)),
    )
    vectors = vectors - vectors.mean(-1, keepdim=True)  # layer 1's LayerNorm removes the mean of any edit
    return F.normalize(vectors, dim=-1) * length


def add_at(position: int, vector: Float[Tensor, " d_model"]) -> HookFn:
    """A hook adding ``vector`` to the residual stream at ``position`` (for ``EDIT_HOOK``; the reference the fast edit
    is tested against)."""
    position = check_int("position", position, 0, " (a position of the sequence)", maximum=SEQ_LEN - 1)
    vector = check_floats("vector", vector)

    def hook(resid: Tensor, hook: HookPoint) -> Tensor:
        resid = resid.clone()
        resid[:, position] += vector.to(resid)
        return resid

    return hook


class _Editor:
    """One batch's residual stream after layer 0 (fast path), computed once and edited many times."""

    def __init__(self, model: HookedTransformer, toks: TokensLike) -> None:
        self.fc = EndOnlyForward(check_model(model))
        self.tables = self.fc.inference_tables()
        with torch.inference_mode():
            self.resid = self.fc.centred_layer0(self.tables, self.fc.validate(toks))

    @torch.inference_mode()
    def p_palindrome(
        self, position: int, vector: Float[Tensor, " d_model"], strength: float
    ) -> Float[Tensor, " batch"]:
        """P(palindrome) with ``strength`` times ``vector`` added at ``position`` after layer 0 (exact: layer 1 reads it
        centred)."""
        return self._p(self.edited(position, vector, strength))

    def edited(self, position: int, vector: Float[Tensor, " d_model"], strength: float) -> Float[Tensor, "batch seq d"]:
        """The residual stream with ``strength`` times ``vector`` (centred) added at ``position``."""
        (position,) = check_second_half([position])
        strength = _check_strength(strength)
        d_model = self.fc.model.cfg.d_model
        vector = torch.as_tensor(vector).float()
        if vector.shape != (d_model,) or not torch.isfinite(vector).all():
            raise ValueError(f"vector must be a finite vector of shape ({d_model},), got {tuple(vector.shape)}")
        resid = self.resid.clone()
        edit = strength * vector.to(resid)
        resid[:, position] += edit - edit.mean()  # layer 1's LayerNorm centres it anyway
        return resid

    @torch.inference_mode()
    def logit_diff(self, position: int, vector: Float[Tensor, " d_model"], strength: float) -> Float[Tensor, " batch"]:
        """The palindrome-minus-not logit difference with ``strength`` times ``vector`` added at ``position``."""
        logits = self.fc.logits_from_layer0(self.tables, self.edited(position, vector, strength))
        return (logits[:, PALINDROME] - logits[:, NOT_PALINDROME]).cpu()

    def _p(self, resid: Float[Tensor, "batch seq d_model"]) -> Float[Tensor, " batch"]:
        return self.fc.logits_from_layer0(self.tables, resid).softmax(-1)[:, PALINDROME].cpu()

    @torch.inference_mode()
    def p_palindrome_held(
        self, position: int, vector: Float[Tensor, " d_model"], strength: float, head: int, part: str
    ) -> Float[Tensor, " batch"]:
        """P(palindrome) after the edit, with layer-1 head ``head``'s ``part`` (``HELD_PARTS``) computed from the clean
        residual stream."""
        head = check_int("head", head, 0, " (a layer-1 head)", maximum=self.fc.model.cfg.n_heads - 1)
        if part not in HELD_PARTS:
            raise ValueError(f"part must be one of {HELD_PARTS}, got {part!r}")
        logits = layer1_logits_held(
            self.fc, self.tables, self.resid, self.edited(position, vector, strength), head, part
        )
        return logits.softmax(-1)[:, PALINDROME].cpu()


def layer1_logits_held(
    fc: EndOnlyForward,
    tables: InferenceTables,
    clean: Float[Tensor, "batch seq d_model"],
    edited: Float[Tensor, "batch seq d_model"],
    head: int,
    part: str,
) -> Float[Tensor, "batch 2"]:
    """Layer 1 and the readout on the edited centred residuals (``EndOnlyForward.logits_from_layer0``), except that
    head ``head`` takes its attention pattern, its values or both (``part``) from the clean ones."""
    check_type("fc", fc, EndOnlyForward, "fast.EndOnlyForward(model)")
    check_type("tables", tables, InferenceTables, "fc.inference_tables()")
    if part not in HELD_PARTS:
        raise ValueError(f"part must be one of {HELD_PARTS}, got {part!r}")
    m = fc.model
    n_heads, d_model = m.cfg.n_heads, m.cfg.d_model
    head = check_int("head", head, 0, " (a layer-1 head)", maximum=n_heads - 1)
    clean, edited = check_floats("clean", clean), check_floats("edited", edited)
    if clean.shape != edited.shape or clean.ndim != 3 or clean.shape[-1] != d_model:
        raise ValueError(
            f"clean and edited must be residual streams of one shape [batch, seq, {d_model}], got "
            f"{tuple(clean.shape)} and {tuple(edited.shape)}"
        )

    def pattern_and_values(resid: Tensor) -> tuple[Tensor, Tensor]:
        batch = resid.shape[0]
        scale = (resid.square().mean(-1) + fc.eps).rsqrt()  # [batch, seq]: 1 / LayerNorm scale
        key_dir = torch.addmm(tables.b_key, resid[:, -1] * scale[:, -1:], tables.W_key)
        scores = torch.bmm(key_dir.view(batch, n_heads, d_model), resid.transpose(1, 2)) * scale[:, None]
        return scores.softmax(-1), resid * scale[..., None]  # [batch, head, key], [batch, key, d_model]

    (pattern, values), (clean_pattern, clean_values) = pattern_and_values(edited), pattern_and_values(clean)
    if part in ("attention", "output"):
        pattern = torch.cat([pattern[:, :head], clean_pattern[:, head : head + 1], pattern[:, head + 1 :]], 1)
    mixed = torch.bmm(pattern, values)  # [batch, head, d_model]
    if part in ("values", "output"):
        mixed[:, head] = torch.bmm(pattern[:, head : head + 1], clean_values)[:, 0]
    final = torch.addmm(edited[:, -1], mixed.flatten(1), tables.W_out) + tables.b_out
    final = F.layer_norm(final, (d_model,), m.ln_final.w, m.ln_final.b, fc.eps)
    return torch.addmm(m.b_U, final, m.W_U)


def steered_p_palindrome(
    model: HookedTransformer, toks: TokensLike, position: int, vector: Float[Tensor, " d_model"], strength: float
) -> Float[Tensor, " batch"]:
    """P(palindrome) with ``strength`` times ``vector`` added after layer 0 at the second-half ``position`` (fast
    path)."""
    (position,) = check_second_half([position])
    _check_strength(strength)
    return _Editor(model, toks).p_palindrome(position, vector, strength)


def steering_table(
    model: HookedTransformer,
    directions: MismatchDirections,
    strengths: Sequence[float] = STRENGTHS,
    n_bases: int = STEER_BASES,
    seed: int = STEER_SEED,
    progress: bool = True,
) -> pd.DataFrame:
    """Per position: palindromes called non-palindromes after adding the shift, and mismatches missed after removing it.

    Also adds the shared direction, and reports the spread (std) of the clean palindromes' residual at p along the
    shared direction (random directions of the same length: ``random_control_table``).
    """
    check_model(model)
    check_type("directions", directions, MismatchDirections, "prediction.mismatch_directions(model)")
    if isinstance(strengths, str):
        raise ValueError(f"strengths must be a collection of finite numbers, not the string {strengths!r}")
    strengths = [_check_strength(s) for s in strengths]
    n_bases = check_int("n_bases", n_bases, 2, " (the clean spread is a standard deviation over the bases)")
    seeds = position_seeds(seed)
    shared = shared_direction(directions)
    rows = {}
    for p in tqdm(directions.positions, desc="edits", disable=not progress):
        broken, bases = broken_and_bases(n_bases, seeds[p], p)
        on_bases, on_broken = _Editor(model, bases), _Editor(model, broken)
        v = directions.vector(p)
        row = {
            "palindromes called non-palindromes, no edit": (on_bases.p_palindrome(p, v, 0.0) <= 0.5)
            .float()
            .mean()
            .item(),
            "mismatches missed, no edit": (on_broken.p_palindrome(p, v, 0.0) > 0.5).float().mean().item(),
        }
        for s in strengths:
            row[f"add {s:g}"] = (on_bases.p_palindrome(p, v, s) <= 0.5).float().mean().item()
            row[f"remove {s:g}"] = (on_broken.p_palindrome(p, v, -s) > 0.5).float().mean().item()
        row["add shared 1"] = (on_bases.p_palindrome(p, shared, 1.0) <= 0.5).float().mean().item()
        row["clean projection std"] = (on_bases.resid[:, p].cpu().float() @ F.normalize(shared, dim=0)).std().item()
        rows[p] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "position"
    return table


def _edit_batches(
    model: HookedTransformer, positions: Sequence[int], n_bases: int, seed: int
) -> dict[int, tuple[_Editor, _Editor]]:
    """Per position: editors of the steering experiments' palindromes and of the same ones broken there."""
    n_bases = check_int("n_bases", n_bases, 2, " (flip rates are fractions of a batch)")
    seeds = position_seeds(seed)
    out = {}
    for p in positions:
        broken, bases = broken_and_bases(n_bases, seeds[p], p)
        out[p] = (_Editor(model, bases), _Editor(model, broken))
    return out


def random_flip_rates(
    model: HookedTransformer,
    directions: MismatchDirections,
    n_draws: int = RANDOM_DRAWS,
    n_bases: int = STEER_BASES,
    seed: int = STEER_SEED,
    control_seed: int = CONTROL_SEED,
) -> Float[Tensor, "position draw"]:
    """Per position, the fraction of the steering palindromes called non-palindromes after adding each of ``n_draws``
    random directions as long as the shared one."""
    check_model(model)
    check_type("directions", directions, MismatchDirections, "prediction.mismatch_directions(model)")
    shared = shared_direction(directions)
    controls = random_directions(shared.norm().item(), shared.shape[0], control_seed, n_draws)
    rates = []
    for p, (on_bases, _) in _edit_batches(model, directions.positions, n_bases, seed).items():
        rates.append(torch.stack([(on_bases.p_palindrome(p, v, 1.0) <= 0.5).float().mean() for v in controls]))
    return torch.stack(rates)


def random_control_table(steering: pd.DataFrame, random_rates: Float[Tensor, "position draw"]) -> pd.DataFrame:
    """Per position: the shared direction's flip rate beside the distribution of the random directions' (quantiles,
    and how many draws flip at least as many)."""
    check_type("steering", steering, pd.DataFrame, "prediction.steering_table(model, directions)")
    random_rates = check_floats("random_rates", random_rates)
    if random_rates.ndim != 2 or random_rates.shape[0] != len(steering) or "add shared 1" not in steering.columns:
        raise ValueError(
            "random_rates must hold one row of flip rates per row of steering (random_flip_rates and steering_table "
            f"of the same directions), got shape {tuple(random_rates.shape)} for {len(steering)} rows"
        )
    shared = torch.tensor(steering["add shared 1"].to_numpy(), dtype=random_rates.dtype)
    table = pd.DataFrame(
        {
            "shared": shared.tolist(),
            "random min": random_rates.min(1).values.tolist(),
            "random median": random_rates.median(1).values.tolist(),
            "random 95th percentile": random_rates.quantile(0.95, dim=1).tolist(),
            "random max": random_rates.max(1).values.tolist(),
            "draws flipping at least as many": (random_rates >= shared[:, None]).sum(1).tolist(),
        },
        index=steering.index,
    )
    return table


HEAD_EDITS: tuple[str, ...] = ("add shared 1", "add 1")
"""The edits ``head_edit_table`` repeats with one layer-1 head held clean: the shared direction and the position's
own shift, each added once to palindromes."""


def head_edit_table(
    model: HookedTransformer,
    directions: MismatchDirections,
    n_bases: int = STEER_BASES,
    seed: int = STEER_SEED,
) -> pd.DataFrame:
    """Per position: palindromes called non-palindromes after each of ``HEAD_EDITS``, with no head held clean and with
    one layer-1 head's attention, values or output computed from the clean input (``layer1_logits_held``)."""
    check_model(model)
    check_type("directions", directions, MismatchDirections, "prediction.mismatch_directions(model)")
    shared = shared_direction(directions)
    rows = {}
    for p, (on_bases, _) in _edit_batches(model, directions.positions, n_bases, seed).items():
        row = {}
        for edit in HEAD_EDITS:
            v = shared if edit == "add shared 1" else directions.vector(p)
            row[(edit, "none")] = (on_bases.p_palindrome(p, v, 1.0) <= 0.5).float().mean().item()
            for head in range(model.cfg.n_heads):
                for part in HELD_PARTS:
                    flipped = on_bases.p_palindrome_held(p, v, 1.0, head, part) <= 0.5
                    row[(edit, f"H1.{head} {part} clean")] = flipped.float().mean().item()
        rows[p] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "position"
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["edit", "held clean"])
    return table


# --- referee controls: errors added, paired tests, per-input projections, matched random directions ---------


def added_errors(scores: Scores) -> pd.DataFrame:
    """Per input set (columns): the errors each level (rows) adds, inputs the model gets right (its call is the
    truth, the ideal level's call) that the level gets wrong; the counterpart of ``own_errors``."""
    check_type("scores", scores, Scores, "prediction.score(expl)")
    out = {}
    for name, calls in scores.calls.items():
        model_calls = scores.model_ld[name] > 0
        right = model_calls == calls["ideal"]
        out[name] = {level: int((right & (calls[level] != model_calls)).sum()) for level in LEVELS}
    return pd.DataFrame(out)


PAIRED: tuple[str, str] = ("words", "refined")
"""The two levels ``paired_comparison`` sets against each other, input by input."""


def paired_comparison(
    scores: Scores, name: str = INPUT_SETS[1], pair: Sequence[str] = PAIRED, groups: Optional[Mapping] = None
) -> pd.DataFrame:
    """Per group of broken positions (default ``OVERLAP_POSITIONS``) of the single-mismatch set ``name``: the inputs
    where only the first or only the second level of ``pair`` agrees with the model, the exact McNemar p of that
    split, and how many of the model's misses the second level would reproduce by chance (calling its misses
    independently of the model's)."""
    check_type("scores", scores, Scores, "prediction.score(expl)")
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


def class_correlation(scores: Scores, name: str = INPUT_SETS[0]) -> pd.DataFrame:
    """Correlation of each circuit level's logit difference with the model's within each true class of input set
    ``name`` (palindromes, non-palindromes), free of the gap between the classes."""
    check_type("scores", scores, Scores, "prediction.score(expl)")
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


AIMS: tuple[str, ...] = ("natural >= 0.99", "single mismatches >= 0.95", "blind pairs > 0.9", "weak pair within x2")
"""The aims a circuit level is held to (``aim_table``)."""


def aim_table(scores: Scores) -> pd.DataFrame:
    """Per circuit level (rows): whether it meets each of ``AIMS`` on (b) and on (f) (natural inputs: set (a))."""
    check_type("scores", scores, Scores, "prediction.score(expl)")
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


def occurring_scale_range(table: Float[Tensor, "seq vocab"]) -> tuple[float, float]:
    """Smallest and largest exact layer-0 scale over the (position, token) rows that occur: START at 0, END at the
    last position, a value token in between."""
    table = check_floats("table", table)
    if table.shape != (SEQ_LEN, MAX_VALUE + 3):
        raise ValueError(
            f"table must be layer0_scale_table(model), shape ({SEQ_LEN}, {MAX_VALUE + 3}); got {table.shape}"
        )
    values = table[1:END_POS, : MAX_VALUE + 1].flatten()
    occurring = torch.cat([values, table[0, MAX_VALUE + 1 : MAX_VALUE + 2], table[END_POS, MAX_VALUE + 2 :]])
    return occurring.min().item(), occurring.max().item()


def projection_table(directions: MismatchDirections) -> pd.DataFrame:
    """Per position: each input's own broken-minus-intact change of H0.0's output projected on the shared direction
    (mean, median, share reaching half and all of the shared edit's length) and its mean cosine with it."""
    check_type("directions", directions, MismatchDirections, "prediction.mismatch_directions(model)")
    if directions.changes is None:
        raise ValueError("directions carry no per-input changes: build them with prediction.mismatch_directions(model)")
    shared = shared_direction(directions)
    length, unit = shared.norm(), F.normalize(shared, dim=0)
    proj = directions.changes @ unit  # [position, input]
    cos = F.normalize(directions.changes, dim=-1) @ unit
    table = pd.DataFrame(
        {
            "projection mean": proj.mean(1).tolist(),
            "projection median": proj.median(1).values.tolist(),
            "share >= half the edit": (proj >= length / 2).float().mean(1).tolist(),
            "share >= the edit": (proj >= length).float().mean(1).tolist(),
            "mean cosine": cos.mean(1).tolist(),
        },
        index=pd.Index(directions.positions, name="position"),
    )
    return table


SUBSPACE_SEED: int = 1900
"""Seed of the random directions drawn inside H0.0's output space (``random_edit_effects``)."""


def subspace_directions(
    model: HookedTransformer, length: float, seed: int = SUBSPACE_SEED, n_draws: int = RANDOM_DRAWS
) -> Float[Tensor, "draw d_model"]:
    """``n_draws`` random combinations of the rows of H0.0's W_O (its output space), centred, each of length
    ``length``."""
    check_model(model)
    length = check_positive("length", length)
    n_draws = check_int("n_draws", n_draws, 1, maximum=MAX_SIZE)
    w_o = model.W_O[0, 0].detach().cpu().float()  # [d_head, d_model]
    coef = torch.randn(n_draws, w_o.shape[0], generator=torch.Generator().manual_seed(check_seed(seed)))
    vectors = coef @ w_o
    return F.normalize(vectors - vectors.mean(-1, keepdim=True), dim=-1) * length


def random_edit_effects(
    model: HookedTransformer,
    directions: MismatchDirections,
    n_draws: int = RANDOM_DRAWS,
    n_bases: int = STEER_BASES,
    seed: int = STEER_SEED,
    control_seed: int = SUBSPACE_SEED,
) -> dict[str, Tensor]:
    """Random directions as long as the shared one, drawn inside H0.0's output space (the row space of its W_O):
    per position the flip rate and the mean fall of the logit difference of each draw ([position, draw]) and of the
    shared direction ([position])."""
    check_model(model)
    check_type("directions", directions, MismatchDirections, "prediction.mismatch_directions(model)")
    shared = shared_direction(directions)
    vectors = subspace_directions(model, shared.norm().item(), control_seed, n_draws)
    rates, drops, shared_drop, shared_rate = [], [], [], []
    for p, (on_bases, _) in _edit_batches(model, directions.positions, n_bases, seed).items():
        clean = on_bases.logit_diff(p, shared, 0.0)
        lds = torch.stack([on_bases.logit_diff(p, v, 1.0) for v in vectors])
        rates.append((lds <= 0).float().mean(1))
        drops.append((clean - lds).mean(1))
        edited = on_bases.logit_diff(p, shared, 1.0)
        shared_rate.append((edited <= 0).float().mean())
        shared_drop.append((clean - edited).mean())
    return {
        "rates": torch.stack(rates),
        "drops": torch.stack(drops),
        "shared_rate": torch.stack(shared_rate),
        "shared_drop": torch.stack(shared_drop),
    }


def subspace_control_table(effects: Mapping[str, Tensor], positions: Sequence[int] = SECOND_HALF) -> pd.DataFrame:
    """Per position: the shared direction's flip rate and mean logit-difference fall beside those of the random
    directions in H0.0's output space (``random_edit_effects``)."""
    if not isinstance(effects, Mapping) or not {"rates", "drops", "shared_rate", "shared_drop"} <= set(effects):
        raise ValueError("effects must be the dict prediction.random_edit_effects(model, directions) returns")
    rates, drops = check_floats("rates", effects["rates"]), check_floats("drops", effects["drops"])
    shared_rate, shared_drop = (
        check_floats("shared_rate", effects["shared_rate"]),
        check_floats("shared_drop", effects["shared_drop"]),
    )
    positions = check_second_half(positions)
    n = len(positions)
    shapes_ok = rates.ndim == 2 and rates.shape == drops.shape and rates.shape[0] == n and rates.shape[1] >= 1
    if not shapes_ok or shared_rate.shape != (n,) or shared_drop.shape != (n,):
        raise ValueError(f"effects must hold one row per position {tuple(positions)}, got {tuple(rates.shape)}")
    table = pd.DataFrame(
        {
            "shared flips": shared_rate.tolist(),
            "random 95th percentile": rates.quantile(0.95, dim=1).tolist(),
            "random max": rates.max(1).values.tolist(),
            "draws flipping as many": (rates >= shared_rate[:, None]).sum(1).tolist(),
            "shared logit fall": shared_drop.tolist(),
            "random fall 95th percentile": drops.quantile(0.95, dim=1).tolist(),
            "random fall max": drops.max(1).values.tolist(),
            "draws falling as far": (drops >= shared_drop[:, None]).sum(1).tolist(),
        },
        index=pd.Index(list(positions), name="position"),
    )
    return table


# --- the chapter's key numbers -----------------------------------------------------------------


def set_key(name: str) -> str:
    """The key fragment of an input set: "(a) natural" -> "a"."""
    if not isinstance(name, str) or len(name) < 3 or name[0] != "(" or name[2] != ")":
        raise ValueError(
            f"name must be an input set's name such as {INPUT_SETS[0]!r} (a letter in brackets first), got {name!r}"
        )
    return name[1]


COMPARED: tuple[int, ...] = (17, 19, 20)
"""The positions whose shifts are compared with the block of ``WELL_CHECKED`` positions."""


def direction_stats(directions: MismatchDirections) -> dict[str, float]:
    """The shared direction's length, cosines within the well-checked block and from ``COMPARED`` to it, per-input
    change sizes."""
    check_type("directions", directions, MismatchDirections, "prediction.mismatch_directions(model)")
    shared = shared_direction(directions)
    out = {"shared_length": shared.norm().item()}
    block = [directions.positions.index(p) for p in WELL_CHECKED]
    cos_all = directions.cosine()
    within = cos_all[block][:, block]
    out["shift_cos_block_min"] = within[~torch.eye(len(block), dtype=torch.bool)].min().item()
    for p in COMPARED:
        to_block = cos_all[directions.positions.index(p), block]
        out[f"shift_cos_to_block_min_pos_{p}"], out[f"shift_cos_to_block_max_pos_{p}"] = (
            to_block.min().item(),
            to_block.max().item(),
        )
    to_shared = F.normalize(directions.shift, dim=-1) @ F.normalize(shared, dim=0)
    for i, p in enumerate(directions.positions):
        out[f"change_size_pos_{p}"] = directions.change_size[i].item()
        out[f"shift_cos_to_shared_pos_{p}"] = to_shared[i].item()
    return out


def findings_from(
    expl: Explanation,
    costs: pd.Series,
    scores: Scores,
    directions: MismatchDirections,
    differences: Float[Tensor, "position d_model"],
    steering: pd.DataFrame,
    overlaps: Mapping[str, int],
    ln0_table: Float[Tensor, "seq vocab"],
    fresh: Mapping[str, int],
    random_table: pd.DataFrame,
    head_table: pd.DataFrame,
    subspace_table: pd.DataFrame,
) -> dict[str, float]:
    """The named numbers of the chapter, from already computed results (``fresh``: ``fresh_overlaps``;
    ``subspace_table``: ``subspace_control_table``)."""
    check_type("expl", expl, Explanation, "prediction.explanation(model)")
    _check_costs(costs)
    check_type("scores", scores, Scores, "prediction.score(expl)")
    check_type("directions", directions, MismatchDirections, "prediction.mismatch_directions(model)")
    differences, ln0_table = check_floats("differences", differences), check_floats("ln0_table", ln0_table)
    check_type("steering", steering, pd.DataFrame, "prediction.steering_table(model, directions)")
    if not set(directions.positions) <= set(steering.index):
        raise ValueError(
            f"steering must have a row per position {directions.positions} (steering_table), got {list(steering.index)}"
        )
    for arg, value, source in (("overlaps", overlaps, "development_overlaps()"), ("fresh", fresh, "fresh_overlaps()")):
        if not isinstance(value, Mapping):
            raise ValueError(f"{arg} must be a dict of set names to counts ({source}), got {type(value).__name__}")
    out: dict[str, float] = {f"refined_{r}": float(r in expl.refined) for r in REFINEMENTS}
    out |= {f"fresh_overlap_{slug(k)}": float(v) for k, v in fresh.items()}
    out |= comparison_findings(scores) | edit_findings(random_table, head_table)
    out |= {f"dev_overlap_set_{set_key(k)}": float(v) for k, v in overlaps.items()}
    out |= {
        "ln0_table_min": ln0_table.min().item(),
        "ln0_table_max": ln0_table.max().item(),
        "ln0_table_mean": ln0_table.mean().item(),
        "ln0_position_min": expl.stats.ln0_scale_by_position.min().item(),
        "ln0_position_max": expl.stats.ln0_scale_by_position.max().item(),
        "model_catches_decoys": decoy_catch_rate(scores),
    }
    out |= direction_stats(directions) | _referee_findings(scores, directions, ln0_table, subspace_table)
    out |= {f"dev_disagreement_{slug(k)}": float(v) for k, v in costs.items()}
    agreement, corr, misses = scores.agreement(), scores.correlation(), scores.miss_rates()
    for level in LEVELS:
        for name in INPUT_SETS:
            out[f"agreement_{slug(level)}_set_{set_key(name)}"] = float(agreement.loc[level, name])
    for level in CIRCUIT_LEVELS:
        for name in corr.columns:
            out[f"correlation_{slug(level)}_set_{set_key(name)}"] = float(corr.loc[level, name])
    for prefix, table in (("miss", misses), ("miss_fresh", scores.miss_rates(INPUT_SETS[5]))):
        for row in table.index:
            for p in table.columns:
                out[f"{prefix}_{slug(row)}_pos_{p}"] = float(table.loc[row, p])
    cos, dv_cos = directions.cosine(), cosine_matrix(differences)
    for i, p in enumerate(directions.positions):
        out[f"shift_length_pos_{p}"] = directions.shift[i].norm().item()
        out[f"shift_cos_to_11_pos_{p}"] = cos[0, i].item()
        out[f"difference_vector_cos_to_11_pos_{p}"] = dv_cos[0, i].item()
        for column in steering.columns:
            out[f"steer_{slug(column)}_pos_{p}"] = float(steering.loc[p, column])
    return out


OVERLAP_POSITIONS: dict[str, tuple[int, ...]] = {"20": (20,), "well_checked": WELL_CHECKED}
"""The groups of broken positions ``miss_overlap`` is reported for: the weak pair and the seven well-checked pairs."""
OVERLAP_SETS: tuple[str, ...] = (INPUT_SETS[1], INPUT_SETS[5])
"""The single-mismatch sets ``miss_overlap`` is reported on: chapter 8's sweep and the fresh set."""


def comparison_findings(scores: Scores) -> dict[str, float]:
    """The model's own errors each level reproduces (every set), and ``miss_overlap`` at 20 and the well-checked
    pairs."""
    check_type("scores", scores, Scores, "prediction.score(expl)")
    errors = own_errors(scores)
    out = {
        f"own_errors_{slug(row)}_set_{set_key(name)}": float(errors.loc[row, name])
        for row in errors.index
        for name in errors.columns
    }
    for name in OVERLAP_SETS:
        for label, positions in OVERLAP_POSITIONS.items():
            table = miss_overlap(scores, positions, name=name)
            for level in table.index:
                for column in table.columns:
                    key = f"overlap_{set_key(name)}_{label}_{slug(level)}_{slug(column)}"
                    out[key] = float(table.loc[level, column])
    return out


def _referee_findings(
    scores: Scores,
    directions: MismatchDirections,
    ln0_table: Float[Tensor, "seq vocab"],
    subspace_table: pd.DataFrame,
) -> dict[str, float]:
    """Errors added, paired tests, the position scale's share of the gap, within-class correlations, aims, occurring
    layer-0 scales, per-input projections and the random control inside H0.0's output space."""
    check_type("subspace_table", subspace_table, pd.DataFrame, "prediction.subspace_control_table(effects)")
    if any(p not in subspace_table.index for p in SECOND_HALF) or list(subspace_table.columns) != list(
        _SUBSPACE_COLUMNS
    ):
        raise ValueError("subspace_table must be subspace_control_table(effects) with a row per second-half position")
    out: dict[str, float] = {}
    added = added_errors(scores)
    out |= {f"added_errors_{slug(lv)}_set_{set_key(n)}": float(added.loc[lv, n]) for lv in LEVELS for n in INPUT_SETS}
    for name in OVERLAP_SETS:
        table = paired_comparison(scores, name)
        out |= {
            f"paired_{set_key(name)}_{label}_{slug(c)}": float(table.loc[label, c])
            for label in table.index
            for c in table.columns
        }
    for measure, table in (("agreement", scores.agreement()), ("correlation", scores.correlation())):
        out |= {f"gap_closed_{measure}_set_{set_key(n)}": float(v) for n, v in gap_closed(table).items()}
    within = class_correlation(scores)
    out |= {f"class_correlation_{slug(lv)}_{slug(c)}": float(within.loc[lv, c]) for lv in within.index for c in within}
    aims = aim_table(scores)
    out |= {f"aim_{slug(lv)}_set_{k}_{slug(a)}": float(aims.loc[lv, (k, a)]) for lv in aims.index for k, a in aims}
    out["ln0_occurring_min"], out["ln0_occurring_max"] = occurring_scale_range(ln0_table)
    projections = projection_table(directions)
    out |= {
        f"projection_{slug(c)}_pos_{p}": float(projections.loc[p, c]) for p in projections.index for c in projections
    }
    out |= {f"subspace_{slug(c)}_pos_{p}": float(subspace_table.loc[p, c]) for p in SECOND_HALF for c in subspace_table}
    return out


def edit_findings(random_table: pd.DataFrame, head_table: pd.DataFrame) -> dict[str, float]:
    """The random-direction control (``random_control_table``) and the edits with one layer-1 head held clean
    (``head_edit_table``), per position."""
    check_type("random_table", random_table, pd.DataFrame, "prediction.random_control_table(steering, rates)")
    check_type("head_table", head_table, pd.DataFrame, "prediction.head_edit_table(model, directions)")
    missing = [p for p in SECOND_HALF if p not in random_table.index or p not in head_table.index]
    if missing or not isinstance(head_table.columns, pd.MultiIndex):
        raise ValueError(
            "random_table and head_table must have a row per second-half position (random_control_table, "
            f"head_edit_table); missing {missing}"
        )
    out = {}
    for p in SECOND_HALF:
        out |= {f"random_{slug(c)}_pos_{p}": float(random_table.loc[p, c]) for c in random_table.columns}
        out |= {
            f"head_{slug(edit)}_{slug(held)}_pos_{p}": float(head_table.loc[p, (edit, held)])
            for edit, held in head_table.columns
        }
    return out


def key_findings(model: HookedTransformer) -> Findings:
    """The chapter's key numbers (its fixed inputs and seeds), under the declared ``KEYS``."""
    stats = reference_stats(check_model(model))
    costs = approximation_costs(model, stats)
    expl = Explanation(model, stats, choose_refinement(costs))
    directions = mismatch_directions(model)
    sets = input_sets()
    steering = steering_table(model, directions, progress=False)
    return Findings(
        "prediction",
        findings_from(
            expl,
            costs,
            score(expl, sets, progress=False),
            directions,
            difference_vectors(model, stats),
            steering,
            development_overlaps(sets),
            layer0_scale_table(model),
            fresh_overlaps(sets),
            random_control_table(steering, random_flip_rates(model, directions)),
            head_edit_table(model, directions),
            subspace_control_table(random_edit_effects(model, directions)),
        ),
        KEYS,
    )


_STEER_COLUMNS = (
    "palindromes called non-palindromes, no edit",
    "mismatches missed, no edit",
    *(f"{k} {s:g}" for s in STRENGTHS for k in ("add", "remove")),
    "add shared 1",
    "clean projection std",
)
_RANDOM_COLUMNS = (
    "shared",
    "random min",
    "random median",
    "random 95th percentile",
    "random max",
    "draws flipping at least as many",
)
_PAIRED_COLUMNS = (
    f"only {PAIRED[0]} agrees",
    f"only {PAIRED[1]} agrees",
    "p (exact McNemar)",
    "model misses",
    f"{PAIRED[1]} reproduces",
    "by chance",
)
_PROJECTION_COLUMNS = (
    "projection mean",
    "projection median",
    "share >= half the edit",
    "share >= the edit",
    "mean cosine",
)
_SUBSPACE_COLUMNS = (
    "shared flips",
    "random 95th percentile",
    "random max",
    "draws flipping as many",
    "shared logit fall",
    "random fall 95th percentile",
    "random fall max",
    "draws falling as far",
)
KEYS: frozenset[str] = frozenset(
    [f"refined_{r}" for r in REFINEMENTS]
    + [f"dev_overlap_set_{set_key(n)}" for n in INPUT_SETS]
    + [
        "ln0_table_min",
        "ln0_table_max",
        "ln0_table_mean",
        "ln0_position_min",
        "ln0_position_max",
        "model_catches_decoys",
        "shared_length",
        "shift_cos_block_min",
    ]
    + [f"shift_cos_to_block_{m}_pos_{p}" for m in ("min", "max") for p in COMPARED]
    + [f"dev_disagreement_{slug(k)}" for k in ("none", *REFINEMENTS, POSITION_SCALE, "all")]
    + [f"agreement_{slug(lv)}_set_{set_key(n)}" for lv in LEVELS for n in INPUT_SETS]
    + [f"correlation_{slug(lv)}_set_{set_key(n)}" for lv in CIRCUIT_LEVELS for n in INPUT_SETS if n != INPUT_SETS[4]]
    + [f"{m}_{slug(r)}_pos_{p}" for m in ("miss", "miss_fresh") for r in ("model",) + LEVELS[1:] for p in SECOND_HALF]
    + [f"own_errors_{slug(r)}_set_{set_key(n)}" for r in ("model errors",) + LEVELS for n in INPUT_SETS]
    + [
        f"overlap_{set_key(n)}_{label}_{slug(lv)}_{slug(c)}"
        for n in OVERLAP_SETS
        for label in OVERLAP_POSITIONS
        for lv in LEVELS[1:]
        for c in ("model misses", "reproduced", "added")
    ]
    + [f"fresh_overlap_{slug(n)}" for n in ("reference batch", "development inputs") + INPUT_SETS[:5]]
    + [f"random_{slug(c)}_pos_{p}" for c in _RANDOM_COLUMNS for p in SECOND_HALF]
    + [
        f"head_{slug(e)}_{slug(h)}_pos_{p}"
        for e in HEAD_EDITS
        for h in ("none",) + tuple(f"H1.{i} {part} clean" for i in range(N_HEADS) for part in HELD_PARTS)
        for p in SECOND_HALF
    ]
    + [
        f"{k}_pos_{p}"
        for k in (
            "shift_length",
            "change_size",
            "shift_cos_to_11",
            "shift_cos_to_shared",
            "difference_vector_cos_to_11",
        )
        for p in SECOND_HALF
    ]
    + [f"steer_{slug(c)}_pos_{p}" for c in _STEER_COLUMNS for p in SECOND_HALF]
    + [f"added_errors_{slug(lv)}_set_{set_key(n)}" for lv in LEVELS for n in INPUT_SETS]
    + [
        f"paired_{set_key(n)}_{label}_{slug(c)}"
        for n in OVERLAP_SETS
        for label in OVERLAP_POSITIONS
        for c in _PAIRED_COLUMNS
    ]
    + [f"gap_closed_agreement_set_{set_key(n)}" for n in INPUT_SETS]
    + [f"gap_closed_correlation_set_{set_key(n)}" for n in INPUT_SETS if n != INPUT_SETS[4]]
    + [f"class_correlation_{slug(lv)}_{c}" for lv in CIRCUIT_LEVELS for c in ("palindromes", "non_palindromes")]
    + [f"aim_{slug(lv)}_set_{set_key(n)}_{slug(a)}" for lv in CIRCUIT_LEVELS for n in OVERLAP_SETS for a in AIMS]
    + ["ln0_occurring_min", "ln0_occurring_max"]
    + [f"projection_{slug(c)}_pos_{p}" for c in _PROJECTION_COLUMNS for p in SECOND_HALF]
    + [f"subspace_{slug(c)}_pos_{p}" for c in _SUBSPACE_COLUMNS for p in SECOND_HALF]
)
"""Every key ``key_findings`` returns."""


def summary_table(findings: Findings) -> pd.DataFrame:
    """The algorithm on one page: per head, its QK and OV roles, the positions it covers and the chapter-12 numbers
    behind them."""
    check_type("findings", findings, Findings, "prediction.key_findings(model)")
    f = findings
    well = "11-16, 18"
    shown = WELL_CHECKED + (20,)
    as_many = max(f[f"random_draws_flipping_at_least_as_many_pos_{p}"] for p in SECOND_HALF)
    median = max(f[f"random_random_median_pos_{p}"] for p in SECOND_HALF)

    def held(part: str) -> str:
        return f"{max(f[f'head_add_shared_1_h1_0_{part}_clean_pos_{p}'] for p in SECOND_HALF):.3f}"

    rows = [
        (
            "H0.0",
            "a second-half position reads its mirror (and earlier copies of its own token)",
            "writes a mismatch shift when the pair is broken; at 17 and 19 each input's change is nearly orthogonal "
            "to the shared direction",
            f"{well}, 20; almost nothing along the shared direction at 17, 19",
            f"mean shift length {min(f[f'shift_length_pos_{p}'] for p in shown):.2f} or more at {well}, 20; "
            f"{f['shift_length_pos_17']:.2f} at 17 and {f['shift_length_pos_19']:.2f} at 19, where each input's own "
            f"change averages {f['change_size_pos_17']:.2f} and {f['change_size_pos_19']:.2f} long, with mean cosine "
            f"{f['projection_mean_cosine_pos_17']:.2f} and {f['projection_mean_cosine_pos_19']:.2f} to the shared "
            "direction",
        ),
        (
            "H0.0",
            "",
            "the shift is shared by the seven well-checked positions; 20's is roughly opposite",
            f"{well} (shared); 20 (opposite)",
            f"pairwise cosine {f['shift_cos_block_min']:.2f} or more within {well}; 20's shift has cosine "
            f"{f['shift_cos_to_shared_pos_20']:.2f} with the shared direction",
        ),
        (
            "H1.0",
            "END attends to positions carrying the shared shift (K-composition)",
            "moves it into the not-palindrome direction (V-composition)",
            "any position with the shift; at 17, 19 and 20 only by edits",
            f"the shared direction (length {f['shared_length']:.2f}) added to palindromes flips at least "
            f"{min(f[f'steer_add_shared_1_pos_{p}'] for p in SECOND_HALF):.3f} of them at 11-20; with H1.0's output "
            f"held clean at most {held('output')}, its attention at most {held('attention')}, its values at most "
            f"{held('values')} (appendix C); of {RANDOM_DRAWS} random directions of that length at most {as_many:.0f} "
            f"flips as many at a position (median {median:.3f}); of {RANDOM_DRAWS} drawn in H0.0's output space none "
            "lowers the logit difference as far",
        ),
        (
            "H1.1",
            "END attends to position 20",
            "votes not palindrome on 20's own shift",
            "20",
            f"adding 20's shift flips {f['steer_add_1_pos_20']:.3f} of palindromes, "
            f"{f['head_add_1_h1_1_output_clean_pos_20']:.3f} with H1.1's output held clean; refined circuit misses "
            f"{f['miss_refined_pos_20']:.3f} at 20 (model {f['miss_model_pos_20']:.3f})",
        ),
        (
            "refined circuit (all heads)",
            "exact layer-0 scale; constant layer-1 and final scales, mean END query",
            "summed votes",
            "every pair but 17 and 19",
            f"agrees with the model on {f['agreement_refined_set_a']:.4f} "
            f"of natural inputs, {f['agreement_refined_set_b']:.4f} of single mismatches, "
            f"{f['agreement_refined_set_f']:.4f} of fresh ones",
        ),
    ]
    return pd.DataFrame(rows, columns=["head", "QK circuit", "OV circuit", "positions", "chapter 12 evidence"])
