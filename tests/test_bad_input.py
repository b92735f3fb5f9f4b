"""Inputs that used to give a silent wrong answer or a raw error now raise a ValueError (or a named error) that says
why."""

from __future__ import annotations

import os
from unittest import mock

import pytest
import torch

from palindrome import checkpoint, constants
from palindrome.attribution import separation_auc
from palindrome.circuits import positional_qk_circuit
from palindrome.data import PalindromeDataset, token_strings
from palindrome.metrics import accuracy_from_logits, loss_from_logits
from palindrome.model import check_device, create_model, model_from_state_dict
from palindrome.tokens import is_palindrome, mismatch_mask


@pytest.mark.parametrize(
    "toks, message",
    [
        (torch.tensor([[31, 1, 2, 32]] * 2)[:, :3], "even number of values"),
        ([1, 2, 2, 1], "begin with START"),
        ([31, 99, 5, 32], "tokens must lie in"),
        (torch.zeros(2, 2, 22, dtype=torch.long), "even number of values"),
        ("abc", "tokens must be"),
    ],
)
def test_mismatch_mask_and_is_palindrome_check_their_tokens(toks, message):
    with pytest.raises(ValueError, match=message):
        mismatch_mask(toks)
    with pytest.raises(ValueError, match=message):
        is_palindrome(toks)


def test_mismatch_mask_still_reads_one_sequence_or_a_batch():
    data = PalindromeDataset(10)
    assert mismatch_mask(data.toks[0]).shape == (22,)
    assert torch.equal(is_palindrome(data.toks), data.is_palindrome)
    small = PalindromeDataset(4, max_value=5, half_length=3)
    assert torch.equal(is_palindrome(small.toks, max_value=5), small.is_palindrome)


def test_token_strings_takes_one_valid_sequence():
    data = PalindromeDataset(2)
    assert token_strings(data.toks[0])[0] == "START" and len(token_strings(data.toks[0])) == 22
    with pytest.raises(ValueError, match="one sequence"):
        token_strings(data.toks)
    with pytest.raises(ValueError, match="tokens must lie in|each sequence must have"):
        token_strings([31, 99, 5, 32])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_logits_and_scores_are_refused(bad):
    logits = torch.tensor([[bad, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="finite"):
        accuracy_from_logits(logits, [0, 1])
    with pytest.raises(ValueError, match="finite"):
        loss_from_logits(logits, [0, 1])
    with pytest.raises(ValueError, match="finite"):
        separation_auc(torch.tensor([bad, 1.0]), torch.tensor([0, 1]))


@pytest.mark.parametrize("scale", [float("inf"), float("nan"), 0.0, -1.0, True, "big"])
def test_a_layernorm_scale_must_be_finite_and_positive(model, scale):
    with pytest.raises(ValueError, match="scale must be a positive number"):
        positional_qk_circuit(model, 0, 0, scale)


def test_a_checkpoint_with_nan_weights_is_refused():
    state = create_model(device="cpu").state_dict()
    state["embed.W_E"] = state["embed.W_E"].clone()
    state["embed.W_E"][0, 0] = float("nan")
    with pytest.raises(checkpoint.StateDictMismatchError, match="non-finite"):
        model_from_state_dict(state, device="cpu")


def test_devices_this_torch_cannot_use_are_named():
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="torch device"):
        check_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs CUDA"):
            create_model(device="cuda")


def test_a_cache_dir_that_is_a_file_names_the_way_out(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    env = {constants.CACHE_DIR_ENV: str(blocker / "cache")}
    with mock.patch.dict(os.environ, env):
        os.environ.pop(constants.CHECKPOINT_ENV, None)
        with pytest.raises(checkpoint.CheckpointError, match=constants.CHECKPOINT_ENV):
            checkpoint.resolve_checkpoint(download=False)


def test_an_unwritable_cache_names_the_way_out(tmp_path):
    dest = tmp_path / "cache" / constants.CHECKPOINT_FILENAME
    with mock.patch("tempfile.mkstemp", side_effect=PermissionError(13, "Permission denied")):
        with pytest.raises(checkpoint.CheckpointError, match=constants.CACHE_DIR_ENV):
            checkpoint.download_checkpoint(url="http://127.0.0.1:9/none", dest=dest)


# --- issue 21: no plausible answer from NaN input, no silent drop, no raw error -----------------------------------


def test_weak_positions_refuses_nan_instead_of_finding_no_weak_position():
    from palindrome.attribution import weak_positions

    circuit = torch.linspace(-1.0, 1.0, constants.SEQ_LEN)
    assert weak_positions(circuit) != ()  # ends at 0 and a small middle: the finite input has weak positions
    circuit[5] = float("nan")
    with pytest.raises(ValueError, match="circuit must be finite"):
        weak_positions(circuit)


def test_final_ln_scale_stats_refuses_a_class_it_cannot_describe(model):
    from palindrome.attribution import final_ln_scale_stats

    data = PalindromeDataset(20)
    one_palindrome = torch.cat([data.toks[~data.is_palindrome.bool()], data.toks[data.is_palindrome.bool()][:1]])
    labels = torch.tensor([0] * 10 + [1])
    with pytest.raises(
        ValueError, match="at least two sequences of each class for a standard deviation; got 1 palindrome[.]"
    ):
        final_ln_scale_stats(model, one_palindrome, labels)
    with pytest.raises(ValueError, match="got 0 palindrome, 1 non-palindrome, 1 all"):
        final_ln_scale_stats(model, data.toks[~data.is_palindrome.bool()][:1], [0])
    stats = final_ln_scale_stats(model, data.toks, data.is_palindrome)
    assert list(stats.index) == ["palindrome", "non-palindrome", "all"]


@pytest.mark.parametrize("labels, message", [("1", "labels must be a tensor or list"), (None, "labels must be")])
def test_validate_labels_refuses_what_is_not_a_list_of_labels(labels, message):
    from palindrome.tokens import validate_labels

    with pytest.raises(ValueError, match=message):
        validate_labels(labels, 1)


def test_a_head_is_required_where_a_function_reads_one_head(model):
    from palindrome.circuits import qk_circuit

    with pytest.raises(ValueError, match=r"head must be an integer in 0\.\.1, got None"):
        qk_circuit(model, 0, None)


def test_token_strings_refuses_none():
    with pytest.raises(ValueError, match="token_strings takes one sequence of tokens"):
        token_strings(None)


@pytest.mark.parametrize("load", ["palindrome.replicas.load_replica", "palindrome.train.load_trained_model"])
def test_paths_that_are_not_paths_are_refused(load):
    import importlib

    module, name = load.rsplit(".", 1)
    fn = getattr(importlib.import_module(module), name)
    with pytest.raises(ValueError, match="must be a path"):
        fn(0, 7) if name == "load_replica" else fn(7)


def test_sizes_too_large_to_draw_are_refused_before_torch_overflows():
    with pytest.raises(ValueError, match=r"size must be .*<= 10000000"):
        PalindromeDataset(2**70)


def test_plots_refuse_nan_values_and_colours_of_the_wrong_kind():
    from palindrome import plots

    with pytest.raises(ValueError, match="values must be finite"):
        plots.bar(torch.tensor([1.0, float("nan")]), ["a", "b"], "t", "y")
    with pytest.raises(ValueError, match="colors must be None or a dict"):
        plots.scatter(torch.arange(3.0), {"a": torch.rand(3)}, "t", "x", "y", colors=["#000000"])
    with pytest.raises(ValueError, match="colors must be None or a list"):
        plots.bar(torch.rand(2), ["a", "b"], "t", "y", colors={"a": "#000"})


def test_mismatch_mask_and_is_palindrome_on_hand_built_sequences():
    # Hand-marked mismatches: 31 | 1 2 2 4 | 32 differs from its mirror at positions 1 and 4 only.
    mask = mismatch_mask([31, 1, 2, 2, 4, 32])
    assert mask.dtype == torch.bool and mask.tolist() == [False, True, False, False, True, False]
    batch = torch.tensor([[31, 1, 2, 2, 4, 32], [31, 4, 0, 0, 4, 32], [31, 0, 5, 6, 0, 32]])
    assert mismatch_mask(batch).tolist() == [
        [False, True, False, False, True, False],
        [False] * 6,
        [False, False, True, True, False, False],
    ]
    assert is_palindrome(batch).tolist() == [0, 1, 0]
    assert is_palindrome([31, 4, 0, 0, 4, 32]).tolist() == 1 and is_palindrome([31, 1, 0, 0, 4, 32]).tolist() == 0
    # the smallest sequence, one value pair: START a b END
    assert mismatch_mask([31, 1, 2, 32]).tolist() == [False, True, True, False]
    assert is_palindrome([[31, 7, 7, 32], [31, 7, 8, 32]]).tolist() == [1, 0]
    # another vocabulary: max_value 3 makes START 4 and END 5
    assert is_palindrome([[4, 3, 3, 5], [4, 3, 0, 5]], max_value=3).tolist() == [1, 0]
    lengths = (
        r"^tokens must be full sequences START, values, END with an even number of values, one \(shape \(seq,\)\) "
    )
    for bad, shape in [([31, 32], r"\(2,\)"), ([31, 1, 2, 3, 32], r"\(5,\)"), (torch.zeros(1, 2, 4), r"\(1, 2, 4\)")]:
        with pytest.raises(ValueError, match=lengths + rf"or a batch \(shape \(batch, seq\)\); got shape {shape}$"):
            mismatch_mask(bad)
    with pytest.raises(ValueError, match=r"^tokens must be a tensor or a \(nested\) list of ints, got 'abc' \(str\)$"):
        is_palindrome("abc")


def test_validate_labels_messages_in_full():
    from palindrome.tokens import validate_labels

    assert validate_labels([1, 0, 1], 3).tolist() == [1, 0, 1]
    assert validate_labels(torch.tensor([[True], [False]]), 2).dtype == torch.long
    for labels, batch, message in [
        ([0, 2], 2, r"labels must be 0 \(not palindrome\) or 1 \(palindrome\)"),
        ([0, -1], 2, r"labels must be 0 \(not palindrome\) or 1 \(palindrome\)"),
        ([0, 1], 3, r"got 2 labels for 3 sequences; they must match"),
        (torch.tensor([0.0, 1.0]), 2, r"labels must be integers 0 or 1, got dtype torch\.float32"),
        ("1", 1, r"labels must be a tensor or list of 0/1 integers \(1 = palindrome\), got '1' \(str\)"),
    ]:
        with pytest.raises(ValueError, match=f"^{message}$"):
            validate_labels(labels, batch)
