"""Figure outputs are small, name their heads, and never inline a JavaScript library."""

import json
import re

import plotly.graph_objects as go
import pytest
import torch

from palindrome.plots import attention_patterns, figure_html, imshow


def test_plotly_figures_render_as_small_html_without_plotlyjs():
    fig = imshow(torch.randn(22, 22), "a heatmap")
    bundle = fig._repr_mimebundle_({}, {})
    assert set(bundle) == {"text/html"}
    html = bundle["text/html"]
    assert 'class="palindrome-plotly"' in html and "Plotly.newPlot" in html
    assert len(html) < 40_000  # data and layout only; plotly.js is ~4.6 MB
    assert "window.Plotly" in html  # uses the page's copy when the book provides one


def test_attention_patterns_label_heads_and_stay_small():
    pattern = torch.rand(2, 22, 22).softmax(-1)
    html = attention_patterns(pattern, [str(i) for i in range(22)], ["0.0", "1.0"])._repr_html_()
    props = json.loads(re.search(r"AttentionPatterns,(\{.*?\})\);\}", html).group(1))
    assert props["headLabels"] == ["0.0", "1.0"]  # the prop the component reads
    assert len(props["attention"]) == 2 and len(html) < 40_000
    assert 'class="palindrome-circuitsvis"' in html and "window.CircuitsVis" in html


@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.rand(2, 3, 4), ["a"] * 4), "dest == src"),
        ((torch.rand(1, 4, 4), ["a"] * 3), "tokens"),
        ((torch.rand(2, 4, 4), ["a"] * 4, ["only one"]), "head names"),
    ],
)
def test_attention_patterns_reject_bad_shapes(args, match):
    with pytest.raises(ValueError, match=match):
        attention_patterns(*args)


def test_figure_html_accepts_figures_and_dicts():
    fig = go.Figure(go.Bar(x=["a"], y=[1]))
    assert "palindrome-plotly" in figure_html(fig) and "palindrome-plotly" in figure_html(fig.to_plotly_json())
