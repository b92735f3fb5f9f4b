"""Chapter 13's measurement of one trained run: its blind pairs, its roles, its mirror head's attention, its cost.

Method. Every run of ``palindrome.variant_runs`` (the recipe on the original generator, the control, and on
generators that make single-mismatch inputs common) is judged by its own roles and blind pairs, found as chapter 11
finds them: the mirror head is the head with the highest lambda score (``roles.mirror_scores``), the detector the one
with the highest detector score, and a pair is blind when the model misses more than half of its single-mismatch
inputs (chapter 8's inputs, here ``MAP_INPUTS`` per pair sampled with fresh bases, so the binomial standard error
applies; ``blindspots.blind_positions``' threshold). Each run is scored on fresh inputs from the original
distribution (``roles.EVAL_SIZE`` held-out sequences), and its mirror head's positional QK circuit (chapter 2's,
causal softmax, weights divided by the layer's mean LayerNorm scale) is read at the control's blind pairs and at its
own. Since one constant scale is the approximation chapter 12 finds costliest, the head's own attention to the mirror
on natural inputs (the model's forward pass, every scale exact) is read beside it. ``control_of`` and
``stage_control`` find each run's control.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from palindrome.chapters.blindspots import BLIND_THRESHOLD
from palindrome.chapters.roles import EVAL_SEED, EVAL_SIZE, best_head, mirror_scores
from palindrome.checkpoint import PathLike
from palindrome.circuits import ln_scale_stats, mirror_attention, positional_qk_circuit
from palindrome.constants import MIRROR, PALINDROME, SECOND_HALF
from palindrome.data import PalindromeDataset
from palindrome.fast import num_threads
from palindrome.hooks import activations
from palindrome.inputs import broken_at_each_position_fresh
from palindrome.metrics import accuracy_from_logits, end_logits, loss_from_logits, miss_rates_by_position
from palindrome.tokens import (
    check_floats,
    check_items,
    check_layer_head,
    check_type,
    validate_tokens,
)
from palindrome.train import TrainConfig
from palindrome.variant_runs import CONTROL, RunRecord, load_manifest, load_run

ANALYSES_SOURCE: str = "run_analysis.analyse_run or analyse_runs"
"""Where a list of RunAnalysis comes from (named in the message when an argument is not one)."""
RECORDS_SOURCE: str = "variant_runs.load_manifest()['runs']"
"""Where a RunRecord comes from (named in the message when an argument is not one)."""


MAP_INPUTS: int = 400
"""Single-mismatch inputs per mirror pair in each run's map: chapter 8's inputs (a random palindrome, one
pair set to a != b), sampled with a fresh base each instead of enumerated over 32 bases."""


MAP_SEED: int = 13
"""Seed of the map's inputs (not used by any other chapter's probe)."""


SCALE_INPUTS: int = 200
"""Sequences whose mean LayerNorm scale divides the positional QK circuit (roles uses 1,000; the mean is stable)."""


ANALYSIS_THREADS: int = 1
"""Torch threads while analysing: many small forward passes, where one thread beats two on a shared 2-core machine."""


@dataclass(frozen=True)
class RunAnalysis:
    """What chapter 13 measures of one run: blindness, roles, the mirror head's QK circuit, cost."""

    variant: str
    seed: int
    epochs: int
    converged: bool
    misclassified: Float[Tensor, " position"]
    standard_error: Float[Tensor, " position"]
    blind: tuple[int, ...]
    accuracy: float
    loss: float
    mirror_head: tuple[int, int]
    mirror_score: float
    mirror_attention: Float[Tensor, " position"]
    measured_attention: Float[Tensor, " position"]
    correct: Bool[Tensor, " n"]
    losses: Float[Tensor, " n"]
    n_inputs: int = MAP_INPUTS
    positions: tuple[int, ...] = SECOND_HALF

    @property
    def name(self) -> str:
        """Row label: variant, seed and, for a longer run, its epochs."""
        tail = "" if self.epochs == TrainConfig.epochs else f", {self.epochs} ep"
        return f"{self.variant} s{self.seed}{tail}"

    def miss(self, positions: Sequence[int]) -> float:
        """Mean miss rate over ``positions`` (NaN for none)."""
        return _mean_at(self.misclassified, positions)

    def attention_at(self, positions: Sequence[int], measured: bool = False) -> float:
        """Mean attention of the mirror head from ``positions`` to their mirrors (NaN for none): the positional
        circuit's, or with ``measured`` the head's own on natural inputs."""
        check_type("measured", measured, bool)
        return _mean_at(self.measured_attention if measured else self.mirror_attention, positions)

    @property
    def errors(self) -> int:
        """Misclassified inputs of the held-out set."""
        return int((~self.correct).sum())


def _mean_at(values: Tensor, positions: Sequence[int]) -> float:
    index = [SECOND_HALF.index(p) for p in positions]
    return float(values[index].mean()) if index else float("nan")


def mirror_head_attention(
    model: HookedTransformer, scale_toks: Int[Tensor, "batch seq"]
) -> tuple[tuple[int, int], float, Float[Tensor, " position"]]:
    """The mirror head as roles finds it, its lambda score, and its positional attention to the mirror per query
    11..20."""
    scores = mirror_scores(model, scale_toks)
    layer, head = best_head(scores)
    scale = ln_scale_stats(model, scale_toks, layer).overall_mean
    table = mirror_attention(positional_qk_circuit(model, layer, head, scale))
    return (
        (layer, head),
        float(scores[layer, head]),
        torch.tensor(table["attn_to_mirror"].to_numpy(), dtype=torch.float32),
    )


def measured_mirror_attention(
    model: HookedTransformer, layer: int, head: int, toks: Int[Tensor, "batch seq"]
) -> Float[Tensor, " position"]:
    """The head's real attention from each query 11..20 to its mirror, averaged over ``toks``: the model's own
    forward pass, so every LayerNorm scale is exact (no constant-scale or positional-only approximation)."""
    check_layer_head(model, layer, head)
    name = f"blocks.{layer}.attn.hook_pattern"
    pattern = activations(model, validate_tokens(toks), [name])[name][:, head]
    query = torch.tensor(SECOND_HALF)
    return pattern[:, query, torch.tensor([MIRROR[p] for p in SECOND_HALF])].float().mean(0).cpu()


def _check_inputs(inputs: object) -> Int[Tensor, "position n seq"]:
    if not isinstance(inputs, Tensor) or inputs.ndim != 3 or inputs.shape[0] != len(SECOND_HALF) or not inputs.shape[1]:
        raise ValueError(
            f"inputs must be a (position, n, seq) tensor of tokens with one row per second-half position "
            f"(inputs.broken_at_each_position_fresh), got {getattr(inputs, 'shape', type(inputs).__name__)}"
        )
    validate_tokens(inputs.flatten(0, 1))
    return inputs


def single_mismatch_map(
    model: HookedTransformer, inputs: Optional[Int[Tensor, "position n seq"]] = None
) -> tuple[Float[Tensor, " position"], Float[Tensor, " position"]]:
    """Per second-half position p: the fraction of inputs broken only at (21 - p, p) called palindromes, and its
    standard error."""
    inputs = broken_at_each_position_fresh(MAP_INPUTS, MAP_SEED) if inputs is None else _check_inputs(inputs)
    rates = miss_rates_by_position(
        lambda toks: end_logits(model, toks, fast=True).argmax(-1).cpu() == PALINDROME, inputs
    )
    missed = torch.tensor(rates.tolist())
    return missed, (missed * (1 - missed) / inputs.shape[1]).sqrt()


def blind_in(missed: Float[Tensor, " position"]) -> tuple[int, ...]:
    """Second-half positions whose miss rate exceeds chapter 8's threshold (``blindspots.BLIND_THRESHOLD``)."""
    missed = check_floats("missed", missed)
    if missed.shape != (len(SECOND_HALF),):
        raise ValueError(
            f"missed must hold one miss rate per second-half position ({len(SECOND_HALF)}), got shape "
            f"{tuple(missed.shape)}"
        )
    return tuple(p for p, f in zip(SECOND_HALF, missed.tolist(), strict=True) if f > BLIND_THRESHOLD)


def analyse_run(
    model: HookedTransformer,
    record: RunRecord,
    eval_set: Optional[PalindromeDataset] = None,
    scale_toks: Optional[Int[Tensor, "batch seq"]] = None,
    inputs: Optional[Int[Tensor, "position n seq"]] = None,
) -> RunAnalysis:
    """Blind pairs (with standard errors), the mirror head and its attention, accuracy and loss on fresh original
    data."""
    check_type("record", record, RunRecord, RECORDS_SOURCE)
    eval_set = (
        PalindromeDataset(EVAL_SIZE, seed=EVAL_SEED)
        if eval_set is None
        else check_type("eval_set", eval_set, PalindromeDataset)
    )
    scale_toks = PalindromeDataset(SCALE_INPUTS).toks if scale_toks is None else validate_tokens(scale_toks)
    inputs = broken_at_each_position_fresh(MAP_INPUTS, MAP_SEED) if inputs is None else _check_inputs(inputs)
    missed, error = single_mismatch_map(model, inputs)
    logits = end_logits(model, eval_set.toks, fast=True)
    labels = eval_set.is_palindrome.to(logits.device)
    mirror, lam, attention = mirror_head_attention(model, scale_toks)
    losses = F.cross_entropy(logits.double(), labels.long(), reduction="none")
    return RunAnalysis(
        variant=record.variant,
        seed=record.seed,
        epochs=record.epochs,
        converged=record.converged,
        misclassified=missed,
        standard_error=error,
        blind=blind_in(missed),
        accuracy=accuracy_from_logits(logits, labels),
        loss=loss_from_logits(logits, labels),
        mirror_head=mirror,
        mirror_score=lam,
        mirror_attention=attention,
        measured_attention=measured_mirror_attention(model, *mirror, scale_toks),
        correct=(logits.argmax(-1) == labels).cpu(),
        losses=losses.cpu(),
        n_inputs=inputs.shape[1],
    )


def analyse_runs(directory: Optional[PathLike] = None, progress: bool = True) -> list[RunAnalysis]:
    """``analyse_run`` for every run in the variant-run manifest (shared held-out set, scale inputs and probe)."""
    manifest = load_manifest(directory)
    eval_set = PalindromeDataset(EVAL_SIZE, seed=EVAL_SEED)
    scale_toks = PalindromeDataset(SCALE_INPUTS).toks
    inputs = broken_at_each_position_fresh(MAP_INPUTS, MAP_SEED)
    results = []
    with num_threads(ANALYSIS_THREADS):
        for record in tqdm(manifest["runs"], desc="runs", unit="run", disable=not progress):
            model = load_run(record.variant, record.seed, record.epochs, directory=directory, device="cpu")
            results.append(analyse_run(model, record, eval_set, scale_toks, inputs))
    return results


def control_of(results: Sequence[RunAnalysis], run: RunAnalysis) -> RunAnalysis:
    """The control run (original generator, 15 epochs) with ``run``'s seed."""
    check_items("results", results, RunAnalysis, ANALYSES_SOURCE)
    check_type("run", run, RunAnalysis, ANALYSES_SOURCE)
    for r in results:
        if (r.variant, r.seed, r.epochs) == (CONTROL, run.seed, TrainConfig.epochs):
            return r
    raise ValueError(f"results hold no {CONTROL!r} 15-epoch run with seed {run.seed}")


def stage_control(results: Sequence[RunAnalysis], run: RunAnalysis) -> RunAnalysis:
    """The control with ``run``'s seed trained as long as ``run`` where that stage exists, else the 15-epoch one."""
    check_items("results", results, RunAnalysis, ANALYSES_SOURCE)
    check_type("run", run, RunAnalysis, ANALYSES_SOURCE)
    for r in results:
        if (r.variant, r.seed, r.epochs) == (CONTROL, run.seed, run.epochs):
            return r
    return control_of(results, run)
