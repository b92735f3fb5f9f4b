"""Retrained copies of the classifier: the July-2023 recipe run with other seeds, stored in the package.

The checkpoints in ``palindrome/replicas/`` were made by this project's own trainer with

    python -m palindrome.replicas --jobs 2

which trains every seed in ``REPLICA_SEEDS`` with ``palindrome.train`` (the recipe's defaults
except the seed) and writes ``manifest.json``: the recipe, the library versions, and each
file's sha256 and final validation metrics. ``load_replica`` refuses a file whose hash does not
match the manifest, so the chapter always analyses the models the manifest describes.
Retraining on another machine can differ in the last bits of floating point and so give
slightly different weights; the manifest then records the new ones.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields, replace
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from palindrome.checkpoint import PathLike, check_folder, check_path, sha256_file, verify_sha256, write_atomically
from palindrome.constants import N_LAYERS
from palindrome.model import Device, create_model
from palindrome.tokens import check_floats, check_int, check_seed
from palindrome.train import TrainConfig, load_trained_model, train

REPLICA_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 42)
"""Seeds of the retrained models: ten fresh ones, and 42, the recipe's own (the July-2023 seed)."""
MANIFEST_NAME: str = "manifest.json"
REGENERATE_COMMAND: str = "python -m palindrome.replicas --jobs 2"
"""The command that (re)makes every replica and the manifest in the package directory."""
RECIPE_FIELDS: tuple[str, ...] = (
    "epochs",
    "train_size",
    "val_size",
    "batch_size",
    "lr",
    "weight_decay",
)
"""TrainConfig fields that define the recipe (the seed varies; device, threads, output do not matter)."""


class ReplicaNotFoundError(FileNotFoundError):
    """A replica or its manifest is missing; the message says how to make it."""


def replica_dir() -> Path:
    """The directory inside the installed package that holds the replicas and their manifest."""
    return Path(str(resources.files("palindrome") / "replicas"))


def replica_filename(seed: int) -> str:
    """File name of the replica trained with ``seed``."""
    return f"seed_{check_int('seed', seed, 0):02d}.pt"


@dataclass(frozen=True)
class ReplicaRecord:
    """What the manifest records of one replica."""

    seed: int
    file: str
    sha256: str
    final_val_accuracy: float
    final_val_loss: float
    train_seconds: float


def _check_seeds(seeds: Iterable[int]) -> tuple[int, ...]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise ValueError(f"seeds must be a list of integers, got {seeds!r}")
    seeds = tuple(check_seed(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    return seeds


def _train_one(config: TrainConfig, out_dir: str) -> ReplicaRecord:
    """Train one seed and save it (atomically: an interrupted run leaves no half-written file)."""
    target = Path(out_dir) / replica_filename(config.seed)
    start = time.perf_counter()
    _, history = train(replace(config, out=target))
    seconds = time.perf_counter() - start
    return ReplicaRecord(
        seed=config.seed,
        file=target.name,
        sha256=sha256_file(target),
        final_val_accuracy=round(history[-1].val_accuracy, 6),
        final_val_loss=round(history[-1].val_loss, 6),
        train_seconds=round(seconds, 1),
    )


def train_replicas(
    seeds: Sequence[int] = REPLICA_SEEDS,
    out_dir: Optional[PathLike] = None,
    jobs: int = 1,
    base: Optional[TrainConfig] = None,
    progress: bool = True,
) -> list[ReplicaRecord]:
    """Train one model per seed by the recipe (``jobs`` at a time) and write them and the manifest."""
    seeds = _check_seeds(seeds)
    jobs = check_int("jobs", jobs, 1)
    base = TrainConfig() if base is None else base
    if not isinstance(base, TrainConfig):
        raise ValueError(f"base must be a TrainConfig, got {type(base).__name__}")
    out = replica_dir() if out_dir is None else check_folder("out_dir", out_dir)
    out.mkdir(parents=True, exist_ok=True)
    configs = [replace(base, seed=s, progress=False, out=None) for s in seeds]
    records: list[ReplicaRecord] = []
    with tqdm(total=len(configs), desc="replicas", unit="model", disable=not progress) as bar:
        if jobs == 1:
            for config in configs:
                records.append(_train_one(config, str(out)))
                bar.update(1)
        else:
            # spawn: a fresh interpreter per worker, safe with torch's threads (fork is not).
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                futures = [pool.submit(_train_one, c, str(out)) for c in configs]
                for future in as_completed(futures):
                    records.append(future.result())
                    bar.update(1)
    records.sort(key=lambda r: seeds.index(r.seed))
    write_manifest(out, base, records)
    return records


def write_manifest(out_dir: PathLike, base: TrainConfig, records: Sequence[ReplicaRecord]) -> Path:
    """Write ``manifest.json`` (recipe, versions, one record per replica) atomically."""
    out_dir = check_folder("out_dir", out_dir)
    if not isinstance(base, TrainConfig):
        raise ValueError(f"base must be the TrainConfig the replicas were trained from, got {type(base).__name__}")
    if isinstance(records, (str, bytes)) or not all(isinstance(r, ReplicaRecord) for r in records):
        raise ValueError("records must be a list of ReplicaRecord (what train_replicas returns)")
    manifest = {
        "command": REGENERATE_COMMAND,
        "recipe": {name: getattr(base, name) for name in RECIPE_FIELDS},
        "trained_with": {
            "torch": torch.__version__,
            "transformer_lens": metadata.version("transformer-lens"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "threads": base.threads,
        },
        "replicas": [asdict(r) for r in records],
    }
    return write_atomically(out_dir / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())


def load_manifest(directory: Optional[PathLike] = None) -> dict[str, Any]:
    """The replicas' manifest, checked for the fields this module reads."""
    directory = replica_dir() if directory is None else check_path("directory", directory)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise ReplicaNotFoundError(f"no replica manifest at {path}; make the replicas with `{REGENERATE_COMMAND}`")
    try:
        manifest = json.loads(path.read_text())
        records = [ReplicaRecord(**r) for r in manifest["replicas"]]
        recipe = manifest["recipe"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a valid replica manifest ({exc}); regenerate it with `{REGENERATE_COMMAND}`"
        ) from exc
    return {**manifest, "recipe": recipe, "replicas": records}


def _check_manifest(manifest: object) -> dict[str, Any]:
    """``manifest`` if it is what load_manifest returns (a dict with "recipe" and "replicas"), else ValueError."""
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("recipe"), dict)
        or not isinstance(manifest.get("replicas"), list)
    ):
        raise ValueError(
            f"manifest must be what load_manifest() returns (a dict with 'recipe' and 'replicas'), got {manifest!r:.80}"
        )
    return manifest


def recipe_config(manifest: dict[str, Any], seed: int) -> TrainConfig:
    """The TrainConfig that made the replica of ``seed``, from the manifest's recipe."""
    manifest = _check_manifest(manifest)
    names = {f.name for f in fields(TrainConfig)}
    recipe = {k: v for k, v in manifest["recipe"].items() if k in names}
    return TrainConfig(**recipe, seed=check_seed(seed))


def replica_record(seed: int, directory: Optional[PathLike] = None) -> ReplicaRecord:
    """The manifest's record of the replica trained with ``seed``."""
    records = load_manifest(directory)["replicas"]
    for record in records:
        if record.seed == seed:
            return record
    raise ValueError(f"no replica with seed {seed!r}; the manifest lists seeds {[r.seed for r in records]}")


def load_replica(seed: int, directory: Optional[PathLike] = None, device: Device = None) -> HookedTransformer:
    """The replica trained with ``seed``, verified against the manifest's sha256, processed like ``load_model``."""
    directory = replica_dir() if directory is None else check_path("directory", directory)
    record = replica_record(seed, directory)
    path = directory / record.file
    if not path.is_file():
        raise ReplicaNotFoundError(
            f"the manifest lists {record.file} but {path} is missing; regenerate with `{REGENERATE_COMMAND}`"
        )
    verify_sha256(
        path,
        record.sha256,
        f"the replica the manifest describes (seed {record.seed})",
        f"The file was changed after training. Restore it (git checkout) or regenerate all with `{REGENERATE_COMMAND}`",
    )
    return load_trained_model(path, device)


def load_replicas(
    seeds: Optional[Sequence[int]] = None, directory: Optional[PathLike] = None, device: Device = None
) -> dict[int, HookedTransformer]:
    """Every replica in the manifest (or those of ``seeds``), keyed by seed."""
    if seeds is None:
        seeds = [r.seed for r in load_manifest(directory)["replicas"]]
    return {s: load_replica(s, directory, device) for s in _check_seeds(seeds)}


def manifest_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """The manifest's replicas as a table: one row per seed."""
    manifest = _check_manifest(manifest)
    return pd.DataFrame([asdict(r) for r in manifest["replicas"]]).set_index("seed")


INIT_MATRICES: tuple[str, ...] = (
    "embed.W_E",
    "pos_embed.W_pos",
    *(f"blocks.{layer}.attn.{w}" for layer in range(N_LAYERS) for w in ("W_Q", "W_K", "W_V", "W_O")),
    "unembed.W_U",
)
"""The weight matrices compared with a fresh initialisation (biases start at zero and say nothing)."""


def init_similarity(state_dict: Mapping[str, Tensor], seeds: Sequence[int] = REPLICA_SEEDS) -> pd.DataFrame:
    """Cosine similarity of a raw (unprocessed) state dict's weights with ``create_model(seed)``'s initial ones.

    Training moves weights but leaves part of their random start in place, so a clearly positive
    similarity with one seed's initialisation, and none with the others, tells which seed a
    checkpoint started from.
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            f"state_dict must be a mapping of weights such as load_state_dict(path), got {type(state_dict).__name__}"
        )
    missing = [name for name in INIT_MATRICES if name not in state_dict]
    if missing:
        raise ValueError(f"state_dict lacks {missing}; pass a raw checkpoint such as load_state_dict(path)")
    for name in INIT_MATRICES:
        check_floats(f"state_dict[{name!r}]", state_dict[name])
    for name, value in state_dict.items():  # NaN anywhere marks a broken checkpoint (the IGNORE buffer is -inf)
        if isinstance(value, Tensor) and value.is_floating_point() and value.isnan().any():
            raise ValueError(f"state_dict[{name!r}] holds NaN: the checkpoint is broken; load another one")
    rows = {}
    for seed in _check_seeds(seeds):
        init = create_model(seed=seed, device="cpu").state_dict()
        rows[seed] = {
            name: F.cosine_similarity(
                init[name].flatten().double(), state_dict[name].detach().cpu().flatten().double(), dim=0
            ).item()
            for name in INIT_MATRICES
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "seed"
    return table


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m palindrome.replicas``."""
    parser = argparse.ArgumentParser(
        prog="python -m palindrome.replicas",
        description="Train the replicas (the July-2023 recipe, one model per seed) and their manifest.",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(REPLICA_SEEDS))
    parser.add_argument("--out-dir", type=Path, default=None, help="default: the package's replicas/")
    parser.add_argument("--jobs", type=int, default=1, help="models trained at once (one core each)")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--train-size", type=int, default=TrainConfig.train_size)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        base = TrainConfig(epochs=args.epochs, train_size=args.train_size, device="cpu")
        records = train_replicas(args.seeds, args.out_dir, args.jobs, base, not args.no_progress)
    except ValueError as exc:
        parser.error(str(exc))
    for r in records:
        print(
            f"seed {r.seed:2d}: val accuracy {r.final_val_accuracy:.4f}, val loss "
            f"{r.final_val_loss:.4f}, {r.train_seconds:.0f} s -> {r.file}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
