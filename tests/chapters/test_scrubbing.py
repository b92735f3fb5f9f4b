"""Chapter 12, section 2: scrubbing partners have the required property, never the input itself; the key numbers
hold."""

from __future__ import annotations

import pytest
import torch

from palindrome import path_patching
from palindrome.chapters import faithfulness as fa
from palindrome.chapters import scrubbing as sc
from palindrome.tokens import mismatch_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_match_status_partners_share_the_status_and_are_never_the_input():
    data = fa.main_dataset()
    toks = data.toks[:200]
    pool = torch.cat([toks[:50], sc.pool().toks[:2000]])  # the first 50 inputs are in the pool too
    index = sc.match_status_partners(toks, pool, seed=3)
    positions = torch.arange(toks.shape[1])
    assert (mismatch_mask(pool)[index, positions] == mismatch_mask(toks)).all()
    assert not (pool[index] == toks[:, None, :]).all(-1).any()


def test_broken_set_partners_have_the_same_broken_pairs():
    toks = fa.main_dataset().toks[:100]
    partners = sc.broken_set_partners(toks, seed=3)
    assert (mismatch_mask(partners.flatten(0, 1)).view(*partners.shape) == mismatch_mask(toks)[:, None, :]).all()


def test_identity_partner_gives_chapter_10(model):
    toks = fa.main_dataset().toks[:200]
    ablator = path_patching.PathAblator(model, toks, "mean")
    own = sc.h00_outputs(model, toks)
    assert (sc.scrubbed_logits(ablator, own) - ablator.logits(path_patching.HYPOTHESIS)).abs().max() < 1e-4


def test_key_numbers(model):
    f = sc.key_findings(model)
    assert round(f["mean_hypothesis_chapter_10_loss_recovered"], 3) == 0.846  # chapter 10's number, same function
    assert round(f["mean_hypothesis_broken_set_loss_recovered"], 3) == 0.806
    assert round(f["mean_hypothesis_match_status_loss_recovered"], 3) == 0.723
    assert round(f["resample_hypothesis_broken_set_loss_recovered"], 3) == 0.753
    assert round(f["resample_hypothesis_chapter_10_loss_recovered"], 3) == 0.753
    assert round(f["resample_hypothesis_match_status_loss_recovered"], 3) == 0.686
    assert round(f["mean_extended_match_status_loss_recovered"], 3) == 0.942
    assert round(f["resample_extended_match_status_loss_recovered"], 3) == 0.931
    assert round(f["mean_extended_broken_set_loss_recovered"], 3) == 0.999
    assert round(f["resample_extended_broken_set_loss_recovered"], 3) == 0.995
    assert round(f["mean_hypothesis_broken_set_logit_diff_recovered"], 3) == 0.648
    assert round(f["resample_hypothesis_broken_set_logit_diff_recovered"], 3) == 0.721
    for method in path_patching.METHODS:
        for circuit in sc.CIRCUITS:
            assert (
                f[f"{method}_{circuit}_match_status_loss_recovered"]
                < f[f"{method}_{circuit}_broken_set_loss_recovered"]
            )


def test_bad_arguments(model):
    toks = fa.main_dataset().toks[:10]
    with pytest.raises(ValueError, match="kind must be one of"):
        sc.scrubbed_h00(model, toks, "same token")
    ablator = path_patching.PathAblator(model, toks, "mean")
    with pytest.raises(ValueError, match="scrubbed edges"):
        sc.scrubbed_logits(ablator, torch.zeros(10, 22, 28), keep=path_patching.PATHS["H1.0 -> logits"])
    with pytest.raises(ValueError, match="one d_model vector"):
        sc.scrubbed_logits(ablator, torch.zeros(10, 22, 5))
