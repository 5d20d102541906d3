"""Figures of the churn reports: small multiples, one panel per variable in one grid, where one
full-width chart per variable would fill pages; curves thinned to what a reader can see."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLOUR = "#4c78a8"
CURVE_POINTS = 400  # points drawn per curve: a report at the default scale otherwise carries one per user


def thin(frame: pd.DataFrame, points: int = CURVE_POINTS, also: tuple[int, ...] = ()) -> pd.DataFrame:
    """About ``points`` rows of a curve, evenly spaced along it, first and last kept, and the rows
    at positions ``also`` (the chosen point): for drawing only; thresholds and scores use every row."""
    if len(frame) <= points:
        return frame
    keep = np.append(np.linspace(0, len(frame) - 1, points).round().astype(int), np.asarray(also, dtype=int))
    return frame.iloc[np.unique(keep)]


def small_multiples(
    panels: dict[str, pd.DataFrame],
    y: str,
    x: str | None = None,
    cols: int = 3,
    title: str = "",
    interval: tuple[str, str] | None = None,
    hover: str | None = None,
    panel_height: int = 240,
) -> go.Figure:
    """One bar panel per entry of ``panels`` (panel title → frame): categories from column ``x``
    (default: the frame's first column) shown as text, bar height ``y``, optional error bars from
    the ``interval`` columns (low, high) and a ``hover`` column."""
    names = list(panels)
    if not names:
        raise ValueError("no panel to draw")
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=names,
        horizontal_spacing=0.06,
        vertical_spacing=min(0.3 / rows + 0.04, 0.15),
    )
    for k, name in enumerate(names):
        frame = panels[name]
        column = x or frame.columns[0]
        bar = go.Bar(x=frame[column].astype(str), y=frame[y], name=name, showlegend=False, marker_color=COLOUR)
        if interval:
            low, high = interval
            bar.error_y = dict(type="data", array=frame[high] - frame[y], arrayminus=frame[y] - frame[low], thickness=1)
        if hover:
            bar.customdata = frame[[hover]].to_numpy()
            bar.hovertemplate = f"%{{x}}<br>{y} %{{y:.4g}}<br>{hover} %{{customdata[0]:,}}<extra>{name}</extra>"
        fig.add_trace(bar, row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(type="category", tickfont_size=9)
    fig.update_layout(title=title, height=panel_height * rows + 90, margin=dict(t=90, l=40, r=20, b=30), font_size=11)
    return fig
