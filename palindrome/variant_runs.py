"""Counterfactual training runs: the July-2023 recipe on data that make single-mismatch inputs common.

Method. Chapter 8 argues that the blind pairs survive because inputs breaking only them are rare
in the training data. To test it, each variant in ``VARIANTS`` retrains the classifier with the
recipe's defaults except the data generator (``TrainConfig.generator`` / ``share``, see
``palindrome.data``): "single_mismatch" (every non-palindrome has exactly one broken pair) and two
doses of it mixed into the original data. The control is the original generator with the same
seeds, i.e. the shipped replicas (``palindrome.replicas``), which are not retrained for the
package: the regenerate command retrains them only to record their validation curves, and
records whether the retrained file has the replica's sha256 (the byte-for-byte check of the
default generator). Where it does not (a replica made on another kind of CPU), the retrained 15
epochs are stored as well and are that seed's control, since its longer stages continue them.

Every run is judged by ``converged`` after each of ``STAGES`` (15, 30 and 60 epochs): a run that has
not converged at a stage goes on to the next, and every stage it reaches is stored as its own
checkpoint and manifest record. The stages are snapshots of one training run: nothing in training
depends on the total number of epochs, so the 30-epoch snapshot is byte for byte what a fresh
30-epoch run with the same seed writes (its first 15 epochs repeat the short run). A run still not
converged at the last stage is recorded, and reported, as not converged.

The checkpoints in ``palindrome/variant_runs/`` and ``manifest.json`` (recipe, generator,
seed, sha256, CPU model, library versions, each run's per-epoch validation curve) are made by

    python -m palindrome.variant_runs --jobs 2

``--update`` trains only the seeds and variants named and merges them into the manifest already in
``--out-dir`` (how seed 9 was added); ``--merge DIR`` copies the runs trained into DIR into the
package's folder and manifest.

Retraining reproduces the files byte for byte only on the same kind of CPU: another CPU rounds
differently in the last bits, and the differences grow through training (seed 0's replica,
retrained elsewhere, came out with weights up to 0.09 apart and val accuracy 0.9994 against
0.9992, yet the same blind pair). What must hold across machines is the conclusions.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from transformer_lens import HookedTransformer

from palindrome.checkpoint import PathLike, check_folder, check_path, sha256_file, verify_sha256, write_atomically
from palindrome.data import check_generator
from palindrome.model import Device
from palindrome.replicas import RECIPE_FIELDS, ReplicaNotFoundError, load_replica, replica_record
from palindrome.tokens import check_finite, check_int, check_items, check_seed, check_type
from palindrome.train import EpochStats, TrainConfig, load_trained_model, save_checkpoint, train

CONTROL: str = "original"
"""The control variant: the July-2023 generator (its 15-epoch runs are the shipped replicas)."""
VARIANTS: dict[str, tuple[str, Optional[float]]] = {
    CONTROL: ("original", None),
    "dose_05": ("dose", 0.05),
    "dose_25": ("dose", 0.25),
    "single_mismatch": ("single_mismatch", None),
}
"""Variant name -> (generator, share) of ``TrainConfig``, in increasing share of single-mismatch inputs."""
SEEDS: tuple[int, ...] = (0, 1, 7, 9)
"""Seeds trained for every variant: the four whose replicas (the controls) each have a blind pair (chapter 11)."""
STAGES: tuple[int, ...] = (TrainConfig.epochs, 30, 60)
"""Epochs after which a run is judged and stored; one not converged at a stage is trained on to the next."""
PLATEAU_LOSS: float = math.log(2)
"""The validation loss of a model that has learnt nothing (chance on balanced data): ln 2."""
CONVERGENCE_WINDOW: int = 5
"""Epochs at the end of a run in which the validation loss must no longer reach a clearly new low."""
CONVERGENCE_TOLERANCE: float = 0.1
"""A run has converged when its best val loss of the last window is at least (1 - this) x its best before."""
MANIFEST_NAME: str = "manifest.json"
REGENERATE_COMMAND: str = "python -m palindrome.variant_runs --jobs 2"
"""The command that (re)makes every variant-run checkpoint and the manifest in the package directory."""


class VariantRunNotFoundError(FileNotFoundError):
    """A variant run, its file or its manifest is missing; the message says how to make it."""


def variant_runs_dir() -> Path:
    """The directory inside the installed package that holds the variant runs and their manifest."""
    return Path(str(resources.files("palindrome") / "variant_runs"))


def check_variant(variant: str) -> str:
    """Return ``variant`` if it is one of ``VARIANTS``, else raise ValueError listing them."""
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    return variant


def run_filename(variant: str, seed: int, epochs: int) -> str:
    """File name of a run: ``<variant>_seed_<NN>.pt``, with ``_e<epochs>`` for a longer run."""
    check_variant(variant)
    seed, epochs = check_seed(seed), check_int("epochs", epochs, 1)
    tail = "" if epochs == TrainConfig.epochs else f"_e{epochs}"
    return f"{variant}_seed_{seed:02d}{tail}.pt"


def converged(
    val_losses: Sequence[float], window: int = CONVERGENCE_WINDOW, tolerance: float = CONVERGENCE_TOLERANCE
) -> bool:
    """True when the last ``window`` epochs reach no val loss ``tolerance`` (relative) below the best before them
    and none of them sits on the ln 2 plateau (within ``tolerance`` of it: a run that learnt nothing has not
    converged)."""
    window = check_int("window", window, 1)
    losses = [float(v) for v in val_losses]
    if len(losses) <= window:
        raise ValueError(f"need more than window={window} epochs of validation loss, got {len(losses)}")
    if not all(math.isfinite(v) for v in losses):
        raise ValueError(f"validation losses must be finite, got {losses}")
    tolerance = check_finite("tolerance", tolerance)
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    last = losses[-window:]
    off_plateau = max(last) < (1 - tolerance) * PLATEAU_LOSS
    return off_plateau and min(last) >= (1 - tolerance) * min(losses[:-window])


@dataclass(frozen=True)
class RunRecord:
    """What the manifest records of one run: its data, file, hash, final metrics, convergence and curve."""

    variant: str
    generator: str
    share: Optional[float]
    seed: int
    epochs: int
    file: Optional[str]
    sha256: str
    matches_replica: Optional[bool]
    final_val_accuracy: float
    final_val_loss: float
    converged: bool
    train_seconds: float
    curve: tuple[dict[str, float], ...]
    max_epochs: int = 30
    """The last stage the rule allowed when the run was trained: 60 (``STAGES``); 30 for runs trained before the
    60-epoch stage existed (their records lack the field), which a run not converged at 30 has not had."""

    @property
    def val_losses(self) -> list[float]:
        """The validation loss after each epoch."""
        return [point["val_loss"] for point in self.curve]


LOSS_FLOOR: float = 1e-4
"""Below this validation loss the manifest's six-decimal losses are too coarse for the rule's ratios to mean much."""


def below_floor(record: RunRecord, floor: float = LOSS_FLOOR) -> bool:
    """Whether every validation loss of ``record``'s last ``CONVERGENCE_WINDOW`` epochs is below ``floor``."""
    check_type("record", record, RunRecord, "load_manifest()['runs']")
    if not floor > 0:
        raise ValueError(f"floor must be a positive loss, got {floor}")
    return all(loss < floor for loss in record.val_losses[-CONVERGENCE_WINDOW:])


def run_config(
    variant: str, seed: int, epochs: int = TrainConfig.epochs, base: Optional[TrainConfig] = None
) -> TrainConfig:
    """The TrainConfig of one run: ``base`` (default: the recipe) with this seed, epochs and the variant's generator."""
    generator, share = VARIANTS[check_variant(variant)]
    seed, epochs = check_seed(seed), check_int("epochs", epochs, 1)
    base = TrainConfig() if base is None else base
    if not isinstance(base, TrainConfig):
        raise ValueError(f"base must be a TrainConfig, got {type(base).__name__}")
    return replace(
        base, seed=seed, epochs=epochs, generator=generator, share=share, device="cpu", progress=False, out=None
    )


def _curve(history: Sequence[EpochStats]) -> tuple[dict[str, float], ...]:
    return tuple(
        {
            "epoch": s.epoch,
            "train_loss": round(s.train_loss, 6),
            "val_loss": round(s.val_loss, 6),
            "val_accuracy": round(s.val_accuracy, 6),
        }
        for s in history
    )


def _record(
    config: TrainConfig,
    variant: str,
    seed: int,
    history: Sequence[EpochStats],
    path: Path,
    seconds: float,
    is_replica: bool,
) -> RunRecord:
    """The record of one stage; a replica's stage is stored only when its bytes differ from the shipped replica's."""
    sha = sha256_file(path)
    matches = (sha == replica_record(seed).sha256) if is_replica else None
    curve = _curve(history)
    return RunRecord(
        variant=variant,
        generator=config.generator,
        share=config.share,
        seed=seed,
        epochs=len(history),
        file=None if matches else path.name,
        sha256=sha,
        matches_replica=matches,
        final_val_accuracy=round(history[-1].val_accuracy, 6),
        final_val_loss=round(history[-1].val_loss, 6),
        # judged on the curve as recorded (6 decimals), so that the manifest can be checked against its own rule
        converged=converged([point["val_loss"] for point in curve]),
        train_seconds=round(seconds, 1),
        curve=curve,
        max_epochs=max(STAGES),
    )


def _train_run(
    variant: str, seed: int, stages: Sequence[int], out_dir: str, base: Optional[TrainConfig] = None
) -> list[RunRecord]:
    """Train one (variant, seed) up to the last of ``stages``, storing a snapshot and record at each stage reached
    and stopping at the first converged one; the control's 15-epoch snapshot is compared with its replica, not kept.
    """
    config = run_config(variant, seed, max(stages), base)
    # the recipe apart from its length: the control's 15-epoch snapshot is then the replica
    recipe = all(getattr(config, name) == getattr(TrainConfig(), name) for name in RECIPE_FIELDS if name != "epochs")
    records: list[RunRecord] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:

        def on_epoch(model: HookedTransformer, history: list[EpochStats]) -> bool:
            epochs = len(history)
            if epochs not in stages:
                return False
            is_replica = variant == CONTROL and epochs == TrainConfig.epochs and recipe
            target = Path(scratch if is_replica else out_dir) / run_filename(variant, seed, epochs)
            save_checkpoint(model, target)
            if is_replica and sha256_file(target) != replica_record(seed).sha256:
                # Not the replica's bytes (another CPU made the replica): keep this start of the longer stages.
                shutil.copyfile(target, Path(out_dir) / target.name)
                target = Path(out_dir) / target.name
            record = _record(config, variant, seed, history, target, time.perf_counter() - start, is_replica)
            records.append(record)
            return record.converged

        train(config, on_epoch=on_epoch)
    return records


def _run_all(
    tasks: Sequence[tuple[str, int]],
    out_dir: Path,
    jobs: int,
    progress: bool,
    base: Optional[TrainConfig] = None,
    done: Optional[Any] = None,
) -> list[RunRecord]:
    """Train every (variant, seed) task through the stages; ``done(records)`` is called after each task finishes."""
    from tqdm.auto import tqdm

    records: list[RunRecord] = []
    with tqdm(total=len(tasks), desc="variant runs", unit="run", disable=not progress) as bar:
        if jobs == 1:
            for variant, seed in tasks:
                records.extend(_train_run(variant, seed, STAGES, str(out_dir), base))
                bar.update(1)
                if done is not None:
                    done(records)
            return records
        # spawn: a fresh interpreter per worker, safe with torch's threads (fork is not).
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_train_run, v, s, STAGES, str(out_dir), base) for v, s in tasks]
            for future in as_completed(futures):
                records.extend(future.result())
                bar.update(1)
                if done is not None:
                    done(records)
    return records


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one, else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def regenerate(
    seeds: Sequence[int] = SEEDS,
    variants: Sequence[str] = tuple(VARIANTS),
    out_dir: Optional[PathLike] = None,
    jobs: int = 1,
    progress: bool = True,
    base: Optional[TrainConfig] = None,
    update: bool = False,
) -> list[RunRecord]:
    """Train every (variant, seed) through ``STAGES`` (stopping at the first converged stage); write the manifest.

    ``base`` replaces the recipe (tests use a tiny one); the package's files are made with the recipe. With
    ``update`` the manifest already in ``out_dir`` keeps its other runs, and is rewritten after every finished
    (variant, seed), so an interrupted update loses only the run in progress. Returns every run in the manifest.
    """
    seeds = tuple(check_seed(s) for s in seeds)
    variants = tuple(check_variant(v) for v in variants)
    if not seeds or not variants or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds and variants must be non-empty and seeds distinct, got {seeds} and {variants}")
    jobs = check_int("jobs", jobs, 1)
    if base is not None and not isinstance(base, TrainConfig):
        raise ValueError(f"base must be None (the recipe) or a TrainConfig, got {type(base).__name__}")
    if not isinstance(update, bool):
        raise ValueError(f"update must be True or False, got {update!r}")
    out = variant_runs_dir() if out_dir is None else check_folder("out_dir", out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(v, s) for v in variants for s in seeds]
    kept: list[RunRecord] = []
    if update and (out / MANIFEST_NAME).is_file():
        kept = [r for r in load_manifest(out)["runs"] if (r.variant, r.seed) not in set(tasks)]

    def write(new: Sequence[RunRecord]) -> None:
        write_manifest(out, sort_runs([*kept, *new]), base)

    return sort_runs([*kept, *_run_all(tasks, out, jobs, progress, base, done=write)])


def sort_runs(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Runs in the manifest's order: by variant (``VARIANTS``' order), seed, then epochs."""
    runs = check_items("runs", runs, RunRecord, "variant_runs.load_manifest()['runs']", allow_empty=True)
    order = list(VARIANTS)
    return sorted(runs, key=lambda r: (order.index(r.variant), r.seed, r.epochs))


def recheck_convergence(directory: PathLike) -> list[RunRecord]:
    """Rewrite ``directory``'s manifest with every run's ``converged`` judged on its recorded curve; returns the runs.

    Runs trained before the rule read the recorded curve were judged on unrounded losses, which can differ where
    the validation loss is a few millionths (rounding to 6 decimals flattens a curve still falling).
    """
    directory = check_path("directory", directory)
    manifest = load_manifest(directory)
    runs = [replace(r, converged=converged(r.val_losses)) for r in manifest["runs"]]
    write_manifest(directory, runs, replace(TrainConfig(), **manifest["recipe"]))
    return runs


def merge_runs(source: PathLike, directory: Optional[PathLike] = None) -> list[RunRecord]:
    """Copy the runs trained into ``source`` (by ``regenerate(..., out_dir=source)``) into ``directory``'s manifest.

    Every file is checked against its sha256 first; runs of the same (variant, seed) in ``directory`` are replaced.
    """
    source = check_path("source", source)
    target = variant_runs_dir() if directory is None else check_folder("directory", directory)
    incoming = load_manifest(source)
    pairs = {(r.variant, r.seed) for r in incoming["runs"]}
    for run in incoming["runs"]:
        if run.file is not None:
            verify_sha256(source / run.file, run.sha256, f"{run.file} in {source}", "Retrain it.")
    for run in incoming["runs"]:
        if run.converged != converged(run.val_losses):
            raise ValueError(
                f"{source}'s record of {run.variant} seed {run.seed} at {run.epochs} epochs says converged="
                f"{run.converged}, but its recorded curve says {not run.converged}; recompute it (recheck_convergence)"
            )
    existing = load_manifest(target)
    if existing["recipe"] != incoming["recipe"]:
        raise ValueError(f"the runs in {source} use another recipe ({incoming['recipe']}) than {target}'s")
    for run in incoming["runs"]:
        if run.file is not None:
            shutil.copyfile(source / run.file, target / run.file)
    runs = sort_runs([*(r for r in existing["runs"] if (r.variant, r.seed) not in pairs), *incoming["runs"]])
    write_manifest(target, runs)
    return runs


def write_manifest(out_dir: PathLike, records: Sequence[RunRecord], base: Optional[TrainConfig] = None) -> Path:
    """Write ``manifest.json`` (command, recipe, rule, machine, versions, one record per run) atomically."""
    base = TrainConfig() if base is None else base
    manifest = {
        "command": REGENERATE_COMMAND,
        "recipe": {name: getattr(base, name) for name in RECIPE_FIELDS},
        "variants": {name: {"generator": g, "share": s} for name, (g, s) in VARIANTS.items()},
        "convergence": {
            "rule": "best val loss of the last `window` epochs >= (1 - tolerance) x best val loss before them",
            "window": CONVERGENCE_WINDOW,
            "tolerance": CONVERGENCE_TOLERANCE,
            "plateau": "and no val loss of the last `window` epochs >= (1 - tolerance) x ln 2 (chance)",
            "stages": list(STAGES),
            "max_epochs": "per run: the last stage the rule allowed it (30 for runs trained before the 60-epoch stage)",
        },
        "trained_with": {
            "cpu": cpu_model(),
            "machine": platform.machine(),
            "torch": torch.__version__,
            "transformer_lens": metadata.version("transformer-lens"),
            "python": platform.python_version(),
            "threads": base.threads,
            "note": "byte-for-byte reproducible only on the same kind of CPU; conclusions are what must hold elsewhere",
        },
        "runs": [asdict(r) for r in records],
    }
    return write_atomically(Path(out_dir) / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())


def load_manifest(directory: Optional[PathLike] = None) -> dict[str, Any]:
    """The variant-run manifest, with its runs as RunRecords."""
    directory = variant_runs_dir() if directory is None else check_path("directory", directory)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise VariantRunNotFoundError(f"no variant-run manifest at {path}; make it with `{REGENERATE_COMMAND}`")
    try:
        manifest = json.loads(path.read_text())
        runs = [RunRecord(**{**r, "curve": tuple(r["curve"])}) for r in manifest["runs"]]
        for run in runs:
            check_generator(run.generator, run.share)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a valid variant-run manifest ({exc}); regenerate it with `{REGENERATE_COMMAND}`"
        ) from exc
    return {**manifest, "runs": runs}


def run_record(
    variant: str, seed: int, epochs: int = TrainConfig.epochs, directory: Optional[PathLike] = None
) -> RunRecord:
    """The manifest's record of a run: the 15-epoch one, or the stage of ``epochs`` (one of ``STAGES``)."""
    check_variant(variant)
    epochs = check_int("epochs", epochs, 1)
    runs = load_manifest(directory)["runs"]
    for run in runs:
        if (run.variant, run.seed, run.epochs) == (variant, seed, epochs):
            return run
    raise ValueError(
        f"no {epochs}-epoch run of {variant!r} with seed {seed!r}; the manifest lists "
        f"{sorted({(r.variant, r.seed, r.epochs) for r in runs})}"
    )


def final_runs(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Each (variant, seed)'s last stage: the first converged one, or its ``max_epochs`` if none converged."""
    runs = check_items("runs", runs, RunRecord, "variant_runs.load_manifest()['runs']", allow_empty=True)
    last: dict[tuple[str, int], RunRecord] = {}
    for run in sort_runs(runs):
        last[run.variant, run.seed] = run
    return list(last.values())


def load_run(
    variant: str,
    seed: int,
    epochs: int = TrainConfig.epochs,
    directory: Optional[PathLike] = None,
    device: Device = None,
) -> HookedTransformer:
    """A run's model, verified against the manifest's sha256 (the control's 15-epoch run is the replica)."""
    directory = variant_runs_dir() if directory is None else check_path("directory", directory)
    record = run_record(variant, seed, epochs, directory)
    if record.file is None:
        return load_replica(seed, device=device)
    path = directory / record.file
    if not path.is_file():
        raise VariantRunNotFoundError(
            f"the manifest lists {record.file} but {path} is missing; regenerate with `{REGENERATE_COMMAND}`"
        )
    verify_sha256(
        path,
        record.sha256,
        f"the variant run the manifest describes ({variant}, seed {seed}, {epochs} epochs)",
        f"The file was changed after training. Restore it (git checkout) or regenerate all with `{REGENERATE_COMMAND}`",
    )
    return load_trained_model(path, device)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m palindrome.variant_runs``."""
    parser = argparse.ArgumentParser(
        prog="python -m palindrome.variant_runs",
        description="Train the variant runs (the recipe on other data generators) and their manifest.",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out-dir", type=Path, default=None, help="default: the package's variant_runs/")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (one core each)")
    parser.add_argument("--update", action="store_true", help="keep the other runs of the manifest in --out-dir")
    parser.add_argument("--merge", type=Path, default=None, help="copy the runs trained into this folder, no training")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.merge is not None:
            records = merge_runs(args.merge, args.out_dir)
        else:
            records = regenerate(
                args.seeds, args.variants, args.out_dir, args.jobs, not args.no_progress, update=args.update
            )
    except (ValueError, ReplicaNotFoundError, VariantRunNotFoundError) as exc:
        parser.error(str(exc))
    for r in records:
        match = "" if r.matches_replica is None else f", replica sha256 {'matches' if r.matches_replica else 'DIFFERS'}"
        print(
            f"{r.variant:16s} seed {r.seed:2d} {r.epochs:2d} epochs: val accuracy {r.final_val_accuracy:.4f}, "
            f"val loss {r.final_val_loss:.4f}, converged {r.converged}, {r.train_seconds:.0f} s{match}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
