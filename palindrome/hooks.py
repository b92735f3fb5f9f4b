"""Hooks and cached runs: the one way the package reads or overrides activations of a forward pass.

Method. Every measurement that looks inside the model runs it once through TransformerLens with
``run_with_cache``, keeping only the named activations (``cached_run``), optionally with forward
hooks attached for that pass (the ablation and path-patching engines build those hooks). Hook
names come from ``get_act_name``. One intervention is defined here because two chapters use it:
holding a LayerNorm scale fixed (``hold_scale``), either at one constant (chapter 2: is layer-0
attention a function of the tokens alone?) or at its value in a clean pass (chapter 9: does
zero-ablation act through the layer-1 scale?).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from palindrome.tokens import TokensLike, check_positive, validate_tokens

HookFn = Callable[[Tensor, HookPoint], Optional[Tensor]]
"""A TransformerLens forward hook: gets the activation and its hook point, returns a replacement or None."""
Hooks = Sequence[tuple[str, HookFn]]
"""``(hook name, hook)`` pairs, as ``model.hooks(fwd_hooks=...)`` takes them."""
FINAL_SCALE: str = "ln_final.hook_scale"
"""The final LayerNorm's scale (one per position), read before the unembedding."""


def ln_scale_name(layer: int, ln: str = "ln1") -> str:
    """The hook of LayerNorm ``ln`` ("ln1") in block ``layer``: its scale, shaped (batch, seq, [head,] 1)."""
    return get_act_name("scale", layer, ln)


def cached_run(
    model: HookedTransformer, toks: TokensLike, names: Sequence[str] = (), fwd_hooks: Hooks = ()
) -> tuple[Float[Tensor, "batch seq vocab"], dict[str, Tensor]]:
    """One forward pass (inference mode, with ``fwd_hooks`` attached): the logits and the activations named in
    ``names``."""
    if isinstance(names, str):
        names = [names]
    wanted = set(names)
    if isinstance(fwd_hooks, (str, bytes)) or not all(
        isinstance(h, (tuple, list)) and len(h) == 2 and (callable(h[0]) or h[0] in model.hook_dict) and callable(h[1])
        for h in fwd_hooks
    ):
        raise ValueError(
            "fwd_hooks must be (hook name, function) pairs naming the model's hook points "
            f"(model.hook_dict, e.g. {get_act_name('pattern', 0)!r}), got {fwd_hooks!r:.80}"
        )
    toks = validate_tokens(toks).to(model.cfg.device)
    with torch.inference_mode(), model.hooks(fwd_hooks=list(fwd_hooks)):
        logits, cache = model.run_with_cache(toks, names_filter=lambda name: name in wanted)
    missing = wanted - set(cache.keys())
    if missing:
        raise ValueError(f"the model has no hook point(s) {sorted(missing)}; names must be TransformerLens hook names")
    return logits, {name: cache[name] for name in names}


def activations(
    model: HookedTransformer, toks: TokensLike, names: Sequence[str], fwd_hooks: Hooks = ()
) -> dict[str, Tensor]:
    """The activations named in ``names`` from one forward pass on ``toks`` (``cached_run`` without the logits)."""
    return cached_run(model, toks, names, fwd_hooks)[1]


def hold_scale(scale: Union[float, Tensor]) -> HookFn:
    """A hook on a LayerNorm scale that replaces it by ``scale``: one constant, or the scale of a clean run (same
    shape)."""
    if isinstance(scale, Tensor) and scale.numel() > 1:
        if not torch.isfinite(scale).all() or (scale <= 0).any():
            raise ValueError("scale must hold finite positive values (a LayerNorm scale)")
    else:
        scale = check_positive("scale", scale, " (a LayerNorm scale), or a tensor of them")

    def hook(value: Tensor, hook: HookPoint) -> Tensor:
        if isinstance(scale, Tensor):
            if scale.shape != value.shape:
                raise ValueError(
                    f"scale must have the hook's shape {tuple(value.shape)} at {hook.name}, got {tuple(scale.shape)}"
                )
            return scale.to(value)
        return torch.full_like(value, scale)

    return hook
