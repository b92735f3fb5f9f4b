"""Chapter 12's edits of H0.0's mismatch signal: the mismatch directions, what adding them does, and the controls.

Method. The mismatch direction of a second-half position p is the mean difference of H0.0's output at p
between inputs with the pair at p broken and the same palindromes intact (``mismatch_directions``). An
edit adds ``strength`` times that mean difference to the residual stream at p after layer 0, on the fast
path (``steered_p_palindrome``): strength 1 moves an intact position by exactly the typical
broken-minus-intact shift, and -1 removes it from a broken one. The other analysis's "difference vectors"
``(W_pos[p] / s_p - W_pos[21-p] / s_{21-p}) W_OV^{0.0}`` are computed for comparison. Controls:
``RANDOM_DRAWS`` random directions as long as the shared one, drawn anywhere (``random_flip_rates``) or
inside H0.0's output space (``random_edit_effects``), and the edits with one layer-1 head's attention
pattern, values or output computed from the unedited input (``head_edit_table``, ``layer1_logits_held``),
which credit a reading to one head.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Mapping, Optional, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from palindrome.chapters.explanation import WELL_CHECKED, ReferenceStats
from palindrome.constants import MIRROR, NOT_PALINDROME, PALINDROME, SECOND_HALF, SEQ_LEN
from palindrome.fast import EndOnlyForward, InferenceTables, check_architecture
from palindrome.hooks import HookFn
from palindrome.inputs import broken_and_bases, check_second_half
from palindrome.tokens import (
    MAX_SEED,
    MAX_SIZE,
    TokensLike,
    check_floats,
    check_int,
    check_positive,
    check_seed,
    check_type,
)

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
EDIT_HOOK: str = get_act_name("resid_post", 0)
"""Where an edit is added: the residual stream after layer 0, which every layer-1 reader sees (``add_at`` hooks it)."""
HEAD_EDITS: tuple[str, ...] = ("add shared 1", "add 1")
"""The edits ``head_edit_table`` repeats with one layer-1 head held clean: the shared direction and the position's
own shift, each added once to palindromes."""
SUBSPACE_SEED: int = 1900
"""Seed of the random directions drawn inside H0.0's output space (``random_edit_effects``)."""


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


def _h00_output(model: HookedTransformer, toks: TokensLike) -> Float[Tensor, "batch seq d_model"]:
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
    check_architecture(model, classifier_shape=True)
    shifts, sizes, changes = [], [], []
    for p, p_seed in position_seeds(seed).items():
        broken, bases = broken_and_bases(n_bases, p_seed, p)
        change = _h00_output(model, broken)[:, p] - _h00_output(model, bases)[:, p]
        shifts.append(change.mean(0))
        sizes.append(change.norm(dim=-1).mean())
        changes.append(change)
    return MismatchDirections(torch.stack(shifts), torch.stack(sizes), changes=torch.stack(changes))


def difference_vectors(model: HookedTransformer, stats: ReferenceStats) -> Float[Tensor, "position d_model"]:
    """The other analysis's difference vectors (W_pos[p]/s_p - W_pos[21-p]/s_{21-p}) W_OV^{0.0}, s the mean layer-0
    scale per position."""
    check_architecture(model, classifier_shape=True)
    check_type("stats", stats, ReferenceStats, "explanation.reference_stats(model)")
    p_hat = model.W_pos / stats.layer0_scale_by_position.to(model.W_pos.device)[:, None]
    second = list(SECOND_HALF)
    mirror = [MIRROR[p] for p in SECOND_HALF]
    with torch.inference_mode():
        return ((p_hat[second] - p_hat[mirror]) @ model.W_V[0, 0] @ model.W_O[0, 0]).detach().cpu()


def shared_direction(
    directions: MismatchDirections, positions: Sequence[int] = WELL_CHECKED
) -> Float[Tensor, " d_model"]:
    """The mean of the unit shifts at ``positions``, rescaled to their median shift length (one typical shift)."""
    check_type("directions", directions, MismatchDirections, "steering.mismatch_directions(model)")
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
        self.fc = EndOnlyForward(check_architecture(model, classifier_shape=True))
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
    check_architecture(model, classifier_shape=True)
    check_type("directions", directions, MismatchDirections, "steering.mismatch_directions(model)")
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
    check_architecture(model, classifier_shape=True)
    check_type("directions", directions, MismatchDirections, "steering.mismatch_directions(model)")
    shared = shared_direction(directions)
    controls = random_directions(shared.norm().item(), shared.shape[0], control_seed, n_draws)
    rates = []
    for p, (on_bases, _) in _edit_batches(model, directions.positions, n_bases, seed).items():
        rates.append(torch.stack([(on_bases.p_palindrome(p, v, 1.0) <= 0.5).float().mean() for v in controls]))
    return torch.stack(rates)


def random_control_table(steering: pd.DataFrame, random_rates: Float[Tensor, "position draw"]) -> pd.DataFrame:
    """Per position: the shared direction's flip rate beside the distribution of the random directions' (quantiles,
    and how many draws flip at least as many)."""
    check_type("steering", steering, pd.DataFrame, "steering.steering_table(model, directions)")
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


def head_edit_table(
    model: HookedTransformer,
    directions: MismatchDirections,
    n_bases: int = STEER_BASES,
    seed: int = STEER_SEED,
) -> pd.DataFrame:
    """Per position: palindromes called non-palindromes after each of ``HEAD_EDITS``, with no head held clean and with
    one layer-1 head's attention, values or output computed from the clean input (``layer1_logits_held``)."""
    check_architecture(model, classifier_shape=True)
    check_type("directions", directions, MismatchDirections, "steering.mismatch_directions(model)")
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


def projection_table(directions: MismatchDirections) -> pd.DataFrame:
    """Per position: each input's own broken-minus-intact change of H0.0's output projected on the shared direction
    (mean, median, share reaching half and all of the shared edit's length) and its mean cosine with it."""
    check_type("directions", directions, MismatchDirections, "steering.mismatch_directions(model)")
    if directions.changes is None:
        raise ValueError("directions carry no per-input changes: build them with steering.mismatch_directions(model)")
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


def subspace_directions(
    model: HookedTransformer, length: float, seed: int = SUBSPACE_SEED, n_draws: int = RANDOM_DRAWS
) -> Float[Tensor, "draw d_model"]:
    """``n_draws`` random combinations of the rows of H0.0's W_O (its output space), centred, each of length
    ``length``."""
    check_architecture(model, classifier_shape=True)
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
    check_architecture(model, classifier_shape=True)
    check_type("directions", directions, MismatchDirections, "steering.mismatch_directions(model)")
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
        raise ValueError("effects must be the dict steering.random_edit_effects(model, directions) returns")
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
