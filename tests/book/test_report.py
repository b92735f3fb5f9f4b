"""``python -m palindrome.book.report``: the chapters' own numbers, a page that draws offline, bad input refused."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch
from live_check import live_page

from palindrome import constants, path_patching
from palindrome.book import report
from palindrome.chapters.blindspots import natural_sample, single_mismatch_sweep
from palindrome.chapters.faithfulness import faithfulness_summary, main_dataset
from palindrome.chapters.roles import JULY_NAME, analyse_model
from palindrome.checkpoint import MissingFileError, StateDictMismatchError, sha256_file
from palindrome.model import create_model
from palindrome.plots import library_file
from palindrome.replicas import replica_dir, replica_record

SEED0_RELABELLED = {"mean": 0.995, "resample": 0.988}
"""Loss recovered on seed 0's replica by the hypothesis on its own heads (H0.1, H1.1), as the issue states."""
SEED0_JULY_LABELS = {"mean": 0.216, "resample": 0.002}
"""The same with the July labels (H0.0, H1.0), which are the wrong heads in that model."""


def replica_path(seed: int) -> Path:
    return replica_dir() / replica_record(seed).file


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (the folder itself included as a marker)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>") for p in folder.rglob("*")} | {
        ".": b"<dir>"
    }


@pytest.fixture(scope="module")
def seed0(one_torch_thread):
    """Seed 0's replica, loaded by the report, and its report with the time one torch thread took."""
    model, path, sha = report.load_checkpoint(replica_path(0), device="cpu")
    start = time.perf_counter()
    result = report.measure(model, path.name, sha, progress=False)
    return model, result, time.perf_counter() - start


@pytest.fixture(scope="module")
def july(one_torch_thread, checkpoint_path, monkeypatch_module):
    """The report without a checkpoint: the July model through the usual lookup."""
    monkeypatch_module.setenv("PALINDROME_CHECKPOINT", str(checkpoint_path))
    model, path, sha = report.load_checkpoint(device="cpu")
    return model, report.measure(model, JULY_NAME, sha, progress=False)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


# --- the numbers are the chapters' ----------------------------------------------------------------


def test_seed0_numbers_are_chapter_8_and_11s(seed0):
    model, result, _ = seed0
    sweep = single_mismatch_sweep(model, progress=False)  # chapter 8, its default size and seed
    assert torch.equal(result.miss_rate, sweep.misclassified_frac)
    assert torch.equal(result.sweep.clustered_standard_error(), sweep.clustered_standard_error())
    assert result.blind == (13,)
    roles = analyse_model(model, result.name)  # chapter 11, running its own sweep
    assert torch.equal(result.roles.mirror_scores, roles.mirror_scores)
    assert torch.equal(result.roles.detector_attention, roles.detector_attention)
    assert torch.equal(result.roles.misclassified, roles.misclassified)
    assert (result.roles.accuracy, result.roles.loss) == (roles.accuracy, roles.loss)
    assert result.roles.blind == roles.blind == (13,)
    data = to_json_roundtrip(result)
    assert data["blind_pairs"] == [[8, 13]]
    assert data["roles"] == {"mirror": "H0.1", "detector": ["H1.1"], "covers": {"8-13": None}}
    assert data["miss_rate"]["8-13"] == 1.0 and len(data["miss_rate"]) == 10
    assert data["sha256"] == replica_record(0).sha256 == sha256_file(replica_path(0))


def test_seed0_loss_recovered_relabels_the_hypothesis_onto_its_own_heads(seed0):
    model, result, _ = seed0
    data = main_dataset()
    keep = path_patching.relabel_heads(path_patching.HYPOTHESIS, {"0.0": "0.1", "1.0": "1.1"})
    for keep_, expected in ((keep, SEED0_RELABELLED), (path_patching.HYPOTHESIS, SEED0_JULY_LABELS)):
        table = faithfulness_summary(model, data.toks, data.is_palindrome, keep=keep_)
        measured = {m: float(table.loc[(m, "hypothesis"), "loss_recovered"]) for m in path_patching.METHODS}
        assert measured == pytest.approx(expected, abs=5e-4)
        if keep_ is keep:
            assert result.loss_recovered == measured  # chapter 10's function on the same inputs: exact
    assert "H0.0 as H0.1, H1.0 as H1.1" in result.loss_recovered_note


def test_natural_adversarial_rate_is_chapter_8s_false_positives_over_non_palindromes(seed0):
    model, result, _ = seed0
    counts = natural_sample(model).counts(result.blind)
    assert result.natural_adversarial_rate == pytest.approx(counts["false_positives"] / counts["non_palindromes"])
    assert 0 < result.natural_adversarial_rate < 0.01


def test_july_report_is_the_books(july, checkpoint_path):
    model, result = july
    data = to_json_roundtrip(result)
    assert data["blind_pairs"] == [[4, 17], [2, 19]]
    assert data["roles"] == {
        "mirror": "H0.0",
        "detector": ["H1.0"],
        "covers": {"4-17": None, "2-19": None, "1-20": "H1.1"},
    }
    assert data["sha256"] == constants.CHECKPOINT_SHA256 == sha256_file(checkpoint_path)
    table = faithfulness_summary(model, main_dataset().toks, main_dataset().is_palindrome)  # the July labels
    assert data["loss_recovered"] == {
        m: float(table.loc[(m, "hypothesis"), "loss_recovered"]) for m in path_patching.METHODS
    }
    assert torch.equal(result.miss_rate, single_mismatch_sweep(model, progress=False).misclassified_frac)
    assert report.summary(result).startswith("Pairs (4, 17) and (2, 19) are blind: missed 100% of the time.")
    assert "H1.1 covers it" in report.summary(result)


@pytest.mark.slow
@pytest.mark.parametrize("seed, blind", [(1, (11,)), (7, (17,)), (9, (14,))])
def test_replica_reports_find_chapter_11s_blind_pairs(seed, blind, one_torch_thread):
    model, path, sha = report.load_checkpoint(replica_path(seed), device="cpu")
    result = report.measure(model, path.name, sha, progress=False)
    roles = analyse_model(model, path.name)
    assert result.blind == roles.blind == blind
    assert torch.equal(result.roles.detector_attention, roles.detector_attention)
    assert result.roles.mirror_head == roles.mirror_head and result.roles.detector_heads == roles.detector_heads


def test_one_model_takes_at_most_30_seconds(seed0):
    assert seed0[2] < 30, f"measuring seed 0's replica took {seed0[2]:.1f} s on one torch thread"


def to_json_roundtrip(result: report.Report) -> dict:
    """``to_json`` through the json module, as report.json stores it."""
    return json.loads(json.dumps(report.to_json(result)))


# --- the text for models unlike the shipped ones --------------------------------------------------


def test_a_model_with_no_blind_pair_is_reported_with_its_weakest_pair(seed0):
    _, result, _ = seed0
    p = result.sweep.p_palindrome.clone()
    p[result.sweep.index(13)] = p[result.sweep.index(17)] = 0.0  # pair (8, 13) never missed ...
    p[result.sweep.index(17), :, :100] = 0.9  # ... and (4, 17) missed on 100 of its 930 edits
    edited = dataclasses.replace(result, sweep=dataclasses.replace(result.sweep, p_palindrome=p))
    assert edited.blind == ()
    text = report.summary(edited)
    assert text.startswith("No pair is blind: the weakest, (4, 17), is missed 11% of the time.")
    data = to_json_roundtrip(edited)
    assert data["blind_pairs"] == [] and data["natural_adversarial_rate"] == result.natural_adversarial_rate


def test_loss_recovered_is_null_with_the_reason_when_the_roles_are_out_of_place(seed0):
    model, result, _ = seed0
    upside_down = dataclasses.replace(result.roles, mirror_scores=result.roles.mirror_scores.flip(0))
    assert upside_down.mirror_head[0] == 1
    values, reason = report._loss_recovered(model, upside_down)
    assert values is None and "chapter 11 finds no circuit" in reason and "H1.1" in reason
    edited = dataclasses.replace(result, roles=upside_down, loss_recovered=values, loss_recovered_note=reason)
    assert to_json_roundtrip(edited)["loss_recovered"] is None
    assert "Loss recovered: not measured, chapter 11 finds no circuit" in report.summary(edited)


def test_relabel_heads_swaps_heads_within_a_layer_only():
    relabelled = path_patching.relabel_heads(path_patching.HYPOTHESIS, {"0.0": "0.1", "1.0": "1.1"})
    assert (
        "0.1->1.1.k" in relabelled and "1.1->logits" in relabelled and len(relabelled) == len(path_patching.HYPOTHESIS)
    )
    assert not any("0.0" in e or "1.0" in e for e in relabelled)
    assert path_patching.relabel_heads(relabelled, {"0.1": "0.0", "1.1": "1.0"}) == path_patching.HYPOTHESIS
    with pytest.raises(ValueError, match="its own layer"):
        path_patching.relabel_heads(path_patching.HYPOTHESIS, {"0.0": "1.0"})


# --- the page and the files -----------------------------------------------------------------------


def test_written_folder_holds_the_page_libraries_and_json(seed0, tmp_path):
    model, result, _ = seed0
    folder = report.write_report(model, result, tmp_path / "new" / "seed0", with_json=True)
    assert sorted(p.name for p in folder.iterdir()) == ["circuitsvis.js", "index.html", "plotly.min.js", "report.json"]
    for name in ("plotly.min.js", "circuitsvis.js"):
        assert (folder / name).read_bytes() == library_file(name).read_bytes()
    assert json.loads((folder / "report.json").read_text()) == to_json_roundtrip(result)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["seed0"]  # no temporary folder left beside it
    page = (folder / "index.html").read_text()
    assert "cdn" not in page.split("<main>")[0].lower()  # the head loads local files only
    assert "Pair (8, 13) is blind: missed 100% of the time." in page


@pytest.mark.slow  # the browser (Debian's Chromium), like the site and live-page tests
def test_page_draws_offline_in_chromium(seed0, tmp_path):
    model, result, _ = seed0
    folder = report.write_report(model, result, tmp_path / "page")
    drawn_vis = "() => [...document.querySelectorAll('.palindrome-circuitsvis')].every(d => d.children.length)"
    with live_page((folder / "index.html").as_uri(), ready=drawn_vis) as (page, blocked, errors):
        drawn = page.evaluate(
            """() => ({
            plots: [...document.querySelectorAll('.palindrome-plotly')].map(d =>
                d.querySelectorAll('svg.main-svg').length > 0 &&
                d.querySelectorAll('.trace, .hm, .bars, image').length > 0),
            heads: [...document.querySelectorAll('.palindrome-circuitsvis')].map(d => d.innerText),
        })"""
        )
    assert drawn["plots"] == [True, True]  # the miss rates and the positional QK circuit
    assert len(drawn["heads"]) == 2 and all(all(f"H{h}" in t for h in constants.HEAD_NAMES) for t in drawn["heads"])
    assert blocked == [] and errors == []


# --- refusals: each says what is wrong and leaves the output folder as it was ---------------------


def run_main(argv: list[str], capsys) -> str:
    """``main(argv)``, which must exit with status 2; returns its error message."""
    with pytest.raises(SystemExit) as exit_info:
        report.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def out(tmp_path):
    """An output folder that already holds one file: its exact contents before each refusal."""
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    return folder


def other_architecture(tmp_path: Path, **sizes) -> Path:
    path = tmp_path / "other.pt"
    torch.save(create_model(device="cpu", **sizes).state_dict(), path)
    return path


@pytest.mark.parametrize(
    "sizes, says",
    [
        ({"n_heads": 4, "d_head": 7}, "wrong shapes"),
        ({"n_layers": 3}, "unexpected keys"),
        ({"d_model": 32}, "wrong shapes"),
    ],
)
def test_another_architecture_is_refused(sizes, says, tmp_path, out, capsys):
    before = snapshot(out)
    message = run_main([str(other_architecture(tmp_path, **sizes)), "--out", str(out / "report")], capsys)
    assert says in message and "not a state dict of" in message and "2 attention-only layers of 2 heads" in message
    assert snapshot(out) == before


def test_missing_and_corrupted_files_are_refused(tmp_path, out, capsys):
    before = snapshot(out)
    message = run_main([str(tmp_path / "nothing.pt"), "--out", str(out / "report")], capsys)
    assert "must be an existing file, but there is nothing" in message
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(replica_path(0).read_bytes()[:5000])
    message = run_main([str(truncated), "--out", str(out / "report")], capsys)
    assert "could not be read as a torch state dict" in message
    with pytest.raises(MissingFileError, match="must be an existing file, but there is"):
        report.load_checkpoint(tmp_path)  # a folder
    with pytest.raises(StateDictMismatchError, match="could not be read"):
        report.load_checkpoint(truncated)
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["reports", "truncated.pt"]


def test_an_output_folder_that_is_not_empty_is_refused_before_any_work(out, capsys, monkeypatch):
    monkeypatch.setattr(report, "measure", lambda *a, **k: pytest.fail("measured before refusing the folder"))
    before = snapshot(out)
    message = run_main([str(replica_path(0)), "--out", str(out)], capsys)
    assert "exists and is not empty" in message
    assert snapshot(out) == before


def test_an_output_folder_that_cannot_be_written_is_refused(seed0, tmp_path, out, capsys):
    model, result, _ = seed0
    before = snapshot(out)
    message = run_main([str(replica_path(0)), "--out", str(out / "notes.txt" / "report")], capsys)
    assert "notes.txt is a file" in message
    with pytest.raises(report.OutputFolderError, match="cannot be written"):
        report.write_report(model, result, Path("/sys/palindrome-report"))  # not writable, even by root
    assert not Path("/sys/palindrome-report").exists()
    if os.geteuid() != 0:  # root writes anywhere else
        out.chmod(0o555)
        try:
            with pytest.raises(report.OutputFolderError, match="not writable"):
                report.check_out_folder(out / "report")
        finally:
            out.chmod(0o755)
    assert snapshot(out) == before


def test_a_failure_while_writing_leaves_nothing_behind(seed0, tmp_path, out, monkeypatch):
    model, result, _ = seed0
    before = snapshot(out)

    def broken_copy(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report.shutil, "copyfile", broken_copy)
    with pytest.raises(report.OutputFolderError, match="No space left on device"):
        report.write_report(model, result, out / "deeper" / "report", with_json=True)
    assert snapshot(out) == before  # neither the report, nor its temporary folder, nor the parent it made
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(report.OutputFolderError, match=r"empty cannot be written \(No space left on device\)"):
        report.write_report(model, result, empty)
    assert empty.is_dir() and not any(empty.iterdir())


def test_an_empty_output_folder_is_filled(seed0, tmp_path):
    model, result, _ = seed0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (report.write_report(model, result, empty) / "index.html").is_file()


def test_the_command_writes_the_report_and_prints_the_summary(seed0, tmp_path, capsys):
    _, result, _ = seed0
    assert report.main([str(replica_path(0)), "--out", str(tmp_path / "r"), "--json", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert report.summary(result) in printed
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == to_json_roundtrip(result)


def test_the_module_runs_as_a_command(tmp_path):
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "palindrome.book.report", str(tmp_path / "none.pt"), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "must be an existing file" in done.stderr
    assert not (tmp_path / "r").exists()
