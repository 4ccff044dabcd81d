"""Is the winner really better? Each confirmed configuration's per-seed accuracies (validation
and test) as points, with their mean and 95 % interval (Student t) as a bar, from best.json's
"confirm" record (tuner/driver/confirm.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.plots._style import BASELINE, BEST, PALETTE, base_layout, empty_figure, esc

TITLE = "The confirmed configurations over fresh seeds"


class ConfirmRow(NamedTuple):
    label: str  # "trial 5 (winner)", "lab baseline"
    color: str
    val: list[float]  # per seed
    test: list[float]
    val_interval: Mapping[str, Any]
    test_interval: Mapping[str, Any] | None
    seeds: list[int]


def _get_confirm_info(confirm: Mapping[str, Any] | None) -> list[ConfirmRow]:
    if not confirm:
        return []
    rows = []
    others = iter(PALETTE)
    for c in confirm.get("configs", []):
        winner = c["trial_index"] == confirm.get("winner")
        if c["is_baseline"]:
            label, color = f"lab baseline (trial {c['trial_index']})", BASELINE
        else:
            label = f"trial {c['trial_index']}" + (" (winner)" if winner else "")
            color = BEST if winner else next(others, "#888888")
        per_seed = c.get("per_seed", [])
        rows.append(ConfirmRow(
            label=esc(label), color=color,
            val=[r["val_acc"] for r in per_seed], test=[r["test_acc"] for r in per_seed],
            val_interval=c["val"], test_interval=c.get("test"),
            seeds=[int(r["seed"]) for r in per_seed],
        ))  # fmt: skip
    return rows


def _error(interval: Mapping[str, Any] | None) -> dict[str, Any]:
    if not interval or interval.get("low") is None:
        return {"type": "data", "array": [0], "arrayminus": [0], "visible": False}
    mean = interval["mean"]
    return {"type": "data", "array": [interval["high"] - mean],
            "arrayminus": [mean - interval["low"]], "thickness": 2, "width": 10}  # fmt: skip


def _get_confirm_plot(rows: list[ConfirmRow]) -> go.Figure:
    if not rows:
        return empty_figure(TITLE, "No confirm stage in this experiment.")
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("validation accuracy", "test accuracy"))  # fmt: skip
    labels = [r.label for r in rows]
    for col, split in ((1, "val"), (2, "test")):
        for r in rows:
            values = r.val if split == "val" else r.test
            interval = r.val_interval if split == "val" else r.test_interval
            fig.add_trace(go.Scatter(
                x=values, y=[r.label] * len(values), mode="markers",
                marker={"color": r.color, "size": 9, "opacity": 0.55, "symbol": "circle-open"},
                name=f"{r.label} seeds", showlegend=False,
                text=[f"seed {s}" for s in r.seeds],
                hovertemplate="%{y}<br>%{text}: %{x:.4f}<extra></extra>",
            ), row=1, col=col)  # fmt: skip
            if interval:
                low, high = interval.get("low"), interval.get("high")
                span = ("<br>95% CI %{customdata[0]:.4f} to %{customdata[1]:.4f}"
                        if low is not None else "")  # fmt: skip
                fig.add_trace(go.Scatter(
                    x=[interval["mean"]], y=[r.label], mode="markers",
                    marker={"color": r.color, "size": 13, "symbol": "diamond"},
                    error_x=_error(interval), name=r.label, showlegend=False,
                    customdata=[[low, high]],
                    hovertemplate="%{y}<br>mean %{x:.4f}" + span + "<extra></extra>",
                ), row=1, col=col)  # fmt: skip
    fig.update_yaxes(categoryorder="array", categoryarray=labels[::-1], automargin=True)
    fig.update_xaxes(tickformat=".1%")
    return base_layout(fig, TITLE, height=max(260, 110 + 55 * len(rows)))


def plot_confirm(confirm: Mapping[str, Any] | None) -> go.Figure:
    return _get_confirm_plot(_get_confirm_info(confirm))
