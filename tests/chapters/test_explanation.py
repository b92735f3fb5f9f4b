"""Chapter 12's levels: the circuit level is the hooked reconstruction, exact when fully refined; bad input is
refused."""

from __future__ import annotations

import pytest
import torch
from transformer_lens.utilities import get_act_name

from palindrome.chapters import explanation as ex12
from palindrome.chapters.blindspots import blind_positions, single_mismatch_sweep
from palindrome.fast import EndOnlyForward
from palindrome.hooks import FINAL_SCALE, hold_scale, ln_scale_name
from palindrome.metrics import end_logits
from palindrome.model import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_fully_refined_circuit_is_the_model(model):
    toks = ex12.level_reference_data().toks[:500]
    stats = ex12.reference_stats(model)
    exact = ex12.circuit_logit_diff(model, toks, stats, ex12.REFINEMENTS)
    assert (exact - ex12.model_logit_diff(model, toks)).abs().max() < 1e-3


def test_position_scale_is_the_hooked_reconstruction(model):
    # The "position scale" level against TransformerLens hooks holding the layer-0 scale at its reference mean per
    # position, and the other three approximations as in the plain circuit.
    toks = ex12.level_reference_data().toks[:300]
    stats = ex12.reference_stats(model, toks)
    n = len(toks)
    hooks = [
        (
            ln_scale_name(0),
            hold_scale(stats.layer0_scale_by_position[None, :, None, None].expand(n, -1, 2, 1).contiguous()),
        ),
        (ln_scale_name(1), hold_scale(stats.layer1_scale[None, :, None, None].expand(n, -1, 2, 1).contiguous())),
        (FINAL_SCALE, hold_scale(torch.full((n, 22, 1), stats.final_scale))),
        (get_act_name("q", 1), lambda q, hook: torch.cat([q[:, :-1], stats.end_query.expand(n, 1, -1, -1)], 1)),
    ]
    with model.hooks(fwd_hooks=hooks):
        logits = end_logits(model, toks)
    fast = ex12.circuit_logit_diff(model, toks, stats, [ex12.POSITION_SCALE])
    assert (fast - (logits[:, 1] - logits[:, 0])).abs().max() < 1e-3
    # and it is neither of its neighbours
    assert (fast - ex12.circuit_logit_diff(model, toks, stats)).abs().max() > 0.1
    assert (fast - ex12.circuit_logit_diff(model, toks, stats, ["layer0_scale"])).abs().max() > 0.1


def test_one_scale_per_position_equal_everywhere_is_the_constant_scale(model):
    fc = EndOnlyForward(model)
    constant, per_position = fc.tables(0.2), fc.tables(torch.full((22,), 0.2))
    assert torch.allclose(constant.q, per_position.q) and torch.allclose(constant.vo, per_position.vo)
    with pytest.raises(ValueError, match="one per position"):
        fc.tables(torch.full((21,), 0.2))
    with pytest.raises(ValueError, match="one per position"):
        fc.tables(torch.zeros(22))


def test_fast_circuit_matches_the_plain_reconstruction(model):
    # The circuit level on the fast path against a direct reading of its definition (TransformerLens
    # hooks holding the three scales and the END query at their reference values).
    toks = ex12.level_reference_data().toks[:300]
    stats = ex12.reference_stats(model)
    hooks = [
        (ln_scale_name(0), hold_scale(stats.layer0_scale)),
        (
            ln_scale_name(1),
            hold_scale(stats.layer1_scale[None, :, None, None].expand(len(toks), -1, 2, 1).contiguous()),
        ),
        (FINAL_SCALE, hold_scale(torch.full((len(toks), 22, 1), stats.final_scale))),
        (get_act_name("q", 1), lambda q, hook: torch.cat([q[:, :-1], stats.end_query.expand(len(toks), 1, -1, -1)], 1)),
    ]
    with model.hooks(fwd_hooks=hooks):
        logits = end_logits(model, toks)
    plain = logits[:, 1] - logits[:, 0]
    assert (ex12.circuit_logit_diff(model, toks, stats) - plain).abs().max() < 1e-3


def test_words_level_is_told_chapter_8s_blind_pairs(model):
    assert tuple(blind_positions(single_mismatch_sweep(model, n_bases=2, progress=False))) == ex12.BLIND_PAIRS


def test_bad_arguments(model):
    stats = ex12.reference_stats(model, ex12.level_reference_data().toks[:50])
    expl = ex12.Explanation(model, stats, ("layer0_scale",))
    toks = ex12.level_reference_data().toks[:4]
    with pytest.raises(ValueError, match="level must be one of"):
        expl.decisions(toks, "sentences")
    with pytest.raises(ValueError, match="only the levels"):
        expl.logit_diff(toks, "words")
    with pytest.raises(ValueError, match="unknown refinement"):
        ex12.circuit_logit_diff(model, toks, stats, ["ln0"])  # the old spelling is no refinement
    with pytest.raises(ValueError, match="two layer-0 scales"):
        ex12.circuit_logit_diff(model, toks, stats, ["layer0_scale", ex12.POSITION_SCALE])
    with pytest.raises(ValueError, match="n_ctx"):
        ex12.reference_stats(create_model(half_length=5))
    with pytest.raises(ValueError, match="n_layers"):
        ex12.reference_stats(create_model(n_layers=1))
