"""The Pareto front of a multi-objective search: its main result.

Every completed trial at its first two objectives (the y axis is the first), the front drawn
through the trials no other trial beats in every objective, the knee point (the search's pick)
and, if the reader chose another with `tuner report --pick`, that one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go

from analysis._load import hyperparameters
from analysis.plots._style import base_layout, empty_figure, trial_hover

TITLE = "Pareto front"
LOG_AXES = {"params", "macs", "latency", "train_time"}  # spans orders of magnitude


class ParetoInfo(NamedTuple):
    names: list[str]  # objective names, in --objectives order
    modes: list[str]
    columns: list[str]
    x: list[float]  # every completed trial: second objective
    y: list[float]  # first objective
    hover: list[str]
    stopped_x: list[float]  # trials stopped early: truncated scores, never on the front
    stopped_y: list[float]
    stopped_hover: list[str]
    front_x: list[float]
    front_y: list[float]
    front_index: list[int]
    knee: int | None
    picked: int | None


def _get_pareto_info(
    trials: pd.DataFrame, best: Mapping[str, Any] | None, picked: int | None = None
) -> ParetoInfo | None:
    if not best or not best.get("pareto_front") or trials.empty:
        return None
    objectives = best["objectives"]
    names = [o["name"] for o in objectives]
    cols = [o["column"] for o in objectives]
    done = trials[trials["status"] == "completed"]
    stopped = trials[trials["status"] == "stopped"].dropna(subset=cols[:2])
    params = hyperparameters(trials)
    by_index = trials.set_index("trial_index", drop=False)
    front = [int(p["trial_index"]) for p in best["pareto_front"]]
    front_rows = by_index.loc[front]
    return ParetoInfo(
        names=names,
        modes=[o["mode"] for o in objectives],
        columns=cols,
        x=[float(v) for v in done[cols[1]]],
        y=[float(v) for v in done[cols[0]]],
        hover=[trial_hover(row, params) for _, row in done.iterrows()],
        stopped_x=[float(v) for v in stopped[cols[1]]],
        stopped_y=[float(v) for v in stopped[cols[0]]],
        stopped_hover=[trial_hover(row, params) for _, row in stopped.iterrows()],
        front_x=[float(v) for v in front_rows[cols[1]]],
        front_y=[float(v) for v in front_rows[cols[0]]],
        front_index=front,
        knee=int(best["trial_index"]),
        picked=picked,
    )


def _get_pareto_plot(info: ParetoInfo | None) -> go.Figure:
    if info is None:
        return empty_figure(TITLE, "Not a multi-objective search (see --objectives).")
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=info.stopped_x, y=info.stopped_y, mode="markers",
        name="stopped early (truncated: not on the front)",
        marker={"color": "#bdbdbd", "size": 7, "symbol": "circle-open"}, text=info.stopped_hover,
        hovertemplate="%{text}<extra></extra>",
    ))  # fmt: skip
    fig.add_trace(go.Scatter(
        x=info.x, y=info.y, mode="markers", name="completed trials",
        marker={"color": "#bdbdbd", "size": 8}, text=info.hover,
        hovertemplate="%{text}<extra></extra>",
    ))  # fmt: skip
    order = sorted(range(len(info.front_x)), key=lambda i: info.front_x[i])
    fig.add_trace(go.Scatter(
        x=[info.front_x[i] for i in order], y=[info.front_y[i] for i in order],
        mode="lines+markers", name="Pareto front", line={"color": "#d62728", "shape": "hv"},
        marker={"color": "#d62728", "size": 10},
        text=[f"trial {info.front_index[i]}" for i in order],
        hovertemplate="%{text}<extra>Pareto front</extra>",
    ))  # fmt: skip
    for index, label, symbol in ((info.knee, "knee (the search's pick)", "star"),
                                 (info.picked, "your pick (--pick)", "diamond")):  # fmt: skip
        if (
            index is None
            or index not in info.front_index
            or (label.startswith("your") and index == info.knee)
        ):
            continue
        i = info.front_index.index(index)
        fig.add_trace(go.Scatter(
            x=[info.front_x[i]], y=[info.front_y[i]], mode="markers", name=label,
            marker={"symbol": symbol, "size": 18, "color": "#ff7f0e",
                    "line": {"color": "black", "width": 1}},
            hovertemplate=f"{label}: trial {index}<extra></extra>",
        ))  # fmt: skip
    base_layout(fig, TITLE, height=480)
    x_name, y_name = info.names[1], info.names[0]
    fig.update_xaxes(
        title_text=f"{x_name} ({info.modes[1]})", type="log" if x_name in LOG_AXES else "linear"
    )
    fig.update_yaxes(
        title_text=f"{y_name} ({info.modes[0]})", type="log" if y_name in LOG_AXES else "linear"
    )
    return fig


def plot_pareto_front(
    trials: pd.DataFrame, best: Mapping[str, Any] | None, picked: int | None = None
) -> go.Figure:
    """The multi-objective result: completed trials, the front, the knee and a picked point."""
    return _get_pareto_plot(_get_pareto_info(trials, best, picked))
