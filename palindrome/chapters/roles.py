"""Which head plays which role: find the mirror head and the detector head in any trained model.

The July-2023 circuit has two roles, each defined by a measurement that needs no knowledge of
which head is which:

* **mirror** (H0.0 in the July model): in its positional QK circuit, a second-half position
  attends to its mirror 21 - p. Its *lambda score* is the mean attention to the mirror over
  queries 11..20 of ``positional_qk_circuit`` (causal softmax, weights divided by the layer's mean
  LayerNorm scale, as in chapter 2). Uniform attention over keys 0..p would give 0.063.
* **detector** (H1.0): at END it attends to a broken mirror pair. Its *detector score* is END's
  attention on the two positions of the pair, averaged over palindromes broken at one second-half
  position and over the ten positions. Uniform attention would give 2/22 = 0.091. Being an average
  over the ten pairs, it cannot see a head that checks one or two pairs only (the July model's
  H1.1 checks pair (1, 20) alone); ``ModelRoles.partial_detectors`` lists such heads.

Each role goes to the head with the highest score over all four heads, so the layer it lands in
is a finding, not an assumption. A role counts as played when its score is at least
``CHANCE_MULTIPLE`` times the uniform value. A model *replicates the mechanism* when the mirror
head sits in layer 0 and the detector in layer 1, both played, and the mirror head's OV output
feeds the detector's keys (K-composition) beyond random matrices.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from palindrome.chapters.blindspots import SweepResult, blind_positions, single_mismatch_sweep
from palindrome.circuits import (
    embedding_qk_circuit,
    ln_scale_stats,
    mirror_attention,
    positional_qk_circuit,
)
from palindrome.composition import composition_scores, random_composition_scores
from palindrome.constants import (
    D_VOCAB,
    END_POS,
    FIRST_HALF,
    HEAD_NAMES,
    HEADS,
    MIRROR,
    N_HEADS,
    N_LAYERS,
    SECOND_HALF,
    SEQ_LEN,
)
from palindrome.data import PalindromeDataset
from palindrome.fast import check_architecture
from palindrome.findings import Findings
from palindrome.hooks import activations
from palindrome.inputs import broken_at_each_position_fresh, shuffled_halves
from palindrome.metrics import accuracy_from_logits, end_logits, loss_from_logits
from palindrome.plots import heatmap_grid
from palindrome.tokens import check_finite, check_floats, check_int, validate_tokens

JULY_NAME: str = "July 2023"
"""How tables and figures name the original checkpoint."""
CHANCE_MULTIPLE: float = 3.0
"""A role is played when its score is at least this many times what uniform attention gives."""
MIRROR_CHANCE: float = sum(1 / (p + 1) for p in SECOND_HALF) / len(SECOND_HALF)
"""Lambda score of uniform causal attention: query p spreads over keys 0..p (0.063)."""
DETECTOR_CHANCE: float = 2 / SEQ_LEN
"""Detector score of uniform attention from END over all 22 positions (0.091)."""
TOKEN_CHANCE: float = 1 / D_VOCAB
"""Token-match score of a token circuit that ignores token identity: 1 / 33 (0.030)."""
MIRROR_THRESHOLD: float = CHANCE_MULTIPLE * MIRROR_CHANCE
DETECTOR_THRESHOLD: float = CHANCE_MULTIPLE * DETECTOR_CHANCE
PARTIAL_SHARE: float = 0.5
"""A layer-1 head that is no detector but gives a broken pair this much of END's attention checks that pair."""
LOW_COVERAGE: float = 0.3
"""END attention (best layer-1 head) below which a pair counts as barely attended (chapter 11 lists such pairs)."""
COMPOSITION_SIGMAS: float = 3.0
"""K-composition counts as real above the random baseline's mean + 3 std."""
SCALE_SIZE: int = 1000
"""``PalindromeDataset(SCALE_SIZE)`` measures each layer's mean LayerNorm scale (as chapter 2)."""
PROBE_SIZE: int = 200
"""Random palindromes broken at each second-half position, for the detector score."""
PROBE_SEED: int = 4
EVAL_SIZE: int = 10_000
"""Held-out training-distribution sequences for accuracy and loss (no replica trained on them)."""
EVAL_SEED: int = 2023
DECOY_SIZE: int = 2000
"""Palindromes whose second half is then shuffled: same values as a palindrome, wrong order."""
DECOY_SEED: int = 5


def layer_scale(model: HookedTransformer, layer: int, toks: Optional[Int[Tensor, "batch seq"]] = None) -> float:
    """The constant LayerNorm scale of ``layer`` the role scores use: its mean over PalindromeDataset(SCALE_SIZE)."""
    toks = PalindromeDataset(SCALE_SIZE).toks if toks is None else validate_tokens(toks)
    return ln_scale_stats(model, toks, layer).overall_mean


def mirror_scores(
    model: HookedTransformer, toks: Optional[Int[Tensor, "batch seq"]] = None
) -> Float[Tensor, "layer head"]:
    """Lambda score of every head: mean attention from queries 11..20 to their mirrors in its positional QK circuit."""
    toks = PalindromeDataset(SCALE_SIZE).toks if toks is None else validate_tokens(toks)
    scores = torch.zeros(N_LAYERS, N_HEADS)
    for layer in range(N_LAYERS):
        scale = layer_scale(model, layer, toks)
        for head in range(N_HEADS):
            circuit = positional_qk_circuit(model, layer, head, scale)
            scores[layer, head] = float(mirror_attention(circuit).attn_to_mirror.mean())
    return scores


def token_match_scores(
    model: HookedTransformer, toks: Optional[Int[Tensor, "batch seq"]] = None
) -> Float[Tensor, " head"]:
    """Token part of each layer-0 head's QK circuit: the mean attention a value token gives its own value.

    The diagonal of ``embedding_qk_circuit`` (softmax over the 33 key tokens, weights divided by the
    layer's mean LayerNorm scale, as chapter 2 and ``mirror_scores``), averaged over the 31 value
    tokens. A circuit that ignores token identity gives ``TOKEN_CHANCE`` (1/33).
    """
    scale = layer_scale(model, 0, toks)
    values = D_VOCAB - 2  # the value tokens 0..30; START and END never need matching
    return torch.tensor(
        [float(embedding_qk_circuit(model, 0, head, scale)[:values, :values].diag().mean()) for head in range(N_HEADS)]
    )


def same_values_in_halves(toks: Int[Tensor, "batch seq"]) -> Tensor:
    """Whether each sequence's two halves hold the same values (as multisets), whatever their order."""
    toks = validate_tokens(toks)
    first, second = toks[:, list(FIRST_HALF)], toks[:, list(SECOND_HALF)]
    return (first.sort(-1).values == second.sort(-1).values).all(-1)


def mismatch_probe(n: int = PROBE_SIZE, seed: int = PROBE_SEED) -> Int[Tensor, "position n seq"]:
    """The detector-score probe: ``inputs.broken_at_each_position_fresh`` with the chapter's size and seed."""
    return broken_at_each_position_fresh(n, seed)


def shuffled_half_decoys(n: int = DECOY_SIZE, seed: int = DECOY_SEED) -> Int[Tensor, "n seq"]:
    """The chapter's decoys: ``inputs.shuffled_halves`` with its size and seed."""
    return shuffled_halves(n, seed)


def end_attention_profile(
    model: HookedTransformer, probe: Int[Tensor, "position n seq"]
) -> Float[Tensor, "layer head position key"]:
    """END's mean attention on every key position, for each head and each broken position p of the probe."""
    if probe.ndim != 3 or probe.shape[0] != len(SECOND_HALF):
        raise ValueError(
            f"probe must be (position, n, seq) with one row per second-half position, as made by "
            f"mismatch_probe(); got shape {tuple(probe.shape)}"
        )
    names = [get_act_name("pattern", layer) for layer in range(N_LAYERS)]
    cache = activations(model, probe.flatten(0, 1), names)
    out = torch.zeros(N_LAYERS, N_HEADS, len(SECOND_HALF), probe.shape[-1])
    for layer, name in enumerate(names):
        end_rows = cache[name][:, :, END_POS].cpu().view(*probe.shape[:2], N_HEADS, -1)  # [pos, n, head, src]
        out[layer] = end_rows.mean(1).transpose(0, 1)  # [head, pos, src]
    return out


def detector_attention(
    model: HookedTransformer, probe: Int[Tensor, "position n seq"]
) -> Float[Tensor, "layer head position"]:
    """END's mean attention on the broken pair {p, 21 - p}, for each head and broken position p."""
    profile = end_attention_profile(model, probe)
    index = torch.arange(len(SECOND_HALF))
    second = torch.tensor(SECOND_HALF)
    first = torch.tensor([MIRROR[p] for p in SECOND_HALF])
    return profile[:, :, index, second] + profile[:, :, index, first]


def swap_heads(model: HookedTransformer, layer: int) -> HookedTransformer:
    """A copy of ``model`` with the two heads of ``layer`` trading places (the same function, relabelled)."""
    check_architecture(model)
    layer = check_int("layer", layer, 0)
    if layer >= model.cfg.n_layers:
        raise ValueError(f"layer must be in 0..{model.cfg.n_layers - 1}, got {layer}")
    swapped = copy.deepcopy(model)
    order = torch.arange(model.cfg.n_heads).flip(0)
    attn = swapped.blocks[layer].attn
    with torch.no_grad():
        for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V"):
            param = getattr(attn, name)
            param.copy_(param[order.to(param.device)])
    return swapped


def best_head(scores: Float[Tensor, "layer head"]) -> tuple[int, int]:
    """The (layer, head) with the largest score."""
    scores = check_floats("scores", scores)
    if scores.ndim != 2 or not scores.numel():
        raise ValueError(f"scores must be a non-empty (layer, head) matrix, got shape {tuple(scores.shape)}")
    layer, head = divmod(int(scores.argmax()), scores.shape[1])
    return layer, head


def head_name(layer_head: tuple[int, int]) -> str:
    """Book name of a head: (1, 0) -> "1.0"."""
    return HEAD_NAMES[HEADS.index(tuple(layer_head))]


@dataclass(frozen=True)
class ModelRoles:
    """Everything the replication chapter measures of one model."""

    name: str
    mirror_scores: Float[Tensor, "layer head"]
    detector_attention: Float[Tensor, "layer head position"]
    k_composition: Float[Tensor, "writer reader"]
    v_composition: Float[Tensor, "writer reader"]
    accuracy: float
    loss: float
    misclassified: Float[Tensor, " position"]
    blind: tuple[int, ...]
    fooled_by_shuffles: float
    composition_threshold: float
    positions: tuple[int, ...] = field(default=SECOND_HALF)

    @property
    def detector_scores(self) -> Float[Tensor, "layer head"]:
        """Detector score of every head: END's attention on the broken pair, averaged over positions."""
        return self.detector_attention.mean(-1)

    @property
    def mirror_head(self) -> tuple[int, int]:
        """The (layer, head) with the highest lambda score."""
        return best_head(self.mirror_scores)

    @property
    def detector_head(self) -> tuple[int, int]:
        """The (layer, head) with the highest detector score."""
        return best_head(self.detector_scores)

    @property
    def mirror_score(self) -> float:
        """The mirror head's lambda score."""
        return float(self.mirror_scores[self.mirror_head])

    @property
    def detector_score(self) -> float:
        """The detector head's detector score."""
        return float(self.detector_scores[self.detector_head])

    @property
    def detector_heads(self) -> tuple[tuple[int, int], ...]:
        """Every head whose detector score clears the threshold, best first (a model may have two)."""
        scores = self.detector_scores
        found = [(layer, h) for layer, h in HEADS if scores[layer, h] >= DETECTOR_THRESHOLD]
        return tuple(sorted(found, key=lambda lh: -float(scores[lh])))

    def partial_detectors(self, share: float = PARTIAL_SHARE) -> dict[tuple[int, int], tuple[int, ...]]:
        """Layer-1 heads that are no detector (score below threshold) yet give some broken pairs >= ``share``.

        Maps each such head to the second-half positions p whose pair (21 - p, p) it covers: a
        detector of one or two pairs, which the ten-pair average of the detector score cannot see.
        """
        found = {}
        for layer, head in HEADS:
            if layer != 1 or (layer, head) in self.detector_heads:
                continue
            covered = [
                p
                for p, a in zip(self.positions, self.detector_attention[layer, head].tolist(), strict=True)
                if a >= share
            ]
            if covered:
                found[(layer, head)] = tuple(covered)
        return found

    def covers(self, share: float = PARTIAL_SHARE) -> dict[int, Optional[tuple[int, int]]]:
        """Each pair the best detector misses (less than ``share`` of END's attention), and the head covering it.

        Keys are second-half positions p of the pairs (21 - p, p); a value is the partial detector
        (``partial_detectors``) that covers the pair, or None when no head does. Empty when the best
        detector gives every broken pair at least ``share``; ValueError when the model has no detector.
        """
        share = check_finite("share", share, " in (0, 1]")
        if not 0 < share <= 1:
            raise ValueError(f"share must lie in (0, 1], got {share}")
        if not self.detector_heads:
            raise ValueError(
                f"{self.name} has no detector head (no score >= {DETECTOR_THRESHOLD:.3f}), so no pair is missed by one"
            )
        layer, head = self.detector_heads[0]
        partial = self.partial_detectors(share)
        return {
            p: next((h for h, covered in partial.items() if p in covered), None)
            for p, a in zip(self.positions, self.detector_attention[layer, head].tolist(), strict=True)
            if a < share
        }

    @property
    def roles_in_place(self) -> bool:
        """Mirror in layer 0 and detector in layer 1, each scoring at least CHANCE_MULTIPLE x uniform."""
        return (
            self.mirror_head[0] == 0
            and self.detector_head[0] == 1
            and self.mirror_score >= MIRROR_THRESHOLD
            and self.detector_score >= DETECTOR_THRESHOLD
        )

    @property
    def mirror_to_detector(self) -> tuple[float, float]:
        """(K, V) composition of the mirror head's OV into the detector head (NaN unless layer 0 -> 1)."""
        if self.mirror_head[0] != 0 or self.detector_head[0] != 1:
            return float("nan"), float("nan")
        i, j = self.mirror_head[1], self.detector_head[1]
        return float(self.k_composition[i, j]), float(self.v_composition[i, j])

    @property
    def replicates(self) -> bool:
        """Roles in place and the mirror head K-composes with the detector beyond the random baseline."""
        return self.roles_in_place and self.mirror_to_detector[0] > self.composition_threshold

    def coverage(self) -> Float[Tensor, " position"]:
        """Per broken position, the largest END attention any head puts on the pair (a second head may cover it)."""
        return self.detector_attention.flatten(0, 1).max(0).values


def composition_threshold(sigmas: float = COMPOSITION_SIGMAS) -> float:
    """Mean + ``sigmas`` std of the random composition-score baseline (chapter 4's)."""
    sigmas = check_finite("sigmas", sigmas, " (standard deviations above the mean)")
    baseline = random_composition_scores()
    return float(baseline.mean() + sigmas * baseline.std())


def analyse_model(
    model: HookedTransformer,
    name: str,
    probe: Optional[Int[Tensor, "position n seq"]] = None,
    eval_set: Optional[PalindromeDataset] = None,
    threshold: Optional[float] = None,
    decoys: Optional[Int[Tensor, "n seq"]] = None,
    sweep: Optional[SweepResult] = None,
) -> ModelRoles:
    """Role scores, composition, held-out accuracy, blind spots and shuffled-half decoys of one model.

    ``sweep`` is chapter 8's ``single_mismatch_sweep`` of this model, when the caller already ran it
    (``palindrome.book.report`` keeps its standard errors); by default it is run here at chapter 8's size.
    """
    check_architecture(model)
    if sweep is not None and (not isinstance(sweep, SweepResult) or sweep.side != "second"):
        raise ValueError(
            f"sweep must be None or this model's single_mismatch_sweep (side 'second'), got {type(sweep).__name__}"
        )
    probe = mismatch_probe() if probe is None else probe
    decoys = shuffled_half_decoys() if decoys is None else validate_tokens(decoys)
    eval_set = PalindromeDataset(EVAL_SIZE, seed=EVAL_SEED) if eval_set is None else eval_set
    logits = end_logits(model, eval_set.toks, fast=True)
    labels = eval_set.is_palindrome.to(logits.device)
    sweep = single_mismatch_sweep(model, progress=False) if sweep is None else sweep
    return ModelRoles(
        name=name,
        mirror_scores=mirror_scores(model),
        detector_attention=detector_attention(model, probe),
        k_composition=composition_scores(model, "K"),
        v_composition=composition_scores(model, "V"),
        accuracy=accuracy_from_logits(logits, labels),
        loss=loss_from_logits(logits, labels),
        misclassified=sweep.misclassified_frac,
        blind=tuple(blind_positions(sweep)),
        fooled_by_shuffles=(end_logits(model, decoys, fast=True).argmax(-1) == 1).float().mean().item(),
        composition_threshold=composition_threshold() if threshold is None else threshold,
    )


def analyse_models(models: Mapping[str, HookedTransformer], progress: bool = True) -> list[ModelRoles]:
    """``analyse_model`` for each named model, sharing the probe, held-out set and baseline."""
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a dict naming at least one model, e.g. {'July 2023': load_model()}")
    for model in models.values():
        check_architecture(model)
    probe = mismatch_probe()
    eval_set = PalindromeDataset(EVAL_SIZE, seed=EVAL_SEED)
    threshold = composition_threshold()
    decoys = shuffled_half_decoys()
    return [
        analyse_model(model, name, probe, eval_set, threshold, decoys)
        for name, model in tqdm(models.items(), desc="models", unit="model", disable=not progress)
    ]


def roles_table(results: Sequence[ModelRoles]) -> pd.DataFrame:
    """One row per model: accuracy, who plays each role and how strongly, composition, blind pairs."""
    rows = []
    for r in results:
        k, v = r.mirror_to_detector
        rows.append(
            {
                "model": r.name,
                "accuracy": r.accuracy,
                "loss": r.loss,
                "mirror head": head_name(r.mirror_head),
                "lambda score": r.mirror_score,
                "detector head": head_name(r.detector_head),
                "detector score": r.detector_score,
                "detector heads": " + ".join(head_name(h) for h in r.detector_heads) or "none",
                "K-comp": k,
                "V-comp": v,
                "replicates": r.replicates,
                "blind pairs": ", ".join(f"({MIRROR[p]},{p})" for p in r.blind) or "none",
                "fooled by shuffles": r.fooled_by_shuffles,
            }
        )
    return pd.DataFrame(rows).set_index("model")


def _float64(name: str, values: Sequence[float]) -> Tensor:
    try:
        return torch.from_numpy(np.asarray(values, dtype=float).reshape(-1))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r:.60} ({exc})") from exc


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks)."""
    x, y = (pd.Series(check_floats(name, _float64(name, v)).numpy()) for name, v in (("x", x), ("y", y)))
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"need two sequences of equal length >= 3, got {len(x)} and {len(y)}")
    if x.nunique() < 2 or y.nunique() < 2:
        raise ValueError("x and y must each hold at least two different values (a constant has no rank correlation)")
    return float(np.corrcoef(x.rank(), y.rank())[0, 1])


def attention_blindness_correlation(results: Sequence[ModelRoles]) -> float:
    """Rank correlation, over every (model, position), of the pair's coverage at END and the miss rate."""
    attention = torch.cat([r.coverage() for r in results])
    missed = torch.cat([r.misclassified for r in results])
    return rank_correlation(attention.tolist(), missed.tolist())


KEYS: tuple[str, ...] = (
    "replicas",
    "replicas replicating",
    "replicas with roles in place",
    "replicating replicas with V-composition above baseline",
    "replicas with a blind pair",
    "replicas with two detector heads",
    "replicas with a partial detector",
    "replicas with the July blind pairs",
    "min replica accuracy",
    "min replica lambda score",
    "min replica detector score",
    "replicas fooled by shuffles (> 0.05)",
    "max fooled by shuffles, replicating replicas",
    "July lambda score",
    "July detector score",
    "attention-blindness rank correlation",
)
"""Every key ``key_findings`` returns, in order."""


def key_findings(results: Sequence[ModelRoles], reference: str = JULY_NAME) -> Findings:
    """The chapter's asserted numbers: how many retrained models replicate, and how they differ."""
    names = [r.name for r in results]
    if reference not in names:
        raise ValueError(f"results must include the reference model {reference!r}; got {names}")
    july = results[names.index(reference)]
    replicas = [r for r in results if r.name != reference]
    if not replicas:
        raise ValueError("results must include at least one retrained model besides the reference")
    return Findings(
        "roles",
        {
            "replicas": len(replicas),
            "replicas replicating": sum(r.replicates for r in replicas),
            "replicas with roles in place": sum(r.roles_in_place for r in replicas),
            "replicating replicas with V-composition above baseline": sum(
                r.replicates and r.mirror_to_detector[1] > r.composition_threshold for r in replicas
            ),
            "replicas with a blind pair": sum(bool(r.blind) for r in replicas),
            "replicas with two detector heads": sum(len(r.detector_heads) == 2 for r in replicas),
            "replicas with a partial detector": sum(bool(r.partial_detectors()) for r in replicas),
            "replicas with the July blind pairs": sum(set(r.blind) == set(july.blind) for r in replicas),
            "min replica accuracy": min(r.accuracy for r in replicas),
            "min replica lambda score": min(r.mirror_score for r in replicas),
            "min replica detector score": min(r.detector_score for r in replicas),
            "replicas fooled by shuffles (> 0.05)": sum(r.fooled_by_shuffles > 0.05 for r in replicas),
            "max fooled by shuffles, replicating replicas": max(
                (r.fooled_by_shuffles for r in replicas if r.replicates), default=float("nan")
            ),
            "July lambda score": july.mirror_score,
            "July detector score": july.detector_score,
            "attention-blindness rank correlation": attention_blindness_correlation(results),
        },
        KEYS,
    )


# --- figures -------------------------------------------------------------------------------------


def _per_model_heatmaps(
    results: Sequence[ModelRoles],
    panels: Mapping[str, Sequence[Tensor]],
    title: str,
    x: Sequence[str],
    colorbar_title: str,
    width: int,
    margin: int,
) -> go.Figure:
    """Side-by-side heatmaps with one row per model (long row labels, so wide gaps), one scale from 0."""
    names = [r.name for r in results]
    return heatmap_grid(
        {panel: torch.stack(list(rows)) for panel, rows in panels.items()},
        title,
        x=x,
        y=names,
        midpoint=None,
        colorbar_title=colorbar_title,
        spacing=0.16,
        width=width,
        height=margin + 28 * len(names),
    )


def role_score_figure(results: Sequence[ModelRoles]) -> go.Figure:
    """Lambda and detector scores of every head of every model, side by side."""
    return _per_model_heatmaps(
        results,
        {
            "lambda score (mirror)": [r.mirror_scores.flatten() for r in results],
            "detector score": [r.detector_scores.flatten() for r in results],
        },
        "Role scores of every head: one row per model",
        x=[f"H{n}" for n in HEAD_NAMES],
        colorbar_title="score",
        width=820,
        margin=140,
    )


def blindness_figure(results: Sequence[ModelRoles]) -> go.Figure:
    """Per model and broken position: the miss rate, and how much attention END puts on the pair."""
    return _per_model_heatmaps(
        results,
        {
            "miss rate": [r.misclassified for r in results],
            "END attention on the pair (best head)": [r.coverage() for r in results],
        },
        "Blind pairs and where END looks, per model",
        x=[f"({MIRROR[p]},{p})" for p in results[0].positions],
        colorbar_title="fraction",
        width=900,
        margin=170,
    )


__all__ = [
    "CHANCE_MULTIPLE",
    "DETECTOR_CHANCE",
    "DETECTOR_THRESHOLD",
    "PARTIAL_SHARE",
    "TOKEN_CHANCE",
    "MIRROR_CHANCE",
    "JULY_NAME",
    "MIRROR_THRESHOLD",
    "ModelRoles",
    "analyse_model",
    "analyse_models",
    "best_head",
    "attention_blindness_correlation",
    "blindness_figure",
    "composition_threshold",
    "detector_attention",
    "end_attention_profile",
    "head_name",
    "key_findings",
    "layer_scale",
    "mirror_scores",
    "mismatch_probe",
    "rank_correlation",
    "role_score_figure",
    "roles_table",
    "same_values_in_halves",
    "shuffled_half_decoys",
    "swap_heads",
    "token_match_scores",
]
