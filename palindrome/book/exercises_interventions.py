"""The exercises of chapters 6 to 9, which change the input or the model: adversarial inputs, ablation, blind pairs.

Method. Each exercise is a reference solution, a generator of cases and mutants, as ``exercise_checks`` sets out;
the tuple of ``Exercise`` records at the end is all this module exports (``EXERCISES[id].reference`` reaches each
reference).
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral
from typing import Any, Optional

import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from palindrome import ablation as abl
from palindrome import data, inputs, metrics, tokens
from palindrome.book.exercise_checks import (
    Case,
    Exercise,
    Mutant,
    _float_problem,
    _generator,
    _july,
    _on,
    _replica,
    _show,
    _value_case,
)
from palindrome.chapters import adversarial as adv
from palindrome.chapters import blindspots as bs
from palindrome.constants import END, END_POS, MIRROR, SECOND_HALF, START
from palindrome.metrics import cross_entropy

__all__ = ["INTERVENTION_EXERCISES"]


# --- 6.1 and 6.2: adversarial inputs ---------------------------------------------------------------


def fool(model):
    g = torch.Generator().manual_seed(0)
    halves = torch.randint(0, 31, (64, 10), generator=g)
    bases = torch.cat([torch.full((64, 1), 31), halves, halves.flip(-1), torch.full((64, 1), 32)], 1)
    found = []
    for p in range(11, 21):  # break one pair at a time; keep what the model still calls a palindrome
        toks = bases.clone()
        toks[:, p] = (toks[:, 21 - p] + torch.randint(1, 31, (64,), generator=g)) % 31
        probs = model(toks.to(model.cfg.device))[:, -1].softmax(-1)[:, 1].cpu()
        found += list(toks[probs > 0.5])
    return torch.stack(found[:5])


def _fooling_problem(got: Any, model: HookedTransformer, shape: tuple[int, ...], blind=None) -> Optional[str]:
    """What stops ``got`` from being ``shape[0]`` distinct non-palindromes the model calls palindromes."""
    if not isinstance(got, Tensor):
        return f"expected a torch.Tensor of shape {shape}, got {type(got).__name__} {_show(got)}"
    if tuple(got.shape) != shape:
        return f"expected shape {shape} (START, 20 values, END), got shape {tuple(got.shape)}"
    if got.is_floating_point() or got.is_complex() or got.dtype == torch.bool:
        return f"expected an integer tensor, got dtype {got.dtype}"
    try:
        toks = tokens.validate_tokens(got.detach().cpu())
    except ValueError as error:
        return f"not a valid input: {error}"
    if (toks[:, 0] != START).any() or (toks[:, END_POS] != END).any():
        return "every input starts with START (31) and ends with END (32)"
    if len(set(map(tuple, toks.tolist()))) < len(toks):
        return f"the {len(toks)} inputs must be distinct, got repeats"
    for i, (row, label) in enumerate(zip(toks, tokens.is_palindrome(toks).tolist(), strict=True)):
        if label:
            return f"input {i} is a palindrome: {row.tolist()}"
    if blind is not None:
        for pairs in adv.broken_pairs(toks):
            hit = [pair for pair in pairs if pair in blind]
            if hit:
                return f"the input breaks the blind pair {hit[0]}; break only pairs outside {sorted(blind)}"
    with torch.no_grad():
        probs = model(_on(model, toks))[:, -1].softmax(-1)[:, 1].cpu()
    for i, prob in enumerate(probs.tolist()):
        if prob <= 0.5:
            return f"input {i} does not fool the model: P(palindrome) = {prob:.3f}, needs > 0.5"
    return None


def _fool_cases() -> Iterator[Case]:
    yield Case("the July model", (_july(),), lambda got: _fooling_problem(got, _july(), (5, 22)))
    for seed in (1, 9):  # blind pairs (10, 11) and (7, 14): the July model's inputs do not fool them
        model = _replica(seed)
        yield Case(
            f"replica {seed}",
            (model,),
            lambda got, m=model: _fooling_problem(got, m, (5, 22)),
            same_as="the July model",
        )


_FOOL_MUTANTS = (
    Mutant(
        "July's answer",
        lambda model: fool(_july()),
        "your answer does not depend on the model you were given",
    ),
    Mutant(
        "palindromes",
        lambda model: inputs.random_palindromes(5, _generator(0)),
        "is a palindrome",
    ),
    Mutant("one input five times", lambda model: fool(model)[:1].repeat(5, 1), "must be distinct"),
    Mutant("values only", lambda model: fool(model)[:, 1:-1], "expected shape (5, 22)"),
)


def fool_outside_blind(model, blind):
    g = torch.Generator().manual_seed(0)
    halves = torch.randint(0, 31, (256, 10), generator=g)
    bases = torch.cat([torch.full((256, 1), 31), halves, halves.flip(-1), torch.full((256, 1), 32)], 1)
    for p in range(11, 21):
        if (21 - p, p) in blind:
            continue
        toks = bases.clone()
        toks[:, p] = (toks[:, 21 - p] + torch.randint(1, 31, (256,), generator=g)) % 31
        probs = model(toks.to(model.cfg.device))[:, -1].softmax(-1)[:, 1].cpu()
        if (probs > 0.5).any():
            return toks[probs > 0.5][0]
    raise ValueError("no single broken pair outside the blind ones fooled the model")


def _outside_problem(got: Any, model: HookedTransformer, blind: set) -> Optional[str]:
    if isinstance(got, Tensor) and got.ndim != 1:
        return f"expected one input, shape (22,), got shape {tuple(got.shape)}"
    problem = _fooling_problem(got[None] if isinstance(got, Tensor) else got, model, (1, 22), blind)
    return None if problem is None else problem.replace("input 0 ", "the input ").replace("(1, 22)", "(22,)")


def _outside_cases() -> Iterator[Case]:
    july_blind = {(4, 17), (2, 19)}
    yield Case("the July model", (_july(), july_blind), lambda got: _outside_problem(got, _july(), july_blind))
    replica_blind = {(8, 13)}
    yield Case(
        "replica 0, blind pair (8, 13)",
        (_replica(0), replica_blind),
        lambda got: _outside_problem(got, _replica(0), replica_blind),
        same_as="the July model",
    )
    forbidden = july_blind | {(10, 11)}  # the pair a search from position 11 up tries first
    yield Case(
        "the July model, with (10, 11) forbidden too",
        (_july(), forbidden),
        lambda got: _outside_problem(got, _july(), forbidden),
    )


_OUTSIDE_MUTANTS = (
    Mutant("a blind pair", lambda model, blind: _break_at(model, 17), "blind pair"),
    Mutant(
        "July's answer",
        lambda model, blind: fool_outside_blind(_july(), {(4, 17), (2, 19)}),
        "your answer does not depend on the model you were given",
    ),
    Mutant("a palindrome", lambda model, blind: inputs.random_palindromes(1, _generator(0))[0], "is a palindrome"),
)


def _break_at(model: HookedTransformer, position: int) -> Tensor:
    """One seeded palindrome broken at ``position`` (a mutant's answer)."""
    g = _generator(0)
    return inputs.break_pairs(inputs.random_palindromes(1, g), [position], g)[0]


# --- 7.1 and 9.1: mean ablation --------------------------------------------------------------------


def ablate(model, toks, layer, head, which):
    labels = (toks[:, 1:-1] == toks[:, 1:-1].flip(-1)).all(-1).long()
    name = f"blocks.{layer}.attn.hook_{which}"
    _, cache = model.run_with_cache(toks, names_filter=name)
    mean = cache[name][:, :, head].mean(0)  # the mean over the batch, at each position

    def hook(activation, hook):
        activation[:, :, head] = mean
        return activation

    def loss(logits):
        return torch.nn.functional.cross_entropy(logits[:, -1], labels).item()

    return loss(model.run_with_hooks(toks, fwd_hooks=[(name, hook)])) - loss(model(toks))


LOSS_ATOL: float = 1e-6
"""Absolute floor for loss increases: two float32 cross-entropies differ by about 1e-7 in rounding alone."""


def _loss_problem(got: Any, expected: float) -> Optional[str]:
    return _float_problem(got, expected, atol=LOSS_ATOL)


def _ablation_expected(model: HookedTransformer, toks: Tensor, layer: int, head: int, which: str, where=None) -> float:
    ablation = abl.Ablation(layer, head, which, "mean", None if where is None else (where,))
    return abl.loss_increase(model, toks, tokens.is_palindrome(toks), [ablation])


def _ablation_batch(seed: int, position: int) -> Tensor:
    """Seeded palindromes and the same ones broken at ``position``: both classes, the pair the case is about."""
    g = _generator(seed)
    bases = inputs.random_palindromes(32, g)
    return torch.cat([bases, inputs.break_pairs(bases, [position], g)])


def _ablate_cases() -> Iterator[Case]:
    july = _july()
    dataset = data.PalindromeDataset(200).toks

    def case(name: str, model: HookedTransformer, toks: Tensor, layer: int, head: int, which: str, july=False):
        args = (model, _on(model, toks), layer, head, which)
        return _value_case(name, args, _ablation_expected, _loss_problem, _ABLATE_MUTANTS, july)

    yield case("July, PalindromeDataset(200), H1.0 values", july, dataset, 1, 0, "v")
    yield case("July, PalindromeDataset(200), H0.0 keys", july, dataset, 0, 0, "k")
    yield case("July, PalindromeDataset(200), H1.0 queries", july, dataset, 1, 0, "q")
    yield case("July, seeded breaks at 20, H1.1 values", july, _ablation_batch(71, 20), 1, 1, "v")
    yield case("July, seeded breaks at 17, H0.1 values", july, _ablation_batch(72, 17), 0, 1, "v")
    yield case("replica 7, PalindromeDataset(200), H1.0 values", _replica(7), dataset, 1, 0, "v", True)


_ABLATE_MUTANTS = (
    Mutant(
        "zero ablation",
        lambda model, toks, layer, head, which: abl.loss_increase(
            model, toks, tokens.is_palindrome(toks), [abl.Ablation(layer, head, which, "zero")]
        ),
        "that is zero ablation: replace the activation by its mean over the batch",
    ),
    Mutant(
        "mean over positions too",
        lambda model, toks, layer, head, which: _ablate_flat_mean(model, toks, layer, head, which),
        "take the mean over the batch at each position, not over positions too",
    ),
    Mutant(
        "ablated loss",
        lambda model, toks, layer, head, which: ablate(model, toks, layer, head, which) + _clean_loss(model, toks),
        "return the increase: the ablated loss minus the clean loss",
    ),
    Mutant(
        "always head 0",
        lambda model, toks, layer, head, which: ablate(model, toks, layer, 0, which),
        "you ablated the wrong head",
    ),
    Mutant(
        "July model",
        lambda model, toks, layer, head, which: ablate(_july(), toks, layer, head, which),
        "your answer does not depend on the model",
    ),
)


def _clean_loss(model: HookedTransformer, toks: Tensor) -> float:
    """The clean END cross-entropy (the mutants' helper)."""
    return cross_entropy(model, toks, tokens.is_palindrome(toks))


def _ablate_flat_mean(model: HookedTransformer, toks: Tensor, layer: int, head: int, which: str) -> float:
    name = f"blocks.{layer}.attn.hook_{which}"
    _, cache = model.run_with_cache(toks, names_filter=name)
    mean = cache[name][:, :, head].mean((0, 1))

    def hook(activation: Tensor, hook: Any) -> Tensor:
        activation[:, :, head] = mean
        return activation

    logits = model.run_with_hooks(toks, fwd_hooks=[(name, hook)])
    labels = tokens.is_palindrome(toks).to(logits.device)
    return torch.nn.functional.cross_entropy(logits[:, -1], labels).item() - _clean_loss(model, toks)


def ablate_at(model, toks, layer, head, position):
    labels = (toks[:, 1:-1] == toks[:, 1:-1].flip(-1)).all(-1).long()
    name = f"blocks.{layer}.attn.hook_result"
    _, cache = model.run_with_cache(toks, names_filter=name)
    mean = cache[name][:, position, head].mean(0)  # the head's mean output there, over the batch

    def hook(activation, hook):
        activation[:, position, head] = mean
        return activation

    def loss(logits):
        return torch.nn.functional.cross_entropy(logits[:, -1], labels).item()

    return loss(model.run_with_hooks(toks, fwd_hooks=[(name, hook)])) - loss(model(toks))


def _ablate_at_expected(model: HookedTransformer, toks: Tensor, layer: int, head: int, position: int) -> float:
    return _ablation_expected(model, toks, layer, head, "result", position)


def _ablate_at_cases() -> Iterator[Case]:
    july = _july()

    def case(name: str, model: HookedTransformer, toks: Tensor, layer: int, head: int, position: int, july=False):
        args = (model, _on(model, toks), layer, head, position)
        return _value_case(name, args, _ablate_at_expected, _loss_problem, _ABLATE_AT_MUTANTS, july)

    at20 = _ablation_batch(91, 20)
    yield case("July, seeded breaks at 20, H0.1 at 20", july, at20, 0, 1, 20)
    yield case("July, seeded breaks at 20, H1.1 at END", july, at20, 1, 1, END_POS)
    yield case("July, seeded breaks at 20, H1.1 at 20 (a layer-1 head matters only at END)", july, at20, 1, 1, 20)
    yield case("July, seeded breaks at 17, H1.0 at 17", july, _ablation_batch(92, 17), 1, 0, 17)
    yield case("July, seeded breaks at 19, H0.0 at 19", july, _ablation_batch(93, 19), 0, 0, 19)
    yield case("replica 0, seeded breaks at 13, H0.0 at 13", _replica(0), _ablation_batch(94, 13), 0, 0, 13, True)


_ABLATE_AT_MUTANTS = (
    Mutant(
        "every position",
        lambda model, toks, layer, head, position: _ablation_expected(model, toks, layer, head, "result"),
        "ablate the head at the one position only",
    ),
    Mutant(
        "zero ablation",
        lambda model, toks, layer, head, position: abl.loss_increase(
            model, toks, tokens.is_palindrome(toks), [abl.Ablation(layer, head, "result", "zero", (position,))]
        ),
        "that is zero ablation: replace the output by its mean over the batch",
    ),
    Mutant(
        "position off by one",
        lambda model, toks, layer, head, position: ablate_at(model, toks, layer, head, position - 1),
        "positions count START as 0: a_p sits at position p",
    ),
    Mutant(
        "always head 0",
        lambda model, toks, layer, head, position: ablate_at(model, toks, layer, 0, position),
        "you ablated the wrong head",
    ),
    Mutant(
        "July model",
        lambda model, toks, layer, head, position: ablate_at(_july(), toks, layer, head, position),
        "your answer does not depend on the model",
    ),
)


# --- 8.1 blind pairs -------------------------------------------------------------------------------


def blind_pairs(model, bases):
    a, b = torch.meshgrid(torch.arange(31), torch.arange(31), indexing="ij")
    keep = a != b  # every ordered pair of distinct values
    pairs = set()
    for p in range(11, 21):
        toks = bases[:, None].repeat(1, int(keep.sum()), 1)
        toks[:, :, 21 - p], toks[:, :, p] = a[keep], b[keep]
        logits = metrics.end_logits(model, toks.flatten(0, 1), fast=True)
        if (logits[:, 1] > logits[:, 0]).float().mean() > 0.5:  # missed more often than not
            pairs.add((21 - p, p))
    return pairs


def _blind_expected(model: HookedTransformer, bases: Tensor) -> set[tuple[int, int]]:
    sweep = bs.single_mismatch_sweep(model, bases=bases, progress=False)
    return {(MIRROR[p], p) for p in bs.blind_positions(sweep)}


def _set_problem(got: Any, expected: set[tuple[int, int]]) -> Optional[str]:
    if not isinstance(got, (set, frozenset)):
        return f"expected a set of (first-half, second-half) position pairs, got {type(got).__name__} {_show(got)}"
    for item in got:
        if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, Integral) for x in item)):
            return f"expected a set of (first-half, second-half) position pairs, got the element {item!r}"
    got = {(int(p), int(q)) for p, q in got}
    if got != expected:
        return f"expected {sorted(expected)}, got {sorted(got)}"
    return None


def _blind_cases() -> Iterator[Case]:
    # Replicas 0, 1, 7 and 9 are blind at (8, 13), (10, 11), (4, 17) and (7, 14) over chapter 8's bases; on one base
    # a replica may miss more (replica 9 misses (9, 12) too on its base here). Seed 8 (0.527) sits at the threshold.
    models = [("the July model", _july(), False)] + [(f"replica {s}", _replica(s), True) for s in (0, 1, 7, 9)]
    for i, (name, model, replica) in enumerate(models):
        bases = inputs.random_palindromes(1, _generator(80 + i))
        yield _value_case(
            f"{name}, one seeded base", (model, bases), _blind_expected, _set_problem, _BLIND_MUTANTS, replica
        )
    # Replica 42 misses pair (10, 11) on these bases 49.1%, 51.1% and 52.6% of the time (with misses of 0.25-0.39
    # elsewhere on the last), and no input lies within 1e-4 of P = 0.5: only "more than half" gives all three.
    for seed in (89, 133, 99):
        bases = inputs.random_palindromes(1, _generator(seed))
        yield _value_case(
            f"replica 42, base seed {seed}", (_replica(42), bases), _blind_expected, _set_problem, _BLIND_MUTANTS, True
        )


_BLIND_MUTANTS = (
    Mutant(
        "positions",
        lambda model, bases: {q for _, q in blind_pairs(model, bases)},
        "expected a set of (first-half, second-half) position pairs",
    ),
    Mutant(
        "reversed pairs",
        lambda model, bases: {(q, p) for p, q in blind_pairs(model, bases)},
        "write each pair first-half position first, (p, 21 - p)",
    ),
    Mutant(
        "threshold 0.05",
        lambda model, bases: {
            (MIRROR[p], p)
            for p, f in zip(
                SECOND_HALF,
                bs.single_mismatch_sweep(model, bases=bases, progress=False).misclassified_frac.tolist(),
                strict=True,
            )
            if f > 0.05
        },
        "a pair is blind when the model misses more than half of its single mismatches",
    ),
    Mutant(
        "July model",
        lambda model, bases: blind_pairs(_july(), bases),
        "your answer does not depend on the model you were given",
    ),
)


# --- the exercises --------------------------------------------------------------------------------


INTERVENTION_EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "6.1",
        6,
        "Five inputs that fool the model",
        "fool(model) -> Int[5, 22]",
        2,
        4,
        20,
        fool,
        _fool_cases,
        _FOOL_MUTANTS,
    ),
    Exercise(
        "6.2",
        6,
        "Fool the model without its blind pairs",
        "fool_outside_blind(model, blind) -> Int[22]",
        4,
        3,
        40,
        fool_outside_blind,
        _outside_cases,
        _OUTSIDE_MUTANTS,
    ),
    Exercise(
        "7.1",
        7,
        "Mean-ablate one head's queries, keys or values",
        "ablate(model, toks, layer, head, which) -> float",
        3,
        5,
        25,
        ablate,
        _ablate_cases,
        _ABLATE_MUTANTS,
    ),
    Exercise(
        "8.1",
        8,
        "Map a model's blind pairs",
        "blind_pairs(model, bases) -> set[tuple[int, int]]",
        3,
        5,
        30,
        blind_pairs,
        _blind_cases,
        _BLIND_MUTANTS,
    ),
    Exercise(
        "9.1",
        9,
        "Ablate one head at one position",
        "ablate_at(model, toks, layer, head, position) -> float",
        3,
        4,
        20,
        ablate_at,
        _ablate_at_cases,
        _ABLATE_AT_MUTANTS,
    ),
)
"""The exercises of chapters 6 to 9, in book order."""
