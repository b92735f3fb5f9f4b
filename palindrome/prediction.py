"""Chapter 12: the explanation as code, in levels, scored against the model; and edits of H0.0's mismatch signal.

Method. Each *level* maps tokens to a prediction of the model's answer, written from the
mechanism the earlier chapters establish, never fitted to the model's outputs or to the labels:

* ``"ideal"``: a perfect palindrome check (all ten mirror pairs compared);
* ``"words"``: the mechanism in words: a broken pair is caught unless it is one of chapter 8's two
  blind pairs (position 20 is caught through H1.1's backup route); ``"words + decoys"`` also lets
  a decoy (an earlier copy of the new value, chapter 8) hide a broken pair;
* ``"circuit"``: a reconstruction from the weights. Layer 0's residual at a position is
  ``W_E[token] + W_pos[position]``; both layer-0 heads attend by their QK circuits and write
  through their OV circuits, with the layer-0 LayerNorm as one constant scale (chapter 2). Layer
  1 reads token, position and both layer-0 heads' outputs; END's attention in H1.0 and H1.1 comes
  from their K-composition with the *mean* END query, with layer 1's LayerNorm as a constant
  scale per position; their votes through the OV circuits and the END residual's own direct path
  are summed into a logit difference, with the final LayerNorm as a constant. The four
  approximations (constant layer-0, layer-1 and final scales, the mean query) are the only
  departures from the model: refining all four (``REFINEMENTS``, each computed from the weights
  alone) gives the model back exactly, which the tests check;
* ``"refined"``: the circuit with the one approximation refined that costs most on a development
  set (``development_inputs``, disjoint from every evaluation set).

The activation statistics (mean LayerNorm scales, mean END query) come from ``reference_data()``, a
batch of the training distribution with its own seed, checked to share no sequence with the
evaluation sets (``overlap``).

The mismatch direction of a second-half position p is the mean difference of H0.0's output at p
between inputs with the pair at p broken and the same palindromes intact (``mismatch_directions``).
An edit adds ``strength`` times that mean difference to the residual stream at p after layer 0
(``steered_p_palindrome``): strength 1 moves an intact position by exactly the typical
broken-minus-intact shift, and -1 removes it from a broken one. The other analysis's "difference
vectors" ``(W_pos[p] / s_p - W_pos[21-p] / s_{21-p}) W_OV^{0.0}`` are computed for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Iterable, Optional, Sequence

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

from palindrome.adversarial import HANDMADE_ADVERSARIAL
from palindrome.blindspots import N_BASES, PAIR_BASES, PAIR_SEED, SWEEP_SEED, pair_mismatch_tokens
from palindrome.circuits import ln_scale_stats
from palindrome.constants import (
    END_POS,
    HALF_LENGTH,
    MAX_VALUE,
    MIRROR,
    N_HEADS,
    NOT_PALINDROME,
    PALINDROME,
    SECOND_HALF,
)
from palindrome.data import PalindromeDataset
from palindrome.fast import check_architecture, fast_end_logits
from palindrome.findings import Findings, slug
from palindrome.hooks import FINAL_SCALE, HookFn, activations, cached_run
from palindrome.paths import ablated_values
from palindrome.probes import (
    broken_and_bases,
    broken_at_each_position,
    check_second_half,
    decoy_mask,
    ordered_value_pairs,
    random_palindromes,
    single_mismatch_tokens,
)
from palindrome.tokens import TokensLike, check_int, mismatch_mask, validate_tokens

# --- the chapter's fixed inputs ----------------------------------------------------------------
REFERENCE_SIZE: int = 2000
"""The reference batch ``PalindromeDataset(REFERENCE_SIZE, seed=REFERENCE_SEED)`` for activation statistics."""
REFERENCE_SEED: int = 12
SWEEP_BASES: int = 8
"""Input set (b): the first ``SWEEP_BASES`` of chapter 8's 32 sweep bases, every (a, b) at every pair (7,440 inputs per pair)."""
NATURAL_SIZE: int = 20_000
"""Input set (a), a fresh sample of the training distribution: ``PalindromeDataset(NATURAL_SIZE, seed=NATURAL_SEED)``."""
NATURAL_SEED: int = 13
PALINDROME_SIZE: int = 5000
"""Input set (d): random palindromes (``probes.random_palindromes``, seed ``PALINDROME_SEED``)."""
PALINDROME_SEED: int = 14
DEVELOPMENT_BASES: int = 100
"""The development set that chooses the refinement: ``broken_at_each_position(DEVELOPMENT_BASES, DEVELOPMENT_SEED)``
(single mismatches on fresh bases) plus the reference batch."""
DEVELOPMENT_SEED: int = 15
DIRECTION_BASES: int = 200
"""Palindromes per position whose broken and intact copies define the mismatch direction."""
DIRECTION_SEED: int = 16
STEER_BASES: int = 200
"""Palindromes per position edited by the steering experiments (fresh seed ``STEER_SEED``)."""
STEER_SEED: int = 17
STRENGTHS: tuple[float, ...] = (0.5, 1.0, 2.0)
"""Edit strengths, in units of the mean broken-minus-intact shift of H0.0's output at the position."""

BLIND_PAIRS: tuple[int, ...] = (17, 19)
"""Chapter 8's blind pairs (second-half positions), the one thing the words level is told."""
LEVELS: tuple[str, ...] = ("ideal", "words", "words + decoys", "circuit", "refined")
"""The levels of the explanation, from the task itself to the weights."""
CIRCUIT_LEVELS: tuple[str, ...] = ("circuit", "refined")
"""Levels that predict a logit difference, not only a decision."""
REFINEMENTS: tuple[str, ...] = ("ln0", "ln1", "final", "query")
"""Approximations of the circuit level that can be replaced by the exact quantity, computed from the weights:
the layer-0 LayerNorm scale, the layer-1 LayerNorm scale, the final LayerNorm scale, END's layer-1 query."""
INPUT_SETS: tuple[str, ...] = ("(a) natural", "(b) single mismatches", "(c) two broken pairs", "(d) palindromes", "(e) hand-made")
"""The five evaluation sets, in the issue's order."""
CHUNK: int = 8192
"""Sequences per chunk of the circuit level's forward pass."""


def check_level(level: str) -> str:
    """Return ``level`` or raise ValueError naming the valid levels."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return level


def check_refinements(refine: Iterable[str]) -> tuple[str, ...]:
    """Return ``refine`` as a tuple of known refinements, or raise ValueError naming them."""
    if isinstance(refine, str):
        raise ValueError(f"refine must be a collection of names from {REFINEMENTS}, not the string {refine!r}")
    refine = tuple(refine)
    bad = [r for r in refine if r not in REFINEMENTS]
    if bad:
        raise ValueError(f"unknown refinement(s) {bad}; valid: {REFINEMENTS}")
    return refine


def check_model(model: HookedTransformer) -> HookedTransformer:
    """Raise ValueError unless ``model`` has the palindrome classifier's shape (2 layers of 2 heads, 22 positions, 33 tokens)."""
    check_architecture(model)
    cfg = model.cfg
    want = {"n_heads": N_HEADS, "n_ctx": 2 * HALF_LENGTH + 2, "d_vocab": MAX_VALUE + 3}
    wrong = [f"{k}={getattr(cfg, k)} (need {v})" for k, v in want.items() if getattr(cfg, k) != v]
    if wrong:
        raise ValueError("chapter 12 needs the palindrome classifier's shape; this model has " + ", ".join(wrong))
    return model


def _check_strength(strength: object) -> float:
    if isinstance(strength, bool) or not isinstance(strength, Real) or not torch.isfinite(torch.tensor(float(strength))):
        raise ValueError(f"strength must be a finite number (multiples of the mean broken-minus-intact shift), got {strength!r}")
    return float(strength)


# --- inputs ------------------------------------------------------------------------------------


def reference_data() -> PalindromeDataset:
    """The named reference batch of the training distribution that every activation statistic comes from."""
    return PalindromeDataset(REFERENCE_SIZE, seed=REFERENCE_SEED)


def overlap(a: TokensLike, b: TokensLike) -> int:
    """How many sequences of ``a`` also occur in ``b`` (exact token match)."""
    a, b = validate_tokens(a).cpu(), validate_tokens(b).cpu()
    seen = {tuple(row) for row in b.tolist()}
    return sum(tuple(row) in seen for row in a.tolist())


def sweep_tokens(n_bases: int = N_BASES, seed: int = SWEEP_SEED) -> Int[Tensor, "position base pair seq"]:
    """Chapter 8's single-mismatch sweep as tokens: every (a, b) at every second-half pair of its random bases."""
    bases = random_palindromes(check_int("n_bases", n_bases, 1), torch.Generator().manual_seed(check_int("seed", seed, 0)))
    return torch.stack([single_mismatch_tokens(bases, p) for p in SECOND_HALF])


def input_sets() -> dict[str, Int[Tensor, "batch seq"]]:
    """The five evaluation sets (a)-(e) of ``INPUT_SETS``: batches of tokens, (b) shaped [position, input, seq]."""
    palindromes = random_palindromes(PALINDROME_SIZE, torch.Generator().manual_seed(PALINDROME_SEED))
    return dict(zip(INPUT_SETS, (
        PalindromeDataset(NATURAL_SIZE, seed=NATURAL_SEED).toks,
        sweep_tokens()[:, :SWEEP_BASES].flatten(1, 2),
        pair_mismatch_tokens(PAIR_BASES, PAIR_SEED, distinct=True).flatten(0, 1),
        palindromes,
        HANDMADE_ADVERSARIAL,
    )))


def development_inputs() -> Int[Tensor, "batch seq"]:
    """Inputs that choose the refinement: the reference batch and fresh single mismatches (no evaluation set)."""
    _, broken = broken_at_each_position(DEVELOPMENT_BASES, DEVELOPMENT_SEED)
    return torch.cat([reference_data().toks, broken.flatten(0, 1)])


# --- the reference statistics ------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceStats:
    """The activation statistics the circuit level uses, from the reference batch."""

    ln0_scale: float
    """Mean layer-0 LayerNorm scale over every position (chapter 2's constant)."""
    ln1_scale: Float[Tensor, "seq"]
    """Mean layer-1 LayerNorm scale at each position."""
    final_scale: float
    """Mean final LayerNorm scale at END."""
    end_query: Float[Tensor, "head d_head"]
    """Mean query of each layer-1 head at END."""

    def table(self) -> pd.DataFrame:
        """The statistics as printable rows."""
        return pd.DataFrame(
            {"value": [self.ln0_scale, self.ln1_scale[1:END_POS].mean().item(), self.ln1_scale[END_POS].item(),
                       self.final_scale, self.end_query[0].norm().item(), self.end_query[1].norm().item()]},
            index=["layer-0 scale (all positions)", "layer-1 scale (mean over 1..20)", "layer-1 scale at END",
                   "final scale at END", "|mean END query| H1.0", "|mean END query| H1.1"],
        )


def reference_stats(model: HookedTransformer, toks: Optional[TokensLike] = None) -> ReferenceStats:
    """Mean LayerNorm scales and mean END query of the layer-1 heads over ``toks`` (default: ``reference_data()``)."""
    check_model(model)
    toks = reference_data().toks if toks is None else validate_tokens(toks)
    q_name = get_act_name("q", 1)
    acts = activations(model, toks, [q_name, FINAL_SCALE])
    return ReferenceStats(
        ln0_scale=ln_scale_stats(model, toks, 0).overall_mean,
        ln1_scale=ln_scale_stats(model, toks, 1).mean,
        final_scale=acts[FINAL_SCALE][:, END_POS, 0].mean().item(),
        end_query=acts[q_name][:, END_POS].mean(0).detach().cpu(),
    )


# --- the levels --------------------------------------------------------------------------------


def words_decisions(toks: TokensLike, decoys: bool = False) -> Bool[Tensor, "batch"]:
    """The mechanism in words: palindrome unless a pair outside ``BLIND_PAIRS`` is broken (and, with ``decoys``, not hidden by a decoy)."""
    toks = validate_tokens(toks).cpu()
    caught = torch.zeros(toks.shape[0], dtype=torch.bool)
    broken = mismatch_mask(toks)
    for p in SECOND_HALF:
        if p in BLIND_PAIRS:
            continue
        seen = broken[:, p]
        if decoys:
            seen = seen & ~decoy_mask(toks, p)
        caught |= seen
    return ~caught


def _rms_scale(x: Float[Tensor, "... d"], eps: float) -> Float[Tensor, "... 1"]:
    """LayerNorm's scale of ``x``: sqrt(mean((x - mean x)^2) + eps)."""
    centred = x - x.mean(-1, keepdim=True)
    return (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt()


@torch.inference_mode()
def circuit_logit_diff(
    model: HookedTransformer,
    toks: TokensLike,
    stats: ReferenceStats,
    refine: Iterable[str] = (),
    progress: bool = False,
) -> Float[Tensor, "batch"]:
    """The circuit level's logit difference (palindrome minus not palindrome), with the named approximations refined."""
    check_model(model)
    refine = set(check_refinements(refine))
    toks = validate_tokens(toks).to(model.W_E.device)
    m, eps = model, float(model.cfg.eps)
    n_heads, d_vocab = m.cfg.n_heads, m.cfg.d_vocab
    # Layer 0 sees only W_E[token] + W_pos[position]: one table row per (position, token).
    resid0 = (m.W_pos[:, None, :] + m.W_E[None]).flatten(0, 1)  # row = position * d_vocab + token
    scale0 = _rms_scale(resid0, eps) if "ln0" in refine else stats.ln0_scale
    normed0 = resid0 / scale0
    q0 = (einops.einsum(normed0, m.W_Q[0], "r d, h d e -> h r e") + m.b_Q[0][:, None]) / m.blocks[0].attn.attn_scale
    k0 = einops.einsum(normed0, m.W_K[0], "r d, h d e -> h r e") + m.b_K[0][:, None]
    v0 = einops.einsum(normed0, m.W_V[0], "r d, h d e -> h r e") + m.b_V[0][:, None]
    vo0 = einops.einsum(v0, m.W_O[0], "h r e, h e d -> h r d")
    seq = toks.shape[1]
    offsets = torch.arange(seq, device=toks.device) * d_vocab
    mask = torch.full((seq, seq), float("-inf"), device=toks.device).triu(1)
    u = m.W_U[:, PALINDROME] - m.W_U[:, NOT_PALINDROME]
    b_u = (m.b_U[PALINDROME] - m.b_U[NOT_PALINDROME]).item()
    W_OV1 = m.W_V[1] @ m.W_O[1]  # [head, d, d]
    b_OV1 = einops.einsum(m.b_V[1], m.W_O[1], "h e, h e d -> d") + m.b_O[1]  # patterns sum to 1
    inv_ln1 = (1 / stats.ln1_scale.to(toks.device))[:, None]
    # Mean END query pulled back through W_K: score(key) = normed_key . key_dir (q . b_K is the same for every key).
    mean_key_dir = einops.einsum(m.W_K[1], stats.end_query.to(toks.device), "h d e, h e -> h d")
    out = []
    for chunk in tqdm(toks.split(CHUNK), desc="circuit level", disable=not progress):
        rows = (chunk + offsets).flatten()
        batch = chunk.shape[0]
        resid = resid0.index_select(0, rows).view(batch, seq, -1) + m.b_O[0]
        for h in range(n_heads):
            q = q0[h].index_select(0, rows).view(batch, seq, -1)
            k = k0[h].index_select(0, rows).view(batch, seq, -1)
            pattern = torch.baddbmm(mask, q, k.transpose(1, 2)).softmax(-1)
            resid = torch.baddbmm(resid, pattern, vo0[h].index_select(0, rows).view(batch, seq, -1))
        normed = resid / _rms_scale(resid, eps) if "ln1" in refine else resid * inv_ln1
        if "query" in refine:
            q_end = einops.einsum(normed[:, -1], m.W_Q[1], "b d, h d e -> b h e") + m.b_Q[1]
            key_dir = einops.einsum(m.W_K[1], q_end, "h d e, b h e -> b h d")
        else:
            key_dir = mean_key_dir.expand(batch, -1, -1)
        pattern = (key_dir @ normed.transpose(1, 2) / m.blocks[1].attn.attn_scale).softmax(-1)  # [batch, head, key]
        mixed = pattern @ normed  # [batch, head, d]
        final = resid[:, -1] + einops.einsum(mixed, W_OV1, "b h d, h d e -> b e") + b_OV1
        scale = _rms_scale(final, eps)[:, 0] if "final" in refine else stats.final_scale
        out.append((final @ u) / scale + b_u)
    return torch.cat(out).cpu()


def model_logit_diff(model: HookedTransformer, toks: TokensLike) -> Float[Tensor, "batch"]:
    """The model's own logit difference (palindrome minus not palindrome) at END, on the fast path."""
    logits = fast_end_logits(model, toks)
    return (logits[:, PALINDROME] - logits[:, NOT_PALINDROME]).float().cpu()


@dataclass(frozen=True)
class Explanation:
    """The levels ready to run: the model, the reference statistics and the refinement the development set chose."""

    model: HookedTransformer
    stats: ReferenceStats
    refined: tuple[str, ...]

    def logit_diff(self, toks: TokensLike, level: str) -> Float[Tensor, "batch"]:
        """A circuit level's predicted logit difference (palindrome minus not palindrome)."""
        if check_level(level) not in CIRCUIT_LEVELS:
            raise ValueError(f"only the levels {CIRCUIT_LEVELS} predict a logit difference, got {level!r}")
        return circuit_logit_diff(self.model, toks, self.stats, self.refined if level == "refined" else ())

    def decisions(self, toks: TokensLike, level: str) -> Bool[Tensor, "batch"]:
        """Whether the level calls each input a palindrome."""
        level = check_level(level)
        if level == "ideal":
            return ~mismatch_mask(toks).any(-1).cpu()
        if level.startswith("words"):
            return words_decisions(toks, decoys=level == "words + decoys")
        return self.logit_diff(toks, level) > 0


def approximation_costs(
    model: HookedTransformer, stats: ReferenceStats, toks: Optional[TokensLike] = None
) -> pd.Series:
    """Disagreement with the model on the development inputs when each approximation alone is refined (and none)."""
    toks = development_inputs() if toks is None else validate_tokens(toks)
    called = model_logit_diff(model, toks) > 0
    rows = {"none": ()} | {r: (r,) for r in REFINEMENTS} | {"all": REFINEMENTS}
    out = {name: ((circuit_logit_diff(model, toks, stats, r) > 0) != called).float().mean().item() for name, r in rows.items()}
    return pd.Series(out, name="disagreement with the model")


def choose_refinement(costs: pd.Series) -> tuple[str, ...]:
    """The single refinement that lowers the development disagreement most (the approximation that costs most)."""
    single = costs[list(REFINEMENTS)]
    return (str(single.idxmin()),)


def explanation(model: HookedTransformer, progress: bool = False) -> Explanation:
    """The levels for ``model``: reference statistics from ``reference_data()``, refinement chosen on ``development_inputs()``."""
    stats = reference_stats(check_model(model))
    return Explanation(model, stats, choose_refinement(approximation_costs(model, stats)))


# --- scoring the levels ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Each level's calls (and the circuit levels' logit differences) beside the model's, on each input set."""

    model_ld: dict[str, Float[Tensor, "batch"]]
    level_ld: dict[str, dict[str, Float[Tensor, "batch"]]]
    calls: dict[str, dict[str, Bool[Tensor, "batch"]]]
    sweep_shape: tuple[int, ...]

    def agreement(self) -> pd.DataFrame:
        """Fraction of each input set (columns) on which each level's decision (rows) agrees with the model's."""
        return pd.DataFrame({
            name: {level: (calls[level] == (self.model_ld[name] > 0)).float().mean().item() for level in LEVELS}
            for name, calls in self.calls.items()
        })

    def correlation(self) -> pd.DataFrame:
        """Correlation of each circuit level's logit difference with the model's, per input set of at least 2 inputs."""
        return pd.DataFrame({
            name: {level: correlation(lds[level], self.model_ld[name]) for level in CIRCUIT_LEVELS}
            for name, lds in self.level_ld.items() if self.model_ld[name].numel() > 1
        })

    def miss_rates(self) -> pd.DataFrame:
        """Per broken pair of the single-mismatch set: the fraction the model (first row) and each level call palindromes."""
        name = INPUT_SETS[1]
        rows = {"model": self.model_ld[name] > 0} | {lv: c for lv, c in self.calls[name].items() if lv != "ideal"}
        n_positions = self.sweep_shape[0]
        return pd.DataFrame(
            {k: v.view(n_positions, -1).float().mean(1).tolist() for k, v in rows.items()},
            index=pd.Index(SECOND_HALF[:n_positions], name="broken position"),
        ).T


def score(expl: Explanation, sets: Optional[dict[str, TokensLike]] = None, progress: bool = True) -> Scores:
    """Run the model and every level once on each input set (default ``input_sets()``)."""
    sets = input_sets() if sets is None else sets
    if list(sets) != list(INPUT_SETS):
        raise ValueError(f"sets must hold the input sets {INPUT_SETS} in that order, got {list(sets)}")
    model_ld, level_ld, calls = {}, {}, {}
    for name, toks in tqdm(sets.items(), desc="input sets", disable=not progress):
        flat = validate_tokens(torch.as_tensor(toks).flatten(0, -2))
        model_ld[name] = model_logit_diff(expl.model, flat)
        level_ld[name] = {level: expl.logit_diff(flat, level) for level in CIRCUIT_LEVELS}
        calls[name] = {level: (level_ld[name][level] > 0 if level in CIRCUIT_LEVELS else expl.decisions(flat, level))
                       for level in LEVELS}
    sweep = torch.as_tensor(sets[INPUT_SETS[1]])
    return Scores(model_ld, level_ld, calls, tuple(sweep.shape[:-1]))


def correlation(a: Float[Tensor, "batch"], b: Float[Tensor, "batch"]) -> float:
    """Pearson correlation of two batches of numbers."""
    a, b = torch.as_tensor(a).double().flatten(), torch.as_tensor(b).double().flatten()
    if a.shape != b.shape or a.numel() < 2:
        raise ValueError(f"correlation needs two equally long batches of at least 2 numbers, got {a.numel()} and {b.numel()}")
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def disagreements(expl: Explanation, toks: TokensLike, level: str) -> pd.DataFrame:
    """Where a level disagrees with the model: counts by the model's call and by whether a decoy is present at a broken pair."""
    toks = validate_tokens(toks).cpu()
    called = model_logit_diff(expl.model, toks) > 0
    wrong = expl.decisions(toks, level) != called
    broken = mismatch_mask(toks)
    any_decoy = torch.zeros(toks.shape[0], dtype=torch.bool)
    for p in SECOND_HALF:
        any_decoy |= broken[:, p] & decoy_mask(toks, p)
    return pd.DataFrame(
        {"inputs": [int(wrong.sum())],
         "model says palindrome": [int((wrong & called).sum())],
         "with a decoy at a broken pair": [int((wrong & any_decoy).sum())]},
        index=[level],
    )


# --- the mismatch direction and edits of it ----------------------------------------------------


EDIT_HOOK: str = get_act_name("resid_post", 0)
"""Where an edit is added: the residual stream after layer 0, which every layer-1 reader sees."""


def h00_output(model: HookedTransformer, toks: TokensLike) -> Float[Tensor, "batch seq d_model"]:
    """H0.0's output at every position of a clean run (``paths.ablated_values``)."""
    return ablated_values(model, toks, "resample")["0.0"].detach().cpu()


@dataclass(frozen=True)
class MismatchDirections:
    """Per second-half position: the mean broken-minus-intact shift of H0.0's output there."""

    shift: Float[Tensor, "position d_model"]
    positions: tuple[int, ...] = SECOND_HALF

    def cosine(self) -> Float[Tensor, "position position"]:
        """Cosine similarity between the positions' shifts."""
        return cosine_matrix(self.shift)

    def vector(self, position: int) -> Float[Tensor, "d_model"]:
        """The shift at one swept position."""
        (position,) = check_second_half([position])
        if position not in self.positions:
            raise ValueError(f"position must be one of {self.positions}, got {position!r}")
        return self.shift[self.positions.index(position)]


def cosine_matrix(vectors: Float[Tensor, "n d"]) -> Float[Tensor, "n n"]:
    """Pairwise cosine similarity of the rows."""
    unit = F.normalize(torch.as_tensor(vectors).float(), dim=-1)
    return unit @ unit.T


def mismatch_directions(
    model: HookedTransformer, n_bases: int = DIRECTION_BASES, seed: int = DIRECTION_SEED
) -> MismatchDirections:
    """Mean of H0.0's output at p on palindromes broken at p minus on the same palindromes intact, for every second-half p."""
    check_model(model)
    shifts = []
    for p in SECOND_HALF:
        broken, bases = broken_and_bases(n_bases, seed + p, p)
        shifts.append(h00_output(model, broken)[:, p].mean(0) - h00_output(model, bases)[:, p].mean(0))
    return MismatchDirections(torch.stack(shifts))


def difference_vectors(model: HookedTransformer, toks: Optional[TokensLike] = None) -> Float[Tensor, "position d_model"]:
    """The other analysis's difference vectors (W_pos[p]/s_p - W_pos[21-p]/s_{21-p}) W_OV^{0.0}, s the mean layer-0 scale per position."""
    check_model(model)
    scale = ln_scale_stats(model, reference_data().toks if toks is None else toks, 0).mean.to(model.W_pos.device)
    p_hat = model.W_pos / scale[:, None]
    second = list(SECOND_HALF)
    mirror = [MIRROR[p] for p in SECOND_HALF]
    with torch.inference_mode():
        return ((p_hat[second] - p_hat[mirror]) @ model.W_V[0, 0] @ model.W_O[0, 0]).detach().cpu()


WELL_CHECKED: tuple[int, ...] = (11, 12, 13, 14, 15, 16, 18)
"""Chapter 8's seven well-checked second-half positions (neither blind nor the backup position 20)."""


def shared_direction(directions: MismatchDirections, positions: Sequence[int] = WELL_CHECKED) -> Float[Tensor, "d_model"]:
    """The mean of the unit shifts at ``positions``, rescaled to their median shift length (one typical shift)."""
    positions = check_second_half(positions)
    shifts = torch.stack([directions.vector(p) for p in positions])
    unit = F.normalize(F.normalize(shifts, dim=-1).mean(0), dim=0)
    return unit * shifts.norm(dim=-1).median()


def add_at(position: int, vector: Float[Tensor, "d_model"]) -> HookFn:
    """A hook adding ``vector`` to the residual stream at ``position`` (for ``EDIT_HOOK``)."""

    def hook(resid: Tensor, hook: HookPoint) -> Tensor:
        resid = resid.clone()
        resid[:, position] += vector.to(resid)
        return resid

    return hook


def steered_p_palindrome(
    model: HookedTransformer, toks: TokensLike, position: int, vector: Float[Tensor, "d_model"], strength: float
) -> Float[Tensor, "batch"]:
    """P(palindrome) with ``strength`` times ``vector`` added after layer 0 at the second-half ``position``."""
    check_model(model)
    (position,) = check_second_half([position])
    strength = _check_strength(strength)
    vector = torch.as_tensor(vector).float()
    if vector.shape != (model.cfg.d_model,) or not torch.isfinite(vector).all():
        raise ValueError(f"vector must be a finite vector of shape ({model.cfg.d_model},), got {tuple(vector.shape)}")
    logits, _ = cached_run(model, toks, (), [(EDIT_HOOK, add_at(position, strength * vector))])
    return logits[:, -1].softmax(-1)[:, PALINDROME].cpu()


def steering_table(
    model: HookedTransformer,
    directions: MismatchDirections,
    strengths: Sequence[float] = STRENGTHS,
    n_bases: int = STEER_BASES,
    seed: int = STEER_SEED,
    progress: bool = True,
) -> pd.DataFrame:
    """Per position: palindromes called non-palindromes after adding the shift, and mismatches missed after removing it."""
    strengths = [_check_strength(s) for s in strengths]
    shared = shared_direction(directions)
    rows = {}
    for p in tqdm(directions.positions, desc="edits", disable=not progress):
        broken, bases = broken_and_bases(n_bases, seed + p, p)
        v = directions.vector(p)
        row = {"palindromes called non-palindromes, no edit": (steered_p_palindrome(model, bases, p, v, 0.0) <= 0.5).float().mean().item(),
               "mismatches missed, no edit": (steered_p_palindrome(model, broken, p, v, 0.0) > 0.5).float().mean().item()}
        for s in strengths:
            row[f"add {s:g}"] = (steered_p_palindrome(model, bases, p, v, s) <= 0.5).float().mean().item()
            row[f"remove {s:g}"] = (steered_p_palindrome(model, broken, p, v, -s) > 0.5).float().mean().item()
        row["add shared 1"] = (steered_p_palindrome(model, bases, p, shared, 1.0) <= 0.5).float().mean().item()
        rows[p] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "position"
    return table


def projection_spread(model: HookedTransformer, directions: MismatchDirections, n_bases: int = DIRECTION_BASES,
                      seed: int = DIRECTION_SEED) -> pd.DataFrame:
    """Per position: the mean shift's length and the std of the projection on its unit direction among intact and broken inputs."""
    rows = {}
    for p in directions.positions:
        broken, bases = broken_and_bases(n_bases, seed + p, p)
        unit = F.normalize(directions.vector(p), dim=0)
        rows[p] = {"shift length": directions.vector(p).norm().item(),
                   "std intact": (h00_output(model, bases)[:, p] @ unit).std().item(),
                   "std broken": (h00_output(model, broken)[:, p] @ unit).std().item()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "position"
    return table


# --- the chapter's key numbers -----------------------------------------------------------------


def set_key(name: str) -> str:
    """The key fragment of an input set: "(a) natural" -> "a"."""
    return name[1]


def findings_from(expl: Explanation, costs: pd.Series, scores: Scores, directions: MismatchDirections,
                  differences: Float[Tensor, "position d_model"], steering: pd.DataFrame) -> dict[str, float]:
    """The named numbers of the chapter, from already computed results."""
    out: dict[str, float] = {f"refined_{r}": float(r in expl.refined) for r in REFINEMENTS}
    out |= {f"dev_disagreement_{slug(k)}": float(v) for k, v in costs.items()}
    agreement, corr, misses = scores.agreement(), scores.correlation(), scores.miss_rates()
    for level in LEVELS:
        for name in INPUT_SETS:
            out[f"agreement_{slug(level)}_set_{set_key(name)}"] = float(agreement.loc[level, name])
    for level in CIRCUIT_LEVELS:
        for name in corr.columns:
            out[f"correlation_{level}_set_{set_key(name)}"] = float(corr.loc[level, name])
    for row in misses.index:
        for p in misses.columns:
            out[f"miss_{slug(row)}_pos_{p}"] = float(misses.loc[row, p])
    cos, dv_cos = directions.cosine(), cosine_matrix(differences)
    for i, p in enumerate(directions.positions):
        out[f"shift_length_pos_{p}"] = directions.shift[i].norm().item()
        out[f"shift_cos_to_11_pos_{p}"] = cos[0, i].item()
        out[f"difference_vector_cos_to_11_pos_{p}"] = dv_cos[0, i].item()
        for column in steering.columns:
            out[f"steer_{slug(column)}_pos_{p}"] = float(steering.loc[p, column])
    return out


def key_findings(model: HookedTransformer) -> Findings:
    """The chapter's key numbers (its fixed inputs and seeds), under the declared ``KEYS``."""
    stats = reference_stats(check_model(model))
    costs = approximation_costs(model, stats)
    expl = Explanation(model, stats, choose_refinement(costs))
    directions = mismatch_directions(model)
    return Findings("prediction", findings_from(
        expl, costs, score(expl, progress=False), directions, difference_vectors(model),
        steering_table(model, directions, progress=False)), KEYS)


_STEER_COLUMNS = ("palindromes called non-palindromes, no edit", "mismatches missed, no edit",
                  *(f"{k} {s:g}" for s in STRENGTHS for k in ("add", "remove")), "add shared 1")
KEYS: frozenset[str] = frozenset(
    [f"refined_{r}" for r in REFINEMENTS]
    + [f"dev_disagreement_{slug(k)}" for k in ("none", *REFINEMENTS, "all")]
    + [f"agreement_{slug(lv)}_set_{set_key(n)}" for lv in LEVELS for n in INPUT_SETS]
    + [f"correlation_{lv}_set_{set_key(n)}" for lv in CIRCUIT_LEVELS for n in INPUT_SETS]
    + [f"miss_{slug(r)}_pos_{p}" for r in ("model",) + LEVELS[1:] for p in SECOND_HALF]
    + [f"{k}_pos_{p}" for k in ("shift_length", "shift_cos_to_11", "difference_vector_cos_to_11") for p in SECOND_HALF]
    + [f"steer_{slug(c)}_pos_{p}" for c in _STEER_COLUMNS for p in SECOND_HALF]
)
"""Every key ``key_findings`` returns."""


def summary_table(findings: Findings) -> pd.DataFrame:
    """The algorithm on one page: per head, its QK and OV roles, the positions it covers and the chapter-12 numbers behind them."""
    f = findings
    well = ", ".join(str(p) for p in WELL_CHECKED)
    rows = [
        ("H0.0", "a second-half position reads its mirror (and earlier copies of its own token)",
         "writes a mismatch shift when the pair is broken", f"{well}, 20; not 17, 19",
         f"shift length {min(f[f'shift_length_pos_{p}'] for p in WELL_CHECKED + (20,)):.2f} or more at "
         f"{well}, 20; {f['shift_length_pos_17']:.2f} at 17, {f['shift_length_pos_19']:.2f} at 19"),
        ("H0.0", "", "the shift points one way at the seven well-checked positions, the other way at 20",
         f"{well} (shared); 20 (opposite)",
         f"cosine to position 11: at least {min(f[f'shift_cos_to_11_pos_{p}'] for p in WELL_CHECKED):.2f} at {well}; "
         f"{f['shift_cos_to_11_pos_20']:.2f} at 20"),
        ("H1.0", "END attends to positions carrying the shared shift (K-composition)",
         "moves it into the not-palindrome direction (V-composition)", "any position that carries the shift, 17 and 19 included",
         f"adding the shared shift to palindromes flips at least {min(f[f'steer_add_shared_1_pos_{p}'] for p in SECOND_HALF[:-1]):.3f} "
         f"of them at 11-19"),
        ("H1.1", "END attends to position 20", "votes not palindrome on 20's own shift", "20",
         f"adding 20's shift flips {f['steer_add_1_pos_20']:.3f} of palindromes; refined circuit misses "
         f"{f['miss_refined_pos_20']:.3f} at 20 (model {f['miss_model_pos_20']:.3f})"),
        ("all four", "constant LayerNorm scales except layer 0's, mean END query", "summed votes",
         "every pair but 17 and 19", f"refined circuit agrees with the model on {f['agreement_refined_set_a']:.4f} "
         f"of natural inputs, {f['agreement_refined_set_b']:.4f} of single mismatches"),
    ]
    return pd.DataFrame(rows, columns=["head", "QK circuit", "OV circuit", "positions", "chapter 12 evidence"])
