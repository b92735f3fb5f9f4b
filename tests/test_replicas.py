"""The committed replicas are what the manifest says, were made by the recipe, and load safely."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields

import pytest
import torch

from palindrome.checkpoint import ChecksumMismatchError, sha256_file
from palindrome.data import PalindromeDataset
from palindrome.metrics import accuracy_from_logits, end_logits
from palindrome.model import load_state_dict
from palindrome.replicas import (
    INIT_MATRICES,
    MANIFEST_NAME,
    RECIPE_FIELDS,
    REPLICA_SEEDS,
    ReplicaNotFoundError,
    init_similarity,
    load_manifest,
    load_replica,
    load_replicas,
    main,
    manifest_table,
    recipe_config,
    replica_dir,
    train_replicas,
)
from palindrome.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = TrainConfig(train_size=512, val_size=64, epochs=1, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def manifest():
    return load_manifest()


def test_manifest_lists_every_seed_with_its_file(manifest):
    assert [r.seed for r in manifest["replicas"]] == list(REPLICA_SEEDS)
    assert len(REPLICA_SEEDS) >= 5
    for record in manifest["replicas"]:
        path = replica_dir() / record.file
        assert path.is_file(), path
        assert sha256_file(path) == record.sha256
        assert path.stat().st_size < 100_000  # small enough to commit and ship with the package


def test_replicas_were_made_by_the_recipe(manifest):
    recipe = TrainConfig()
    assert manifest["recipe"] == {name: getattr(recipe, name) for name in RECIPE_FIELDS}
    assert recipe_config(manifest, 7) == TrainConfig(seed=7)
    assert manifest["command"] == "python -m palindrome.replicas --jobs 2"


def test_recorded_validation_accuracy_matches_the_files(manifest):
    # Each replica's own validation set (seed + 1, as in training) gives back the manifest's number,
    # so the files are the trained models the manifest describes.
    for record in manifest["replicas"]:
        config = recipe_config(manifest, record.seed)
        val = PalindromeDataset(config.val_size, seed=record.seed + 1)
        model = load_replica(record.seed, device="cpu")
        accuracy = accuracy_from_logits(end_logits(model, val.toks, fast=True), val.is_palindrome)
        assert accuracy == pytest.approx(record.final_val_accuracy, abs=1e-6), record.seed


def test_load_replicas_keys_by_seed():
    models = load_replicas([0, 42], device="cpu")
    assert list(models) == [0, 42]
    assert not any(p.requires_grad for p in models[0].parameters())
    w0, w42 = models[0].W_E, models[42].W_E
    assert not torch.equal(w0, w42)


@pytest.fixture
def copied(tmp_path):
    target = tmp_path / "replicas"
    shutil.copytree(replica_dir(), target)
    return target


def test_a_changed_file_is_refused(copied):
    path = copied / "seed_03.pt"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="seed_03.pt.*manifest"):
        load_replica(3, directory=copied)
    load_replica(4, directory=copied)  # the others still load


def test_missing_pieces_say_how_to_regenerate(copied, tmp_path):
    (copied / "seed_05.pt").unlink()
    with pytest.raises(ReplicaNotFoundError, match="python -m palindrome.replicas"):
        load_replica(5, directory=copied)
    with pytest.raises(ValueError, match="no replica with seed 123"):
        load_replica(123, directory=copied)
    with pytest.raises(ReplicaNotFoundError, match="no replica manifest"):
        load_manifest(tmp_path / "empty")
    (copied / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not a valid replica manifest"):
        load_manifest(copied)
    (copied / MANIFEST_NAME).write_text(json.dumps({"recipe": {}, "replicas": [{"seed": 1}]}))
    with pytest.raises(ValueError, match="not a valid replica manifest"):
        load_manifest(copied)


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_train_replicas_writes_models_and_manifest(tmp_path, jobs):
    records = train_replicas([3, 1], tmp_path, jobs=jobs, base=TINY, progress=False)
    assert [r.seed for r in records] == [3, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME, "seed_01.pt", "seed_03.pt"]
    manifest = load_manifest(tmp_path)
    assert manifest["recipe"]["train_size"] == 512
    assert [r.sha256 for r in manifest["replicas"]] == [sha256_file(tmp_path / r.file) for r in records]
    model = load_replica(1, directory=tmp_path)
    val = PalindromeDataset(64, seed=2)
    accuracy = accuracy_from_logits(end_logits(model, val.toks, fast=True), val.is_palindrome)
    assert accuracy == pytest.approx(records[1].final_val_accuracy, abs=1e-6)


@pytest.mark.slow
def test_same_seed_trains_the_same_file(tmp_path):
    first = train_replicas([2], tmp_path / "a", base=TINY, progress=False)[0]
    second = train_replicas([2], tmp_path / "b", base=TINY, progress=False)[0]
    assert first.sha256 == second.sha256


@pytest.mark.parametrize(
    "seeds, message",
    [([], "at least one seed"), ([1, 1], "distinct"), ([-1], "seed"), ("12", "list of integers")],
)
def test_bad_seeds_are_refused(tmp_path, seeds, message):
    with pytest.raises(ValueError, match=message):
        train_replicas(seeds, tmp_path, base=TINY, progress=False)
    assert not any(tmp_path.iterdir())


def test_bad_jobs_and_base_are_refused(tmp_path):
    with pytest.raises(ValueError, match="jobs"):
        train_replicas([1], tmp_path, jobs=0, base=TINY)
    with pytest.raises(ValueError, match="TrainConfig"):
        train_replicas([1], tmp_path, base={"epochs": 1})


def test_cli_rejects_bad_values(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--seeds", "1", "1", "--out-dir", "unused"])
    assert exc.value.code == 2
    assert "distinct" in capsys.readouterr().err


def test_the_july_model_started_from_seed_42(checkpoint_path):
    similarity = init_similarity(load_state_dict(checkpoint_path), seeds=[0, 1, 42])
    assert list(similarity.index) == [0, 1, 42]
    assert list(similarity.columns) == list(INIT_MATRICES)
    mean = similarity.mean(axis=1)
    assert mean[42] > 0.3
    assert mean[[0, 1]].abs().max() < 0.05
    assert similarity.loc[42, "unembed.W_U"] > 0.8
    with pytest.raises(ValueError, match="lacks"):
        init_similarity({"embed.W_E": torch.zeros(33, 28)})


def test_manifest_table(manifest):
    table = manifest_table(manifest)
    assert list(table.index) == list(REPLICA_SEEDS)
    assert (table.final_val_accuracy >= 0.995).all()


def test_recipe_fields_are_train_config_fields():
    names = {f.name for f in fields(TrainConfig)}
    assert set(RECIPE_FIELDS) <= names
