"""Training speed: Adam steps through HookedTransformer against the fast path, then the full recipe.

    python benchmarks/bench_train.py [--steps 50] [--threads 1] [--skip-full]

Both variants start from ``create_model(seed=42)`` and take the same shuffled batches of the
recipe's training set (batch 512, Adam lr 1e-3, float64 NLL at END), timed after a warm-up.
Then ``palindrome.train.train`` runs the whole 15-epoch recipe on the fast path and its
wall-clock time and final validation accuracy are printed.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch

from palindrome.data import PalindromeDataset
from palindrome.fast import EndOnlyForward, num_threads
from palindrome.model import create_model
from palindrome.train import TrainConfig, fast_forward, shuffled_batches, train, train_epoch

TARGET_SECONDS = 90.0
"""Wanted wall-clock time of the full 15-epoch recipe on 2 CPU cores."""
TARGET_ACCURACY = 0.995
"""Wanted final validation accuracy."""


def seconds_per_step(
    kind: str, toks: torch.Tensor, labels: torch.Tensor, config: TrainConfig, steps: int, warmup: int
) -> float:
    """Mean wall-clock seconds of one training step of a fresh model, after ``warmup`` steps."""
    model = create_model(seed=config.seed, device="cpu")
    if kind == "hooked":
        forward = lambda batch: model(batch)[:, -1]  # noqa: E731
    else:
        forward = fast_forward(EndOnlyForward.from_model(model))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    torch.manual_seed(config.seed)  # the same batches for both variants
    batches = shuffled_batches(len(toks), config.batch_size)
    train_epoch(forward, optimizer, toks, labels, batches, max_steps=warmup)
    start = time.perf_counter()
    train_epoch(forward, optimizer, toks, labels, batches, max_steps=steps)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=TrainConfig.threads,
        help="torch threads for both variants and the recipe; 0 leaves torch's setting "
        "(default: %(default)s, as python -m palindrome.train)",
    )
    parser.add_argument("--skip-full", action="store_true", help="skip the full-recipe run")
    args = parser.parse_args()

    config = TrainConfig(threads=args.threads or None, progress=False, device="cpu")
    with num_threads(config.threads):
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
            f"load average {load:.2f}; batch {config.batch_size}, {args.steps} timed steps each"
        )
        data = PalindromeDataset(config.train_size, seed=config.seed)
        steps_per_recipe = config.epochs * math.ceil(config.train_size / config.batch_size)
        rates = {}
        for kind in ("hooked", "fast"):
            rates[kind] = seconds_per_step(kind, data.toks, data.is_palindrome, config, args.steps, args.warmup)
            print(
                f"{kind:>6}: {1e3 * rates[kind]:7.1f} ms/step  -> 15-epoch recipe "
                f"~{rates[kind] * steps_per_recipe:6.0f} s of training steps"
            )
        print(f"speed-up of the fast path: {rates['hooked'] / rates['fast']:.1f}x")

    if args.skip_full:
        return
    print("full recipe on the fast path (python -m palindrome.train):")
    start = time.perf_counter()
    _, history = train(config)
    seconds = time.perf_counter() - start
    accuracy = history[-1].val_accuracy
    print(f"full recipe: {seconds:.1f} s, final validation accuracy {accuracy:.4f}")
    print(f"target <= {TARGET_SECONDS:.0f} s: {'met' if seconds <= TARGET_SECONDS else 'NOT met'}")
    met = "met" if accuracy >= TARGET_ACCURACY else "NOT met"
    print(f"target accuracy >= {TARGET_ACCURACY}: {met}")


if __name__ == "__main__":
    main()
