"""The exercises of chapters 2 to 5, which read the circuit from weights and activations: QK, DLA, K- and V-composition.

Method. Each exercise is a reference solution, a generator of cases and mutants, as ``exercise_checks`` sets out;
the tuple of ``Exercise`` records at the end is all this module exports (``EXERCISES[id].reference`` reaches each
reference).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from numbers import Integral
from typing import Any, Optional

import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from palindrome import attribution as attr
from palindrome import circuits as circ
from palindrome import composition as comp
from palindrome import data, inputs
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
    _tensor_problem,
    _value_case,
)
from palindrome.constants import SECOND_HALF

__all__ = ["CIRCUIT_EXERCISES"]


# --- 2.1 and 2.2: layer-0 QK circuits --------------------------------------------------------------


def token_qk(model, layer, head, scale):
    W_E = model.W_E / scale  # LayerNorm at layer 0 only divides by the scale
    q = W_E @ model.W_Q[layer, head]
    k = W_E @ model.W_K[layer, head]
    return (q @ k.T / model.cfg.d_head**0.5).detach().cpu()


def _token_qk_expected(model: HookedTransformer, layer: int, head: int, scale: float) -> Tensor:
    return circ.embedding_qk_circuit(model, layer, head, scale, pattern=False)


def _qk_cases(expected: Callable[..., Any], problem: Callable[[Any, Any], Optional[str]], mutants) -> Iterator[Case]:
    july = _july()
    yield _value_case("July H0.0, scale 0.214", (july, 0, 0, 0.214), expected, problem, mutants)
    yield _value_case("July H0.1, scale 0.2", (july, 0, 1, 0.2), expected, problem, mutants)
    yield _value_case("July H1.0, scale 0.5", (july, 1, 0, 0.5), expected, problem, mutants)
    scale = 0.1 + torch.rand(1, generator=_generator(21)).item()
    yield _value_case(f"July H0.0, seeded scale {scale:.4f}", (july, 0, 0, scale), expected, problem, mutants)
    for seed in (0, 1):
        yield _value_case(
            f"replica {seed} H0.0, scale 0.214", (_replica(seed), 0, 0, 0.214), expected, problem, mutants, True
        )


def _token_qk_cases() -> Iterator[Case]:
    return _qk_cases(_token_qk_expected, _tensor_problem, _TOKEN_QK_MUTANTS)


_TOKEN_QK_MUTANTS = (
    Mutant(
        "no sqrt(d_head)",
        lambda model, layer, head, scale: token_qk(model, layer, head, scale) * model.cfg.d_head**0.5,
        "did you divide by sqrt(d_head)?",
    ),
    Mutant(
        "query and key swapped",
        lambda model, layer, head, scale: token_qk(model, layer, head, scale).T,
        "did you swap query and key? rows are query tokens (W_Q), columns key tokens (W_K)",
    ),
    Mutant(
        "no LayerNorm scale",
        lambda model, layer, head, scale: token_qk(model, layer, head, scale) * scale**2,
        "did you divide the embeddings by the LayerNorm scale?",
    ),
    Mutant(
        "softmax",
        lambda model, layer, head, scale: token_qk(model, layer, head, scale).softmax(-1),
        "the exercise asks for the scores before the softmax",
    ),
    Mutant(
        "always head 0",
        lambda model, layer, head, scale: token_qk(model, layer, 0, scale),
        "you used the wrong head: index W_Q and W_K with both layer and head",
    ),
    Mutant(
        "July model",
        lambda model, layer, head, scale: token_qk(_july(), layer, head, scale),
        "your answer does not depend on the model you were given",
    ),
)


def preferred_keys(model, layer, head, scale):
    W_pos = model.W_pos / scale
    scores = (W_pos @ model.W_Q[layer, head]) @ (W_pos @ model.W_K[layer, head]).T / model.cfg.d_head**0.5
    return {query: int(scores[query, : query + 1].argmax()) for query in range(11, 21)}


def _preferred_expected(model: HookedTransformer, layer: int, head: int, scale: float) -> dict[int, int]:
    pattern = circ.positional_qk_circuit(model, layer, head, scale)  # causal softmax: later keys get 0
    return {q: int(pattern[q, : q + 1].argmax()) for q in SECOND_HALF}


def _dict_problem(got: Any, expected: dict[int, int]) -> Optional[str]:
    if not isinstance(got, dict):
        return f"expected a dict {{query position: key position}}, got {type(got).__name__} {_show(got)}"
    if set(got) != set(expected):
        return f"expected the keys {sorted(expected)} (the second-half queries), got {sorted(got, key=str)}"
    for query, key in expected.items():
        value = got[query]
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, Integral):
            return f"query {query}: expected an int key position, got {type(value).__name__} {_show(value)}"
        if int(value) != key:
            return f"query {query}: expected key {key}, got {int(value)}"
    return None


def _preferred_cases() -> Iterator[Case]:
    return _qk_cases(_preferred_expected, _dict_problem, _PREFERRED_MUTANTS)


_PREFERRED_MUTANTS = (
    Mutant(
        "no causal mask",
        lambda model, layer, head, scale: {
            q: int(_positional_scores(model, layer, head, scale)[q].argmax()) for q in SECOND_HALF
        },
        "a query sees only the keys at or before it: mask the later positions",
    ),
    Mutant(
        "query and key swapped",
        lambda model, layer, head, scale: {
            q: int(_positional_scores(model, layer, head, scale).T[q, : q + 1].argmax()) for q in SECOND_HALF
        },
        "did you swap query and key? rows are query positions (W_Q), columns key positions (W_K)",
    ),
    Mutant(
        "itself excluded",
        lambda model, layer, head, scale: {
            q: int(_positional_scores(model, layer, head, scale)[q, :q].argmax()) for q in SECOND_HALF
        },
        "a query can attend to itself: include the key at its own position",
    ),
    Mutant(
        "always head 0",
        lambda model, layer, head, scale: preferred_keys(model, layer, 0, scale),
        "you used the wrong head: index W_Q and W_K with both layer and head",
    ),
    Mutant(
        "July model",
        lambda model, layer, head, scale: preferred_keys(_july(), layer, head, scale),
        "your answer does not depend on the model you were given",
    ),
)


def _positional_scores(model: HookedTransformer, layer: int, head: int, scale: float) -> Tensor:
    """The positional scores (the mutants' helper): ``circuits.positional_qk_circuit`` before its softmax."""
    return circ.positional_qk_circuit(model, layer, head, scale, pattern=False)


# --- 3.1 and 3.2: direct logit attribution ---------------------------------------------------------


def direction(model):
    return (model.W_U[:, 0] - model.W_U[:, 1]).detach().cpu()


def _direction_cases() -> Iterator[Case]:
    def expected(model: HookedTransformer) -> Tensor:
        return circ.nonpal_direction(model).detach().cpu()

    yield _value_case("July", (_july(),), expected, _tensor_problem, _DIRECTION_MUTANTS)
    for seed in (0, 1):
        yield _value_case(f"replica {seed}", (_replica(seed),), expected, _tensor_problem, _DIRECTION_MUTANTS, True)


_DIRECTION_MUTANTS = (
    Mutant(
        "palindrome direction",
        lambda model: -direction(model),
        "the direction raises 'not palindrome' (logit 0) over 'palindrome' (logit 1): W_U[:, 0] - W_U[:, 1]",
    ),
    Mutant("rows", lambda model: (model.W_U[0] - model.W_U[1]).detach().cpu(), "expected shape (28,)"),
    Mutant("July model", lambda model: direction(_july()), "your answer does not depend on the model you were given"),
)


def dla(model, toks):
    _, cache = model.run_with_cache(toks)
    u = model.W_U[:, 0] - model.W_U[:, 1]
    embed = cache["hook_embed"]
    parts = [embed, cache["hook_pos_embed"].expand_as(embed)]
    for layer in range(model.cfg.n_layers):
        parts += list(cache[f"blocks.{layer}.attn.hook_result"].unbind(2))  # one part per head
    parts.append(model.b_O.sum(0).expand_as(embed))  # the output biases of every layer
    return torch.stack([part[:, -1] @ u for part in parts]).detach().cpu()


def _dla_cases() -> Iterator[Case]:
    def case(name: str, model: HookedTransformer, toks: Tensor, july: bool = False) -> Case:
        return _value_case(
            name, (model, _on(model, toks)), attr.component_attribution, _tensor_problem, _DLA_MUTANTS, july
        )

    yield case("July, PalindromeDataset(16)", _july(), data.PalindromeDataset(16).toks)
    g = _generator(31)
    bases = inputs.random_palindromes(4, g)
    broken = torch.cat([inputs.break_pairs(bases, [p], g) for p in (17, 19, 20)])
    yield case("July, seeded palindromes broken at 17, 19 and 20", _july(), torch.cat([bases, broken]))
    yield case("replica 9, PalindromeDataset(16)", _replica(9), data.PalindromeDataset(16).toks, True)


_DLA_MUTANTS = (
    Mutant(
        "palindrome direction",
        lambda model, toks: -dla(model, toks),
        "the direction raises 'not palindrome' (logit 0) over 'palindrome' (logit 1): W_U[:, 0] - W_U[:, 1]",
    ),
    Mutant(
        "no biases",
        lambda model, toks: dla(model, toks)[:-1],
        "expected shape (7,",
    ),
    Mutant(
        "position 0",
        lambda model, toks: _dla_at(model, toks, 0),
        "read every part at END (position 21, the last)",
    ),
    Mutant("July model", lambda model, toks: dla(_july(), toks), "your answer does not depend on the model"),
)


def _dla_at(model: HookedTransformer, toks: Tensor, position: int) -> Tensor:
    parts, _ = attr.residual_components(model, toks)
    return (parts[:, :, position] @ circ.nonpal_direction(model)).detach().cpu()


# --- 4.1 and 4.2: composition scores ---------------------------------------------------------------


def composition_score(W_A, W_B):
    return ((W_A @ W_B).norm() / (W_A.norm() * W_B.norm())).item()


def _composition_cases() -> Iterator[Case]:
    def case(name: str, A: Tensor, B: Tensor) -> Case:
        return _value_case(name, (A, B), comp.composition_score, _float_problem, _COMPOSITION_MUTANTS)

    g = _generator(41)
    for i in range(2):
        left, right = torch.randn(2, 28, 14, generator=g)
        other = torch.randn(28, 28, generator=g)
        yield case(f"seeded random 28x28 of rank 14 #{i + 1}", left @ right.T, other)
    july = _july()
    yield case(
        "July OV of H0.0 and QK^T of H1.0",
        circ.ov_circuit(july, 0, 0).AB.detach().cpu(),
        circ.qk_circuit(july, 1, 0).AB.T.detach().cpu(),
    )
    yield case("seeded random 28x14 and 14x5", torch.randn(28, 14, generator=g), torch.randn(14, 5, generator=g))


_COMPOSITION_MUTANTS = (
    Mutant(
        "order swapped",
        lambda A, B: ((B @ A).norm() / (A.norm() * B.norm())).item(),
        "W_A writes and W_B reads (row vectors): multiply W_A @ W_B",
    ),
    Mutant(
        "one norm",
        lambda A, B: ((A @ B).norm() / A.norm()).item(),
        "divide by both Frobenius norms, ||W_A|| and ||W_B||",
    ),
    Mutant(
        "squared norms",
        lambda A, B: ((A @ B).norm() ** 2 / (A.norm() ** 2 * B.norm() ** 2)).item(),
        "use the Frobenius norms themselves, not their squares",
    ),
    Mutant(
        "spectral norm",
        lambda A, B: (torch.linalg.matrix_norm(A @ B, 2) / (A.norm() * B.norm())).item(),
        "use the Frobenius norm (Tensor.norm()) of W_A @ W_B",
    ),
)


def k_composition(model, writer_head, reader_head):
    W_OV = model.W_V[0, writer_head] @ model.W_O[0, writer_head]
    W_QK = model.W_Q[1, reader_head] @ model.W_K[1, reader_head].T
    return composition_score(W_OV, W_QK.T)  # the key side reads the writer's output


def _k_expected(model: HookedTransformer, writer_head: int, reader_head: int) -> float:
    return comp.composition_scores(model, "K")[writer_head, reader_head].item()


def _k_cases() -> Iterator[Case]:
    july = _july()
    for writer, reader in ((0, 0), (0, 1), (1, 0), (1, 1)):
        yield _value_case(
            f"July H0.{writer} -> H1.{reader}", (july, writer, reader), _k_expected, _float_problem, _K_MUTANTS
        )
    yield _value_case("replica 7 H0.0 -> H1.0", (_replica(7), 0, 0), _k_expected, _float_problem, _K_MUTANTS, True)


def _k_variant(kind: str) -> Callable[..., float]:
    return lambda model, writer, reader: comp.composition_scores(model, kind)[writer, reader].item()


_K_MUTANTS = (
    Mutant("Q-composition", _k_variant("Q"), "that is Q-composition: K-composition reads on the key side, W_QK^T"),
    Mutant("V-composition", _k_variant("V"), "that is V-composition: K-composition reads through W_QK^T"),
    Mutant(
        "always writer head 0",
        lambda model, writer, reader: k_composition(model, 0, reader),
        "you used the wrong head: the writer is head 0.writer_head",
    ),
    Mutant(
        "July model",
        lambda model, writer, reader: k_composition(_july(), writer, reader),
        "your answer does not depend on the model",
    ),
)


# --- 5.1 V-composition -----------------------------------------------------------------------------


def value_attribution(model, toks, position):
    _, cache = model.run_with_cache(toks)
    v = cache["blocks.0.attn.hook_v"][:, position, 0]  # H0.0's value at the position
    u = model.W_U[:, 0] - model.W_U[:, 1]
    return (v @ model.W_O[0, 0] @ model.W_V[1, 0] @ model.W_O[1, 0] @ u).detach().cpu()


def _value_expected(model: HookedTransformer, toks: Tensor, position: int) -> Tensor:
    return attr.h00_value_attribution(model, toks, [position])[:, 0]


def _value_cases() -> Iterator[Case]:
    def case(name: str, model: HookedTransformer, toks: Tensor, position: int, july: bool = False) -> Case:
        args = (model, _on(model, toks), position)
        return _value_case(name, args, _value_expected, _tensor_problem, _VALUE_MUTANTS, july)

    examples = data.PalindromeDataset(100).toks[:4]
    yield case("PalindromeDataset(100)[:4], position 13 (chapter 5's 20.16 is example 2)", _july(), examples, 13)
    g = _generator(51)
    for position in (17, 19, 20):
        toks = inputs.break_pairs(inputs.random_palindromes(6, g), [position], g)
        yield case(f"seeded palindromes broken at {position}, position {position}", _july(), toks, position)
    yield case("replica 9, PalindromeDataset(100)[:4], position 14", _replica(9), examples, 14, True)


_VALUE_MUTANTS = (
    Mutant(
        "H0.0's output",
        lambda model, toks, position: attr.h00_output_attribution(model, toks, [position])[:, 0],
        "you read H0.0's output (after attention, hook_result); the exercise asks for its value at the position "
        "(hook_v)",
    ),
    Mutant(
        "through H1.1",
        lambda model, toks, position: _value_through(model, toks, position, 1),
        "you read through the wrong head: the second head is H1.0 (model.W_V[1, 0], model.W_O[1, 0])",
    ),
    Mutant(
        "palindrome direction",
        lambda model, toks, position: -value_attribution(model, toks, position),
        "the direction raises 'not palindrome' (logit 0) over 'palindrome' (logit 1): W_U[:, 0] - W_U[:, 1]",
    ),
    Mutant(
        "July model",
        lambda model, toks, position: value_attribution(_july(), toks, position),
        "your answer does not depend on the model",
    ),
)


def _value_through(model: HookedTransformer, toks: Tensor, position: int, reader: int) -> Tensor:
    _, cache = model.run_with_cache(toks)
    u = circ.nonpal_direction(model)
    value = cache["blocks.0.attn.hook_v"][:, position, 0]
    return (value @ model.W_O[0, 0] @ model.W_V[1, reader] @ model.W_O[1, reader] @ u).detach().cpu()


# --- the exercises --------------------------------------------------------------------------------


CIRCUIT_EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "2.1",
        2,
        "H0.0's token-token QK scores",
        "token_qk(model, layer, head, scale) -> Float[33, 33]",
        2,
        4,
        15,
        token_qk,
        _token_qk_cases,
        _TOKEN_QK_MUTANTS,
    ),
    Exercise(
        "2.2",
        2,
        "The key each second-half query prefers",
        "preferred_keys(model, layer, head, scale) -> dict[int, int]",
        2,
        4,
        15,
        preferred_keys,
        _preferred_cases,
        _PREFERRED_MUTANTS,
    ),
    Exercise(
        "3.1",
        3,
        "The non-palindrome direction",
        "direction(model) -> Float[d_model]",
        1,
        3,
        5,
        direction,
        _direction_cases,
        _DIRECTION_MUTANTS,
    ),
    Exercise(
        "3.2",
        3,
        "Direct attribution of each component at END",
        "dla(model, toks) -> Float[7, batch]",
        3,
        5,
        25,
        dla,
        _dla_cases,
        _DLA_MUTANTS,
    ),
    Exercise(
        "4.1",
        4,
        "The composition score of two matrices",
        "composition_score(W_A, W_B) -> float",
        1,
        3,
        10,
        composition_score,
        _composition_cases,
        _COMPOSITION_MUTANTS,
    ),
    Exercise(
        "4.2",
        4,
        "K-composition from layer 0 into layer 1",
        "k_composition(model, writer_head, reader_head) -> float",
        2,
        4,
        15,
        k_composition,
        _k_cases,
        _K_MUTANTS,
    ),
    Exercise(
        "5.1",
        5,
        "H0.0's value through H1.0",
        "value_attribution(model, toks, position) -> Float[batch]",
        3,
        4,
        20,
        value_attribution,
        _value_cases,
        _VALUE_MUTANTS,
    ),
)
"""The exercises of chapters 2 to 5, in book order."""
