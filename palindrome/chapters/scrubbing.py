"""Chapter 12, section 2: resampling only what the hypothesis says does not matter (causal scrubbing).

Method. Chapter 10 kept the hypothesis's edges live and replaced every other edge by its mean or
by another input's value (``palindrome.path_patching``). Here the two composition edges the hypothesis
reads meaning into, H0.0's output as H1.0's key and value input (``SCRUBBED``), are live but
carry H0.0's output from a *different* input that the hypothesis treats as equivalent, drawn
independently for each position:

* ``"match status"``: an input whose mirror pair at that position is broken exactly when the
  evaluated input's is (START and END: any input), drawn from ``pool()``, a large batch of the
  training distribution with its own seed that shares no sequence with the evaluation inputs;
* ``"broken set"``: an input with exactly the same set of broken pairs, built for the purpose:
  a fresh random palindrome with those pairs broken (``inputs.break_pairs``).

No input is ever its own partner (pool rows equal to the input are excluded, built partners
equal to it are redrawn). H0.0 computes from the partner's real tokens, as the hypothesis keeps
its inputs live. Every edge outside the hypothesis is treated exactly as in chapter 10 (mean or
derangement resampling over the evaluation batch, ``path_patching.PathAblator``): END's query, an edge
outside the hypothesis, is mean-ablated under mean ablation (as in chapter 10) and resampled from
any input under resampling. The recovered
fractions use chapter 10's evaluation inputs and denominators (``faithfulness.faithfulness_summary``).
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from palindrome.chapters.faithfulness import (
    ABLATED,
    CLEAN,
    circuit_table,
    end_metrics,
    main_dataset,
    recovered_fraction,
)
from palindrome.data import PalindromeDataset
from palindrome.fast import EndOnlyForward
from palindrome.findings import Findings, slug
from palindrome.inputs import break_pairs, random_palindromes
from palindrome.path_patching import DEFAULT_SEED, EXTENDED, HYPOTHESIS, METHODS, PathAblator, expand_edges
from palindrome.tokens import (
    TokensLike,
    check_floats,
    check_seed,
    check_type,
    mismatch_mask,
    validate_labels,
    validate_tokens,
)

CLASSES: tuple[str, ...] = ("match status", "broken set")
"""What a partner input must share with the evaluated one, per position."""
SCRUBBED: frozenset[str] = frozenset({"0.0->1.0.k", "0.0->1.0.v"})
"""The live edges whose values are resampled from equivalent inputs."""
POOL_SIZE: int = 5000
"""The pool ``PalindromeDataset(POOL_SIZE, seed=POOL_SEED)`` that match-status partners come from."""
POOL_SEED: int = 18
PARTNER_SEED: int = 19
"""Seed of the partner draws."""
CIRCUITS: dict[str, frozenset[str]] = {"hypothesis": HYPOTHESIS, "extended": EXTENDED}
"""Chapter 10's circuits scored under scrubbing."""


def check_class(kind: str) -> str:
    """Return ``kind`` or raise ValueError naming the valid equivalence classes."""
    if kind not in CLASSES:
        raise ValueError(f"kind must be one of {CLASSES}, got {kind!r}")
    return kind


def pool() -> PalindromeDataset:
    """The named pool of training-distribution inputs that match-status partners are drawn from."""
    return PalindromeDataset(POOL_SIZE, seed=POOL_SEED)


def h00_outputs(model: HookedTransformer, toks: TokensLike) -> Float[Tensor, "batch seq d_model"]:
    """H0.0's output z @ W_O at every position of a clean run, from the fast path's layer-0 tables (only layer 0 is
    run)."""
    return EndOnlyForward(model).head_output(toks, 0)


def match_status_partners(
    toks: TokensLike, pool_toks: TokensLike, seed: int = PARTNER_SEED
) -> Int[Tensor, "batch seq"]:
    """For each input and position, a random pool row with the same mirror-match status there (never the input
    itself)."""
    toks, pool_toks = validate_tokens(toks).cpu(), validate_tokens(pool_toks).cpu()
    generator = torch.Generator().manual_seed(check_seed(seed))
    status, pool_status = mismatch_mask(toks), mismatch_mask(pool_toks)
    where = {}
    for j, row in enumerate(pool_toks.tolist()):
        where.setdefault(tuple(row), []).append(j)
    own = [where.get(tuple(row), []) for row in toks.tolist()]  # pool rows equal to each input (almost always none)
    index = torch.empty(toks.shape, dtype=torch.long)
    for position in range(toks.shape[1]):
        for value in (False, True):
            rows = (status[:, position] == value).nonzero().flatten()
            if not len(rows):
                continue
            candidates = (pool_status[:, position] == value).nonzero().flatten()
            if len(candidates) < 2:
                raise ValueError(
                    f"the pool has too few inputs with status {value} at position {position}; use a larger pool"
                )
            draw = candidates[torch.randint(0, len(candidates), (len(rows),), generator=generator)]
            for k, row in enumerate(rows.tolist()):
                while int(draw[k]) in own[row]:  # an input is never its own partner
                    draw[k] = candidates[torch.randint(0, len(candidates), (1,), generator=generator)]
            index[rows, position] = draw
    return index


def broken_set_partners(toks: TokensLike, seed: int = PARTNER_SEED) -> Int[Tensor, "batch seq seq_tokens"]:
    """For each input and position, a fresh input with exactly the same broken pairs (a new palindrome broken there)."""
    toks = validate_tokens(toks).cpu()
    generator = torch.Generator().manual_seed(check_seed(seed))
    batch, seq = toks.shape
    broken = mismatch_mask(toks)[:, seq // 2 : seq - 1]  # second-half positions 11..20
    partners = random_palindromes(batch * seq, generator).view(batch, seq, seq)
    codes = broken.long() @ (2 ** torch.arange(broken.shape[1]))
    for code in codes.unique().tolist():
        rows = (codes == code).nonzero().flatten()
        positions = [seq // 2 + i for i in range(broken.shape[1]) if code >> i & 1]
        if positions:
            partners[rows] = break_pairs(partners[rows].flatten(0, 1), positions, generator).view(len(rows), seq, seq)
    same = (partners == toks[:, None, :]).all(-1)
    if same.any():  # vanishingly rare (31^-10 per draw); redraw rather than allow it
        raise ValueError("a built partner equals its input; change the seed")
    return partners


def scrubbed_h00(
    model: HookedTransformer,
    toks: TokensLike,
    kind: str,
    seed: int = PARTNER_SEED,
    pool_toks: Optional[TokensLike] = None,
) -> Float[Tensor, "batch seq d_model"]:
    """H0.0's output at each position of each input, taken from that position's partner of class ``kind``."""
    kind = check_class(kind)
    toks = validate_tokens(toks).cpu()
    positions = torch.arange(toks.shape[1])
    if kind == "match status":
        pool_toks = pool().toks if pool_toks is None else validate_tokens(pool_toks).cpu()
        index = match_status_partners(toks, pool_toks, seed)
        return h00_outputs(model, pool_toks).cpu()[index, positions]
    partners = broken_set_partners(toks, seed)  # [batch, position, seq]
    outputs = h00_outputs(model, partners.flatten(0, 1)).cpu().view(*partners.shape, -1)
    return outputs[torch.arange(toks.shape[0])[:, None], positions, positions]


def scrubbed_logits(
    ablator: PathAblator, replaced: Float[Tensor, "batch seq d_model"], keep: Iterable[str] = HYPOTHESIS
) -> Float[Tensor, "batch 2"]:
    """END logits of circuit ``keep``, edges outside it ablated by ``ablator`` (chapter 10), ``SCRUBBED`` carrying
    ``replaced``."""
    check_type("ablator", ablator, PathAblator, "path_patching.PathAblator(model, toks)")
    replaced = check_floats("replaced", replaced)
    keep = expand_edges(keep)
    if not SCRUBBED <= keep:
        raise ValueError(f"keep must contain the scrubbed edges {sorted(SCRUBBED)}")
    if replaced.shape != (*ablator.toks.shape, ablator.model.cfg.d_model):
        raise ValueError(
            f"replaced must hold one d_model vector per input and position, got shape {tuple(replaced.shape)}"
        )
    return ablator.logits(keep, {"0.0": replaced.to(ablator.toks.device)}, SCRUBBED)


def scrubbing_table(
    model: HookedTransformer,
    toks: Optional[TokensLike] = None,
    labels: Optional[Tensor] = None,
    seed: int = PARTNER_SEED,
    progress: bool = True,
) -> pd.DataFrame:
    """Per method and circuit: chapter 10's row and each scrubbed row, with chapter 10's loss and logit difference
    recovered."""
    if toks is None:
        data = main_dataset()
        toks, labels = data.toks, data.is_palindrome
    toks = validate_tokens(toks)
    labels = validate_labels(labels, toks.shape[0])
    replaced = {kind: scrubbed_h00(model, toks, kind, seed) for kind in CLASSES}
    rows = []
    for method in tqdm(METHODS, desc="causal scrubbing", disable=not progress):
        ablator = PathAblator(model, toks, method, seed=DEFAULT_SEED)  # chapter 10's treatment of the other edges
        table = circuit_table(ablator, labels, CIRCUITS, progress=False)
        clean, ablated = table.loc[CLEAN], table.loc[ABLATED]
        for circuit, keep in CIRCUITS.items():
            variants = {"chapter 10": table.loc[circuit]}
            for kind in CLASSES:
                variants[kind] = pd.Series(end_metrics(scrubbed_logits(ablator, replaced[kind], keep), labels))
            for name, row in variants.items():
                rows.append(
                    {
                        "method": method,
                        "circuit": circuit,
                        "resampling": name,
                        "loss": row["loss"],
                        "accuracy": row["accuracy"],
                        "loss_recovered": recovered_fraction(clean["loss"], ablated["loss"], row["loss"]),
                        "logit_diff_recovered": recovered_fraction(
                            clean["logit_diff"], ablated["logit_diff"], row["logit_diff"]
                        ),
                    }
                )
    return pd.DataFrame(rows).set_index(["method", "circuit", "resampling"])


def findings_from(table: pd.DataFrame) -> dict[str, float]:
    """The section's named numbers from ``scrubbing_table``."""
    return {
        f"{method}_{circuit}_{slug(kind)}_{column}": float(table.loc[(method, circuit, kind), column])
        for method, circuit, kind in table.index
        for column in ("loss_recovered", "logit_diff_recovered", "accuracy")
    }


KEYS: frozenset[str] = frozenset(
    f"{m}_{c}_{slug(k)}_{col}"
    for m in METHODS
    for c in CIRCUITS
    for k in ("chapter 10",) + CLASSES
    for col in ("loss_recovered", "logit_diff_recovered", "accuracy")
)
"""Every key ``key_findings`` returns."""


def key_findings(model: HookedTransformer) -> Findings:
    """This section's key numbers on chapter 10's main batch."""
    return Findings("scrubbing", findings_from(scrubbing_table(model, progress=False)), KEYS)


SCRUB_SEEDS: tuple[int, ...] = (PARTNER_SEED, 20, 21, 22, 23)
"""Partner seeds of the causal-scrubbing draws ``scrubbing_spread`` summarises (the first is chapter 12's table)."""


def scrubbing_spread(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The hypothesis's loss recovered under each scrubbing (method, resampling) over several partner draws
    (``scrubbing_table(model, seed=s)`` for s in ``SCRUB_SEEDS``): mean, min and max."""
    if isinstance(tables, (pd.DataFrame, str)) or not isinstance(tables, Sequence) or len(tables) < 2:
        raise ValueError("tables must be a list of at least two scrubbing_table(model, seed=s) results")
    runs = []
    for table in tables:
        check_type("tables[i]", table, pd.DataFrame, "scrubbing.scrubbing_table(model, seed=s)")
        names = ["method", "circuit", "resampling"]
        if list(table.index.names) != names or "loss_recovered" not in table.columns:
            raise ValueError(
                "each table must be scrubbing.scrubbing_table(model, seed=s): index (method, circuit, "
                "resampling) and a loss_recovered column"
            )
        hyp = table.xs("hypothesis", level="circuit")["loss_recovered"]
        runs.append(hyp[hyp.index.get_level_values("resampling") != "chapter 10"])
    stacked = pd.concat(runs, axis=1)
    return pd.DataFrame({"mean": stacked.mean(1), "min": stacked.min(1), "max": stacked.max(1)})
