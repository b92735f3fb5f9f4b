"""The ablation engine: replacing attention heads' activations, built once per model, reference batch and seed.

An ablation replaces one head's activation at one hook point, at every position or only at
some, and reruns the model with TransformerLens hooks. Four activations can be ablated:

- ``"result"``: the head's output written to the residual stream (``hook_result``),
- ``"q"``, ``"k"``, ``"v"``: the head's queries, keys or values (``hook_q`` / ``hook_k`` / ``hook_v``).

All four hooks hold tensors shaped ``(batch, seq, head, d)``, so one hook function serves them.
Three kinds of replacement are offered:

- ``"zero"``: set the activation to 0,
- ``"mean"``: its mean at each position, over a reference batch (``Ablator(model, reference_toks)``
  computes it once, in one pass) or, without one, over the batch being run,
- ``"random"``: i.i.d. standard-normal noise, as the July-2023 original did, drawn on the CPU
  from a generator seeded with the ablator's seed at every run, so that every device and every
  repetition sees the same noise.

``Ablator`` holds the model, the reference means and the seed; its ``logits``, ``loss_increase``,
``effect`` and ``tables`` are the engine's measurements, and the module-level functions of the
same names are one-line calls on ``Ablator(model)`` (means over the batch itself). Every measured
batch is scored as one ``AblationScores`` record (``scores_from_logits``); ``score_table`` scores
several batches under several named settings at once and ``format_scores`` prints such a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence, Union

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from palindrome.hooks import HookFn, Hooks, activations, cached_run
from palindrome.metrics import accuracy_from_logits, end_logits, loss_from_logits
from palindrome.tokens import (
    TokensLike,
    check_finite,
    check_floats,
    check_int,
    check_layer_head,
    check_seed,
    validate_labels,
    validate_tokens,
)

ACTIVATIONS: tuple[str, ...] = ("result", "q", "k", "v")
"""Per-head activations that can be ablated (TransformerLens hook names)."""
QKV: tuple[str, ...] = ("q", "k", "v")
KINDS: tuple[str, ...] = ("zero", "mean", "random")
"""Ways of replacing an activation."""
DEFAULT_SEED: int = 0
"""Seed of the noise generator for ``kind="random"`` when none is given."""
NOISE_FLOOR: float = 5e-4
"""Loss changes smaller than this are reported as "~0" (their sign is numerical noise)."""
PROGRESS_MIN_RUNS: int = 10
"""Ablation tables with at least this many runs show a progress bar by default."""

Labels = Union[Tensor, Sequence[int]]


def check_kind(kind: str) -> str:
    """Return ``kind`` or raise ValueError naming the valid kinds."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return kind


def check_activation(activation: str) -> str:
    """Return ``activation`` or raise ValueError naming the valid activations."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return activation


def _check_positions(positions: Optional[Iterable[int]]) -> Optional[tuple[int, ...]]:
    if positions is None:
        return None
    if isinstance(positions, (str, bytes, Tensor)) or not isinstance(positions, Iterable):
        raise ValueError(f"positions must be a collection of positions (or None for all), got {positions!r}")
    positions = tuple(positions)
    bad = [p for p in positions if isinstance(p, bool) or not isinstance(p, int) or p < 0]
    if bad or not positions:
        raise ValueError(
            f"positions must be a non-empty collection of non-negative integers (or None for all), got {positions!r}"
        )
    return tuple(sorted(set(positions)))


@dataclass(frozen=True)
class Ablation:
    """Replace head ``layer.head``'s ``activation`` by ``kind`` (at ``positions``, or everywhere)."""

    layer: int
    head: int
    activation: str = "result"
    kind: str = "mean"
    positions: Optional[tuple[int, ...]] = None

    def __post_init__(self) -> None:
        check_activation(self.activation)
        check_kind(self.kind)
        object.__setattr__(self, "positions", _check_positions(self.positions))

    @property
    def hook_name(self) -> str:
        """The TransformerLens hook this ablation attaches to."""
        return get_act_name(self.activation, self.layer)

    def check(self, model: HookedTransformer) -> "Ablation":
        """Raise ValueError unless layer, head and positions exist in ``model``; return self."""
        check_layer_head(model, self.layer, self.head)
        if self.activation == "result" and not model.cfg.use_attn_result:
            raise ValueError(
                "ablating a head's 'result' needs a model built with use_attn_result=True "
                "(load_model does this); otherwise the hook never runs"
            )
        if self.positions is not None and max(self.positions) >= model.cfg.n_ctx:
            raise ValueError(f"positions must lie in 0..{model.cfg.n_ctx - 1}, got {list(self.positions)}")
        return self

    def __str__(self) -> str:
        where = "" if self.positions is None else f" at positions {list(self.positions)}"
        return f"{self.kind}-ablate {self.activation} of head {self.layer}.{self.head}{where}"


def ablation_hook(
    kind: str,
    head: int,
    positions: Optional[Iterable[int]] = None,
    reference: Optional[Float[Tensor, "seq d"]] = None,
    generator: Optional[torch.Generator] = None,
) -> HookFn:
    """A hook replacing head ``head`` of a ``(batch, seq, head, d)`` activation by zero, mean or noise.

    ``reference`` (kind "mean" only) is the per-position mean to use instead of the batch mean;
    ``generator`` (kind "random" only) draws the noise (a fresh ``DEFAULT_SEED`` one if None).
    """
    check_kind(kind)
    head = check_int("head", head, 0)
    positions = _check_positions(positions)
    if reference is not None and kind != "mean":
        raise ValueError(f"a reference mean only applies to kind 'mean', not {kind!r}")
    if kind == "random" and generator is None:
        generator = torch.Generator().manual_seed(DEFAULT_SEED)

    def hook(activation: Float[Tensor, "batch seq head d"], hook: HookPoint) -> Tensor:
        n_heads, seq = activation.shape[2], activation.shape[1]
        if head >= n_heads:
            raise ValueError(f"head must be in 0..{n_heads - 1} at {hook.name}, got {head}")
        pos = slice(None) if positions is None else list(positions)
        if positions is not None and max(positions) >= seq:
            raise ValueError(f"positions must lie in 0..{seq - 1}, got {list(positions)}")
        original = activation[:, :, head]  # [batch, seq, d]
        if kind == "zero":
            new = torch.zeros_like(original)
        elif kind == "mean":
            mean = original.mean(0) if reference is None else reference.to(original)
            if mean.shape != original.shape[1:]:
                raise ValueError(
                    f"reference must have shape {tuple(original.shape[1:])} (seq, d), got {tuple(mean.shape)}"
                )
            new = mean.expand_as(original)
        else:
            new = torch.randn(original.shape, generator=generator).to(original)
        activation = activation.clone()
        activation[:, pos, head] = new[:, pos]
        return activation

    return hook


def check_ablations(ablations: Union[Ablation, Sequence[Ablation]]) -> list[Ablation]:
    """Return ``ablations`` as a list (one Ablation is a list of one), or raise ValueError naming what was given."""
    if isinstance(ablations, Ablation):
        return [ablations]
    if isinstance(ablations, (str, bytes)) or not isinstance(ablations, Sequence):
        raise ValueError(f"ablations must be a list of Ablation objects, got {type(ablations).__name__}")
    for a in ablations:
        if not isinstance(a, Ablation):
            raise ValueError(f"ablations must be a list of Ablation objects, got an item of type {type(a).__name__}")
    return list(ablations)


def head_ablations(
    heads: Sequence[tuple[int, int]],
    kind: str,
    activation: str = "result",
    positions: Optional[Sequence[int]] = None,
) -> list[Ablation]:
    """One ``Ablation`` per (layer, head) in ``heads``, all with the same kind, activation and positions."""
    return [Ablation(layer, head, activation, kind, positions) for layer, head in heads]


@dataclass(frozen=True)
class AblationScores:
    """END metrics of one batch under a set of ablations: loss, accuracy and mean P(palindrome), overall and per class.

    A per-class mean is None when the batch holds no input of that class; ``loss_increase`` is
    None unless the loss without the ablations was given.
    """

    loss: float
    accuracy: float
    p_palindrome: float
    """Mean P(palindrome) over the batch."""
    p_palindrome_on_palindromes: Optional[float] = None
    p_palindrome_on_non_palindromes: Optional[float] = None
    loss_increase: Optional[float] = None
    """``loss`` minus the loss without the ablations."""


def scores_from_logits(
    logits: Float[Tensor, "batch 2"], labels: Labels, clean_loss: Optional[float] = None
) -> AblationScores:
    """The ``AblationScores`` of END logits against labels (``clean_loss``: the unablated loss, for the increase)."""
    logits = check_floats("logits", logits, "; NaN or inf here means the model or its inputs are broken")
    if logits.ndim != 2 or logits.shape[-1] != 2:
        raise ValueError(f"logits must have shape (batch, 2) (END logits), got {tuple(logits.shape)}")
    labels = validate_labels(labels, logits.shape[0])
    if clean_loss is not None:
        clean_loss = check_finite("clean_loss", clean_loss, " (the unablated loss) or None")
    loss = loss_from_logits(logits, labels)
    p_pal = logits.softmax(-1)[:, 1]
    on_class = {c: p_pal[labels.to(p_pal.device) == c] for c in (0, 1)}
    return AblationScores(
        loss=loss,
        accuracy=accuracy_from_logits(logits, labels),
        p_palindrome=p_pal.mean().item(),
        p_palindrome_on_palindromes=on_class[1].mean().item() if len(on_class[1]) else None,
        p_palindrome_on_non_palindromes=on_class[0].mean().item() if len(on_class[0]) else None,
        loss_increase=None if clean_loss is None else loss - clean_loss,
    )


class Ablator:
    """The ablation engine: a model, the reference batch mean ablation substitutes, and the noise seed, fixed once.

    With ``reference_toks`` the per-position mean of every head activation over that batch is
    computed here, in one forward pass, and every mean ablation substitutes it; without, a mean
    ablation substitutes the mean over the batch being run. ``seed`` seeds the noise of "random"
    ablations afresh for every run, so a run does not depend on the runs before it.
    """

    def __init__(
        self, model: HookedTransformer, reference_toks: Optional[TokensLike] = None, seed: int = DEFAULT_SEED
    ) -> None:
        self.model = model
        self.seed = check_seed(seed)
        self.reference_toks = None if reference_toks is None else validate_tokens(reference_toks).to(model.cfg.device)
        self.means: Optional[dict[str, Float[Tensor, "seq head d"]]] = None
        """Per-position means over the reference batch, keyed by hook name (None: batch means)."""
        if self.reference_toks is not None:
            acts = [a for a in ACTIVATIONS if a != "result" or model.cfg.use_attn_result]  # hook_result runs only then
            names = [get_act_name(act, layer) for layer in range(model.cfg.n_layers) for act in acts]
            self.means = {name: act.mean(0) for name, act in activations(model, self.reference_toks, names).items()}

    def hooks(self, ablations: Union[Ablation, Sequence[Ablation]]) -> list[tuple[str, HookFn]]:
        """The ``(hook name, hook)`` pairs that perform ``ablations`` (one noise generator shared by them)."""
        generator = torch.Generator().manual_seed(self.seed)
        hooks = []
        for a in check_ablations(ablations):
            a.check(self.model)
            reference = self.means[a.hook_name][:, a.head] if a.kind == "mean" and self.means is not None else None
            hooks.append((a.hook_name, ablation_hook(a.kind, a.head, a.positions, reference, generator)))
        return hooks

    def run(
        self, toks: TokensLike, ablations: Sequence[Ablation], names: Sequence[str] = (), extra_hooks: Hooks = ()
    ) -> tuple[Float[Tensor, "batch 2"], dict[str, Tensor]]:
        """END logits under ``ablations`` (plus ``extra_hooks``) and the activations named in ``names``."""
        logits, cache = cached_run(self.model, toks, names, self.hooks(ablations) + list(extra_hooks))
        return logits[:, -1], cache

    def logits(self, toks: TokensLike, ablations: Sequence[Ablation]) -> Float[Tensor, "batch 2"]:
        """END logits with every ablation in ``ablations`` applied at once (none: the clean logits)."""
        return self.run(toks, ablations)[0]

    def loss_increase(
        self, toks: TokensLike, labels: Labels, ablations: Sequence[Ablation], clean_loss: Optional[float] = None
    ) -> float:
        """Cross-entropy at END with the ablations minus without them (pass ``clean_loss`` to reuse it)."""
        if clean_loss is None:
            clean_loss = loss_from_logits(end_logits(self.model, toks), labels)
        else:
            clean_loss = check_finite("clean_loss", clean_loss, " (the unablated loss) or None to compute it")
        return loss_from_logits(self.logits(toks, ablations), labels) - clean_loss

    def effect(
        self, toks: TokensLike, labels: Labels, ablations: Sequence[Ablation], clean_loss: Optional[float] = None
    ) -> AblationScores:
        """Loss (and its increase), accuracy and the mean P(palindrome) on each class under ``ablations``."""
        toks = validate_tokens(toks).to(self.model.cfg.device)
        labels = validate_labels(labels, toks.shape[0]).to(self.model.cfg.device)
        if labels.all() or not labels.any():
            raise ValueError("labels must contain both palindromes (1) and non-palindromes (0)")
        if clean_loss is None:
            clean_loss = loss_from_logits(end_logits(self.model, toks), labels)
        else:
            clean_loss = check_finite("clean_loss", clean_loss, " (the unablated loss) or None to compute it")
        return scores_from_logits(self.logits(toks, ablations), labels, clean_loss)

    def tables(
        self,
        toks: TokensLike,
        labels: Labels,
        kind: str,
        activations: Sequence[str] = ACTIVATIONS,
        positions: Optional[Iterable[int]] = None,
        progress: Optional[bool] = None,
    ) -> dict[str, Float[Tensor, "layer head"]]:
        """For each activation, the loss increase from ablating it in each head on its own (CPU tensors).

        ``progress``: show a tqdm bar (None: only when there are at least PROGRESS_MIN_RUNS runs).
        """
        check_kind(kind)
        for activation in activations:
            check_activation(activation)
        toks = validate_tokens(toks).to(self.model.cfg.device)
        clean = loss_from_logits(end_logits(self.model, toks), labels)
        n_layers, n_heads = self.model.cfg.n_layers, self.model.cfg.n_heads
        tables = {act: torch.zeros(n_layers, n_heads) for act in activations}
        runs = [(act, layer, head) for act in activations for layer in range(n_layers) for head in range(n_heads)]
        if progress is None:
            progress = len(runs) >= PROGRESS_MIN_RUNS
        # mininterval: few redraws, so a notebook's stored output holds a couple of lines, not dozens.
        for act, layer, head in tqdm(runs, desc=f"{kind} ablations", disable=not progress, mininterval=2.0):
            ablation = Ablation(layer, head, act, kind, positions)
            tables[act][layer, head] = self.loss_increase(toks, labels, [ablation], clean_loss=clean)
        return tables


def ablated_logits(
    model: HookedTransformer, toks: TokensLike, ablations: Sequence[Ablation]
) -> Float[Tensor, "batch 2"]:
    """END logits under ``ablations``, means over ``toks`` itself (``Ablator(model).logits``)."""
    return Ablator(model).logits(toks, ablations)


def loss_increase(
    model: HookedTransformer,
    toks: TokensLike,
    labels: Labels,
    ablations: Sequence[Ablation],
    clean_loss: Optional[float] = None,
) -> float:
    """Loss increase under ``ablations``, means over ``toks`` itself (``Ablator(model).loss_increase``)."""
    return Ablator(model).loss_increase(toks, labels, ablations, clean_loss)


def ablation_effect(
    model: HookedTransformer,
    toks: TokensLike,
    labels: Labels,
    ablations: Sequence[Ablation],
    clean_loss: Optional[float] = None,
) -> AblationScores:
    """``Ablator(model).effect``: loss increase, accuracy and P(palindrome) per class, means over ``toks``."""
    return Ablator(model).effect(toks, labels, ablations, clean_loss)


def head_ablation_table(
    model: HookedTransformer,
    toks: TokensLike,
    labels: Labels,
    kind: str,
    activation: str = "result",
    positions: Optional[Iterable[int]] = None,
    progress: Optional[bool] = None,
) -> Float[Tensor, "layer head"]:
    """Loss increase from ablating ``activation`` (default: the output) of each head on its own, means over ``toks``."""
    return Ablator(model).tables(toks, labels, kind, (check_activation(activation),), positions, progress)[activation]


def qkv_ablation_table(
    model: HookedTransformer,
    toks: TokensLike,
    labels: Labels,
    kind: str,
    positions: Optional[Iterable[int]] = None,
    progress: Optional[bool] = None,
) -> dict[str, Float[Tensor, "layer head"]]:
    """Loss increase from ablating each head's queries, keys or values: {"q": ..., "k": ..., "v": ...}."""
    return Ablator(model).tables(toks, labels, kind, QKV, positions, progress)


def end_logits_under(ablator: Ablator, toks: TokensLike, ablations: Sequence[Ablation]) -> Float[Tensor, "batch 2"]:
    """END logits under ``ablations`` (none: the fast END-logit path of ``palindrome.fast``)."""
    if not check_ablations(ablations):
        return end_logits(ablator.model, toks, fast=True)
    return ablator.logits(toks, ablations)


def accuracy_under_ablation(
    model: HookedTransformer,
    toks: TokensLike,
    labels: Labels,
    ablations: Sequence[Ablation],
    reference_toks: Optional[TokensLike] = None,
) -> float:
    """Fraction of ``toks`` classified correctly at END under ``ablations`` (means over ``reference_toks``, else
    ``toks``)."""
    toks = validate_tokens(toks)
    labels = validate_labels(labels, toks.shape[0])
    logits = Ablator(model, reference_toks).logits(toks, check_ablations(ablations))
    return accuracy_from_logits(logits, labels)


def score_table(
    ablator: Ablator,
    batches: Mapping[str, tuple[TokensLike, Labels]],
    settings: Mapping[str, Sequence[Ablation]],
) -> pd.DataFrame:
    """Accuracy, loss and mean P(palindrome) of every batch under every setting (one forward pass per setting).

    Rows are setting names; columns a (batch, metric) MultiIndex with metrics "accuracy", "loss"
    and "P(palindrome)" (the fields of ``AblationScores``).
    """
    if not batches or not settings:
        raise ValueError("batches and settings must both be non-empty mappings")
    toks = [validate_tokens(t).cpu() for t, _ in batches.values()]
    labels = [validate_labels(lab, t.shape[0]).cpu() for t, (_, lab) in zip(toks, batches.values(), strict=True)]
    sizes = [t.shape[0] for t in toks]
    all_toks = torch.cat(toks)
    rows = {}
    for name, ablations in settings.items():
        logits = end_logits_under(ablator, all_toks, ablations).cpu()
        row = {}
        for batch, part, lab in zip(batches, logits.split(sizes), labels, strict=True):
            s = scores_from_logits(part, lab)
            row |= {(batch, "accuracy"): s.accuracy, (batch, "loss"): s.loss, (batch, "P(palindrome)"): s.p_palindrome}
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["batch", "metric"])
    table.index.name = "ablation"
    return table


def format_scores(table: pd.DataFrame, baseline: Union[str, float, None] = "none", width: int = 30) -> str:
    """A ``score_table`` as text: accuracy per batch (3 decimals) and, with a "dataset" batch, its loss change.

    ``baseline`` is the row (a setting name) or the dataset loss (a number) the change is measured
    from (``format_loss_change``, 3 decimals); ``None`` prints the loss itself (4 decimals).
    """
    if not isinstance(table, pd.DataFrame) or not isinstance(table.columns, pd.MultiIndex):
        raise ValueError("table must be a score_table (columns: a (batch, metric) MultiIndex)")
    if list(table.columns.names) != ["batch", "metric"]:
        raise ValueError("table must be a score_table (columns: a (batch, metric) MultiIndex)")
    width = check_int("width", width, 0)
    batches = list(dict.fromkeys(table.columns.get_level_values("batch")))
    has_loss = "dataset" in batches
    if isinstance(baseline, str):
        if baseline not in table.index:
            raise ValueError(f"baseline {baseline!r} is not a row of the table; rows: {list(table.index)}")
        baseline = float(table.loc[baseline, ("dataset", "loss")]) if has_loss else None
    header = f"{'ablation':<{width}}" + "".join(f"{b + ' acc':>22}" for b in batches)
    if has_loss:
        header += f"{'dataset loss' if baseline is None else 'dataset loss change':>22}"
    lines = [header]
    for name, row in table.iterrows():
        line = f"{name:<{width}}" + "".join(f"{row[(b, 'accuracy')]:>22.3f}" for b in batches)
        if has_loss:
            loss = row[("dataset", "loss")]
            text = f"{loss:.4f}" if baseline is None else format_loss_change(loss - baseline, 3)
            line += f"{text:>22}"
        lines.append(line)
    return "\n".join(lines)


def format_loss_change(x: float, digits: int = 3, significant: bool = False) -> str:
    """A signed loss change rounded so float noise cannot flip it; "~0" where only noise is left.

    Fixed style prints ``digits`` decimals and "~0" for anything that rounds to zero; significant
    style prints ``digits`` significant figures and "~0" below NOISE_FLOOR.
    """
    digits = check_int("digits", digits, 1)
    x = check_finite("x", x, " (a loss change)")
    floor = NOISE_FLOOR if significant else 0.5 * 10 ** (-digits)
    if abs(x) < floor:
        return "~0"
    return f"{x:+.{digits}g}" if significant else f"{x:+.{digits}f}"
