"""The benchmark scripts still run and print their verdict lines (tiny sizes: speed is not tested)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str, checkpoint: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PALINDROME_CHECKPOINT": str(checkpoint)}
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_forward_benchmark_prints_rates_ratios_and_verdicts(checkpoint_path):
    result = run_script(
        "bench_forward.py",
        "--n",
        "600",
        "--rounds",
        "1",
        "--one-call",
        "200",
        "--hooked-batch-size",
        "200",
        "--batch-size",
        "128",
        "--threads",
        "1",
        checkpoint=checkpoint_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "the July-2023 checkpoint" in out
    for line in ("one call on 200", "chunks of 200", "fast path, chunks of 128", "speed-up over"):
        assert line in out, line
    assert "target >= 100,000 sequences/s:" in out
    assert "target >= 20x HookedTransformer (one call, the issue's baseline):" in out
    difference = float(out.split("max |difference|")[1].split()[0])
    assert difference < 1e-4  # both sides computed the same logits


def test_forward_benchmark_rejects_non_positive_sizes(checkpoint_path):
    result = run_script("bench_forward.py", "--one-call", "0", checkpoint=checkpoint_path)
    assert result.returncode == 2
    assert "--one-call must be a positive integer" in result.stderr


def test_training_benchmark_runs_its_step_comparison(checkpoint_path):
    result = run_script(
        "bench_train.py",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--skip-full",
        checkpoint=checkpoint_path,
    )
    assert result.returncode == 0, result.stderr
    assert "speed-up" in result.stdout


def test_live_benchmark_prints_the_update_times(checkpoint_path):
    result = run_script("bench_live.py", "--edits", "3", checkpoint=checkpoint_path)
    assert result.returncode == 0, result.stderr
    for line in ("edit to numbers painted", "edit to patterns painted", "target: edit to numbers painted under 50 ms"):
        assert line in result.stdout, line


def test_live_benchmark_rejects_a_non_positive_edit_count(checkpoint_path):
    result = run_script("bench_live.py", "--edits", "0", checkpoint=checkpoint_path)
    assert result.returncode == 2
    assert "--edits must be a positive integer" in result.stderr
