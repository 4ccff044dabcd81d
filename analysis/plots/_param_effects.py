"""Per-hyperparameter effect: validation accuracy against learning rate, batch size, depth,
width, kernel, dropout and optimizer, one panel each, coloured by how the trial ended.

Depth and width are what the lab varied by hand, computed from the space's parameters: depth
is the number of conv layers (n_blocks x convs_per_block), width the widest block's channels,
dropout the rate (0 when dropout is off).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis._load import display_value, hyperparameters
from analysis.plots._style import (
    base_layout,
    empty_figure,
    outcome_color,
    outcome_order,
    trial_hover,
)
from tuner.experiment import CONFIG_PREFIX

TITLE = "Effect of each hyperparameter on validation accuracy"
COLS = 4
JITTER = 0.3  # spread of points within one category, in category widths


def _col(trials: pd.DataFrame, name: str) -> pd.Series | None:
    key = f"{CONFIG_PREFIX}{name}"
    return trials[key] if key in trials else None


def _depth(trials: pd.DataFrame) -> pd.Series | None:
    blocks, convs = _col(trials, "n_blocks"), _col(trials, "convs_per_block")
    if blocks is None:
        return None
    return blocks * (convs if convs is not None else 1)


def _width(trials: pd.DataFrame) -> pd.Series | None:
    cols = sorted(c for c in trials.columns if c.startswith(f"{CONFIG_PREFIX}channels_b"))
    return trials[cols].max(axis=1) if cols else None


def _dropout(trials: pd.DataFrame) -> pd.Series | None:
    rate, on = _col(trials, "dropout_rate"), _col(trials, "dropout")
    if rate is None and on is None:
        return None
    rate = rate if rate is not None else pd.Series(0.0, index=trials.index)
    if on is not None:
        on = on.astype(str).str.lower() == "true"
        return rate.where(on, 0.0).fillna(0.0)
    return rate.fillna(0.0)


# name, axis title, how to get it from trials.csv, axis kind (log | linear | category)
PANELS: tuple[tuple[str, str, Callable[[pd.DataFrame], pd.Series | None], str], ...] = (
    ("lr", "learning rate", lambda t: _col(t, "lr"), "log"),
    ("batch_size", "batch size", lambda t: _col(t, "batch_size"), "category"),
    ("depth", "conv layers (blocks x convs)", _depth, "category"),
    ("width", "widest block (channels)", _width, "category"),
    ("kernel_size", "kernel size", lambda t: _col(t, "kernel_size"), "category"),
    ("dropout", "dropout rate (0 = off)", _dropout, "linear"),
    ("optimizer", "optimizer", lambda t: _col(t, "optimizer"), "category"),
)


class EffectPanel(NamedTuple):
    name: str
    title: str
    kind: str  # log | linear | category
    x: list  # per trial: a number, or a category's text
    categories: list[str]  # category axis order (empty for numeric axes)


class EffectInfo(NamedTuple):
    trial_index: list[int]
    val_acc: list[float]
    outcome: list[str]
    hover: list[str]
    panels: list[EffectPanel]
    budget: int


def _category_key(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _get_param_effects_info(trials: pd.DataFrame, epoch_budget: int = 1) -> EffectInfo:
    if trials.empty:
        return EffectInfo([], [], [], [], [], epoch_budget)
    scored = trials[trials["best_val_acc"].notna()]
    params = hyperparameters(trials)
    panels = []
    for name, title, get, kind in PANELS:
        values = get(scored)
        if values is None or values.notna().sum() == 0:
            continue
        if kind == "category":
            texts = [display_value(v) if pd.notna(v) else "n/a" for v in values]
            cats = sorted(set(texts), key=_category_key)
            panels.append(EffectPanel(name, title, kind, texts, cats))
        else:
            numbers = [float(v) if pd.notna(v) else math.nan for v in values]
            panels.append(EffectPanel(name, title, kind, numbers, []))
    return EffectInfo(
        trial_index=[int(i) for i in scored["trial_index"]],
        val_acc=[float(a) for a in scored["best_val_acc"]],
        outcome=[str(o) for o in scored["outcome"]],
        hover=[trial_hover(row, params) for _, row in scored.iterrows()],
        panels=panels,
        budget=epoch_budget,
    )


def _jitter(trial_index: int) -> float:
    """Deterministic spread so trials in one category don't hide each other."""
    return ((trial_index * 0.6180339887) % 1.0 - 0.5) * JITTER


def _get_param_effects_plot(info: EffectInfo) -> go.Figure:
    if not info.panels:
        return empty_figure(TITLE, "No trial has a validation accuracy yet.")
    rows = math.ceil(len(info.panels) / COLS)
    fig = make_subplots(
        rows=rows, cols=COLS, shared_yaxes=True, vertical_spacing=0.22, horizontal_spacing=0.03,
        subplot_titles=[html.escape(p.title) for p in info.panels],
    )  # fmt: skip
    acc = np.array(info.val_acc)
    outcomes = np.array(info.outcome)
    hover = np.array(info.hover, dtype=object)
    seen: set[str] = set()
    for k, panel in enumerate(info.panels):
        row, col = k // COLS + 1, k % COLS + 1
        if panel.kind == "category":
            pos = {c: i for i, c in enumerate(panel.categories)}
            x = np.array(
                [pos[v] + _jitter(t) for v, t in zip(panel.x, info.trial_index, strict=True)]
            )
        else:
            x = np.array(panel.x, dtype=float)
        for outcome in outcome_order(info.outcome):
            mask = outcomes == outcome
            fig.add_trace(
                go.Scatter(
                    x=x[mask], y=acc[mask], mode="markers", name=outcome, legendgroup=outcome,
                    showlegend=outcome not in seen, hovertext=hover[mask], hoverinfo="text",
                    marker={"color": outcome_color(outcome, info.budget), "size": 8,
                            "line": {"width": 0.5, "color": "white"}},
                ),
                row=row, col=col,
            )  # fmt: skip
            seen.add(outcome)
        if panel.kind == "category":
            fig.update_xaxes(
                tickvals=list(range(len(panel.categories))),
                ticktext=[html.escape(c) for c in panel.categories],
                range=[-0.5, len(panel.categories) - 0.5], row=row, col=col,
            )  # fmt: skip
        elif panel.kind == "log":
            fig.update_xaxes(type="log", dtick=1, tickformat=".0e", row=row, col=col)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text="val acc", row=r, col=1)
    return base_layout(fig, TITLE, height=330 * rows + 60)


def plot_param_effects(trials: pd.DataFrame, epoch_budget: int = 1) -> go.Figure:
    """Validation accuracy against each hyperparameter the lab tuned, coloured by outcome."""
    return _get_param_effects_plot(_get_param_effects_info(trials, epoch_budget))
