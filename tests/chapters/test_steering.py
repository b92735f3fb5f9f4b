"""Chapter 12's edits: the fast-path edits are the hooked ones; the control directions are what they claim; bad input
is refused."""

from __future__ import annotations

import pytest
import torch

from palindrome.chapters import explanation as ex12
from palindrome.chapters import level_calls as lc
from palindrome.chapters import steering as steer
from palindrome.constants import SECOND_HALF
from palindrome.fast import EndOnlyForward
from palindrome.hooks import activations, cached_run
from palindrome.inputs import broken_and_bases

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_direction_and_steering_inputs_are_disjoint():
    direction, steered = steer.position_seeds(steer.DIRECTION_SEED), steer.position_seeds(steer.STEER_SEED)
    assert not set(direction.values()) & set(steered.values())
    built = torch.cat([broken_and_bases(steer.DIRECTION_BASES, direction[p], p)[1] for p in SECOND_HALF])
    edited = torch.cat([broken_and_bases(steer.STEER_BASES, steered[p], p)[1] for p in SECOND_HALF])
    assert lc.overlap(edited, built) == 0


@pytest.mark.parametrize("part", steer.HELD_PARTS)
@pytest.mark.parametrize("head", [0, 1])
def test_a_head_held_clean_is_the_hooked_edit(model, head, part):
    # The edit (a vector added at 14 after layer 0) with one layer-1 head's pattern, values or output (z) taken from
    # the clean run, by TransformerLens hooks, against the fast path.
    _, bases = broken_and_bases(40, 5, 14)
    vector = 3 * torch.randn(28, generator=torch.Generator().manual_seed(1))
    names = {
        "attention": "blocks.1.attn.hook_pattern",
        "values": "blocks.1.attn.hook_v",
        "output": "blocks.1.attn.hook_z",
    }
    name = names[part]
    clean = activations(model, bases, [name])[name]

    def hold(value, hook):
        value = value.clone()
        if part == "attention":
            value[:, head] = clean[:, head].to(value)
        else:
            value[:, :, head] = clean[:, :, head].to(value)
        return value

    logits, _ = cached_run(model, bases, (), [(steer.EDIT_HOOK, steer.add_at(14, vector)), (name, hold)])
    hooked = logits[:, -1].softmax(-1)[:, 1].cpu()
    editor = steer._Editor(model, bases)
    fast = editor.p_palindrome_held(14, vector, 1.0, head, part)
    assert (fast - hooked).abs().max() < 1e-4
    assert (fast - editor.p_palindrome(14, vector, 1.0)).abs().max() > 1e-3  # holding the head clean changes it


@pytest.mark.slow
def test_steering_on_the_fast_path_is_the_hooked_edit(model):
    _, bases = broken_and_bases(50, 3, 14)
    vector = torch.randn(28, generator=torch.Generator().manual_seed(0))
    logits, _ = cached_run(model, bases, (), [(steer.EDIT_HOOK, steer.add_at(14, 2.0 * vector))])
    hooked = logits[:, -1].softmax(-1)[:, 1].cpu()
    assert (steer.steered_p_palindrome(model, bases, 14, vector, 2.0) - hooked).abs().max() < 1e-4


def test_random_control_table_by_hand():
    import pandas as pd

    steering = pd.DataFrame({"add shared 1": [1.0, 0.5]}, index=pd.Index([11, 12], name="position"))
    rates = torch.tensor([[0.0, 0.0, 0.2, 1.0], [0.1, 0.5, 0.6, 0.0]])
    table = steer.random_control_table(steering, rates)
    assert table["draws flipping at least as many"].tolist() == [1, 2]
    assert table["random median"].tolist() == pytest.approx([0.0, 0.1])  # torch's median: the lower middle value
    assert table["random max"].tolist() == pytest.approx([1.0, 0.6]) and table["shared"].tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match="one row of flip rates per row"):
        steer.random_control_table(steering, rates[:1])


def test_random_directions_have_the_shared_length():
    vectors = steer.random_directions(2.5, 28, n_draws=30)
    assert vectors.shape == (30, 28)
    assert torch.allclose(vectors.norm(dim=-1), torch.full((30,), 2.5)) and vectors.mean(-1).abs().max() < 1e-6
    assert steer.RANDOM_DRAWS >= 20


def test_subspace_directions_lie_in_h00s_output_space(model):
    # every draw of the matched control is a combination of H0.0's W_O rows (centred, as layer 1 reads any edit)
    w_o = model.W_O[0, 0].detach().cpu().float()
    basis = w_o - w_o.mean(-1, keepdim=True)
    draws = steer.subspace_directions(model, 2.0, n_draws=5)
    inside = draws @ torch.linalg.pinv(basis) @ basis
    assert torch.allclose(inside, draws, atol=1e-4) and torch.allclose(draws.norm(dim=-1), torch.full((5,), 2.0))
    iso = steer.random_directions(2.0, 28, n_draws=5)  # the isotropic control is not confined to it
    assert not torch.allclose(iso @ torch.linalg.pinv(basis) @ basis, iso, atol=1e-2)
    directions = steer.MismatchDirections(torch.randn(10, 28), torch.ones(10), changes=torch.randn(10, 4, 28))
    effects = steer.random_edit_effects(model, directions, n_draws=3, n_bases=4)
    assert effects["rates"].shape == effects["drops"].shape == (10, 3)
    table = steer.subspace_control_table(effects)
    assert list(table.index) == list(SECOND_HALF) and (table["random max"] >= table["random 95th percentile"]).all()
    with pytest.raises(ValueError, match="effects must be"):
        steer.subspace_control_table({"rates": effects["rates"]})


def test_bad_arguments(model):
    toks = ex12.level_reference_data().toks[:4]
    with pytest.raises(ValueError, match="second-half"):
        steer.steered_p_palindrome(model, toks, 5, torch.zeros(28), 1.0)
    with pytest.raises(ValueError, match="finite"):
        steer.steered_p_palindrome(model, toks, 12, torch.zeros(28), float("nan"))
    with pytest.raises(ValueError, match="vector"):
        steer.steered_p_palindrome(model, toks, 12, torch.zeros(5), 1.0)
    with pytest.raises(ValueError, match="length must be a positive"):
        steer.random_directions(0.0, 28)
    with pytest.raises(ValueError, match="n_draws"):
        steer.random_directions(1.0, 28, n_draws=0)
    fc = EndOnlyForward(model)
    tables, resid = fc.inference_tables(), torch.zeros(2, 22, 28)
    with pytest.raises(ValueError, match="part must be one of"):
        steer.layer1_logits_held(fc, tables, resid, resid, 0, "keys")
    with pytest.raises(ValueError, match="a layer-1 head"):
        steer.layer1_logits_held(fc, tables, resid, resid, 2, "output")
    with pytest.raises(ValueError, match="one shape"):
        steer.layer1_logits_held(fc, tables, resid, resid[:1], 0, "output")
