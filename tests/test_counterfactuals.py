"""The shipped counterfactual runs are what the manifest says, the regenerate command remakes them, bad input is
refused."""

from __future__ import annotations

import functools
import json
import shutil

import pytest

from palindrome import counterfactuals
from palindrome.checkpoint import ChecksumMismatchError, sha256_file
from palindrome.counterfactuals import (
    CONTROL,
    LONG_EPOCHS,
    MANIFEST_NAME,
    REGENERATE_COMMAND,
    SEEDS,
    VARIANTS,
    CounterfactualNotFoundError,
    converged,
    counterfactual_dir,
    load_manifest,
    load_run,
    main,
    regenerate,
    run_config,
    run_filename,
    run_record,
)
from palindrome.data import PalindromeDataset
from palindrome.fast import fast_end_logits
from palindrome.metrics import accuracy_from_logits
from palindrome.replicas import RECIPE_FIELDS, replica_record
from palindrome.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = TrainConfig(train_size=256, val_size=32, batch_size=128, device="cpu")


@pytest.fixture(scope="module")
def manifest():
    return load_manifest()


def test_manifest_lists_every_variant_and_seed_and_matches_the_files(manifest):
    runs = manifest["runs"]
    short = {(r.variant, r.seed) for r in runs if r.epochs == TrainConfig.epochs}
    assert short == {(v, s) for v in VARIANTS for s in SEEDS}
    assert len(SEEDS) >= 3 and len(VARIANTS) >= 4
    for r in runs:
        assert (r.generator, r.share) == VARIANTS[r.variant]
        assert [p["epoch"] for p in r.curve] == list(range(1, r.epochs + 1))
        assert r.final_val_loss == r.curve[-1]["val_loss"] and r.final_val_accuracy == r.curve[-1]["val_accuracy"]
        if r.file is None:  # the control's 15-epoch runs are the shipped replicas, not stored again
            assert (r.variant, r.epochs) == (CONTROL, TrainConfig.epochs)
            assert r.matches_replica is True and r.sha256 == replica_record(r.seed).sha256
            continue
        path = counterfactual_dir() / r.file
        assert r.file == run_filename(r.variant, r.seed, r.epochs)
        assert path.is_file() and sha256_file(path) == r.sha256, r.file
        assert path.stat().st_size < 100_000  # small enough to commit and ship with the package
    listed = {r.file for r in runs if r.file}
    assert {p.name for p in counterfactual_dir().glob("*.pt")} == listed


def test_manifest_records_recipe_machine_and_rule(manifest):
    recipe = TrainConfig()
    assert manifest["recipe"] == {name: getattr(recipe, name) for name in RECIPE_FIELDS}
    assert manifest["command"] == REGENERATE_COMMAND == "python -m palindrome.counterfactuals --jobs 2"
    assert manifest["trained_with"]["cpu"] and manifest["trained_with"]["torch"]
    assert manifest["convergence"]["long_epochs"] == LONG_EPOCHS


def test_unconverged_runs_were_trained_longer_and_repeat_their_start(manifest):
    runs = manifest["runs"]
    for r in runs:
        assert r.converged == converged(r.val_losses), (r.variant, r.seed, r.epochs)
        if r.epochs == TrainConfig.epochs and not r.converged:
            long = run_record(r.variant, r.seed, long=True)
            # Same seed, same data, same batches: the longer run's first 15 epochs are the short run.
            assert long.curve[: r.epochs] == r.curve
    assert all(not run_record(r.variant, r.seed).converged for r in runs if r.epochs == LONG_EPOCHS)


def test_recorded_validation_accuracy_matches_the_files(manifest):
    # Each run's own validation set (seed + 1, its generator) gives back the manifest's number, to one
    # input in 5,000 (another CPU may round a borderline logit the other way).
    for r in manifest["runs"]:
        if r.file is None:
            continue
        val = PalindromeDataset(TrainConfig.val_size, seed=r.seed + 1, generator=r.generator, share=r.share)
        model = load_run(r.variant, r.seed, long=r.epochs != TrainConfig.epochs, device="cpu")
        accuracy = accuracy_from_logits(fast_end_logits(model, val.toks), val.is_palindrome)
        assert accuracy == pytest.approx(r.final_val_accuracy, abs=2 / TrainConfig.val_size), r.file


def test_a_changed_file_is_refused(tmp_path, manifest):
    copy = tmp_path / "counterfactuals"
    shutil.copytree(counterfactual_dir(), copy)
    record = next(r for r in manifest["runs"] if r.file)
    data = bytearray((copy / record.file).read_bytes())
    data[-100] ^= 1
    (copy / record.file).write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="regenerate"):
        load_run(record.variant, record.seed, long=record.epochs != TrainConfig.epochs, directory=copy)
    (copy / record.file).unlink()
    with pytest.raises(CounterfactualNotFoundError, match="regenerate"):
        load_run(record.variant, record.seed, long=record.epochs != TrainConfig.epochs, directory=copy)
    with pytest.raises(CounterfactualNotFoundError, match=REGENERATE_COMMAND):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"runs": [{"variant": "x"}]}))
    with pytest.raises(ValueError, match="not a valid counterfactual manifest"):
        load_manifest(tmp_path)


def test_regenerate_is_byte_for_byte_and_follows_the_convergence_rule(tmp_path):
    # A tiny recipe, two variants: every file is listed with its hash, an unconverged run gets a
    # longer one that repeats its first 15 epochs, and a second regeneration gives the same bytes.
    records = regenerate([3], ["original", "single_mismatch"], tmp_path / "a", jobs=1, progress=False, base=TINY)
    again = regenerate([3], ["single_mismatch"], tmp_path / "b", jobs=1, progress=False, base=TINY)
    manifest = load_manifest(tmp_path / "a")
    assert [r.sha256 for r in manifest["runs"]] == [r.sha256 for r in records]
    assert manifest["recipe"]["train_size"] == TINY.train_size
    for r in records:
        assert sha256_file(tmp_path / "a" / r.file) == r.sha256
        assert r.matches_replica is None  # not the recipe, so not comparable with a replica
    single = [r for r in records if r.variant == "single_mismatch"]
    assert [r.sha256 for r in single] == [r.sha256 for r in again]
    # On this tiny recipe the run converges (its loss is flat by epoch 10): no longer run.
    assert len(single) == 1 and single[0].converged and single[0].epochs == TrainConfig.epochs


def test_an_unconverged_run_is_trained_longer_from_the_same_start(tmp_path, monkeypatch):
    # A configuration known to take the other branch: a learning rate so small that seed 9's validation loss
    # falls at every epoch (1.15 to 0.82), judged by the rule with tolerance 0 (any new low in the last five
    # epochs means "not converged"). The longer run must repeat the short run's 15 epochs exactly.
    strict = functools.partial(converged, tolerance=0.0)
    monkeypatch.setattr(counterfactuals, "converged", strict)
    slow = TrainConfig(train_size=256, val_size=32, batch_size=32, lr=2e-5, device="cpu")
    records = regenerate([9], ["single_mismatch"], tmp_path, jobs=1, progress=False, base=slow)
    assert [(r.epochs, r.converged) for r in records] == [(TrainConfig.epochs, False), (LONG_EPOCHS, False)]
    short, long = records
    losses = [p["val_loss"] for p in short.curve]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))  # still falling: the branch is taken
    assert long.curve[: TrainConfig.epochs] == short.curve
    assert long.sha256 != short.sha256 and (tmp_path / long.file).is_file()


def test_convergence_rule():
    falling = [1.0 / e for e in range(1, 16)]
    flat = [1.0] * 5 + [0.1] * 10
    assert not converged(falling)  # still reaching clearly new lows in the last 5 epochs
    assert converged(flat)
    assert converged([0.1] * 10 + [0.095] * 5)  # a 5% new low is within the 10% tolerance
    assert not converged([0.1] * 10 + [0.085] * 5)
    with pytest.raises(ValueError, match="window"):
        converged([0.1] * 5)
    with pytest.raises(ValueError, match="tolerance"):
        converged(flat, tolerance=1.5)


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(ValueError, match="variant must be one of"):
        run_config("doses", 0)
    with pytest.raises(ValueError, match="seed"):
        run_filename("dose_05", -1, 15)
    with pytest.raises(ValueError, match="base must be a TrainConfig"):
        run_config("dose_05", 0, base={"epochs": 1})
    with pytest.raises(ValueError, match="no 30-epoch run"):
        run_record("dose_05", 5, long=True)
    with pytest.raises(ValueError, match="jobs"):
        regenerate(jobs=0)
    with pytest.raises(SystemExit) as exit_info:
        main(["--variants", "nonsense"])
    assert exit_info.value.code == 2
    assert "argument --variants: invalid choice: 'nonsense'" in capsys.readouterr().err
