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


def test_check_int_accepts_both_bounds_and_refuses_one_past_each():
    # Bounds hand-checked: minimum and maximum are accepted, minimum - 1 and maximum + 1 are not; bools are not ints.
    from palindrome.tokens import check_int

    assert check_int("n", 1, 1) == 1 and type(check_int("n", torch.tensor(7).item(), 1)) is int
    assert check_int("n", 5, 1, maximum=5) == 5
    assert check_int("n", 10**30, 1) == 10**30  # no maximum: any integer >= minimum
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got 0$"):
        check_int("n", 0, 1)
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1 and <= 5 \(one to five\), got 6$"):
        check_int("n", 6, 1, " (one to five)", maximum=5)
    with pytest.raises(ValueError, match=r"^n must be an integer >= 0, got 2\.0 \(float\)$"):
        check_int("n", 2.0, 0)
    with pytest.raises(ValueError, match=r"^n must be an integer >= 0 and <= 3, got True \(bool\)$"):
        check_int("n", True, 0, maximum=3)


def test_check_sizes_and_check_seed_bounds():
    # MAX_SIZE = 2**20 = 1048576 and MAX_SEED = 2**63 - 2 = 9223372036854775806, written out by hand.
    from palindrome.tokens import check_seed, check_sizes

    assert check_sizes(1, 1) == (1, 1)
    assert check_sizes(1048576, 1048576) == (1048576, 1048576)
    size_bound = r"must be an integer >= 1 and <= 1048576, got "
    for args, message in [
        ((0, 1), "half_length " + size_bound + "0"),
        ((1048577, 1), "half_length " + size_bound + "1048577"),
        ((1, 0), "max_value " + size_bound + "0"),
        ((1, 1048577), "max_value " + size_bound + "1048577"),
    ]:
        with pytest.raises(ValueError, match=f"^{message}$"):
            check_sizes(*args)
    assert check_seed(0) == 0
    assert check_seed(9223372036854775806) == 9223372036854775806
    seed_bound = r"^seed must be an integer >= 0 and <= 9223372036854775806 \(torch's generators take 64-bit seeds\)"
    for bad in (-1, 9223372036854775807):
        with pytest.raises(ValueError, match=f"{seed_bound}, got {bad}$"):
            check_seed(bad)
    with pytest.raises(ValueError, match=f"{seed_bound}, got '3' \\(str\\)$"):
        check_seed("3")


def test_check_torch_generator_takes_none_or_a_generator():
    from palindrome.tokens import check_torch_generator

    generator = torch.Generator()
    assert check_torch_generator(None) is None
    assert check_torch_generator(generator) is generator
    made = r"\(torch\.Generator\(\)\.manual_seed\(0\)\)"
    with pytest.raises(ValueError, match=rf"^generator must be None or a torch\.Generator {made}, got 0 \(int\)$"):
        check_torch_generator(0)


def test_check_finite_and_check_positive_read_numbers_and_one_element_tensors():
    # Hand-picked values on each side of each bound: 0 is finite but not positive, inf is neither, bools are refused.
    from palindrome.tokens import check_finite, check_positive

    for check in (check_finite, check_positive):
        assert check("x", 2) == 2.0 and type(check("x", 2)) is float
        assert check("x", torch.tensor(1.5)) == 1.5 and type(check("x", torch.tensor(1.5))) is float
    assert check_finite("x", 0) == 0.0 and check_finite("x", -3.5) == -3.5
    assert check_positive("x", 1e-300) == 1e-300 and check_positive("x", 1e300) == 1e300
    for bad, shown in [
        (float("nan"), r"nan \(float\)"),
        (float("-inf"), r"-inf \(float\)"),
        (True, r"True \(bool\)"),
        ("1", r"'1' \(str\)"),
        (torch.tensor([1.0, 2.0]), r"tensor\(\[1\., 2\.\]\) \(Tensor\)"),
        (torch.tensor(True), r"tensor\(True\) \(Tensor\)"),
    ]:
        with pytest.raises(ValueError, match=f"^x must be a finite number, got {shown}$"):
            check_finite("x", bad)
    with pytest.raises(ValueError, match=r"^x must be a finite number \(a rate\), got inf \(float\)$"):
        check_finite("x", float("inf"), " (a rate)")
    for bad, shown in [
        (0, "0"),
        (0.0, r"0\.0"),
        (-1, "-1"),
        (float("inf"), "inf"),
        (float("nan"), "nan"),
        (True, "True"),
        ("1", "'1'"),
        (torch.tensor([1.0, 2.0]), r"tensor\(\[1\., 2\.\]\)"),
        (torch.tensor(True), r"tensor\(True\)"),
    ]:
        with pytest.raises(ValueError, match=f"^x must be a positive number, got {shown}$"):
            check_positive("x", bad)
    with pytest.raises(ValueError, match=r"^x must be a positive number \(a scale\), got 0$"):
        check_positive("x", 0, " (a scale)")


def test_check_floats_returns_tensors_as_they_are_and_names_what_is_wrong():
    from palindrome.tokens import check_floats

    t = torch.tensor([1.0, -2.0])
    assert check_floats("w", t) is t
    assert check_floats("w", torch.tensor([3, 4])).dtype == torch.long  # integers are real numbers, kept as they are
    assert torch.equal(check_floats("w", [[1.0, 2.0]]), torch.tensor([[1.0, 2.0]]))
    for bad, message in [
        ("abc", r"w must be a tensor or \(nested\) list of numbers, got 'abc' \(str\)"),
        (None, r"w must be a tensor or \(nested\) list of numbers, got None \(NoneType\)"),
        ([[1.0], [1.0, 2.0]], r"w must be a tensor or \(nested\) list of numbers; could not read list: .+"),
        (torch.tensor([True, False]), r"w must hold real numbers, got dtype torch\.bool"),
        (torch.tensor([1j]), r"w must hold real numbers, got dtype torch\.complex64"),
        (torch.tensor([1.0, float("nan")]), r"w must be finite; it holds NaN or inf \(shape \(2,\)\)"),
        (torch.tensor([[float("-inf")]]), r"w must be finite; it holds NaN or inf \(shape \(1, 1\)\)"),
    ]:
        with pytest.raises(ValueError, match=f"^{message}$"):
            check_floats("w", bad)
    with pytest.raises(ValueError, match=r"^w must be finite \(weights\); it holds NaN or inf \(shape \(1,\)\)$"):
        check_floats("w", [float("inf")], " (weights)")


class _Cfg:
    """A stand-in for a model: check_layer and check_layer_head read only cfg.n_layers and cfg.n_heads."""

    def __init__(self, n_layers, n_heads):
        self.cfg = type("Cfg", (), {"n_layers": n_layers, "n_heads": n_heads})()


def test_check_layer_and_head_accept_each_index_and_refuse_one_past_the_ends():
    # A made-up 3-layer, 4-head shape: the bounds 0..2 and 0..3 are hand-written, unlike the real model's 0..1.
    from palindrome.tokens import check_layer, check_layer_head

    model = _Cfg(3, 4)
    for layer in (0, 2):
        assert check_layer(model, layer) is None
        for head in (0, 3):
            assert check_layer_head(model, layer, head) is None
    for bad, shown in [(-1, "-1"), (3, "3"), (True, "True"), (1.0, r"1\.0"), (None, "None")]:
        with pytest.raises(ValueError, match=f"^layer must be an integer in 0\\.\\.2, got {shown}$"):
            check_layer(model, bad)
        with pytest.raises(ValueError, match=f"^layer must be an integer in 0\\.\\.2, got {shown}$"):
            check_layer_head(model, bad, 0)
    for bad, shown in [(-1, "-1"), (4, "4"), (True, "True"), (1.0, r"1\.0"), (None, "None")]:
        with pytest.raises(ValueError, match=f"^head must be an integer in 0\\.\\.3, got {shown}$"):
            check_layer_head(model, 1, bad)


def test_validate_tokens_bounds_and_whole_messages():
    # Hand-built rows: value 30 (MAX_VALUE) is a value, 31 (START) and 32 (END) are not, in positions 1 and 20 too.
    top = [START] + [30] * 20 + [END]
    assert torch.equal(validate_tokens(top), torch.tensor([top]))
    assert torch.equal(validate_tokens([GOOD, top]), torch.tensor([GOOD, top]))
    for bad, message in [
        (torch.zeros(0, 22, dtype=torch.long), r"tokens must contain at least one sequence, got an empty batch"),
        (GOOD[:-1], r"each sequence must have 22 tokens \(START, 20 values, END\), got 21"),
        (torch.ones(22, dtype=torch.bool), r"tokens must be integers, got dtype torch\.bool; use torch\.long"),
        (
            torch.zeros(2, 2, 22, dtype=torch.long),
            r"tokens must have shape \(seq,\) or \(batch, seq\), got \(2, 2, 22\)",
        ),
        ("abc", r"tokens must be a tensor or a \(nested\) list of ints, got 'abc' \(str\)"),
        (None, r"tokens must be a tensor or a \(nested\) list of ints, got None \(NoneType\)"),
        ([GOOD, GOOD[:-1]], r"tokens must be a tensor or a \(nested\) list of ints; could not read list: .+"),
        (
            [START, START] + GOOD[2:],
            r"positions 1\.\.20 must hold values 0\.\.30; sequence 0 has 31 \(START/END\) at position 1",
        ),
        (
            GOOD[:-2] + [END, END],
            r"positions 1\.\.20 must hold values 0\.\.30; sequence 0 has 32 \(START/END\) at position 20",
        ),
        # a 30 before the START at position 7: only values above 30 are named
        (
            [START, 4, 30] + GOOD[3:7] + [START] + GOOD[8:],
            r"positions 1\.\.20 must hold values 0\.\.30; sequence 0 has 31 \(START/END\) at position 7",
        ),
    ]:
        with pytest.raises(ValueError, match=f"^{message}$"):
            validate_tokens(bad)


def test_validate_tokens_of_another_size_reads_its_own_start_and_end():
    # half_length 2, max_value 4: START = 5, END = 6, six tokens per sequence (worked out by hand).
    assert validate_tokens([5, 0, 4, 4, 0, 6], half_length=2, max_value=4).tolist() == [[5, 0, 4, 4, 0, 6]]
    for bad, message in [
        ([5, 0, 4, 0, 6], r"each sequence must have 6 tokens \(START, 4 values, END\), got 5"),
        ([5, 0, 7, 4, 0, 6], r"tokens must lie in 0\.\.6; sequence 0 has 7 at position 2"),
        ([4, 0, 4, 4, 0, 6], r"every sequence must begin with START=5; sequence 0 begins with 4"),
        ([5, 0, 4, 4, 0, 5], r"every sequence must end with END=6; sequence 0 ends with 5"),
        ([5, 0, 5, 4, 0, 6], r"positions 1\.\.4 must hold values 0\.\.4; sequence 0 has 5 \(START/END\) at position 2"),
    ]:
        with pytest.raises(ValueError, match=f"^{message}$"):
            validate_tokens(bad, half_length=2, max_value=4)
    with pytest.raises(ValueError, match=r"^half_length must be an integer >= 1 and <= 1048576, got 0$"):
        validate_tokens([5, 6], half_length=0, max_value=4)
    with pytest.raises(ValueError, match=r"^max_value must be an integer >= 1 and <= 1048576, got 0$"):
        validate_tokens([1, 0, 0, 2], half_length=1, max_value=0)
