"""The July-2023 architecture and loading its checkpoint the way the original analysis did."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator, Mapping, Optional, Union

import torch
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from palindrome import constants
from palindrome.checkpoint import PathLike, StateDictMismatchError, resolve_checkpoint
from palindrome.tokens import MAX_SIZE, check_int, check_seed, check_sizes

Device = Union[str, torch.device, None]


def default_device() -> torch.device:
    """CUDA when available (as in Colab), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_device(device: object) -> torch.device:
    """``device`` as a torch.device that this torch can use, or ValueError saying what to pass instead."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} needs CUDA, which this torch build or machine lacks; use 'cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} needs Apple's MPS, which this machine lacks; use 'cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'mps', got {device!r}")
    return dev


NORMALIZATION_TYPES: tuple[Optional[str], ...] = ("LN", "LNPre", "RMS", "RMSPre", None)
"""TransformerLens normalisation types a config may name (the July-2023 model uses "LN")."""


def model_config(
    half_length: int = constants.HALF_LENGTH,
    max_value: int = constants.MAX_VALUE,
    d_model: int = constants.D_MODEL,
    d_head: int = constants.D_HEAD,
    n_heads: int = constants.N_HEADS,
    n_layers: int = constants.N_LAYERS,
    normalization_type: Optional[str] = "LN",
    seed: Optional[int] = 42,
    device: Device = None,
) -> HookedTransformerConfig:
    """The original 2-layer, attention-only config (hooks for per-head results and q/k/v inputs on)."""
    half_length, max_value = check_sizes(half_length, max_value)
    d_model, d_head, n_heads, n_layers = (
        check_int(name, value, 1, maximum=MAX_SIZE)
        for name, value in (("d_model", d_model), ("d_head", d_head), ("n_heads", n_heads), ("n_layers", n_layers))
    )
    if normalization_type not in NORMALIZATION_TYPES:
        raise ValueError(f"normalization_type must be one of {NORMALIZATION_TYPES}, got {normalization_type!r}")
    seed = None if seed is None else check_seed(seed)
    return HookedTransformerConfig(
        n_layers=n_layers,
        n_ctx=2 * half_length + 2,
        d_model=d_model,
        d_head=d_head,
        n_heads=n_heads,
        d_mlp=None,
        attn_only=True,
        act_fn="relu",
        d_vocab=max_value + 3,
        d_vocab_out=2,
        use_attn_result=True,
        use_split_qkv_input=True,
        use_hook_tokens=True,
        normalization_type=normalization_type,
        seed=seed,
        device=str(default_device() if device is None else check_device(device)),
    )


@contextmanager
def quiet_transformer_lens() -> Iterator[None]:
    """Silence TransformerLens 3.x's DeprecationWarning about HookedTransformer: the package's one filter of it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*HookedTransformer")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"transformer_lens(\.|$)")
        yield


def create_model(**kwargs) -> HookedTransformer:
    """A freshly initialised model of the original architecture (kwargs go to ``model_config``)."""
    with quiet_transformer_lens():
        return HookedTransformer(model_config(**kwargs))


def check_state_dict(state_dict: Mapping[str, Tensor], model: HookedTransformer) -> dict[str, Tensor]:
    """Return the checkpoint's parameters, or raise StateDictMismatchError naming bad keys or shapes.

    Buffers (the causal ``mask`` and ``IGNORE``) are constants the model rebuilds itself; they
    are accepted in the file but not loaded, since their stored layout varies between versions.
    """
    if not isinstance(state_dict, Mapping):
        raise StateDictMismatchError(f"the checkpoint holds a {type(state_dict).__name__}, not a state dict of tensors")
    expected = {k: tuple(v.shape) for k, v in model.named_parameters()}
    buffers = {k for k, _ in model.named_buffers()}
    found = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, Tensor)}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected) - buffers)
    wrong = sorted(
        f"{k}: expected {expected[k]}, found {found[k]}" for k in set(expected) & set(found) if expected[k] != found[k]
    )
    problems = []
    nonfinite = sorted(  # parameters only: the IGNORE buffer is -inf by design
        k
        for k in expected
        if isinstance(state_dict.get(k), Tensor)
        and state_dict[k].is_floating_point()
        and not torch.isfinite(state_dict[k]).all()
    )
    if nonfinite:
        problems.append(f"non-finite (NaN or inf) values in {nonfinite}")
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if wrong:
        problems.append(f"wrong shapes [{'; '.join(wrong)}]")
    if problems:
        raise StateDictMismatchError(
            "the checkpoint is not a state dict of the July-2023 palindrome model: "
            + ", ".join(problems)
            + ". Use the original palindrome_classifier.pt."
        )
    return {k: state_dict[k] for k in expected}


def process_state_dict(model: HookedTransformer, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Centre writing weights and unembed, fold LayerNorm and value biases (the original's order).

    ``state_dict`` is checked by ``check_state_dict`` first; only the model's parameters are processed.
    """
    state_dict = model.center_writing_weights(check_state_dict(state_dict, model))
    state_dict = model.center_unembed(state_dict)
    state_dict = model.fold_layer_norm(state_dict)
    return model.fold_value_biases(state_dict)


def load_state_dict(path: PathLike) -> dict[str, Tensor]:
    """Read a state dict from disk onto the CPU without running any pickled code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise StateDictMismatchError(
            f"{path} could not be read as a torch state dict ({type(exc).__name__}: {exc})"
        ) from exc


def model_from_state_dict(state_dict: Mapping[str, Tensor], device: Device = None) -> HookedTransformer:
    """A model of the original architecture with ``state_dict`` checked, processed and loaded, in eval mode."""
    model = create_model(device=device)
    params = check_state_dict(state_dict, model)
    params = {k: v.to(model.cfg.device) for k, v in params.items()}
    with quiet_transformer_lens():
        model.load_state_dict(process_state_dict(model, params), strict=False)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def load_model(checkpoint: Optional[PathLike] = None, device: Device = None) -> HookedTransformer:
    """The July-2023 classifier with processed weights, in eval mode (see ``resolve_checkpoint``)."""
    return model_from_state_dict(load_state_dict(resolve_checkpoint(checkpoint)), device)
