"""Inputs that used to give a silent wrong answer or a raw error now raise a ValueError (or a named error) that says why."""

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
