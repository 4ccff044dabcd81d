"""Parallel coordinates: every hyperparameter against validation accuracy.

Categorical and few-valued parameters become evenly spaced ticks; wide positive ranges (learning
rate, weight decay) go on a log10 axis; a parameter a trial does not have (conditional:
channels of a block it lacks, a dropout rate with dropout off) sits on an "n/a" tick below.
"""

from __future__ import annotations

import html
import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis._load import display_value, hyperparameters
from analysis.plots._style import base_layout, empty_figure
from tuner.experiment import CONFIG_PREFIX

TITLE = "Hyperparameters against validation accuracy (parallel coordinates)"
MAX_CATEGORIES = 8  # numeric parameters with at most this many values get a tick per value
LOG_RATIO = 100.0  # positive ranges wider than this go on a log axis
NA = "n/a"


class Dimension(NamedTuple):
    label: str
    values: list[float]  # positions on the axis, one per trial
    tickvals: list[float] | None
    ticktext: list[str] | None


class ParallelInfo(NamedTuple):
    trial_index: list[int]
    dimensions: list[Dimension]  # one per hyperparameter, then validation accuracy
    val_acc: list[float]


def _sort_key(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _categorical(label: str, column: pd.Series) -> Dimension:
    texts = [display_value(v) if pd.notna(v) else NA for v in column]
    cats = sorted({t for t in texts if t != NA}, key=_sort_key)
    if NA in texts:
        cats = [NA, *cats]
    code = {c: i for i, c in enumerate(cats)}
    return Dimension(
        label, [float(code[t]) for t in texts], [float(i) for i in range(len(cats))],
        [html.escape(c) for c in cats],
    )  # fmt: skip


def _numeric(label: str, column: pd.Series) -> Dimension:
    values = column.astype(float)
    present = values.dropna()
    lo, hi = float(present.min()), float(present.max())
    log = lo > 0 and hi / lo >= LOG_RATIO
    pos = np.log10(values) if log else values
    plo, phi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
    span = (phi - plo) or 1.0
    ticks: tuple[list[float], list[str]] | None = None  # (tickvals, ticktext); None: plotly's
    if log:
        exponents = [float(e) for e in range(math.floor(plo), math.ceil(phi) + 1)]
        ticks = (exponents, [f"1e{int(e)}" for e in exponents])
        label = f"{label} (log)"
    if present.size < len(values):  # conditional: missing values on an "n/a" tick below
        na_pos = plo - 0.15 * span
        pos = pos.fillna(na_pos)
        if ticks is None:
            even = [float(v) for v in np.linspace(plo, phi, 5)]
            ticks = (even, [display_value(v) for v in even])
        ticks = ([na_pos, *ticks[0]], [NA, *ticks[1]])
    tickvals, ticktext = ticks if ticks is not None else (None, None)
    return Dimension(label, [float(v) for v in pos], tickvals, ticktext)


def _get_parallel_info(trials: pd.DataFrame) -> ParallelInfo:
    if trials.empty:
        return ParallelInfo([], [], [])
    scored = trials[trials["best_val_acc"].notna()]
    dims = []
    for p in hyperparameters(trials):
        column = scored[f"{CONFIG_PREFIX}{p}"]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        if numeric and column.nunique() > MAX_CATEGORIES:
            dims.append(_numeric(html.escape(p), column))
        else:
            dims.append(_categorical(html.escape(p), column))
    acc = [float(a) for a in scored["best_val_acc"]]
    dims.append(Dimension("val acc", acc, None, None))
    return ParallelInfo([int(i) for i in scored["trial_index"]], dims, acc)


def _get_parallel_plot(info: ParallelInfo) -> go.Figure:
    if not info.trial_index or len(info.dimensions) < 2:
        return empty_figure(TITLE, "Not enough trials with a validation accuracy to compare.")
    dims = []
    for d in info.dimensions:
        spec: dict[str, Any] = {"label": d.label, "values": d.values}
        if d.tickvals is not None:
            spec.update(tickvals=d.tickvals, ticktext=d.ticktext)
        dims.append(spec)
    fig = go.Figure(
        go.Parcoords(
            dimensions=dims,
            line={"color": info.val_acc, "colorscale": "Viridis", "showscale": True,
                  "colorbar": {"title": {"text": "val acc"}}},
            labelangle=-30,
        )
    )  # fmt: skip
    fig = base_layout(fig, TITLE, height=480)
    fig.update_layout(margin={"l": 60, "r": 60, "t": 120, "b": 40})
    return fig


def plot_parallel_coordinates(trials: pd.DataFrame) -> go.Figure:
    """Every searched hyperparameter against validation accuracy, one line per trial."""
    return _get_parallel_plot(_get_parallel_info(trials))
