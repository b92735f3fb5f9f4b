"""The book's analysis of any checkpoint of this architecture, in one command: ``python -m palindrome.book.report``.

Method. Every number is measured by the chapter that introduced it, with that chapter's sizes and
seeds; this module only chains them and writes the result down.

* Roles, accuracy and loss (chapter 11, ``roles.analyse_model``): the mirror head is the head with
  the highest lambda score, the detector the one with the highest detector score, each counted only
  when it scores ``roles.CHANCE_MULTIPLE`` times what uniform attention gives; every head that clears
  the detector threshold is listed, best first. For each pair the best detector misses (gives less
  than ``roles.PARTIAL_SHARE`` of END's attention when broken), ``ModelRoles.covers`` names the
  partial detector that covers it, or None. Accuracy and loss are measured on held-out data from the
  original generator (``roles.EVAL_SIZE`` sequences, seed ``roles.EVAL_SEED``).
* The single-mismatch map (chapter 8, ``blindspots.single_mismatch_sweep`` at its default size): each
  mirror pair's miss rate with its standard error clustered by base palindrome, and the blind pairs,
  missed more than ``blindspots.BLIND_THRESHOLD`` of the time. The sweep runs once: chapter 11's
  analysis takes it as an argument.
* Loss recovered (chapter 10, ``faithfulness.faithfulness_summary`` on ``faithfulness.main_dataset``):
  the hypothesis ``path_patching.HYPOTHESIS`` names the July model's heads, so it is relabelled
  (``path_patching.relabel_heads``) onto the detected mirror head and the best detector, then measured under
  mean ablation and resampling. When chapter 11 finds the roles out of place (the mirror head not in
  layer 0, the detector not in layer 1, or either below its threshold) there is no circuit to relabel,
  and the report says so instead of a number.
* Natural adversarial rate (chapter 8, ``blindspots.natural_sample``): the share of the non-palindromes
  in ``blindspots.NATURAL_SIZE`` sequences from the original generator that the model calls
  palindromes. It needs no blind pair.

The page shows the miss rates, the mirror head's positional QK circuit (chapter 2's, LayerNorm replaced
by the layer's mean scale over ``PalindromeDataset(roles.SCALE_SIZE)``, the scale the lambda score
uses) and the four heads' attention on a palindrome and on a single mismatch at the most-missed pair;
it loads plotly.js and circuitsvis from files copied next to it (``plots.library_file``), so it works
offline. The output folder is written atomically: a temporary sibling folder, renamed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Optional, Sequence

import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from palindrome.chapters.blindspots import (
    BLIND_THRESHOLD,
    N_BASES,
    SweepResult,
    blind_positions,
    natural_sample,
    single_mismatch_sweep,
)
from palindrome.chapters.faithfulness import faithfulness_summary, main_dataset
from palindrome.chapters.roles import (
    DETECTOR_THRESHOLD,
    JULY_NAME,
    MIRROR_THRESHOLD,
    SCALE_SIZE,
    ModelRoles,
    analyse_model,
    head_name,
    layer_scale,
)
from palindrome.checkpoint import (
    CheckpointError,
    PathLike,
    StateDictMismatchError,
    check_file,
    check_folder,
    resolve_checkpoint,
    sha256_file,
)
from palindrome.circuits import positional_qk_circuit
from palindrome.constants import D_HEAD, D_MODEL, D_VOCAB, MIRROR, N_HEADS, N_LAYERS, SEQ_LEN
from palindrome.data import token_strings
from palindrome.fast import check_architecture, num_threads
from palindrome.inputs import single_mismatch_tokens
from palindrome.model import Device, load_state_dict, model_from_state_dict
from palindrome.path_patching import HYPOTHESIS, METHODS, relabel_heads
from palindrome.plots import NONPAL_COLOR, PAL_COLOR, LibraryMissingError, bar, figure_html, imshow, library_file
from palindrome.quickstart import explain
from palindrome.tokens import check_type

PAGE: str = "index.html"
JSON_NAME: str = "report.json"
LIBRARIES: tuple[str, ...] = ("plotly.min.js", "circuitsvis.js")
"""The browser libraries the page loads, copied next to it (``plots.library_file``)."""
ARCHITECTURE: str = (
    f"{N_LAYERS} attention-only layers of {N_HEADS} heads, d_model {D_MODEL}, d_head {D_HEAD}, "
    f"{SEQ_LEN} positions, {D_VOCAB} tokens, LayerNorm"
)


class OutputFolderError(ValueError):
    """The report's output folder cannot be used: it holds files already, or it cannot be written."""


def pair_name(position: int) -> str:
    """The key of the mirror pair of second-half ``position`` in the report: 17 -> "4-17"."""
    if isinstance(position, bool) or position not in MIRROR or position < MIRROR[position]:
        raise ValueError(f"position must be a second-half position 11..20, got {position!r}")
    return f"{MIRROR[position]}-{position}"


@dataclass(frozen=True)
class Report:
    """The chapters' measurements of one model, as the report shows them."""

    name: str
    sha256: str
    roles: ModelRoles
    sweep: SweepResult
    natural_adversarial_rate: float
    loss_recovered: Optional[dict[str, float]]
    """Recovered fraction of the loss under each of ``path_patching.METHODS``, or None when there is no circuit."""
    loss_recovered_note: str
    """Which heads the hypothesis was relabelled onto, or why the loss recovered is None."""
    mirror_scale: float
    """The mean LayerNorm scale of the mirror head's layer that its positional QK circuit divides by."""

    @property
    def miss_rate(self) -> Float[Tensor, " position"]:
        """Chapter 8's misclassified fraction of each pair's single-mismatch inputs."""
        return self.sweep.misclassified_frac

    @property
    def blind(self) -> tuple[int, ...]:
        """Second-half positions of the blind pairs (``blindspots.blind_positions``)."""
        return tuple(blind_positions(self.sweep))

    @property
    def weakest(self) -> int:
        """Second-half position of the most-missed pair."""
        return self.sweep.positions[int(self.miss_rate.argmax())]

    @property
    def mirror(self) -> Optional[tuple[int, int]]:
        """The mirror head, or None when no head's lambda score reaches ``roles.MIRROR_THRESHOLD``."""
        return self.roles.mirror_head if self.roles.mirror_score >= MIRROR_THRESHOLD else None

    @property
    def covers(self) -> Optional[dict[int, Optional[tuple[int, int]]]]:
        """Each pair the best detector misses and the head covering it (None: no head); None without a detector."""
        return self.roles.covers() if self.roles.detector_heads else None


def check_out_folder(out: PathLike) -> Path:
    """``out`` as a folder the report may be written to: absent or empty, and writable; OutputFolderError if not."""
    folder = check_folder("out", out).absolute()
    if folder.is_dir() and any(folder.iterdir()):
        raise OutputFolderError(
            f"out {folder} exists and is not empty; the report writes a folder of its own. Remove it or name a new one"
        )
    nearest = next(p for p in [folder.parent, *folder.parents] if p.exists())
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise OutputFolderError(f"out {folder} cannot be written: {nearest} is not writable. Choose another folder")
    return folder


def load_checkpoint(
    checkpoint: Optional[PathLike] = None, device: Device = None
) -> tuple[HookedTransformer, Path, str]:
    """(model, path, sha256) of a raw state dict of this architecture; None: the July model, its sha256 checked."""
    path = resolve_checkpoint() if checkpoint is None else check_file("checkpoint", checkpoint)
    try:
        model = model_from_state_dict(load_state_dict(path), device)
    except StateDictMismatchError as exc:
        raise StateDictMismatchError(
            f"cannot report on {path}: {exc} The report needs a raw state dict of this architecture "
            f"({ARCHITECTURE}), as `python -m palindrome.train --out FILE` writes or as the July-2023 file holds."
        ) from exc
    return model, path, sha256_file(path)


def _loss_recovered(model: HookedTransformer, roles: ModelRoles) -> tuple[Optional[dict[str, float]], str]:
    """Chapter 10's loss recovered by the hypothesis relabelled onto the detected heads, or None and the reason."""
    if not roles.roles_in_place:
        (ml, mh), (dl, dh) = roles.mirror_head, roles.detector_head
        return None, (
            f"chapter 11 finds no circuit to relabel: the best mirror head H{ml}.{mh} (lambda score "
            f"{roles.mirror_score:.3f}, needs layer 0 and >= {MIRROR_THRESHOLD:.3f}) and the best detector "
            f"H{dl}.{dh} (detector score {roles.detector_score:.3f}, needs layer 1 and >= {DETECTOR_THRESHOLD:.3f})"
        )
    mirror, detector = head_name(roles.mirror_head), head_name(roles.detector_heads[0])
    keep = relabel_heads(HYPOTHESIS, {"0.0": mirror, "1.0": detector})
    data = main_dataset()
    table = faithfulness_summary(model, data.toks, data.is_palindrome, keep=keep)
    values = {m: float(table.loc[(m, "hypothesis"), "loss_recovered"]) for m in METHODS}
    if (mirror, detector) == ("0.0", "1.0"):
        return values, "the hypothesis as written, on H0.0 and H1.0"
    return values, f"the hypothesis relabelled: H0.0 as H{mirror}, H1.0 as H{detector}"


def measure(model: HookedTransformer, name: str = JULY_NAME, sha256: str = "", progress: bool = True) -> Report:
    """Chapters 8, 10 and 11's measurements of ``model`` (about 10 s on one core)."""
    check_architecture(model)
    name, sha256 = check_type("name", name, str), check_type("sha256", sha256, str)
    steps = tqdm(total=5, desc="report", unit="step", disable=not progress)
    steps.set_postfix_str("single mismatches (chapter 8)")
    sweep = single_mismatch_sweep(model, progress=False)
    steps.update()
    steps.set_postfix_str("roles (chapter 11)")
    roles = analyse_model(model, name, sweep=sweep)
    steps.update()
    steps.set_postfix_str("loss recovered (chapter 10)")
    recovered, note = _loss_recovered(model, roles)
    steps.update()
    steps.set_postfix_str("natural adversarial rate (chapter 8)")
    rate = natural_sample(model).adversarial_rate
    steps.update()
    scale = layer_scale(model, roles.mirror_head[0])
    steps.update()
    steps.close()
    return Report(name, sha256, roles, sweep, rate, recovered, note, scale)


# --- text ------------------------------------------------------------------------------------------


def _pair(position: int) -> str:
    return f"({MIRROR[position]}, {position})"


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _percent(x: float) -> str:
    return f"{100 * x:.0f}%" if x == 0 or x >= 0.01 else f"{100 * x:.2g}%"


def summary(report: Report) -> str:
    """The report's findings in a few sentences, written from its numbers."""
    report = check_type("report", report, Report)
    r, lines = report.roles, []
    blind = sorted(report.blind, key=lambda p: -report.sweep.fraction(p))
    if blind:
        rates = [_percent(report.sweep.fraction(p)) for p in blind]
        missed = rates[0] if len(set(rates)) == 1 else _and(rates)
        verb = "is" if len(blind) == 1 else "are"
        lines.append(
            f"{'Pair' if len(blind) == 1 else 'Pairs'} {_and([_pair(p) for p in blind])} {verb} blind: "
            f"missed {missed} of the time."
        )
    else:
        weakest = report.weakest
        lines.append(
            f"No pair is blind: the weakest, {_pair(weakest)}, is missed "
            f"{_percent(report.sweep.fraction(weakest))} of the time."
        )
    if report.mirror is None:
        lines.append(f"No head checks mirrors (best lambda score {r.mirror_score:.2f}, H{head_name(r.mirror_head)}).")
    else:
        lines.append(f"H{head_name(report.mirror)} checks mirrors (lambda score {r.mirror_score:.2f}).")
    if not r.detector_heads:
        lines.append(f"No head detects a broken pair from END (best detector score {r.detector_score:.2f}).")
    else:
        detectors = [f"H{head_name(h)} ({r.detector_scores[h]:.2f})" for h in r.detector_heads]
        lines.append(f"Detector {'head' if len(detectors) == 1 else 'heads'} at END: {_and(detectors)}.")
        covers = report.covers or {}
        covered = {}
        for p, h in covers.items():
            covered.setdefault(h, []).append(_pair(p))
        for h, pairs in covered.items():
            owner = f"H{head_name(h)} covers" if h is not None else "no head covers"
            lines.append(f"The best detector misses {_and(pairs)}; {owner} {'it' if len(pairs) == 1 else 'them'}.")
    if report.loss_recovered is None:
        lines.append(f"Loss recovered: not measured, {report.loss_recovered_note}.")
    else:
        mean, resample = (report.loss_recovered[m] for m in METHODS)
        lines.append(
            f"The circuit ({report.loss_recovered_note}) recovers {_percent(mean)} of the loss under mean "
            f"ablation and {_percent(resample)} under resampling."
        )
    lines.append(
        f"Held-out accuracy {100 * r.accuracy:.2f}%, loss {r.loss:.4f}; it calls "
        f"{_percent(report.natural_adversarial_rate)} of the generator's non-palindromes palindromes."
    )
    return " ".join(lines)


def to_json(report: Report) -> dict[str, Any]:
    """The report's numbers as JSON-ready data (``report.json``)."""
    report = check_type("report", report, Report)
    r, se = report.roles, report.sweep.clustered_standard_error()
    positions = report.sweep.positions
    covers = report.covers
    return {
        "name": report.name,
        "sha256": report.sha256,
        "accuracy": r.accuracy,
        "loss": r.loss,
        "blind_pairs": [[MIRROR[p], p] for p in report.blind],
        "miss_rate": {pair_name(p): float(report.miss_rate[i]) for i, p in enumerate(positions)},
        "miss_rate_standard_error": {pair_name(p): float(se[i]) for i, p in enumerate(positions)},
        "roles": {
            "mirror": None if report.mirror is None else f"H{head_name(report.mirror)}",
            "detector": [f"H{head_name(h)}" for h in r.detector_heads],
            "covers": None
            if covers is None
            else {pair_name(p): None if h is None else f"H{head_name(h)}" for p, h in covers.items()},
        },
        "loss_recovered": report.loss_recovered,
        "loss_recovered_note": report.loss_recovered_note,
        "natural_adversarial_rate": report.natural_adversarial_rate,
    }


# --- the page --------------------------------------------------------------------------------------


def miss_rate_figure(report: Report) -> go.Figure:
    """Each mirror pair's miss rate with its clustered standard error; blind pairs in red."""
    report = check_type("report", report, Report)
    blind = set(report.blind)
    positions = report.sweep.positions
    fig = bar(
        report.miss_rate,
        [_pair(p) for p in positions],
        f"Single mismatches missed, per mirror pair ({N_BASES} bases x 930 edits; red: blind)",
        "fraction called palindrome",
        colors=[NONPAL_COLOR if p in blind else PAL_COLOR for p in positions],
    )
    fig.update_traces(error_y=dict(type="data", array=report.sweep.clustered_standard_error().tolist()))
    fig.add_hline(y=BLIND_THRESHOLD, line_dash="dash", line_color="black", annotation_text="blind above this")
    fig.update_layout(xaxis_title="mirror pair", yaxis_range=[0, 1.05], height=420)
    return fig


def mirror_qk_figure(model: HookedTransformer, report: Report) -> go.Figure:
    """The mirror head's positional QK circuit (chapter 2's), through the report's layer scale."""
    report = check_type("report", report, Report)
    layer, head = report.roles.mirror_head
    circuit = positional_qk_circuit(model, layer, head, report.mirror_scale)
    return imshow(
        circuit,
        f"H{layer}.{head}'s positional QK circuit (LayerNorm scale {report.mirror_scale:.3f})",
        labels={"x": "key position", "y": "query position"},
        midpoint=None,
        height=520,
        width=600,
    )


def attention_inputs(report: Report) -> tuple[Int[Tensor, "2 seq"], int]:
    """A palindrome (the sweep's first base) and a single mismatch at the most-missed pair (a missed one if any)."""
    report = check_type("report", report, Report)
    position = report.weakest
    base = report.sweep.bases[:1]
    edits = single_mismatch_tokens(base, position, report.sweep.side)[0]
    missed = report.sweep.misclassified[report.sweep.index(position), 0]
    pick = int(missed.nonzero()[0, 0]) if missed.any() else 0
    return torch.stack([base[0], edits[pick]]), position


def page_html(model: HookedTransformer, report: Report) -> str:
    """The report's page: summary, numbers and figures, loading plotly.js and circuitsvis from its own folder."""
    report = check_type("report", report, Report)
    check_architecture(model)
    toks, position = attention_inputs(report)
    reading = explain(toks, model)
    blind = position in report.blind
    layer, head = report.roles.mirror_head
    mirror_note = "" if report.mirror is not None else " (its lambda score is below the mirror threshold)"
    recovered = (
        "not measured"
        if report.loss_recovered is None
        else ", ".join(f"{m} {report.loss_recovered[m]:.3f}" for m in METHODS)
    )
    rows = [
        ("checkpoint sha256", report.sha256 or "(not given)"),
        ("held-out accuracy / loss", f"{report.roles.accuracy:.4f} / {report.roles.loss:.4f}"),
        ("blind pairs", ", ".join(_pair(p) for p in report.blind) or "none"),
        ("mirror head", "none" if report.mirror is None else f"H{head_name(report.mirror)}"),
        ("detector heads", ", ".join(f"H{head_name(h)}" for h in report.roles.detector_heads) or "none"),
        ("loss recovered", f"{recovered} ({report.loss_recovered_note})"),
        ("natural adversarial rate", f"{report.natural_adversarial_rate:.5f}"),
    ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    libraries = "".join(f'<script src="{name}"></script>' for name in LIBRARIES)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Palindrome circuit report: {escape(report.name)}</title>
{libraries}
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}}
th{{text-align:left;padding-right:1rem}} .summary{{font-size:1.1rem}}</style>
</head><body><main>
<h1>Palindrome circuit report: {escape(report.name)}</h1>
<p class="summary">{escape(summary(report))}</p>
<table>{table}</table>
<h2>Single-mismatch map (chapter 8)</h2>
{figure_html(miss_rate_figure(report))}
<h2>The mirror head's positional QK circuit (chapter 2)</h2>
<p>H{layer}.{head}{mirror_note}: causal softmax of W_pos W_QK W_pos<sup>T</sup>, with LayerNorm replaced by
the layer-{layer} scale {report.mirror_scale:.3f}, its mean over PalindromeDataset({SCALE_SIZE}) (the scale of the
lambda score).</p>
{figure_html(mirror_qk_figure(model, report))}
<h2>Attention on a palindrome</h2>
<p>P(palindrome) = {float(reading.p_palindrome[0]):.3f}</p>
{reading.view(0)._repr_html_()}
<h2>Attention on a single mismatch at {"blind pair" if blind else "the weakest pair"} {_pair(position)}</h2>
<p>{" ".join(token_strings(toks[1]))}: P(palindrome) = {float(reading.p_palindrome[1]):.3f}</p>
{reading.view(1)._repr_html_()}
</main></body></html>
"""


def write_report(model: HookedTransformer, report: Report, out: PathLike, with_json: bool = False) -> Path:
    """Write ``index.html`` (and ``report.json``) with the page's libraries into the new folder ``out``, atomically."""
    report = check_type("report", report, Report)
    with_json = check_type("with_json", with_json, bool)
    folder = check_out_folder(out)
    html = page_html(model, report)
    created = [p for p in [folder.parent, *folder.parents] if not p.exists()]
    tmp: Optional[Path] = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
        (tmp / PAGE).write_text(html, encoding="utf-8")
        for name in LIBRARIES:
            shutil.copyfile(library_file(name), tmp / name)
        if with_json:
            (tmp / JSON_NAME).write_text(json.dumps(to_json(report), indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o755)
        os.rename(tmp, folder)  # replaces an empty folder; fails if another writer filled it meanwhile
    except LibraryMissingError:
        raise
    except OSError as exc:
        raise OutputFolderError(
            f"out {folder} cannot be written ({exc.strerror or exc}); nothing was left there"
        ) from exc
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            for parent in created:  # innermost first: only the folders this call made, and only if empty
                if parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
    return folder


# --- the command -----------------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line flags of ``python -m palindrome.book.report`` (bad ones exit with a usage message)."""
    parser = argparse.ArgumentParser(
        prog="python -m palindrome.book.report",
        description="Run the book's analysis (chapters 8, 10, 11) on a checkpoint of this architecture and "
        "write an offline page about it.",
    )
    parser.add_argument(
        "checkpoint", nargs="?", default=None, help="raw state dict (default: the July-2023 model, sha256 checked)"
    )
    parser.add_argument("--out", required=True, help="folder to write; must not exist or be empty")
    parser.add_argument("--json", action="store_true", help=f"also write {JSON_NAME}")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; 0 leaves torch's setting (default: %(default)s, the fastest on a busy 2-core machine)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be >= 0 (0: torch's setting), got {args.threads}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m palindrome.book.report``: refuse bad input before any work, then measure and write."""
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        check_out_folder(args.out)
        model, path, sha256 = load_checkpoint(args.checkpoint)
        name = JULY_NAME if args.checkpoint is None else path.name
        with num_threads(args.threads or None):
            report = measure(model, name, sha256, progress=not args.no_progress)
            folder = write_report(model, report, args.out, with_json=args.json)
    except (ValueError, CheckpointError) as exc:
        print(f"python -m palindrome.book.report: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    print(summary(report))
    print(f"wrote {folder / PAGE} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
