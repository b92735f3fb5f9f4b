"""Plotting wrappers: plotly figures and circuitsvis attention patterns with small outputs.

Figures are stored in notebooks as a few kB of HTML that draws with a page-level library
when one is present (the built book ships plotly.js and circuitsvis once, as static
assets) and otherwise loads it from a CDN (a live Jupyter or Colab session). No output
ever inlines a whole JavaScript library.
"""

from __future__ import annotations

import html
import importlib.util
import json
import uuid
from pathlib import Path
from typing import Optional, Protocol, Sequence, Union

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from jaxtyping import Float
from plotly.io._base_renderers import MimetypeRenderer
from plotly.offline import get_plotlyjs_version
from plotly.subplots import make_subplots
from torch import Tensor

from palindrome.data import token_strings
from palindrome.tokens import (
    MAX_SIZE,
    TokensLike,
    check_finite,
    check_floats,
    check_int,
    mismatch_mask,
    validate_tokens,
)


class QuantileSweep(Protocol):
    """What ``quantile_boxes`` needs of a sweep (``blindspots.SweepResult`` has it): positions and quantiles."""

    positions: Sequence[int]

    def quantiles(self, qs: Sequence[float]) -> Tensor:
        """Quantiles of P(palindrome), one row per position and one column per q."""
        ...


ArrayLike = Union[Tensor, np.ndarray, Sequence[float]]

RENDERER_NAME = "palindrome"
PLOTLY_CDN = f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
PAL_COLOR, NONPAL_COLOR = "#1f77b4", "#d62728"
"""Colours for palindromes and non-palindromes, used in every figure."""
OTHER_COLOR: str = "#7f7f7f"
"""Colour for everything that is neither (positions nobody blames, say)."""


LIBRARY_FILES: dict[str, tuple[str, str]] = {
    "plotly.min.js": ("plotly", "package_data/plotly.min.js"),
    "circuitsvis.js": ("circuitsvis", "dist/cdn/iife.js"),
    "tex-svg.js": ("mathjax", "static/mathjax/es5/tex-svg.js"),
}
"""Browser libraries an offline page loads: file name -> (installed Python package, path inside it).

The figures above draw with ``window.Plotly`` and ``window.CircuitsVis`` when a page already loaded
them; the built book (``_ext/book_assets.py``), the standalone "Try it" page and ``palindrome.book.report``
copy these files next to their HTML, so nothing is fetched from a CDN."""


def library_file(name: str) -> Path:
    """Where the installed package keeps the browser library ``name`` (a key of ``LIBRARY_FILES``)."""
    if name not in LIBRARY_FILES:
        raise ValueError(f"name must be one of {sorted(LIBRARY_FILES)}, got {name!r}")
    package, relative = LIBRARY_FILES[name]
    spec = importlib.util.find_spec(package)  # where the package is installed, without importing it
    if spec is None or spec.origin is None:
        raise LibraryMissingError(f"{name} comes from the Python package {package}, which is not installed")
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise LibraryMissingError(f"{package} is installed without {relative}; reinstall it (pip install -U {package})")
    return path


class LibraryMissingError(FileNotFoundError):
    """A browser library that an offline page needs is missing from its installed Python package."""


def _numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def _check_colors(colors: object, by_name: bool) -> None:
    """Raise ValueError unless ``colors`` is None or a dict of names to CSS colours (a list of them if not by name)."""
    expected = dict if by_name else (list, tuple)
    if colors is not None and not isinstance(colors, expected):
        what = "a dict of series names to CSS colours" if by_name else "a list of CSS colours, one per bar"
        raise ValueError(f"colors must be None or {what}, got {type(colors).__name__}")


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _loader_script(global_name: str, cdn_url: str, draw_js: str, module: bool = False) -> str:
    """JS that runs ``draw_js`` once ``window[global_name]`` exists, fetching it from the CDN if absent."""
    load = (
        f'import("{cdn_url}").then(function(m){{window.{global_name}=m;draw();}});'
        if module
        else (f'var s=document.createElement("script");s.src="{cdn_url}";s.onload=draw;document.head.appendChild(s);')
    )
    return (
        "<script>(function(){"
        f"function draw(){{{draw_js}}}"
        f"if(window.{global_name}){{draw();}}else{{{load}}}"
        "})();</script>"
    )


def figure_html(fig: Union[go.Figure, dict]) -> str:
    """A plotly figure as a small div + script (no plotly.js inside)."""
    if not isinstance(fig, (go.Figure, dict)):
        raise ValueError(f"fig must be a plotly Figure or its dict (fig.to_dict()), got {type(fig).__name__}")
    fig_dict = fig.to_plotly_json() if isinstance(fig, go.Figure) else fig
    div_id = _new_id("plotly")
    spec = pio.to_json(
        {"data": fig_dict.get("data", []), "layout": fig_dict.get("layout", {})},
        validate=False,
        remove_uids=True,
    )
    draw = (
        f"var f={spec};var el=document.getElementById('{div_id}');"
        "Plotly.newPlot(el,f.data,f.layout,{responsive:true,displaylogo:false});"
    )
    height = fig_dict.get("layout", {}).get("height") or 450
    return (
        f'<div id="{div_id}" class="palindrome-plotly" style="width:100%;min-height:{height}px"></div>'
        + _loader_script("Plotly", PLOTLY_CDN, draw)
    )


class _PalindromeRenderer(MimetypeRenderer):
    """Plotly renderer emitting ``figure_html`` as text/html."""

    def to_mimebundle(self, fig_dict: dict) -> dict:
        return {"text/html": figure_html(fig_dict)}


def use_book_renderer() -> None:
    """Make every plotly figure render through ``figure_html`` (done on import)."""
    pio.renderers[RENDERER_NAME] = _PalindromeRenderer()
    pio.renderers.default = RENDERER_NAME


use_book_renderer()


def imshow(
    matrix: Float[ArrayLike, "rows cols"],
    title: str,
    x: Optional[Sequence] = None,
    y: Optional[Sequence] = None,
    labels: Optional[dict] = None,
    midpoint: Optional[float] = 0.0,
    text_auto: Union[bool, str] = False,
    **layout,
) -> go.Figure:
    """A heatmap with a diverging scale centred on ``midpoint`` (None: sequential scale)."""
    z = _numpy(matrix)
    if z.ndim != 2:
        raise ValueError(f"imshow needs a 2-D matrix, got shape {z.shape}")
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(x) if x is not None else None,
            y=list(y) if y is not None else None,
            colorscale="RdBu" if midpoint is not None else "Viridis",
            zmid=midpoint,
            reversescale=midpoint is not None,
            texttemplate=("%{z:" + text_auto + "}") if isinstance(text_auto, str) else None,
            hovertemplate="x=%{x}<br>y=%{y}<br>value=%{z:.4g}<extra></extra>",
        )
    )
    labels = labels or {}
    fig.update_layout(
        title=title,
        xaxis_title=labels.get("x"),
        yaxis_title=labels.get("y"),
        yaxis_autorange="reversed",
        **layout,
    )
    return fig


def scatter(
    x: ArrayLike,
    ys: dict[str, ArrayLike],
    title: str,
    xlabel: str,
    ylabel: str,
    mode: str = "markers",
    colors: Optional[dict[str, str]] = None,
    hline: Optional[float] = None,
    **layout,
) -> go.Figure:
    """One or more named series against a shared x axis (markers or lines); NaN in a series leaves a gap."""
    if isinstance(x, Tensor):
        check_floats("x", x)
    if not isinstance(ys, dict) or not ys:
        raise ValueError(f"ys must be a non-empty dict of series names to values, got {type(ys).__name__}")
    _check_colors(colors, by_name=True)
    fig = go.Figure()
    for name, y in ys.items():
        color = (colors or {}).get(name)
        fig.add_trace(
            go.Scatter(
                x=_numpy(x),
                y=_numpy(y),
                mode=mode,
                name=name,
                marker=dict(color=color),
                line=dict(color=color),
            )
        )
    if hline is not None:
        fig.add_hline(y=hline, line_color="black", line_width=1)
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, **layout)
    return fig


def bar(
    values: ArrayLike,
    names: Sequence,
    title: str,
    ylabel: str,
    colors: Optional[Sequence[str]] = None,
    **layout,
) -> go.Figure:
    """A bar chart of named values."""
    values = check_floats("values", values)
    _check_colors(colors, by_name=False)
    fig = go.Figure(go.Bar(x=[str(n) for n in names], y=_numpy(values), marker_color=colors))
    fig.update_layout(title=title, yaxis_title=ylabel, **layout)
    return fig


def histograms(
    groups: dict[str, ArrayLike],
    title: str,
    xlabel: str,
    colors: Optional[dict[str, str]] = None,
    nbins: int = 50,
    **layout,
) -> go.Figure:
    """Overlaid histograms of named groups on shared bins."""
    nbins = check_int("nbins", nbins, 1, maximum=MAX_SIZE)
    _check_colors(colors, by_name=True)
    if not isinstance(groups, dict):
        raise ValueError(f"groups must be a dict of named arrays, got {type(groups).__name__}")
    arrays = {k: _numpy(check_floats(f"groups[{k!r}]", v)).ravel() for k, v in groups.items()}
    if not any(a.size for a in arrays.values()):
        raise ValueError("groups must hold at least one non-empty array of values")
    lo = min(float(a.min()) for a in arrays.values() if a.size)
    hi = max(float(a.max()) for a in arrays.values() if a.size)
    size = (hi - lo) / nbins if hi > lo else 1.0
    fig = go.Figure()
    for name, arr in arrays.items():
        fig.add_trace(
            go.Histogram(
                x=arr,
                name=name,
                opacity=0.6,
                xbins=dict(start=lo, end=hi + size, size=size),
                marker_color=(colors or {}).get(name),
            )
        )
    fig.update_layout(barmode="overlay", title=title, xaxis_title=xlabel, yaxis_title="count", **layout)
    return fig


def pal_colors() -> dict[str, str]:
    """The colour map {palindrome, non-palindrome} used across the book."""
    return {"palindrome": PAL_COLOR, "non-palindrome": NONPAL_COLOR}


# --- circuitsvis ---------------------------------------------------------------------------------


def _circuitsvis_version() -> str:
    import circuitsvis

    return circuitsvis.__version__


class AttentionPatterns:
    """A circuitsvis AttentionPatterns view whose notebook output is a few kB of HTML."""

    def __init__(
        self,
        attention: Float[Tensor, "head dest src"],
        tokens: Sequence[str],
        head_names: Optional[Sequence[str]] = None,
    ) -> None:
        attention = check_floats("attention", attention).detach().float().cpu()
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
            raise ValueError(f"tokens must be a list of strings, one per position, got {type(tokens).__name__}")
        if attention.ndim == 2:
            attention = attention.unsqueeze(0)
        if attention.ndim != 3 or attention.shape[1] != attention.shape[2]:
            raise ValueError(
                f"attention must have shape (head, dest, src) with dest == src, got {tuple(attention.shape)}"
            )
        if len(tokens) != attention.shape[-1]:
            raise ValueError(f"got {len(tokens)} tokens for attention over {attention.shape[-1]} positions")
        names = list(head_names) if head_names is not None else [str(i) for i in range(attention.shape[0])]
        if len(names) != attention.shape[0]:
            raise ValueError(f"got {len(names)} head names for {attention.shape[0]} heads")
        self.props = {
            "attention": np.round(attention.numpy(), 4).tolist(),
            "tokens": list(tokens),
            "headLabels": names,  # the AttentionPatterns component's own prop name
        }

    def _repr_html_(self) -> str:
        div_id = _new_id("circuits-vis")
        cdn = f"https://unpkg.com/circuitsvis@{_circuitsvis_version()}/dist/cdn/esm.js"
        draw = f"CircuitsVis.render('{div_id}',CircuitsVis.AttentionPatterns,{json.dumps(self.props)});"
        return f'<div id="{div_id}" class="palindrome-circuitsvis" style="margin:15px 0"></div>' + _loader_script(
            "CircuitsVis", cdn, draw, module=True
        )

    def __repr__(self) -> str:
        heads = ", ".join(html.escape(n) for n in self.props["headLabels"])
        return f"AttentionPatterns(heads=[{heads}], {len(self.props['tokens'])} tokens)"


def attention_patterns(
    attention: Float[Tensor, "head dest src"],
    tokens: Sequence[str],
    head_names: Optional[Sequence[str]] = None,
) -> AttentionPatterns:
    """Interactive attention patterns (circuitsvis) for one sequence, one or more heads."""
    return AttentionPatterns(attention, tokens, head_names)


# --- figure types shared by several chapters ----------------------------------------------------


def end_attention_bars(
    attention: Float[Tensor, "example src"],
    toks: TokensLike,
    titles: Sequence[str],
    title: str = "Attention from END",
) -> go.Figure:
    """One bar chart per example of END's attention over positions; mirror-breaking positions in red."""
    toks = validate_tokens(toks)
    attention = check_floats("attention", attention).detach().cpu()
    if attention.shape != toks.shape or len(titles) != toks.shape[0]:
        raise ValueError(
            f"need one attention row and one title per sequence: tokens {tuple(toks.shape)}, "
            f"attention {tuple(attention.shape)}, {len(titles)} titles"
        )
    mask = mismatch_mask(toks)
    rows = len(titles)
    fig = make_subplots(rows=rows, cols=1, subplot_titles=list(titles), vertical_spacing=min(0.2, 0.6 / rows))
    for row in range(toks.shape[0]):
        labels = [f"{p}:{s}" for p, s in enumerate(token_strings(toks[row]))]
        colors = [NONPAL_COLOR if m else "#9e9e9e" for m in mask[row].tolist()]
        fig.add_trace(
            go.Bar(x=labels, y=_numpy(attention[row]), marker_color=colors, showlegend=False),
            row=row + 1,
            col=1,
        )
        fig.update_yaxes(range=[0, 1], title_text="attention", row=row + 1, col=1)
    fig.update_layout(title=title, height=240 * rows + 60, margin=dict(t=80))
    return fig


def heatmap_grid(
    matrices: dict[str, Float[Tensor, "rows cols"]],
    title: str,
    x: Sequence[str],
    y: Sequence[str],
    midpoint: Optional[float] = 0.0,
    text_format: str = ".2f",
    colorbar_title: str = "",
    spacing: float = 0.08,
    **layout,
) -> go.Figure:
    """Side-by-side heatmaps on one colour scale, values printed: diverging around ``midpoint``, or sequential if None.

    ``spacing`` is the gap between panels as a fraction of the width (widen it for long row labels).
    """
    if not isinstance(matrices, dict) or not matrices:
        raise ValueError("matrices must be a dict naming at least one matrix")
    spacing = check_finite("spacing", spacing, " (the gap between panels, a fraction of the width)")
    if not 0 <= spacing < 1:
        raise ValueError(f"spacing must lie in [0, 1) (a fraction of the width), got {spacing}")
    arrays = {name: _numpy(m) for name, m in matrices.items()}
    zmin = min(float(a.min()) for a in arrays.values())
    zmax = max(float(a.max()) for a in arrays.values())
    fig = make_subplots(rows=1, cols=len(arrays), subplot_titles=list(arrays), horizontal_spacing=spacing)
    for col, z in enumerate(arrays.values(), start=1):
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=list(x),
                y=list(y),
                coloraxis="coloraxis",
                texttemplate="%{z:" + text_format + "}",
                hovertemplate="%{y} -> %{x}<br>value=%{z:.4g}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    if midpoint is None:
        colors = dict(colorscale="Viridis", cmin=zmin, cmax=zmax)
    else:
        span = max(zmax - midpoint, midpoint - zmin, 1e-9)
        colors = dict(colorscale="RdBu", reversescale=True, cmin=midpoint - span, cmax=midpoint + span)
    fig.update_layout(
        title=title,
        coloraxis=dict(**colors, colorbar=dict(title=colorbar_title)),
        height=layout.pop("height", 320),
        **layout,
    )
    return fig


def grouped_bars(table: pd.DataFrame, columns: Sequence[str], title: str, ylabel: str, **layout) -> go.Figure:
    """Bars of several columns of a table side by side, one group per row (index on the x axis)."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the table; it has {list(table.columns)}")
    fig = go.Figure([go.Bar(x=[str(i) for i in table.index], y=table[c].tolist(), name=c) for c in columns])
    fig.update_layout(barmode="group", title=title, yaxis_title=ylabel, xaxis_title=str(table.index.name), **layout)
    return fig


def quantile_boxes(result: QuantileSweep, title: str, log_y: bool = True, blind: Sequence[int] = ()) -> go.Figure:
    """Box per position from precomputed quantiles of P(palindrome): whiskers 1%-99%, box 25%-75%; blind ones red."""
    q = result.quantiles((0.01, 0.25, 0.5, 0.75, 0.99))
    fig = go.Figure()
    for i, p in enumerate(result.positions):
        color = NONPAL_COLOR if p in blind else OTHER_COLOR
        fig.add_trace(
            go.Box(
                x=[str(p)],
                lowerfence=[q[i, 0].item()],
                q1=[q[i, 1].item()],
                median=[q[i, 2].item()],
                q3=[q[i, 3].item()],
                upperfence=[q[i, 4].item()],
                name=str(p),
                marker_color=color,
                showlegend=False,
            )
        )
    fig.add_hline(y=0.5, line_dash="dot", line_color="black")
    fig.update_layout(
        title=title,
        xaxis_title="broken second-half position p (mirror 21 - p)",
        yaxis=dict(title="P(palindrome)", type="log" if log_y else "linear", exponentformat="power"),
        height=420,
    )
    return fig


def mismatch_pmf_figure(
    closed_form: Float[Tensor, " k"], measured: Float[Tensor, " k"], title: str, log_y: bool = True
) -> go.Figure:
    """Grouped bars of a closed-form and a measured distribution of mismatched-pair counts."""
    closed_form, measured = check_floats("closed_form", closed_form), check_floats("measured", measured)
    if closed_form.shape != measured.shape or closed_form.ndim != 1:
        raise ValueError(
            "closed_form and measured must be 1-D with the same length, got "
            f"{tuple(closed_form.shape)} and {tuple(measured.shape)}"
        )
    ks = list(range(closed_form.shape[0]))
    fig = bar(closed_form, ks, title, "fraction of sequences", colors=[PAL_COLOR] * len(ks))
    fig.data[0].name = "closed form"
    fig.add_trace(go.Bar(x=[str(k) for k in ks], y=measured.numpy(), name="measured", marker_color=NONPAL_COLOR))
    fig.update_layout(
        barmode="group",
        xaxis_title="number of mismatched mirror pairs",
        yaxis_type="log" if log_y else "linear",
        height=380,
    )
    return fig
