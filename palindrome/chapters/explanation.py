"""Chapter 12's explanation as code, in levels: each maps tokens to a prediction of the model's answer.

Method. Each *level* is written from the mechanism the earlier chapters establish, never fitted to the
model's outputs or to the labels:

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
  approximations (constant layer-0, layer-1 and final scales, the mean END query) are the only
  departures from the model: refining all four (``REFINEMENTS``, each the exact quantity of the
  input at hand, no data needed) gives the model back exactly, which the tests check;
* ``"position scale"``: the circuit with the layer-0 scale held at its reference mean *per position*
  (``POSITION_SCALE``), the control between chapter 2's one constant and the exact scale;
* ``"refined"``: the circuit with the one approximation refined that costs most on a development
  set (``development_inputs``, disjoint from every evaluation set).

The activation statistics (mean LayerNorm scales, mean END query) come from ``level_reference_data()``,
a batch of the training distribution with its own seed. Every level that runs the weights runs on the
fast path (``palindrome.fast``): layer 0 is its table lookup (the constant-scale tables for the circuit
level, ``EndOnlyForward.tables(ln0_scale)``), layer 1 is the circuit level's own (``_Layer1``) or the
model's (``logits_from_layer0``); the model and every level share one layer-0 pass per chunk and kind of
scale (``logit_diffs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

import einops
import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from palindrome.circuits import LNScaleStats, scale_values
from palindrome.constants import END_POS, MAX_VALUE, NOT_PALINDROME, PALINDROME, SECOND_HALF, SEQ_LEN
from palindrome.data import PalindromeDataset
from palindrome.fast import (
    DEFAULT_BATCH_SIZE,
    EndOnlyForward,
    InferenceTables,
    check_architecture,
    map_chunks,
)
from palindrome.hooks import FINAL_SCALE, activations, ln_scale_name
from palindrome.inputs import broken_at_each_position, decoy_masks
from palindrome.metrics import end_logits
from palindrome.tokens import TokensLike, check_floats, check_type, mismatch_mask, validate_tokens

LEVEL_REFERENCE_SIZE: int = 2000
"""The reference batch ``PalindromeDataset(LEVEL_REFERENCE_SIZE, seed=LEVEL_REFERENCE_SEED)`` for activation
statistics."""
LEVEL_REFERENCE_SEED: int = 12
DEVELOPMENT_BASES: int = 100
"""The development set that chooses the refinement: ``broken_at_each_position(DEVELOPMENT_BASES, DEVELOPMENT_SEED)``
(single mismatches on fresh bases) plus the reference batch."""
DEVELOPMENT_SEED: int = 15
BLIND_PAIRS: tuple[int, ...] = (17, 19)
"""Chapter 8's blind pairs (second-half positions), the one thing the words level is told."""
WELL_CHECKED: tuple[int, ...] = (11, 12, 13, 14, 15, 16, 18)
"""Chapter 8's seven well-checked second-half positions (neither blind nor the backup position 20)."""
LEVELS: tuple[str, ...] = ("ideal", "words", "words + decoys", "circuit", "position scale", "refined")
"""The levels of the explanation, from the task itself to the weights."""
CIRCUIT_LEVELS: tuple[str, ...] = ("circuit", "position scale", "refined")
"""Levels that predict a logit difference, not only a decision."""
REFINEMENTS: tuple[str, ...] = ("layer0_scale", "layer1_scale", "final_scale", "end_query")
"""Approximations of the circuit level that can be replaced by the exact quantity, computed from the weights:
the layer-0 LayerNorm scale, the layer-1 LayerNorm scale, the final LayerNorm scale, END's layer-1 query."""
POSITION_SCALE: str = "layer0_position_scale"
"""A half refinement of "layer0_scale": the layer-0 scale held at its reference mean *per position* (the scale of the
difference vectors' p-hat), between chapter 2's one constant and the exact scale; the "position scale" level."""


def check_level(level: str) -> str:
    """Return ``level`` or raise ValueError naming the valid levels."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return level


def _check_refinements(refine: Iterable[str]) -> tuple[str, ...]:
    """Return ``refine`` as a tuple of known refinements (``REFINEMENTS`` or ``POSITION_SCALE``), or raise
    ValueError."""
    valid = REFINEMENTS + (POSITION_SCALE,)
    if isinstance(refine, str):
        raise ValueError(f"refine must be a collection of names from {valid}, not the string {refine!r}")
    refine = tuple(refine)
    bad = [r for r in refine if r not in valid]
    if bad:
        raise ValueError(f"unknown refinement(s) {bad}; valid: {valid}")
    if "layer0_scale" in refine and POSITION_SCALE in refine:
        raise ValueError(f"refine names two layer-0 scales, 'layer0_scale' (exact) and {POSITION_SCALE!r}: keep one")
    return refine


def _layer0_kind(refine: Iterable[str]) -> str:
    """Which layer-0 scale a set of refinements runs with: "exact", "position" (its mean per position) or
    "constant"."""
    refine = _check_refinements(refine)
    return "exact" if "layer0_scale" in refine else "position" if POSITION_SCALE in refine else "constant"


def level_reference_data() -> PalindromeDataset:
    """The named reference batch of the training distribution that every activation statistic comes from."""
    return PalindromeDataset(LEVEL_REFERENCE_SIZE, seed=LEVEL_REFERENCE_SEED)


def development_inputs() -> Int[Tensor, "batch seq"]:
    """Inputs that choose the refinement: the reference batch and fresh single mismatches (no evaluation set)."""
    _, broken = broken_at_each_position(DEVELOPMENT_BASES, DEVELOPMENT_SEED)
    return torch.cat([level_reference_data().toks, broken.flatten(0, 1)])


def layer0_scale_table(model: HookedTransformer) -> Float[Tensor, "seq vocab"]:
    """The exact layer-0 LayerNorm scale of every (position, token) row, from W_pos and W_E alone (what
    "layer0_scale" refines)."""
    check_architecture(model, classifier_shape=True)
    with torch.inference_mode():
        resid = model.W_pos[:, None, :] + model.W_E[None, :, :]
        centred = resid - resid.mean(-1, keepdim=True)
        return (centred.square().mean(-1) + model.cfg.eps).sqrt().cpu()


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


@dataclass(frozen=True)
class ReferenceStats:
    """The activation statistics the circuit level uses, from the reference batch."""

    layer0_scale: float
    """Mean layer-0 LayerNorm scale over every position (chapter 2's constant)."""
    layer0_scale_by_position: Float[Tensor, " seq"]
    """Mean layer-0 LayerNorm scale at each position (for the other analysis's difference vectors)."""
    layer1_scale: Float[Tensor, " seq"]
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
                    self.layer0_scale,
                    self.layer1_scale[1:END_POS].mean().item(),
                    self.layer1_scale[END_POS].item(),
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
    """Mean LayerNorm scales and mean END query of the layer-1 heads over ``toks`` (default:
    ``level_reference_data()``), from one run."""
    check_architecture(model, classifier_shape=True)
    toks = level_reference_data().toks if toks is None else validate_tokens(toks)
    q_name = get_act_name("q", 1)
    acts = activations(model, toks, [ln_scale_name(0), ln_scale_name(1), q_name, FINAL_SCALE])
    layer0 = LNScaleStats.from_scales(scale_values(acts[ln_scale_name(0)]))
    return ReferenceStats(
        layer0_scale=layer0.overall_mean,
        layer0_scale_by_position=layer0.mean,
        layer1_scale=LNScaleStats.from_scales(scale_values(acts[ln_scale_name(1)])).mean,
        final_scale=acts[FINAL_SCALE][:, END_POS, 0].mean().item(),
        end_query=acts[q_name][:, END_POS].mean(0).detach().cpu(),
    )


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


def _words_decisions(
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
    inv_layer1_scale: Float[Tensor, " seq"]
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
            inv_layer1_scale=(1 / stats.layer1_scale).to(device),
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
        if "layer1_scale" in refine:
            scale = (resid.square().mean(-1) + fc.eps).rsqrt()  # [batch, seq]: 1 / LayerNorm scale
        else:
            scale = self.inv_layer1_scale.expand(batch, seq)
        end = resid[:, -1]
        if "end_query" in refine:
            key_dir = torch.addmm(t.b_key, end * scale[:, -1:], t.W_key)
        else:
            key_dir = self.mean_key_dir.expand(batch, -1)
        scores = torch.bmm(key_dir.reshape(batch, n_heads, d_model), resid.transpose(1, 2)) * scale[:, None]
        weights = scores.softmax(-1) * scale[:, None]  # [batch, head, key]
        final = torch.addmm(end, torch.bmm(weights, resid).flatten(1), t.W_out) + t.b_out
        ln = m.ln_final
        if "final_scale" in refine:
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
    constant layer-0 scale unless "layer0_scale" (exact) or ``POSITION_SCALE`` (mean per position) is refined;
    it runs once per chunk and kind of scale (``_layer0_kind``), shared by every variant and the model.
    """
    check_architecture(model, classifier_shape=True)
    check_type("stats", stats, ReferenceStats, "explanation.reference_stats(model)")
    if not isinstance(variants, Mapping):
        raise ValueError(
            f"variants must be a dict of names to refinements (from {REFINEMENTS}), got {type(variants).__name__}"
        )
    variants = {name: frozenset(_check_refinements(r)) for name, r in variants.items()}
    fc = EndOnlyForward(model)
    toks = fc.validate(toks)
    exact = fc.inference_tables()
    layer1 = _Layer1.build(fc, exact, stats)
    scales = {"exact": None, "constant": stats.layer0_scale, "position": stats.layer0_scale_by_position}
    kinds = {_layer0_kind(r) for r in variants.values()} | ({"exact"} if include_model else set())
    tables = {kind: exact if kind == "exact" else fc.inference_tables(scales[kind]) for kind in kinds}

    def run(chunk: Tensor) -> Tensor:
        resid = {kind: fc.centred_layer0(tables[kind], chunk, scales[kind]) for kind in kinds}
        out = []
        if include_model:
            logits = fc.logits_from_layer0(exact, resid["exact"])
            out.append(logits[:, PALINDROME] - logits[:, NOT_PALINDROME])
        out += [layer1.logit_diff(fc, resid[_layer0_kind(r)], r) for r in variants.values()]
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
    logits = end_logits(model, toks, fast=True)
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
        return _words_decisions(toks, decoys=level == "words + decoys", status=status)


def approximation_costs(
    model: HookedTransformer, stats: ReferenceStats, toks: Optional[TokensLike] = None
) -> pd.Series:
    """Disagreement with the model on the development inputs when each approximation alone is refined (and none,
    all, and the layer-0 scale only per position)."""
    check_architecture(model, classifier_shape=True)
    check_type("stats", stats, ReferenceStats, "explanation.reference_stats(model)")
    toks = development_inputs() if toks is None else validate_tokens(toks)
    rows = {"none": ()} | {r: (r,) for r in REFINEMENTS} | {POSITION_SCALE: (POSITION_SCALE,), "all": REFINEMENTS}
    lds = logit_diffs(model, toks, stats, rows)
    called = lds["model"] > 0
    out = {name: ((lds[name] > 0) != called).float().mean().item() for name in rows}
    return pd.Series(out, name="disagreement with the model")


def check_costs(costs: object) -> pd.Series:
    check_type("costs", costs, pd.Series, "explanation.approximation_costs(model, stats)")
    missing = [r for r in REFINEMENTS if r not in costs.index]
    if missing:
        raise ValueError(
            f"costs must have a row for every refinement {REFINEMENTS} (approximation_costs), missing {missing}"
        )
    check_floats("costs", costs[list(REFINEMENTS)].tolist())
    return costs


def choose_refinement(costs: pd.Series) -> tuple[str, ...]:
    """The single refinement that lowers the development disagreement most (the approximation that costs most)."""
    single = check_costs(costs)[list(REFINEMENTS)]
    return (str(single.idxmin()),)


def explanation(model: HookedTransformer, progress: bool = False) -> Explanation:
    """The levels for ``model``: reference statistics from ``level_reference_data()``, refinement chosen on
    ``development_inputs()``."""
    stats = reference_stats(check_architecture(model, classifier_shape=True))
    return Explanation(model, stats, choose_refinement(approximation_costs(model, stats)))
