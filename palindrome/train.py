"""Retrain the palindrome classifier with the July-2023 recipe, on the fast forward pass.

Run ``python -m palindrome.train --out seed42.pt``; ``--help`` lists the flags. The saved file
is the raw ``model.state_dict()`` of a HookedTransformer, like the original checkpoint, and
``load_trained_model`` loads it with the same weight processing as ``load_model``.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import time
from dataclasses import dataclass, fields
from numbers import Real
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from palindrome.checkpoint import (
    CheckpointNotFoundError,
    PathLike,
    check_path,
    file_in_the_way,
    remove_stale_parts,
    write_atomically,
)
from palindrome.data import GENERATORS, PalindromeDataset, check_generator
from palindrome.fast import EndOnlyForward, num_threads
from palindrome.metrics import accuracy_from_logits, loss_from_logits
from palindrome.model import (
    Device,
    check_device,
    create_model,
    default_device,
    load_state_dict,
    model_from_state_dict,
)
from palindrome.tokens import MAX_SAMPLES, MAX_SEED, check_floats, check_int, validate_labels


def check_out_path(out: PathLike) -> Path:
    """Where a run will be saved, checked before training starts (a folder, or a file as parent, is refused)."""
    path = check_path("out", out)
    if path.is_dir():
        raise ValueError(f"out must be a file path such as {path / 'seed42.pt'}, but {path} is a folder")
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise ValueError(f"out {path} cannot be written: {blocker} is a file, not a folder")
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if parent is not None and not os.access(parent, os.W_OK):
        raise ValueError(f"out {path} cannot be written: {parent} is not writable")
    return path


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run; the defaults are the July-2023 recipe.

    ``threads`` sets torch's CPU threads while training (None leaves them alone). A step at
    batch 512 is a chain of small kernels, so one thread beats two on a 2-core machine, and by
    far when other processes compete for the cores.

    ``generator`` and ``share`` select the training and validation data (``data.GENERATORS``); the
    default, "original", is the July-2023 generator and reproduces the recipe bit for bit.
    """

    seed: int = 42
    epochs: int = 15
    train_size: int = 100_000
    val_size: int = 5_000
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    device: Optional[str] = None
    out: Optional[PathLike] = None
    threads: Optional[int] = 1
    progress: bool = True
    generator: str = "original"
    share: Optional[float] = None

    def __post_init__(self) -> None:
        check_generator(self.generator, self.share)
        check_int("seed", self.seed, 0)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        if self.threads is not None:
            check_int("threads", self.threads, 1, " or None (torch's setting)")
        for name in ("train_size", "val_size"):
            value = check_int(name, getattr(self, name), 2, " and even")
            if value % 2:
                raise ValueError(f"{name} must be even (the dataset is half palindromes, half not), got {value}")
        for name, allow_zero in (("lr", False), ("weight_decay", True)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if value < 0 or (value == 0 and not allow_zero):
                bound = ">= 0" if allow_zero else "> 0"
                raise ValueError(f"{name} must be {bound}, got {value}")
        if self.seed > MAX_SEED:
            raise ValueError(f"seed must be at most {MAX_SEED} (torch's generators take 64-bit seeds), got {self.seed}")
        if self.device is not None:
            check_device(self.device)
        if self.out is not None:
            check_out_path(self.out)


@dataclass(frozen=True)
class EpochStats:
    """Mean training loss over one epoch and the validation metrics after it."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    seconds: float


def end_loss(logits: Float[Tensor, "batch 2"], labels: Int[Tensor, " batch"]) -> Float[Tensor, ""]:
    """Mean negative log-likelihood of the labels under a float64 log_softmax of the END logits."""
    logits = check_floats("logits", logits)
    if logits.ndim != 2 or logits.shape[-1] != 2:
        raise ValueError(f"need END logits of shape (batch, 2), got {tuple(logits.shape)}")
    return _end_loss(logits, validate_labels(labels, logits.shape[0]).to(logits.device))


def _end_loss(logits: Float[Tensor, "batch 2"], labels: Int[Tensor, " batch"]) -> Float[Tensor, ""]:
    """``end_loss`` without the checks, for the training steps (their inputs are validated once)."""
    log_probs = logits.double().log_softmax(-1)
    return -log_probs.gather(1, labels[:, None]).mean()


def fast_forward(fast: EndOnlyForward) -> Callable[[Tensor], Tensor]:
    """Differentiable END logits through the fast path, for tokens already validated (no checks)."""

    def forward(toks: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch 2"]:
        return fast.logits_from_tables(fast.tables(), toks)

    return forward


def shuffled_batches(size: int, batch_size: int) -> DataLoader:
    """The recipe's index batches: a shuffling DataLoader over ``range(size)``, as the original.

    Each pass draws its permutation from torch's global RNG, so a run seeded like the original
    (model, then training and validation data) visits the batches in the original's order.
    """
    size, batch_size = check_int("size", size, 1, maximum=MAX_SAMPLES), check_int("batch_size", batch_size, 1)
    return DataLoader(range(size), batch_size=batch_size, shuffle=True)


def train_epoch(
    forward: Callable[[Tensor], Tensor],
    optimizer: torch.optim.Optimizer,
    toks: Int[Tensor, "size seq"],
    labels: Int[Tensor, " size"],
    batches: Iterable[Int[Tensor, " batch"]],
    max_steps: Optional[int] = None,
    bar: Optional[tqdm] = None,
) -> float:
    """Adam steps over ``batches`` of indices (``forward``: validated tokens to END logits); mean loss."""
    if not callable(forward) or not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError("forward must map tokens to END logits (fast_forward) and optimizer be a torch optimizer")
    if not isinstance(toks, Tensor) or toks.is_floating_point() or toks.ndim != 2:
        raise ValueError("toks must be validated tokens, a (size, seq) integer tensor; check them with validate_tokens")
    labels = validate_labels(labels, toks.shape[0]).to(toks.device)
    if max_steps is not None:
        max_steps = check_int("max_steps", max_steps, 1, " or None (every batch)")
    total, seen = torch.zeros((), dtype=torch.float64, device=toks.device), 0
    for step, idx in enumerate(batches):
        if max_steps is not None and step >= max_steps:
            break
        if (
            not isinstance(idx, Tensor)
            or idx.is_floating_point()
            or idx.dtype == torch.bool
            or idx.ndim != 1
            or (
                len(idx) and not 0 <= int(idx.min()) <= int(idx.max()) < len(toks)  # on the loader's CPU tensor
            )
        ):
            raise ValueError(f"batches must yield 1-D integer index tensors in 0..{len(toks) - 1}, got {idx!r:.60}")
        idx = idx.to(toks.device)
        loss = _end_loss(forward(toks[idx]), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(idx)
        seen += len(idx)
        if bar is not None:
            bar.update(1)
    if not seen:
        raise ValueError("batches yielded no indices: give at least one non-empty batch (shuffled_batches)")
    return total.item() / seen


EpochCallback = Callable[[HookedTransformer, list[EpochStats]], bool]
"""Called after every epoch with the model and the history so far; returning True ends training there."""


def train(
    config: Optional[TrainConfig] = None, on_epoch: Optional[EpochCallback] = None
) -> tuple[HookedTransformer, list[EpochStats]]:
    """Train ``create_model(seed=config.seed)`` by the recipe; save its raw state dict to ``config.out``.

    ``on_epoch`` (optional) sees the model after each epoch (to snapshot it) and may stop the run early;
    the epochs before a stop are exactly those of a run with fewer ``epochs`` (nothing depends on the total).
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if on_epoch is not None and not callable(on_epoch):
        raise ValueError(f"on_epoch must be None or a callable(model, history) -> bool, got {on_epoch!r}")
    # The run reseeds torch's global RNG as the original did; fork_rng puts the caller's state back.
    with num_threads(config.threads), torch.random.fork_rng(devices=[]):
        return _train(config, on_epoch)


def _train(config: TrainConfig, on_epoch: Optional[EpochCallback] = None) -> tuple[HookedTransformer, list[EpochStats]]:
    device = check_device(config.device) if config.device is not None else default_device()
    if config.out is not None:
        remove_stale_parts(config.out)  # left by a run killed while writing
    # The original's RNG order: the model's init (seeded), the training data (reseeded), the
    # validation data (reseeded), then one global-RNG permutation per epoch for the batches.
    model = create_model(seed=config.seed, device=device)
    model.train()
    fast = EndOnlyForward.from_model(model)

    data = dict(generator=config.generator, share=config.share)
    train_set = PalindromeDataset(config.train_size, seed=config.seed, **data)
    val_set = PalindromeDataset(config.val_size, seed=config.seed + 1, **data)
    train_toks = fast.validate(train_set.toks)  # validated once here, so batches skip the checks
    train_labels = validate_labels(train_set.is_palindrome, len(train_toks)).to(device)
    val_toks = fast.validate(val_set.toks)
    val_labels = validate_labels(val_set.is_palindrome, len(val_toks)).to(device)

    # The fused kernel is the same Adam update in one call per step (CPU and CUDA only).
    fused = device.type in ("cpu", "cuda") or None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    batches = shuffled_batches(config.train_size, config.batch_size)

    forward = fast_forward(fast)
    steps_per_epoch = math.ceil(config.train_size / config.batch_size)
    history: list[EpochStats] = []
    total_steps = config.epochs * steps_per_epoch
    with tqdm(total=total_steps, desc="training", unit="step", disable=not config.progress) as bar:
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            train_loss = train_epoch(forward, optimizer, train_toks, train_labels, batches, bar=bar)
            val_logits = fast.end_logits(val_toks)
            stats = EpochStats(
                epoch=epoch,
                train_loss=train_loss,
                val_loss=loss_from_logits(val_logits, val_labels),
                val_accuracy=accuracy_from_logits(val_logits, val_labels),
                seconds=time.perf_counter() - start,
            )
            history.append(stats)
            bar.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{stats.val_accuracy:.4f}")
            tqdm.write(
                f"epoch {epoch:2d}/{config.epochs}  train loss {train_loss:.4f}  "
                f"val loss {stats.val_loss:.4f}  val accuracy {stats.val_accuracy:.4f}"
            )
            if on_epoch is not None and on_epoch(model, history):
                break

    model.eval()
    if config.out is not None:
        save_checkpoint(model, config.out)
    return model, history


def save_checkpoint(model: HookedTransformer, path: PathLike) -> Path:
    """Save ``model.state_dict()`` to ``path`` atomically; the same weights always give the same bytes.

    torch.save names the archive after the file it writes to, so saving to a temporary file
    would bake a random name into the bytes; serialising in memory first avoids that.
    """
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return write_atomically(path, buffer.getvalue())


def load_trained_model(path: PathLike, device: Device = None) -> HookedTransformer:
    """A checkpoint written by ``train`` (no sha256 check), processed like ``load_model``, in eval mode."""
    path = check_path("path", path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"no trained checkpoint at {path}; write one with `python -m palindrome.train --out {path}`"
        )
    return model_from_state_dict(load_state_dict(path), device)


def parse_args(argv: Optional[Sequence[str]] = None) -> TrainConfig:
    """Command-line flags to a TrainConfig (bad values exit with a usage message)."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m palindrome.train",
        description="Retrain the palindrome classifier (July-2023 recipe) on the fast forward pass.",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="model, data, shuffle seed")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--out", type=Path, default=None, help="where to save the raw state dict")
    parser.add_argument("--train-size", type=int, default=defaults.train_size)
    parser.add_argument("--val-size", type=int, default=defaults.val_size)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=defaults.threads,
        help="torch CPU threads while training; 0 leaves torch's setting (default: %(default)s)",
    )
    parser.add_argument(
        "--generator",
        default=defaults.generator,
        choices=GENERATORS,
        help="training data generator (default: %(default)s)",
    )
    parser.add_argument("--share", type=float, default=None, help="share of non-palindromes replaced (generator dose)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if values["threads"] == 0:
        values["threads"] = None
    try:
        return TrainConfig(**values, progress=not args.no_progress)
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m palindrome.train``."""
    config = parse_args(argv)
    start = time.perf_counter()
    _, history = train(config)
    final = history[-1]
    print(
        f"done in {time.perf_counter() - start:.1f} s: final val accuracy {final.val_accuracy:.4f}, "
        f"val loss {final.val_loss:.4f}"
    )
    print(f"saved {config.out}" if config.out is not None else "not saved (pass --out PATH to save)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
