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
