"""One token validator guards every public analysis function."""

import pytest
import torch

from palindrome import PalindromeDataset, cross_entropy, evaluate, validate_tokens
from palindrome.constants import END, START

GOOD = [START] + list(range(10)) + list(range(9, -1, -1)) + [END]


def test_accepts_lists_tensors_and_single_sequences():
    assert validate_tokens(GOOD).shape == (1, 22)
    assert validate_tokens(torch.tensor([GOOD, GOOD], dtype=torch.int32)).dtype == torch.long


@pytest.mark.parametrize(
    "toks,match",
    [
        (GOOD[:-1], "22 tokens"),
        (GOOD + [END], "22 tokens"),
        ([1] + GOOD[1:], "START=31"),
        (GOOD[:-1] + [5], "END=32"),
        (GOOD[:5] + [33] + GOOD[6:], "0..32"),
        (GOOD[:5] + [-1] + GOOD[6:], "0..32"),
        (GOOD[:5] + [START] + GOOD[6:], "values 0..30"),
        (torch.tensor(GOOD, dtype=torch.float32), "integers"),
        (torch.zeros(2, 2, 22, dtype=torch.long), "shape"),
        ("not tokens", "tensor"),
    ],
)
def test_bad_tokens_raise_value_error(toks, match):
    with pytest.raises(ValueError, match=match):
        validate_tokens(toks)


def test_metrics_validate_tokens_and_labels(model):
    ds = PalindromeDataset(10)
    with pytest.raises(ValueError, match="22 tokens"):
        cross_entropy(model, ds.toks[:, :-1], ds.is_palindrome)
    with pytest.raises(ValueError, match="labels"):
        evaluate(model, ds.toks, ds.is_palindrome[:5])
    with pytest.raises(ValueError, match="0 .* or 1"):
        evaluate(model, ds.toks, ds.is_palindrome + 1)


def _batch_with_row(bad_row, row=2, n=4):
    """``n`` good sequences with row ``row`` replaced by ``bad_row``."""
    batch = torch.tensor([GOOD] * n)
    batch[row] = torch.tensor(bad_row)
    return batch


@pytest.mark.parametrize("row", [1, 3])
@pytest.mark.parametrize(
    "bad_row,match",
    [
        ([1] + GOOD[1:], "START=31; sequence {row} begins with 1"),
        (GOOD[:-1] + [5], "END=32; sequence {row} ends with 5"),
        (GOOD[:5] + [33] + GOOD[6:], "0..32; sequence {row} has 33 at position 5"),
        (GOOD[:5] + [-1] + GOOD[6:], "0..32; sequence {row} has -1 at position 5"),
        (GOOD[:5] + [END] + GOOD[6:], "values 0..30; sequence {row} has 32 .START/END. at position 5"),
    ],
)
def test_one_bad_row_in_a_good_batch_is_named(bad_row, match, row):
    # Only one row is bad, and not the first: a check that looks at row 0 alone lets it through.
    with pytest.raises(ValueError, match=match.format(row=row)):
        validate_tokens(_batch_with_row(bad_row, row))


# The small validators, each on hand-built values (issue #25: mutants of these had no test calling them directly).


def test_check_type_accepts_its_class_and_names_what_was_wrong():
    from palindrome.tokens import check_type

    value = [1]
    assert check_type("x", value, list) is value
    assert check_type("x", 3, (str, int)) == 3
    with pytest.raises(ValueError, match=r"^x must be a str or int \(made by f\(\)\), got 2\.5 \(float\)$"):
        check_type("x", 2.5, (str, int), "made by f()")
    with pytest.raises(ValueError, match=r"^y must be a list, got 'ab' \(str\)$"):
        check_type("y", "ab", list)
    for expected in ("list", (), (list, "str"), None):
        with pytest.raises(ValueError, match=r"^expected must be a class or a tuple of classes, got "):
            check_type("x", [], expected)


def test_check_items_returns_a_list_and_checks_every_item():
    from palindrome.tokens import check_items

    assert check_items("xs", (1, 2), int) == [1, 2]
    assert check_items("xs", [], int, allow_empty=True) == []
    with pytest.raises(ValueError, match=r"^xs must be a non-empty list of int \(from g\), got \[\] \(list\)$"):
        check_items("xs", [], int, "from g")
    with pytest.raises(ValueError, match=r"^xs must be a list of int, got 5 \(int\)$"):
        check_items("xs", 5, int, allow_empty=True)
    with pytest.raises(ValueError, match=r"^xs\[1\] must be a int \(from g\), got 'b' \(str\)$"):
        check_items("xs", [1, "b"], int, "from g")
    with pytest.raises(ValueError, match=r"^expected must be a class, got 'int'"):
        check_items("xs", [1], "int")


def test_check_positions_takes_any_collection_of_allowed_integers():
    from palindrome.tokens import check_positions

    assert check_positions(range(11, 13)) == [11, 12]
    assert check_positions([0, 21], range(22)) == [0, 21]
    for bad in ([], [0], [21], [True], [1.0], [torch.tensor(5)], "12", torch.tensor([1, 2]), 3, None):
        with pytest.raises(ValueError, match=r"^positions must be a non-empty list of integers in 1\.\.20, got "):
            check_positions(bad)
