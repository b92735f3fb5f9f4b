"""Arguments for the property test (tests/test_properties.py): good and bad values by parameter name and annotation.

``Arguments.strategy(fn, param, drawn)`` returns a Hypothesis strategy for one parameter of a
public callable, chosen first by the parameter's name (``toks``, ``labels``, ``layer``, ``scale``,
``out``...), then by its annotation (``int``, ``float``, ``str``, ``PathLike``, ``Optional[...]``);
``drawn`` holds the arguments already drawn, so labels can match (or not) the batch drawn before them.
Parameters of the package's own types (the model, an Ablator, a SweepResult, Findings...) always get
a real object built once from the real model; bad values are drawn for what a reader types: tokens,
values, labels, positions, layers and heads, sizes and seeds, floats (NaN and infinities included),
strings naming a kind, devices and paths (a path under a regular file, a folder where a file belongs).
``None`` means no strategy: the test then fails and asks for one.
"""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from hypothesis import strategies as st

NAN, INF = float("nan"), float("inf")
BAD_FLOATS = [NAN, INF, -INF, 0.0, -1.0, "1.0", None]
BAD_INTS = [-1, -(2**70), 2**70, 1.5, "3", True, None]

EXAMPLES = 8
SLOW: dict[str, int] = {}
TOKEN_NAMES = {"toks", "tokens", "sequence", "source", "reference_toks", "base", "decoys", "pool_toks", "scale_toks"}
SIZE_NAMES = {
    "n",
    "size",
    "n_bases",
    "n_samples",
    "n_per_position",
    "reference_size",
    "batch_size",
    "n_bins",
    "jobs",
    "nbins",
    "digits",
    "width",
    "train_size",
    "val_size",
    "epochs",
    "threads",
    "max_steps",
}
SEED_NAMES = {"seed"}
POSITION_NAMES = {"position", "dest", "src", "query"}
FLOAT_NAMES = {
    "scale",
    "threshold",
    "fraction",
    "atol",
    "sigmas",
    "timeout",
    "midpoint",
    "spacing",
    "x",
    "clean",
    "ablated",
    "circuit_value",
    "h10_broken",
    "h11_broken",
    "h11_ablated_missed",
    "circuit",
    "mirror_20",
    "mirror_18",
    "self_palindromes",
    "self_broken",
    "lr",
    "weight_decay",
}
WORDS = {
    "kind": ["mean", "zero", "noise", "resample", "bogus", ""],
    "activation": ["result", "q", "k", "v", "z", "pattern", "bogus"],
    "method": ["mean", "resample", "bogus"],
    "side": ["first", "second", "middle"],
    "ln": ["ln1", "ln2", "ln_final", "bogus"],
    "head": ["0.0", "1.0", "1.1", "9.9", None],  # the live page's head names (page_outputs)
}


def one_or_batch(t: torch.Tensor, k: int) -> torch.Tensor:
    return t[0] if k == 0 else t[:k]


class Arguments:
    """Good and bad values for every parameter name the package uses, built once from the real model."""

    def __init__(self, model, tmp: Path, checkpoint: Path, objects: dict[str, Any]):
        import shutil

        from palindrome import data, inputs

        # a copy: writing functions (write_atomically, save_checkpoint...) get it as a path and may overwrite it
        self.checkpoint = Path(shutil.copyfile(checkpoint, tmp / "checkpoint_copy.pt"))
        self.model, self.tmp, self.objects = model, tmp, objects
        gen = torch.Generator().manual_seed(0)
        self.pool = data.PalindromeDataset(16, seed=0).toks
        self.palindromes = inputs.random_palindromes(8, gen)
        (tmp / "a_file").write_bytes(b"not a checkpoint")
        (tmp / "a_dir").mkdir(exist_ok=True)
        (tmp / "a_dir" / "x.pt").write_bytes(b"x")

    def examples(self, name: str) -> int:
        """How many examples Hypothesis draws for ``name`` (fewer for the slower callables)."""
        return SLOW.get(name, EXAMPLES)

    # ---- tokens -----------------------------------------------------------------------
    def bad_tokens(self) -> list[Any]:
        p = self.pool
        wrong_value = p[:2].clone()
        wrong_value[0, 3] = 40
        no_start = p[:2].clone()
        no_start[:, 0] = 5
        return [
            p[:2].float(),
            torch.full((2, 22), NAN),
            [31, 99, 5, 32],
            wrong_value,
            no_start,
            p[:, :21],
            p[:0],
            p[None, :2],
            "31 1 2 32",
            None,
            p[:2].bool(),
            [[31] + [1] * 20 + [32], [1, 2]],
        ]

    def tokens(self, palindromes_only: bool = False) -> st.SearchStrategy:
        good = self.palindromes if palindromes_only else self.pool
        goods = st.builds(one_or_batch, st.just(good), st.integers(0, 6))
        lists = st.integers(1, 4).map(lambda k: good[:k].tolist())
        bad = [self.pool[:3]] if palindromes_only else []  # non-palindromes where palindromes are needed
        return st.one_of(goods, goods, lists, st.sampled_from(self.bad_tokens() + bad))

    def labels(self, drawn: dict) -> st.SearchStrategy:
        from palindrome.tokens import is_palindrome

        toks = next((drawn[k] for k in ("toks", "tokens") if k in drawn), None)
        try:
            good = is_palindrome(toks).reshape(-1)
        except Exception:  # tokens were bad: any labels will do, the tokens must be refused
            good = torch.tensor([1, 0])
        bad = [
            good.float(),
            torch.full_like(good, 2),
            torch.cat([good, good]),
            good[:0] if len(good) > 1 else torch.tensor([0, 1, 1]),
            [0.5] * len(good),
            "1",
            None,
        ]
        return st.one_of(st.just(good), st.just(good.tolist()), st.sampled_from(bad))

    # ---- numbers ------------------------------------------------------------------------
    @staticmethod
    def small_int(lo: int, hi: int) -> st.SearchStrategy:
        return st.one_of(st.integers(lo, hi), st.integers(lo, hi), st.sampled_from(BAD_INTS))

    @staticmethod
    def floats(lo: float = -2.0, hi: float = 10.0) -> st.SearchStrategy:
        return st.one_of(st.floats(lo, hi, allow_nan=False), st.sampled_from(BAD_FLOATS))

    def positions(self) -> st.SearchStrategy:
        good = st.lists(st.integers(1, 20), min_size=1, max_size=4, unique=True).map(tuple)
        second = st.lists(st.integers(11, 20), min_size=1, max_size=3, unique=True).map(tuple)
        bad = [(), (0,), (21,), (25,), (-1,), (1.5,), ("3",), (True,), "12", 12, None, (11, 11)]
        return st.one_of(good, second, st.sampled_from(bad))

    # ---- paths ----------------------------------------------------------------------------
    def paths(self, name: str) -> st.SearchStrategy:
        t = self.tmp
        under_file = t / "a_file" / "x.pt"
        bad = [
            under_file,
            t / "a_file" / "sub" / "deeper",
            t / "missing" / "x.pt" if name != "out" else t / "a_dir",
            "",
            7,
            None,
        ]
        if name in {"checkpoint", "path"}:
            good = [self.checkpoint, str(self.checkpoint)]
            bad += [t / "a_file", t / "a_dir", t / "nothing_here.pt"]
        else:
            good = [t / "fresh" / "out.pt", t / "fresh_dir", str(t / "fresh2")]
        return st.sampled_from(good + bad)

    # ---- the chooser ------------------------------------------------------------------------
    def strategy(self, fn: Callable, param: inspect.Parameter, drawn: dict) -> Optional[st.SearchStrategy]:
        name, ann = param.name, str(param.annotation)
        per_function = self.objects.get("__per_function__", {}).get(qualified_name(fn), {})
        if name in per_function:  # exactly these values: a default here would be too costly or unsafe
            return per_function[name]
        s = self.by_name(fn, name, ann, drawn)
        if s is None:
            s = self.by_annotation(name, ann)
        if s is None:
            return None
        cheap = not (name in SIZE_NAMES and isinstance(param.default, int) and param.default > 8)
        if param.default is not inspect.Parameter.empty and cheap:  # large default sizes: never drawn
            s = st.one_of(st.just(param.default), s)
        return s

    def by_name(self, fn: Callable, name: str, ann: str, drawn: dict) -> Optional[st.SearchStrategy]:
        o = self.objects
        if name == "model":
            return st.just(self.model)
        if name in o:
            return o[name]
        if name in TOKEN_NAMES and "TrainConfig" not in ann:
            return self.tokens(palindromes_only=name == "base" and "single_edit" not in fn.__name__)
        if name == "bases":
            return self.tokens(palindromes_only=True)
        if name == "labels":
            return self.labels(drawn)
        if name in {"layer", "writer_layer", "reader_layer"}:
            return self.small_int(0, 1)
        if name == "head" and "str" not in ann:
            return self.small_int(0, 1)
        if name in POSITION_NAMES:
            return self.small_int(0, 21)
        if name in {"positions", "blind"}:
            return self.positions()
        if name in SEED_NAMES:
            return st.one_of(st.integers(0, 3), st.sampled_from([-1, 2**63 - 1, 2**70, 1.5, "1", None]))
        if name in SIZE_NAMES:
            return self.small_int(0, 4)
        if name in {"half_length"}:
            return self.small_int(1, 10)
        if name in {"max_value"}:
            return st.one_of(st.just(30), st.integers(1, 30), st.sampled_from(BAD_INTS))
        if name in FLOAT_NAMES:
            return self.floats()
        if name in WORDS:
            return st.sampled_from(WORDS[name])
        if name == "device":
            return st.sampled_from(["cpu", None, torch.device("cpu"), "cuda", "cuda:7", "bogus", 3])
        if name in {"checkpoint", "path", "out", "dest", "directory", "out_dir", "folder"}:
            return self.paths(name)
        return None

    def by_annotation(self, name: str, ann: str) -> Optional[st.SearchStrategy]:
        optional = ann.startswith("Optional[")
        inner = ann[len("Optional[") : -1] if optional else ann
        s: Optional[st.SearchStrategy] = None
        if inner == "int":
            s = self.small_int(0, 4)
        elif inner == "float":
            s = self.floats()
        elif inner == "bool":
            s = st.booleans()
        elif inner == "str":
            s = st.one_of(st.sampled_from(["H0.0", "mean", "x", ""]), st.text(max_size=8))
        elif inner == "PathLike":
            s = self.paths(name)
        elif inner in {"torch.Generator"}:
            s = st.sampled_from([torch.Generator().manual_seed(1), "gen", 3])
        if s is not None and optional:
            s = st.one_of(st.none(), s)
        return s


def qualified_name(fn: Callable) -> str:
    """``module.name`` of a package callable ("chapters.roles.analyse_model"): the key of the per-function tables."""
    return f"{fn.__module__.removeprefix('palindrome.')}.{fn.__qualname__}"


def non_finite_arguments(drawn: dict) -> dict[str, list[str]]:
    """The drawn arguments that are NaN or infinite floats, float tensors (or lists of them) holding NaN or inf,
    or dicts of tensors holding NaN, each with the names an error message may use for it: the argument's name, and
    for a dict the keys of its NaN entries. Inf inside a dict is left alone: a state dict's IGNORE buffer and a
    cache's masked attention scores are -inf by design."""

    def bad(v: Any) -> bool:
        return isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all().item()

    def has_nan(v: Any) -> bool:
        return isinstance(v, torch.Tensor) and v.is_floating_point() and v.isnan().any().item()

    out = {}
    for name, v in drawn.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[name] = [name]
        elif bad(v) or (isinstance(v, list | tuple) and any(bad(x) for x in v)):
            out[name] = [name]
        elif isinstance(v, dict) and any(has_nan(x) for x in v.values()):
            out[name] = [name, *(str(k) for k, x in v.items() if has_nan(x))]
    return out


def _is_empty(value: Any) -> bool:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value.empty
    if isinstance(value, pd.Series | tuple | list | set | frozenset | dict):
        return len(value) == 0
    return False


def empty_problem(result: Any, drawn: dict) -> Optional[str]:
    """Why ``result`` is an empty table, tuple, set, list or dict though no argument in ``drawn`` was empty; or None."""
    if not _is_empty(result) or any(
        _is_empty(v) or (isinstance(v, torch.Tensor) and v.numel() == 0) for v in drawn.values()
    ):
        return None
    return (
        f"returned an empty {type(result).__name__} for non-empty input: refuse the input with a ValueError, or, "
        f"where empty is a correct answer, list the callable in EMPTY_OK (tests/test_properties.py) with the reason"
    )


def finite_problem(value: Any, where: str = "result") -> Optional[str]:
    """A description of the first non-finite number in ``value`` (tensors, floats, containers, tables)."""
    import dataclasses

    import pandas as pd

    if isinstance(value, torch.Tensor):
        if (value.is_floating_point() or value.is_complex()) and not torch.isfinite(value).all():
            return f"{where} holds non-finite values"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value}"
    if isinstance(value, pd.DataFrame | pd.Series):
        numeric = (
            value.select_dtypes("number")
            if isinstance(value, pd.DataFrame)
            else (value if pd.api.types.is_numeric_dtype(value) else None)
        )
        if (
            numeric is not None
            and not pd.isna(numeric).to_numpy().any()
            and (abs(numeric.to_numpy(dtype=float)) < INF).all()
        ):
            return None
        return None if numeric is None else f"{where} (a table) holds NaN or infinite numbers"
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k).endswith(".IGNORE"):  # a state dict's attention-mask buffer: -inf by design
                continue
            problem = finite_problem(v, f"{where}[{k!r}]")
            if problem:
                return problem
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            problem = finite_problem(v, f"{where}[{i}]")
            if problem:
                return problem
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            problem = finite_problem(getattr(value, f.name), f"{where}.{f.name}")
            if problem:
                return problem
    return None


def type_problem(value: Any, annotation: Any, namespace: dict) -> Optional[str]:
    """Why ``value`` does not match the return annotation (jaxtyping shapes included), or None."""
    if annotation is inspect.Signature.empty:
        return None
    text = str(annotation)
    if inspect.isclass(annotation):
        return (
            None if isinstance(value, annotation) else f"returned {type(value).__name__}, not a {annotation.__name__}"
        )
    if text == "None":
        return None if value is None else f"returned {type(value).__name__}, documented None"
    try:
        expected = eval(text, namespace)  # noqa: S307 - annotations of our own package
    except Exception:
        return None  # an annotation we cannot evaluate (a TYPE_CHECKING-only name): no type check
    origin = getattr(expected, "__origin__", None)
    import typing

    if origin is typing.Union:
        options = expected.__args__
        return (
            None
            if any(type_problem(value, o, namespace) is None for o in options)
            else (f"returned {type(value).__name__}, documented {text}")
        )
    check = origin or expected
    if check is float:
        ok = isinstance(value, float | int) and not isinstance(value, bool)
    elif isinstance(check, type):
        try:
            ok = isinstance(value, check)
        except TypeError:
            ok = True
    else:
        ok = True
    return None if ok else f"returned {type(value).__name__} {getattr(value, 'shape', '')}, documented {text}"


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)
