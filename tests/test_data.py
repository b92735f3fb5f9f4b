"""PalindromeDataset reproduces the original generator, and rejects bad arguments."""

import pytest
import torch

from palindrome import PalindromeDataset, format_seq
from palindrome.constants import END, START


def reference_tokens(size: int, seed: int = 42, max_value: int = 30, half_length: int = 10):
    """The generator's definition, written out step by step independently of the package."""
    torch.manual_seed(seed)
    n = size // 2
    first = torch.randint(0, max_value + 1, (n, half_length))
    new = torch.randint(0, max_value + 1, (n, half_length))
    flip = torch.randint(0, 2, (n, half_length)).bool()
    second = first.flip(-1).clone()
    second[flip] = new[flip]
    non_pal = torch.cat([first, second], 1)
    half = torch.randint(0, max_value + 1, (n, half_length))
    pal = torch.cat([half, half.flip(-1)], 1)
    seqs = torch.cat([pal, non_pal])[torch.randperm(size)]
    labels = torch.tensor([int(s.tolist() == s.flip(0).tolist()) for s in seqs])
    col = lambda v: torch.full((size, 1), v)  # noqa: E731
    return torch.cat([col(max_value + 1), seqs, col(max_value + 2)], 1), labels


@pytest.mark.parametrize("size,indices", [(100, [0, 2, 37, 99]), (500, [0, 1, 250, 499])])
def test_entries_match_generator_definition(size, indices):
    ds = PalindromeDataset(size)
    toks, labels = reference_tokens(size)
    for i in indices:
        assert ds.toks[i].tolist() == toks[i].tolist()
        assert int(ds.is_palindrome[i]) == int(labels[i])
    assert torch.equal(ds.toks, toks) and torch.equal(ds.is_palindrome, labels)


def test_example_two_is_the_one_the_original_analyses():
    # The original write-up prints example 2 of PalindromeDataset(100) in full.
    values = "30|22|22|00|28|01|00|09|23|27|27|23|30|00|01|28|00|22|22|23"
    ds = PalindromeDataset(100)
    assert ds.toks[2].tolist() == [START] + [int(v) for v in values.split("|")] + [END]
    assert ds.str_toks[2] == ["START"] + values.split("|") + ["END"]


def test_labels_agree_with_tokens():
    ds = PalindromeDataset(500, seed=7)
    values = ds.toks[:, 1:-1]
    expected = (values == values.flip(-1)).all(-1).long()
    assert torch.equal(ds.is_palindrome, expected)
    assert 0.45 < ds.is_palindrome.float().mean() < 0.6  # half by design, plus accidental palindromes


def test_structure_slicing_len_and_to():
    ds = PalindromeDataset(10, max_value=5, half_length=3, seed=1)
    assert len(ds) == 10 and ds.toks.shape == (10, 8)
    assert (ds.toks[:, 0] == 6).all() and (ds.toks[:, -1] == 7).all()
    assert ds.toks[:, 1:-1].max() <= 5
    toks, labels = ds[2:5]
    assert toks.shape == (3, 8) and labels.shape == (3,)
    assert ds.to("cpu") is ds
    assert ds.str_toks[0][0] == "START" and ds.str_toks[0][-1] == "END"


def test_different_seeds_differ_and_same_seed_repeats():
    assert torch.equal(PalindromeDataset(50, seed=3).toks, PalindromeDataset(50, seed=3).toks)
    assert not torch.equal(PalindromeDataset(50, seed=3).toks, PalindromeDataset(50, seed=4).toks)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(size=7), "size"),
        (dict(size=0), "size"),
        (dict(size=-4), "size"),
        (dict(size=10.0), "size"),
        (dict(size="10"), "size"),
        (dict(size=True), "size"),
        (dict(size=10, half_length=0), "half_length"),
        (dict(size=10, half_length=2.5), "half_length"),
        (dict(size=10, max_value=0), "max_value"),
        (dict(size=10, max_value=None), "max_value"),
        (dict(size=10, seed=-1), "seed"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PalindromeDataset(**kwargs)


def test_format_seq_marks_mirror_breaks_in_text_and_html():
    toks = [START, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 9, 8, 7, 6, 5, 4, 3, 15, 1, END]
    view = format_seq(toks, 0.9975)
    text = str(view)
    assert "*02*" in text and "*15*" in text and text.count("*") == 4
    assert "P(palindrome) = 0.998" in text
    html = view._repr_html_()
    assert html.count("font-weight:bold") == 2 and "0.998" in html
    with pytest.raises(ValueError, match="prob"):
        format_seq(toks, 1.5)
    with pytest.raises(ValueError, match="one sequence"):
        format_seq([toks, toks])


def test_display_seq_prints_text_outside_notebooks(capsys):
    from palindrome import display_seq

    display_seq(PalindromeDataset(100).toks[2])
    assert capsys.readouterr().out.startswith("START |*30*|22|22|")


# --- the variant generators (chapter 13's counterfactual training data) ---------------------------

from palindrome.data import GENERATORS, generate_sequences, generate_variant  # noqa: E402
from palindrome.generator import mismatch_counts  # noqa: E402
from palindrome.tokens import is_palindrome, mismatch_mask  # noqa: E402

VARIANT_SIZE = 40_000


def _single_at(ds, position):
    """Inputs with exactly one broken pair, and that pair is (21 - position, position)."""
    return (mismatch_counts(ds.toks) == 1) & mismatch_mask(ds.toks)[:, position]


def test_the_default_generator_is_the_original_bit_for_bit():
    assert GENERATORS[0] == "original"
    default = PalindromeDataset(2000, seed=5)
    explicit = PalindromeDataset(2000, seed=5, generator="original", share=None)
    assert torch.equal(default.toks, explicit.toks)
    assert torch.equal(default.toks[:, 1:-1], generate_sequences(2000, 30, 10, 5))
    assert repr(default) == "PalindromeDataset(size=2000, max_value=30, half_length=10, seed=5)"


def test_single_mismatch_generator_breaks_exactly_one_pair_chosen_uniformly():
    ds = PalindromeDataset(VARIANT_SIZE, seed=3, generator="single_mismatch")
    original = PalindromeDataset(VARIANT_SIZE, seed=3)
    counts = mismatch_counts(ds.toks)
    # The palindromes are the original's; every other input breaks exactly one pair.
    assert torch.equal(ds.toks[original.is_palindrome == 1], original.toks[original.is_palindrome == 1])
    assert set(counts.unique().tolist()) == {0, 1}
    assert torch.equal(ds.is_palindrome, (counts == 0).long())
    assert torch.equal(ds.is_palindrome, is_palindrome(ds.toks))  # labels from the tokens
    n_single = int((counts == 1).sum())
    assert n_single == int((original.is_palindrome == 0).sum())
    # Uniform over the ten pairs: each gets n/10 within 4 binomial standard deviations.
    per_pair = torch.stack([_single_at(ds, p).sum() for p in range(11, 21)]).double()
    sd = (n_single * 0.1 * 0.9) ** 0.5
    assert (per_pair - n_single / 10).abs().max() < 4 * sd, per_pair
    # Only the second-half member is edited, to a value different from its mirror.
    assert not mismatch_mask(ds.toks)[:, 1:11].logical_xor(mismatch_mask(ds.toks)[:, 11:21].flip(-1)).any()


@pytest.mark.parametrize("share", [0.05, 0.25])
def test_dose_generator_replaces_the_stated_share_of_non_palindromes(share):
    ds = PalindromeDataset(VARIANT_SIZE, seed=7, generator="dose", share=share)
    original = PalindromeDataset(VARIANT_SIZE, seed=7)
    non_pal = original.is_palindrome == 0
    changed = (ds.toks != original.toks).any(-1)
    # Exactly round(share x non-palindromes) rows change, all of them original non-palindromes.
    assert int(changed.sum()) == round(share * int(non_pal.sum()))
    assert not (changed & ~non_pal).any()
    assert (mismatch_counts(ds.toks[changed]) == 1).all()
    assert torch.equal(ds.is_palindrome, is_palindrome(ds.toks))
    # At positions 17 and 19 (the July model's blind pairs) the share of single-mismatch inputs is
    # the original's natural rate plus share/10 of the non-palindromes, within 4 sd.
    n = int(non_pal.sum())
    for position in (17, 19):
        natural = _single_at(original, position).float().sum() / n
        expected = share / 10 + (1 - share) * natural
        found = _single_at(ds, position).float().sum() / n
        assert abs(found - expected) < 4 * (expected * (1 - expected) / n) ** 0.5, (position, found, expected)


def test_variants_leave_the_global_rng_where_the_original_leaves_it():
    # Training shuffles its batches with the global RNG after building the data, so the variants
    # must consume exactly the original's draws from it.
    generate_variant(1000, 30, 10, 11)
    after_original = torch.rand(3)
    generate_variant(1000, 30, 10, 11, "dose", 0.5)
    assert torch.equal(torch.rand(3), after_original)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(generator="singles"), "generator must be one of"),
        (dict(generator=None), "generator must be one of"),
        (dict(generator="dose"), "share must be a number strictly between 0 and 1"),
        (dict(generator="dose", share=0), "share must be a number strictly between 0 and 1"),
        (dict(generator="dose", share=1.0), "share must be a number strictly between 0 and 1"),
        (dict(generator="dose", share="0.1"), "share must be a number strictly between 0 and 1"),
        (dict(generator="dose", share=True), "share must be a number strictly between 0 and 1"),
        (dict(generator="original", share=0.1), "share applies only to generator 'dose'"),
        (dict(generator="single_mismatch", share=0.5), "share applies only to generator 'dose'"),
    ],
)
def test_bad_generator_arguments_raise_value_error_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PalindromeDataset(100, **kwargs)
