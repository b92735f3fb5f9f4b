"""A short training run learns, saves a loadable checkpoint, and bad settings are refused."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader

from palindrome.checkpoint import CheckpointNotFoundError, StateDictMismatchError
from palindrome.data import PalindromeDataset
from palindrome.metrics import end_logits
from palindrome.model import create_model
from palindrome.train import (
    TrainConfig,
    end_loss,
    load_trained_model,
    main,
    parse_args,
    train,
)

# Small enough for a few seconds, big enough to leave the loss plateau at log(2).
SHORT = dict(train_size=6000, val_size=500, epochs=2, batch_size=32, lr=3e-3, progress=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "short.pt"
    model, history = train(TrainConfig(**SHORT, out=out))
    return model, history, out


def test_loss_decreases(short_run):
    _, history, _ = short_run
    assert [s.epoch for s in history] == [1, 2]
    assert history[1].train_loss < history[0].train_loss - 0.03
    assert history[1].val_loss < math.log(2) - 0.05  # below chance
    assert 0.0 <= history[1].val_accuracy <= 1.0


def test_checkpoint_loads_with_the_same_predictions(short_run):
    model, _, out = short_run
    loaded = load_trained_model(out, device="cpu")
    toks = PalindromeDataset(200, seed=99).toks
    # Loading centres the unembedding, which shifts both logits equally: compare log-probs.
    expected = end_logits(model, toks, fast=True).log_softmax(-1)
    with torch.inference_mode():
        found = loaded(toks)[:, -1].log_softmax(-1)
    assert (found - expected).abs().max().item() < 1e-4
    assert not any(p.requires_grad for p in loaded.parameters())


def test_same_seed_same_weights(short_run):
    model, _, _ = short_run
    again, _ = train(TrainConfig(**{**SHORT, "epochs": 1, "train_size": 256}))
    twice, _ = train(TrainConfig(**{**SHORT, "epochs": 1, "train_size": 256}))
    for (name, a), b in zip(again.named_parameters(), twice.parameters(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    "field, value",
    [
        ("seed", -1),
        ("seed", 1.5),
        ("epochs", 0),
        ("batch_size", 0),
        ("batch_size", True),
        ("train_size", 1001),
        ("train_size", 0),
        ("val_size", 1),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("lr", "fast"),
        ("weight_decay", -0.1),
        ("device", "not-a-device"),
        ("generator", "singles"),
        ("share", 0.2),  # only the dose generator takes a share
    ],
)
def test_bad_config_raises_value_error(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_train_refuses_a_non_config():
    with pytest.raises(ValueError, match="TrainConfig"):
        train({"epochs": 1})


def test_end_loss_is_float64_cross_entropy():
    logits = torch.randn(8, 2)
    labels = torch.randint(0, 2, (8,))
    loss = end_loss(logits, labels)
    assert loss.dtype == torch.float64
    assert torch.isclose(loss, torch.nn.functional.cross_entropy(logits.double(), labels))
    with pytest.raises(ValueError, match="labels"):
        end_loss(logits, labels[:4])


def test_load_trained_model_errors(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no trained checkpoint at"):
        load_trained_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    torch.save({"weight": torch.zeros(3)}, junk)
    with pytest.raises(StateDictMismatchError, match="missing keys"):
        load_trained_model(junk)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli.pt"
    argv = ["--epochs", "1", "--train-size", "256", "--val-size", "64", "--batch-size", "128"]
    assert main(argv + ["--out", str(out), "--no-progress", "--seed", "3"]) == 0
    assert "val accuracy" in capsys.readouterr().out
    load_trained_model(out, device="cpu")
    assert parse_args(["--lr", "0.01"]).lr == 0.01
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "error: batch_size must be an integer >= 1, got 0" in capsys.readouterr().err


def test_train_matches_the_original_loop_step_for_step():
    # The original script: model, training data, validation data (each reseeding torch), then a
    # shuffling DataLoader over the dataset and Adam on HookedTransformer's END logits. The
    # package's trainer must visit the same batches and so land on (nearly) the same weights.
    config = TrainConfig(train_size=512, val_size=64, epochs=2, batch_size=64, progress=False, device="cpu")
    model = create_model(seed=config.seed, device="cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    train_set = PalindromeDataset(config.train_size, seed=config.seed)
    PalindromeDataset(config.val_size, seed=config.seed + 1)
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True)
    for _ in range(config.epochs):
        for toks, labels in loader:
            optimizer.zero_grad()
            loss = end_loss(model(toks)[:, -1], labels)
            loss.backward()
            optimizer.step()
    ours, _ = train(config)
    for (name, expected), found in zip(model.named_parameters(), ours.parameters(), strict=True):
        if name.endswith("b_K"):
            # Softmax ignores a key bias (it adds the same to every score of a query), so its true
            # gradient is 0 and Adam turns each side's float noise into steps of size lr: skip it.
            continue
        assert (found - expected).abs().max().item() < 1e-4, name


def test_train_leaves_the_callers_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train(TrainConfig(**{**SHORT, "epochs": 1, "train_size": 256}))
    assert torch.equal(torch.get_rng_state(), before)


def test_the_run_is_checked_before_training_starts(tmp_path, capsys):
    from palindrome.train import TrainConfig, parse_args

    with pytest.raises(ValueError, match="is a folder"):
        TrainConfig(out=tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        TrainConfig(out=blocker / "seed42.pt")
    with pytest.raises(ValueError, match="at most"):
        TrainConfig(seed=2**70)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs CUDA"):
            TrainConfig(device="cuda")
    with pytest.raises(ValueError, match="torch device"):
        TrainConfig(device="banana")
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert (
        f"error: out must be a file path such as {tmp_path}/seed42.pt, but {tmp_path} is a folder"
        in capsys.readouterr().err
    )


def test_a_stale_part_file_is_removed_by_the_next_run(tmp_path):
    from palindrome.checkpoint import remove_stale_parts

    out = tmp_path / "seed1.pt"
    stale = tmp_path / ".seed1.pt.abc123.part"
    stale.write_bytes(b"half a file")
    other = tmp_path / ".other.pt.x.part"
    other.write_bytes(b"not ours")
    assert remove_stale_parts(out) == [stale]
    assert not stale.exists() and other.exists()


def test_the_generator_field_selects_the_training_data():
    # The default is the original generator (so the recipe, and the shipped replicas, are unchanged);
    # another generator changes the data but not the initialisation or the batch order.
    base = dict(train_size=512, val_size=64, epochs=1, batch_size=64, progress=False, device="cpu")
    assert TrainConfig().generator == "original" and TrainConfig().share is None
    with pytest.raises(ValueError, match="share must be a number strictly between 0 and 1"):
        TrainConfig(generator="dose")
    original, _ = train(TrainConfig(**base))
    again, _ = train(TrainConfig(**base, generator="original"))
    single, _ = train(TrainConfig(**base, generator="single_mismatch"))
    assert torch.equal(original.W_E, again.W_E)
    assert not torch.equal(original.W_E, single.W_E)


def test_cli_takes_the_generator(capsys):
    config = parse_args(["--generator", "dose", "--share", "0.05", "--seed", "7"])
    assert (config.generator, config.share, config.seed) == ("dose", 0.05, 7)
    assert parse_args([]).generator == "original"
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--generator", "dose"])  # a dose needs its share
    assert exit_info.value.code == 2
    assert "error: share must be a number strictly between 0 and 1 for generator 'dose'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--generator", "nonsense"])
    assert exit_info.value.code == 2
    assert "argument --generator: invalid choice: 'nonsense'" in capsys.readouterr().err
