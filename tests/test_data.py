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
from palindrome.data_distribution import mismatch_counts  # noqa: E402
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


# --- validation bounds, exact draws and views, checked by hand (issue #25: mutation testing) -------

import html as html_module  # noqa: E402
import sys  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from palindrome.data import (  # noqa: E402
    SequenceView,
    check_generator,
    display_seq,
    single_mismatch_sequences,
    token_strings,
)
from palindrome.tokens import MAX_SAMPLES  # noqa: E402

SIZE_BOUND = r"must be an integer >= 2 and <= 10000000 and even \(half palindromes, half not\)"


def _reference_single_mismatch(n, max_value, half_length, rng):
    """single_mismatch_sequences' documented draws (halves, slots, offsets from ``rng``), applied row by row."""
    halves = torch.randint(0, max_value + 1, (n, half_length), generator=rng)
    slots = torch.randint(0, half_length, (n,), generator=rng)
    offsets = torch.randint(1, max_value + 1, (n,), generator=rng)
    rows = []
    for half, slot, offset in zip(halves.tolist(), slots.tolist(), offsets.tolist(), strict=True):
        row = half + half[::-1]
        mirror = half_length - 1 - slot  # second-half index half_length + slot mirrors this one
        row[half_length + slot] = (row[mirror] + offset) % (max_value + 1)
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long).reshape(n, 2 * half_length)


def test_check_generator_returns_the_pair_and_names_what_is_wrong():
    assert check_generator("original") == ("original", None)
    assert check_generator("single_mismatch") == ("single_mismatch", None)
    dose = check_generator("dose", 0.25)
    assert dose == ("dose", 0.25) and isinstance(dose[1], float)
    assert check_generator("dose", 1e-9)[1] == 1e-9 and check_generator("dose", 0.999)[1] == 0.999
    with pytest.raises(
        ValueError, match=r"^generator must be one of \('original', 'single_mismatch', 'dose'\), got 7$"
    ):
        check_generator(7)
    with pytest.raises(ValueError, match=r"^generator must be one of .*, got 'Dose'$"):
        check_generator("Dose")
    with pytest.raises(ValueError, match=r"^share applies only to generator 'dose' \(got share=0\.5 with 'original'\)"):
        check_generator("original", 0.5)
    for share in (0, 1, -0.1, 1.5, None, "0.5", False):
        with pytest.raises(ValueError, match=r"^share must be a number strictly between 0 and 1 .*, got "):
            check_generator("dose", share)


def test_single_mismatch_sequences_follow_the_documented_draws():
    # The same seed gives the reference's rows: a palindrome with one second-half value moved off its mirror.
    for max_value, half_length in ((30, 10), (4, 3)):
        got = single_mismatch_sequences(50, max_value, half_length, torch.Generator().manual_seed(5))
        expected = _reference_single_mismatch(50, max_value, half_length, torch.Generator().manual_seed(5))
        assert torch.equal(got, expected)
    # max_value 1: the broken member is forced to 1 - its mirror, and exactly one pair is broken.
    values = single_mismatch_sequences(200, 1, 3, torch.Generator().manual_seed(0))
    assert values.shape == (200, 6) and ((values == 0) | (values == 1)).all()
    assert ((values != values.flip(-1)).sum(-1) == 2).all()
    assert (values[:, :3] == values[:, 3:].flip(-1)).sum(-1).eq(2).all()  # the first half is untouched
    assert single_mismatch_sequences(0, 30, 10, None).shape == (0, 20)  # n = 0 is allowed
    with pytest.raises(ValueError, match=r"^n must be an integer >= 0 and <= 10000000, got -1$"):
        single_mismatch_sequences(-1, 30, 10, None)
    with pytest.raises(ValueError, match=r"^n must be an integer >= 0 and <= 10000000, got 10000001$"):
        single_mismatch_sequences(MAX_SAMPLES + 1, 0, 10, None)  # n is checked before max_value
    with pytest.raises(ValueError, match=r"^generator must be None or a torch\.Generator"):
        single_mismatch_sequences(2, 30, 10, 0)


def test_generate_variant_follows_the_documented_draws():
    size, max_value, half_length, seed = 40, 4, 3, 9
    original = generate_sequences(size, max_value, half_length, seed)
    assert torch.equal(generate_variant(size, max_value, half_length, seed), original)  # the default is "original"
    non_pal = [i for i, row in enumerate(original.tolist()) if row != row[::-1]]
    for generator, share in (("single_mismatch", None), ("dose", 0.3)):
        rng = torch.Generator().manual_seed(seed)
        count = len(non_pal) if share is None else round(share * len(non_pal))
        chosen = [non_pal[i] for i in torch.randperm(len(non_pal), generator=rng)[:count].tolist()]
        expected = original.clone()
        expected[chosen] = _reference_single_mismatch(count, max_value, half_length, rng)
        assert torch.equal(generate_variant(size, max_value, half_length, seed, generator, share), expected)
    # The smallest dataset: one palindrome and one non-palindrome, which the variant replaces.
    two = generate_variant(2, 30, 10, 0, "single_mismatch")
    assert sorted((two != two.flip(-1)).sum(-1).tolist()) == [0, 2]


def test_generate_sequences_size_bounds():
    # size 2 (the minimum) and 4 are accepted; 0, odd sizes and sizes over MAX_SAMPLES are refused, size first.
    assert generate_sequences(2, 30, 10, 0).shape == (2, 20) and generate_sequences(4, 30, 10, 0).shape == (4, 20)
    assert generate_sequences(6, 5, 3, 0).shape == (6, 6) and generate_sequences(6, 5, 3, 0).max() <= 5
    with pytest.raises(ValueError, match=rf"^size {SIZE_BOUND}, got 0$"):
        generate_sequences(0, 30, 10, 0)
    with pytest.raises(ValueError, match=r"^size must be even \(half palindromes, half not\), got 7$"):
        generate_sequences(7, 30, 10, 0)
    with pytest.raises(ValueError, match=rf"^size {SIZE_BOUND}, got 10000002$"):
        generate_sequences(MAX_SAMPLES + 2, 0, 10, 0)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0"):
        generate_sequences(4, 30, 10, -1)


def test_dataset_size_bounds_tokens_and_repr():
    assert len(PalindromeDataset(2)) == 2 and len(PalindromeDataset(4)) == 4  # the minimum, and 4 (not a multiple of 3)
    with pytest.raises(ValueError, match=rf"^size {SIZE_BOUND}, got 0$"):
        PalindromeDataset(0)
    with pytest.raises(
        ValueError, match=r"^size must be a positive even integer \(half palindromes, half not\), got 9$"
    ):
        PalindromeDataset(9)
    with pytest.raises(ValueError, match=rf"^size {SIZE_BOUND}, got 10000002$"):
        PalindromeDataset(MAX_SAMPLES + 2, max_value=0)  # size is checked before max_value
    small = PalindromeDataset(6, max_value=5, half_length=3, seed=2)
    assert (small.start_token, small.end_token, small.seed, small.size) == (6, 7, 2, 6)
    assert small.toks.dtype == torch.long and small.is_palindrome.dtype == torch.long
    assert torch.equal(small.toks[:, 1:-1], generate_sequences(6, 5, 3, 2))
    dose = PalindromeDataset(10, seed=3, generator="dose", share=0.25)
    assert (dose.generator, dose.share) == ("dose", 0.25)
    assert torch.equal(dose.toks[:, 1:-1], generate_variant(10, 30, 10, 3, "dose", 0.25))
    assert (
        repr(dose) == "PalindromeDataset(size=10, max_value=30, half_length=10, seed=3, generator='dose', share=0.25)"
    )
    assert repr(PalindromeDataset(4, generator="single_mismatch")).endswith(
        "seed=42, generator='single_mismatch', share=None)"
    )
    assert small.to("meta") is small  # the meta device moves nothing but is not the CPU
    assert small.toks.device.type == "meta" and small.is_palindrome.device.type == "meta"


def test_token_strings_by_hand():
    # max_value 4: START 5, END 6; the shortest sequence is START, two values, END.
    assert token_strings([5, 0, 4, 4, 0, 6], max_value=4) == ["START", "00", "04", "04", "00", "END"]
    assert token_strings(torch.tensor([[5, 1, 2, 6]]), max_value=4) == ["START", "01", "02", "END"]
    assert token_strings([5, 1, 2, 3, 3, 2, 1, 6], max_value=4) == ["START", "01", "02", "03", "03", "02", "01", "END"]
    assert token_strings([START] + [7] * 20 + [END]) == ["START"] + ["07"] * 20 + ["END"]
    one_full = r"^token_strings takes one full sequence \(START, an even number of values, END\), got "
    for bad in ([5, 6], [5, 1, 2, 3, 6], torch.tensor(5), torch.tensor([[[5, 1, 2, 6]]])):
        with pytest.raises(ValueError, match=one_full):
            token_strings(bad, max_value=4)
    with pytest.raises(ValueError, match=rf"{one_full}\[5, 6\]$"):
        token_strings([5, 6], max_value=4)
    with pytest.raises(
        ValueError, match=r"^token_strings takes one sequence of tokens \(a tensor or list of ints\), got None"
    ):
        token_strings(None)
    with pytest.raises(
        ValueError, match=r"^token_strings takes one sequence; got a batch of 2 \(use PalindromeDataset\.str_toks\)$"
    ):
        token_strings([[5, 1, 1, 6], [5, 2, 2, 6]], max_value=4)


def test_format_seq_builds_the_view_and_checks_prob():
    toks = [START] + list(range(10)) + list(range(9, -1, -1)) + [END]
    toks[12] = 30  # breaks the pair (9, 12): values 8 and 30 (value index 8 and 11)
    broken = tuple(i in (8, 11) for i in range(20))
    values = tuple(toks[1:-1])
    assert format_seq(toks) == SequenceView(values, broken, None)
    assert format_seq(torch.tensor(toks), torch.tensor(0.25)) == SequenceView(values, broken, 0.25)
    assert format_seq(toks, 0.0).prob == 0.0 and format_seq(toks, 1).prob == 1.0  # both bounds are probabilities
    for prob in (-0.001, 1.001):
        with pytest.raises(ValueError, match=rf"^prob must be a probability in \[0, 1\], got {prob}$"):
            format_seq(toks, prob)
    with pytest.raises(ValueError, match=r"^format_seq shows one sequence; got a batch of 3$"):
        format_seq([toks] * 3)


# Written out by hand: values 05 06 08 05 with the middle pair (06, 08) marked.
VIEW = SequenceView((5, 6, 8, 5), (False, True, True, False), 0.25)
VIEW_TEXT = "START |05|*06*|*08*|05| END  ->  P(palindrome) = 0.250"


def test_sequence_view_text_and_html_by_hand():
    assert str(VIEW) == repr(VIEW) == VIEW_TEXT
    assert str(SequenceView((5, 6), (False, False))) == "START |05|06| END"
    plain = '<span style="background:rgba(128,128,128,0.12);padding:1px 4px;margin:0 1px;border-radius:3px">{}</span>'
    bold = (
        '<span style="background:#e8590c;color:white;font-weight:bold;padding:1px 4px;margin:0 1px;'
        'border-radius:3px">{}</span>'
    )
    cells = plain.format("05") + bold.format("06") + bold.format("08") + plain.format("05")
    title = "START |05|*06*|*08*|05| END  -&gt;  P(palindrome) = 0.250"
    head = f'<div class="palindrome-seq" title="{title}" style="font-family:monospace;white-space:nowrap;margin:2px 0">'
    prob = ' <span style="margin-left:8px">&rarr; P(palindrome) = <b>0.250</b></span>'
    assert VIEW._repr_html_() == f"{head}START {cells} END{prob}</div>"
    no_prob = SequenceView((5, 5), (False, False))._repr_html_()
    assert no_prob.endswith(f"START {plain.format('05')}{plain.format('05')} END</div>")
    assert f'title="{html_module.escape("START |05|05| END")}"' in no_prob
    ragged = SequenceView((5, 6, 8), (False, True))  # one mark short: refused, not silently cut
    with pytest.raises(ValueError, match="argument 2 is shorter than argument 1"):
        str(ragged)
    with pytest.raises(ValueError, match="argument 2 is shorter than argument 1"):
        ragged._repr_html_()


def test_display_seq_displays_in_a_kernel_and_prints_elsewhere(monkeypatch, capsys):
    import IPython
    import IPython.display

    toks = [START] + [5, 6] + [0] * 16 + [8, 5] + [END]
    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    expected = format_seq(toks, 0.25)
    for shell in (None, SimpleNamespace()):  # no IPython shell; a terminal shell without a kernel
        monkeypatch.setattr(IPython, "get_ipython", lambda shell=shell: shell)
        display_seq(toks, 0.25)
        assert capsys.readouterr().out == str(expected) + "\n" and shown == []
    monkeypatch.setattr(IPython, "get_ipython", lambda: SimpleNamespace(kernel=object()))
    display_seq(toks, 0.25)
    assert shown == [expected] and capsys.readouterr().out == ""
    monkeypatch.setitem(sys.modules, "IPython", None)  # no IPython at all: printed
    display_seq(toks)
    assert capsys.readouterr().out == "START |05|*06*|" + "00|" * 16 + "*08*|05| END\n"  # 06 and 08 mirror each other
