"""The path-patching engine: END logits with chosen edges of the residual stream live and the rest ablated.

The residual stream of this attention-only model is a sum of *senders*: the token embedding
(``"embed"``), the position embedding (``"pos"``), the output of every head (``"0.0"``, ``"0.1"``,
``"1.0"``, ``"1.1"``) and the constant output biases. Each head reads it three times, through
its query, key and value inputs (TransformerLens's ``hook_q_input`` / ``hook_k_input`` /
``hook_v_input`` with ``use_split_qkv_input``, taken *before* the head's LayerNorm), and the
unembedding reads it once at END (``"logits"``, before the final LayerNorm). An *edge* joins a
sender to a reader in a later layer, e.g. ``"0.0->1.0.k"`` (H0.0's output as H1.0's key input).
A head's output is read as ``hook_z @ W_O``: that is what ``hook_result`` holds, without the
five-dimensional product TransformerLens builds for it (switched off during these runs).

A *circuit* is a set of edges that stay live. Every other edge carries an ablated value instead
of the sender's real one: either its mean over a reference dataset at each position
(``method="mean"``) or its value on a different input (``method="resample"``, a
derangement of the batch: each row borrows another row's activation). Positions are the same
in every input, so neither replacement would change them; an ablated ``"pos"`` edge instead
carries the average position embedding over the value positions 1..20 (START and END keep
theirs), which erases *which* value slot a token sits in.

Live edges carry the sender's value *in the intervened run*: if H0.0's own inputs are partly
ablated, its output to H1.0 is what it computes from those inputs. Keeping every edge is the
clean model; keeping none gives END logits that do not depend on the input under mean ablation
(the same as mean-ablating every head's output), and under resampling the clean model's logits
on the borrowed inputs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from palindrome.constants import HEAD_NAMES, N_HEADS, N_LAYERS, VALUE_POSITIONS
from palindrome.hooks import HookFn, activations
from palindrome.tokens import TokensLike, check_int, check_positions, check_seed, validate_tokens

METHODS: tuple[str, ...] = ("mean", "resample")
"""Ways of replacing the value an ablated edge carries."""
DEFAULT_SEED: int = 0
"""Seed of the resampling derangement when none is given."""
INPUTS: tuple[str, ...] = ("q", "k", "v")
SENDERS: tuple[str, ...] = ("embed", "pos") + HEAD_NAMES
"""Everything that writes to the residual stream and depends on the input or position."""
RECEIVERS: tuple[str, ...] = tuple(f"{h}.{x}" for h in HEAD_NAMES for x in INPUTS) + ("logits",)
"""Everything that reads the residual stream: each head's q/k/v input, and the unembedding at END."""


def _layer(node: str) -> int:
    """Layer a sender writes from or a receiver reads in (embeddings: -1, logits: N_LAYERS)."""
    if node in ("embed", "pos"):
        return -1
    if node == "logits":
        return N_LAYERS
    return int(node.split(".")[0])


EDGES: tuple[str, ...] = tuple(f"{s}->{r}" for r in RECEIVERS for s in SENDERS if _layer(s) < _layer(r))
"""Every sender -> receiver edge of the model (42 of them)."""


def _edges(spec: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    return {name: frozenset(edges) for name, edges in spec.items()}


def _into(senders: Iterable[str], head: str, inputs: Iterable[str] = INPUTS) -> list[str]:
    return [f"{s}->{head}.{x}" for s in senders for x in inputs]


PATHS: dict[str, frozenset[str]] = _edges(
    {
        # (a) the inputs of H0.0
        "tokens -> H0.0 QK": _into(["embed"], "0.0", "qk"),
        "positions -> H0.0 QK": _into(["pos"], "0.0", "qk"),
        "tokens -> H0.0 V": _into(["embed"], "0.0", "v"),
        "positions -> H0.0 V": _into(["pos"], "0.0", "v"),
        # (b) K- and V-composition
        "H0.0 -> H1.0 K": ["0.0->1.0.k"],
        "H0.0 -> H1.0 V": ["0.0->1.0.v"],
        # (c) H1.0's direct effect
        "H1.0 -> logits": ["1.0->logits"],
        # outside the hypothesis
        "H0.0 -> H1.0 Q": ["0.0->1.0.q"],
        "positions -> H1.0": _into(["pos"], "1.0"),
        "tokens -> H1.0": _into(["embed"], "1.0"),
        "H0.1": _into(["embed", "pos"], "0.1") + [f"0.1->{r}" for r in RECEIVERS if _layer(r) > 0],
        "H1.1": _into(["embed", "pos", "0.0"], "1.1") + ["1.1->logits"],
        "direct to logits": ["embed->logits", "pos->logits", "0.0->logits"],
    }
)
"""Named groups of edges: the hypothesis's paths and the ones it leaves out.

A group that makes a head's output live ("H0.1", "H1.1") also makes that head's inputs live, so
the head computes from real inputs; edges between two heads outside the circuit stay dead.
"""
HYPOTHESIS_PATHS: tuple[str, ...] = (
    "tokens -> H0.0 QK",
    "positions -> H0.0 QK",
    "tokens -> H0.0 V",
    "positions -> H0.0 V",
    "H0.0 -> H1.0 K",
    "H0.0 -> H1.0 V",
    "H1.0 -> logits",
)
"""The paths the original write-up's mechanism uses."""
OTHER_PATHS: tuple[str, ...] = tuple(p for p in PATHS if p not in HYPOTHESIS_PATHS)
"""The groups of edges the hypothesis leaves out."""
HYPOTHESIS: frozenset[str] = frozenset().union(*(PATHS[p] for p in HYPOTHESIS_PATHS))
"""The edges of the proposed circuit."""
EXTENSION: tuple[str, ...] = ("H0.1", "H1.1", "positions -> H1.0")
"""What the hypothesis needs added to match the model (measured in chapter 10)."""
EXTENDED: frozenset[str] = HYPOTHESIS.union(*(PATHS[p] for p in EXTENSION))
"""The hypothesis plus ``EXTENSION``."""
ALL: frozenset[str] = frozenset(EDGES)


def path_table() -> pd.DataFrame:
    """Every named path: its edges and whether the hypothesis keeps it."""
    return pd.DataFrame(
        [
            {"path": name, "in hypothesis": name in HYPOTHESIS_PATHS, "edges": ", ".join(sorted(edges))}
            for name, edges in PATHS.items()
        ]
    ).set_index("path")


# --- validation --------------------------------------------------------------------------------


def check_method(method: str) -> str:
    """Return ``method`` or raise ValueError naming the valid methods."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def expand_edges(keep: Iterable[str]) -> frozenset[str]:
    """Edge names for a collection of edge and path names; ValueError lists the valid names."""
    if isinstance(keep, str):
        raise ValueError(f"keep must be a collection of edge or path names, not the string {keep!r}")
    edges: set[str] = set()
    for name in keep:
        if name in PATHS:
            edges |= PATHS[name]
        elif name in ALL:
            edges.add(name)
        else:
            raise ValueError(f"unknown edge or path {name!r}; paths: {sorted(PATHS)}; edges: {list(EDGES)}")
    return frozenset(edges)


def relabel_heads(keep: Iterable[str], heads: Mapping[str, str]) -> frozenset[str]:
    """The edges of ``keep`` with heads renamed by ``heads`` (e.g. {"0.0": "0.1"}), each a swap within one layer.

    A circuit named after the July model's heads (``HYPOTHESIS``) becomes the same circuit on another
    model whose roles sit in other heads. Renaming a to b also renames b to a, unless ``heads`` says
    where b goes; the result must be a permutation of the heads that keeps every head in its layer.
    """
    edges = expand_edges(keep)
    if not isinstance(heads, Mapping):
        raise ValueError(f"heads must map head names to head names, such as {{'0.0': '0.1'}}, got {heads!r:.60}")
    bad = [h for h in [*heads, *heads.values()] if h not in HEAD_NAMES]
    if bad:
        raise ValueError(f"heads must map head names {HEAD_NAMES} to head names, got {bad[0]!r}")
    moved = {a: b for a, b in heads.items() if a != b}
    if any(_layer(a) != _layer(b) for a, b in moved.items()):
        raise ValueError(f"a head can only be renamed to a head of its own layer, got {dict(heads)}")
    permutation = {h: h for h in HEAD_NAMES} | {b: a for a, b in moved.items() if b not in heads} | moved
    if sorted(permutation.values()) != sorted(HEAD_NAMES):
        raise ValueError(f"heads must rename distinct heads to distinct heads, got {dict(heads)}")

    def rename(node: str) -> str:
        if node in ("embed", "pos", "logits"):
            return node
        head = node[:3]
        return permutation[head] + node[3:]

    return frozenset(
        f"{rename(sender)}->{rename(receiver)}" for sender, receiver in (edge.split("->") for edge in edges)
    )


def _check_architecture(model: HookedTransformer) -> None:
    cfg = model.cfg
    if (cfg.n_layers, cfg.n_heads) != (N_LAYERS, N_HEADS) or not cfg.attn_only:
        raise ValueError(
            f"path ablations need the {N_LAYERS}-layer, {N_HEADS}-head attention-only model, got "
            f"n_layers={cfg.n_layers}, n_heads={cfg.n_heads}, attn_only={cfg.attn_only}"
        )
    if not cfg.use_split_qkv_input:
        raise ValueError("path ablations need per-head q/k/v inputs: build the model with use_split_qkv_input=True")


# --- the ablated values ------------------------------------------------------------------------


def derangement(n: int, seed: int = DEFAULT_SEED) -> Int[Tensor, " n"]:
    """A random permutation of 0..n-1 with no fixed point (a single cycle), seeded on the CPU."""
    n = check_int("n", n, 2, " (a derangement needs two items or more)")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(check_seed(seed)))
    index = torch.empty(n, dtype=torch.long)
    index[order] = order.roll(1)
    return index


def resample_tokens(
    toks: TokensLike, reference_toks: Optional[TokensLike] = None, seed: int = DEFAULT_SEED
) -> Int[Tensor, "batch seq"]:
    """For each row, another input: a derangement of ``toks``, or random rows of ``reference_toks``."""
    toks, seed = validate_tokens(toks), check_seed(seed)
    if reference_toks is None:
        return toks[derangement(toks.shape[0], seed).to(toks.device)]
    reference = validate_tokens(reference_toks)
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, reference.shape[0], (toks.shape[0],), generator=generator)
    return reference[rows.to(reference.device)].to(toks.device)


def _sender_hooks() -> dict[str, str]:
    """Hook holding each sender: the embeddings, and each head's ``hook_z`` (its output is z @ W_O)."""
    names = {"embed": "hook_embed", "pos": "hook_pos_embed"}
    for head in HEAD_NAMES:
        names[head] = get_act_name("z", _layer(head))
    return names


def _head_index(node: str) -> int:
    return int(node.split(".")[1])


def _sender_value(model: HookedTransformer, sender: str, act: Tensor) -> Float[Tensor, "batch seq d_model"]:
    """A sender's residual-stream contribution from its hook's activation (z @ W_O for a head)."""
    if sender not in HEAD_NAMES:
        return act
    layer, head = _layer(sender), _head_index(sender)
    return act[:, :, head] @ model.W_O[layer, head]


@contextmanager
def _results_from_z(model: HookedTransformer) -> Iterator[None]:
    """Run without TransformerLens's per-head ``hook_result`` (it materialises a [batch, pos, head, d_head,
    d_model] product); head outputs are rebuilt from ``hook_z`` instead. Restores the setting on exit."""
    previous = model.cfg.use_attn_result
    model.set_use_attn_result(False)
    try:
        yield
    finally:
        model.set_use_attn_result(previous)


def ablated_pos(model: HookedTransformer) -> Float[Tensor, "seq d_model"]:
    """What an ablated position edge carries: W_pos, with value positions replaced by their average."""
    W_pos = model.W_pos[: model.cfg.n_ctx].detach().clone()
    values = list(VALUE_POSITIONS)
    W_pos[values] = W_pos[values].mean(0)
    return W_pos


def source_tokens(
    toks: TokensLike,
    method: str = "mean",
    reference_toks: Optional[TokensLike] = None,
    seed: int = DEFAULT_SEED,
) -> Int[Tensor, "batch seq"]:
    """The inputs ablated values come from: the reference batch (mean) or one borrowed input per row (resample)."""
    check_method(method)
    toks = validate_tokens(toks)
    if method == "resample":
        return resample_tokens(toks, reference_toks, seed)
    return toks if reference_toks is None else validate_tokens(reference_toks).to(toks.device)


def ablated_values(
    model: HookedTransformer, source: TokensLike, method: str = "mean"
) -> dict[str, Float[Tensor, "*batch seq d_model"]]:
    """What each sender carries along a dead edge, from a clean run on ``source``: means [seq, d_model] or [batch, seq,
    d_model]."""
    _check_architecture(model)
    check_method(method)
    source = validate_tokens(source).to(model.cfg.device)
    hooks = _sender_hooks()
    with torch.inference_mode(), _results_from_z(model):
        cache = activations(model, source, list(hooks.values()))
        values = {s: _sender_value(model, s, cache[name]) for s, name in hooks.items()}
    if method == "mean":
        values = {s: v.mean(0) for s, v in values.items()}
    values["pos"] = ablated_pos(model)
    return values


# --- the intervened forward pass ---------------------------------------------------------------


def _receiver_hook_name(receiver: str) -> str:
    if receiver == "logits":
        return get_act_name("resid_post", N_LAYERS - 1)
    layer, _, x = receiver.split(".")
    return f"blocks.{layer}.hook_{x}_input"


def circuit_hooks(
    model: HookedTransformer,
    keep: Iterable[str],
    ablated: Mapping[str, Tensor],
    positions: Optional[Iterable[int]] = None,
) -> list[tuple[str, HookFn]]:
    """``(hook name, hook)`` pairs that run the model with only ``keep``'s edges live.

    Sender hooks record each sender's value in the running pass; each receiver's input is then
    shifted by ``ablated - live`` for every dead edge into it (so an all-live receiver is untouched).
    With ``positions``, dead edges carry ``ablated`` only at those sequence positions and are live
    elsewhere (a reader's input at position p holds the sender's output at p).
    """
    keep = expand_edges(keep)
    mask = None
    if positions is not None:
        where = check_positions(positions, range(model.cfg.n_ctx))
        mask = torch.zeros(model.cfg.n_ctx, 1, device=model.cfg.device)
        mask[where] = 1.0
    dead: dict[str, list[str]] = {}
    for edge in EDGES:
        if edge not in keep:
            sender, receiver = edge.split("->")
            dead.setdefault(receiver, []).append(sender)
    if not dead:
        return []
    live: dict[str, Tensor] = {}
    needed = {s for senders in dead.values() for s in senders}
    hooks: list[tuple[str, HookFn]] = []
    for sender, name in _sender_hooks().items():
        if sender in needed:

            def record(act: Tensor, hook: HookPoint, sender: str = sender) -> None:
                live[sender] = _sender_value(model, sender, act)

            hooks.append((name, record))

    def shift(senders: tuple[str, ...], replacement: Tensor) -> Tensor:
        out = replacement - live[senders[0]]
        for sender in senders[1:]:
            out.sub_(live[sender])
        return out if mask is None else out * mask.to(out)

    by_hook: dict[str, dict[int, tuple[tuple[str, ...], Tensor]]] = {}
    for receiver, senders in dead.items():
        head = 0 if receiver == "logits" else _head_index(receiver)
        replacement = sum(ablated[s] for s in senders)  # what the dead edges carry, summed once
        by_hook.setdefault(_receiver_hook_name(receiver), {})[head] = (tuple(senders), replacement)
    for name, per_head in by_hook.items():

        def patch(act: Tensor, hook: HookPoint, per_head=per_head) -> Tensor:
            if act.ndim == 3:  # the final residual stream, read by the unembedding
                return act + shift(*per_head[0])
            act = act.clone()
            for head, (senders, replacement) in per_head.items():
                act[:, :, head] += shift(senders, replacement)
            return act

        hooks.append((name, patch))
    return hooks


class PathAblator:
    """One batch of tokens with its ablated sender values computed once, ready to run many circuits."""

    def __init__(
        self,
        model: HookedTransformer,
        toks: TokensLike,
        method: str = "mean",
        reference_toks: Optional[TokensLike] = None,
        seed: int = DEFAULT_SEED,
    ) -> None:
        _check_architecture(model)
        self.model = model
        self.method = check_method(method)
        self.toks = validate_tokens(toks).to(model.cfg.device)
        self.source = source_tokens(self.toks, method, reference_toks, seed)
        """The inputs the ablated values come from (resample: row i borrows from ``source[i]``)."""
        self.ablated = ablated_values(model, self.source, method)

    def logits(
        self,
        keep: Iterable[str],
        replaced: Optional[Mapping[str, Tensor]] = None,
        edges: Iterable[str] = (),
        positions: Optional[Iterable[int]] = None,
        extra_hooks: Sequence[tuple[str, Callable]] = (),
    ) -> Float[Tensor, "batch 2"]:
        """END logits with only the edges (or paths) in ``keep`` live; live ``edges`` may carry ``replaced`` sender
        values instead, at every position or only at ``positions``; ``extra_hooks`` run last (such as
        ``hooks.hold_scale`` on a LayerNorm scale).

        ``replaced`` maps a sender to what its live edges in ``edges`` carry ([batch, seq, d_model], or
        [seq, d_model] for one value per position), for resampling a live edge from inputs a hypothesis
        calls equivalent (chapter 12's causal scrubbing), or for ablating one edge at one position
        (``replaced=ablator.ablated``: chapter 10's H0.1 read by H1.1 at position 20 only).
        """
        hooks = circuit_hooks(self.model, keep, self.ablated)
        if replaced is None and positions is not None:
            raise ValueError("positions say where the replaced edges carry replaced values: pass replaced and edges")
        if replaced is not None:
            edges = expand_edges(edges)
            if not edges <= expand_edges(keep) or not edges:
                raise ValueError(f"edges must be a non-empty set of live edges (in keep), got {sorted(edges)}")
            missing = sorted({e.split("->")[0] for e in edges} - set(replaced))
            if missing:
                raise ValueError(f"replaced must give a value for every sender of edges; missing {missing}")
            hooks = circuit_hooks(self.model, ALL - edges, replaced, positions) + hooks
        with torch.inference_mode(), _results_from_z(self.model):
            return self.model.run_with_hooks(self.toks, fwd_hooks=hooks + list(extra_hooks))[:, -1, :]


def circuit_logits(
    model: HookedTransformer,
    toks: TokensLike,
    keep: Iterable[str],
    method: str = "mean",
    reference_toks: Optional[TokensLike] = None,
    seed: int = DEFAULT_SEED,
) -> Float[Tensor, "batch 2"]:
    """END logits with only the edges (or paths) in ``keep`` live and every other edge ablated."""
    keep = expand_edges(keep)
    return PathAblator(model, toks, method, reference_toks, seed).logits(keep)
