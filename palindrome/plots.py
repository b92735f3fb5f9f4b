"""Plotting wrappers: plotly figures and circuitsvis attention patterns with small outputs.

Figures are stored in notebooks as a few kB of HTML that draws with a page-level library
when one is present (the built book ships plotly.js and circuitsvis once, as static
assets) and otherwise loads it from a CDN (a live Jupyter or Colab session). No output
ever inlines a whole JavaScript library.
"""

from __future__ import annotations

import html
import json
import uuid
from typing import Optional, Sequence, Union

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
from jaxtyping import Float
from plotly.io._base_renderers import MimetypeRenderer
from plotly.offline import get_plotlyjs_version
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray, Sequence[float]]

RENDERER_NAME = "palindrome"
PLOTLY_CDN = f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
PAL_COLOR, NONPAL_COLOR = "#1f77b4", "#d62728"
"""Colours for palindromes and non-palindromes, used in every figure."""


def _numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _loader_script(global_name: str, cdn_url: str, draw_js: str, module: bool = False) -> str:
    """JS that runs ``draw_js`` once ``window[global_name]`` exists, fetching it from the CDN if absent."""
    load = (
        f'import("{cdn_url}").then(function(m){{window.{global_name}=m;draw();}});'
        if module
        else (
            f'var s=document.createElement("script");s.src="{cdn_url}";'
            "s.onload=draw;document.head.appendChild(s);"
        )
    )
    return (
        "<script>(function(){"
        f"function draw(){{{draw_js}}}"
        f"if(window.{global_name}){{draw();}}else{{{load}}}"
        "})();</script>"
    )


def figure_html(fig: Union[go.Figure, dict]) -> str:
    """A plotly figure as a small div + script (no plotly.js inside)."""
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
    """One or more named series against a shared x axis (markers or lines)."""
    fig = go.Figure()
    for name, y in ys.items():
        color = (colors or {}).get(name)
        fig.add_trace(
            go.Scatter(
                x=_numpy(x), y=_numpy(y), mode=mode, name=name,
                marker=dict(color=color), line=dict(color=color),
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
    arrays = {k: _numpy(v).ravel() for k, v in groups.items()}
    lo = min(float(a.min()) for a in arrays.values() if a.size)
    hi = max(float(a.max()) for a in arrays.values() if a.size)
    size = (hi - lo) / nbins if hi > lo else 1.0
    fig = go.Figure()
    for name, arr in arrays.items():
        fig.add_trace(
            go.Histogram(
                x=arr, name=name, opacity=0.6,
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
        attention = torch.as_tensor(attention).detach().float().cpu()
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
        draw = (
            f"CircuitsVis.render('{div_id}',CircuitsVis.AttentionPatterns,"
            f"{json.dumps(self.props)});"
        )
        return (
            f'<div id="{div_id}" class="palindrome-circuitsvis" style="margin:15px 0"></div>'
            + _loader_script("CircuitsVis", cdn, draw, module=True)
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
