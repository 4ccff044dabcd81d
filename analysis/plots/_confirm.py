"""Is the winner really better? Each confirmed configuration's per-seed accuracies (validation
and test) as points, with their mean and 95 % interval (a t interval on the logit, inside
[0, 1]: tuner.experiment.stats) as a bar, from best.json's "confirm" record
(tuner/driver/confirm.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.plots._style import BASELINE, BEST, PALETTE, base_layout, empty_figure, esc
from tuner.experiment.stats import describe

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
                span = (f"<br>{esc(describe(interval))}:<br>"
                        "%{customdata[0]:.4f} to %{customdata[1]:.4f}"
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
    for col, split in ((1, "val"), (2, "test")):
        close = _close_range(rows, split)
        if close is not None:
            fig.update_xaxes(range=close, row=1, col=col)
            for r in rows:  # a configuration far below the others: named, not drawn
                interval = r.val_interval if split == "val" else r.test_interval
                if interval and interval["mean"] < close[0]:
                    fig.add_annotation(
                        x=close[0], y=r.label, xanchor="left", showarrow=False,
                        text=f"\u2190 {interval['mean']:.1%} (off the scale)",
                        font={"color": r.color, "size": 11}, row=1, col=col,
                    )  # fmt: skip
    return base_layout(fig, TITLE, height=max(260, 110 + 55 * len(rows)))


def _close_range(rows: list[ConfirmRow], split: str) -> list[float] | None:
    """An x range that shows the searched configurations' seeds and intervals closely, when a
    configuration far below them (the lab's baseline on digits: 8 % against 99 %) would
    otherwise squeeze them into one point. None: the default range shows everything well."""
    spans = []
    for r in rows:
        values = r.val if split == "val" else r.test
        interval = r.val_interval if split == "val" else r.test_interval
        ends = [v for v in values if v is not None]
        if interval and interval.get("low") is not None:
            ends += [interval["low"], interval["high"]]
        if ends:
            spans.append((min(ends), max(ends)))
    if len(spans) < 2:
        return None
    spans.sort(key=lambda lo_hi: lo_hi[1], reverse=True)
    top_low = min(lo for lo, hi in spans[:-1])
    low, high = min(lo for lo, _ in spans), max(hi for _, hi in spans)
    bottom = spans[-1]
    # Only when the lowest configuration sits apart, far below the rest's whole spread.
    if bottom[1] >= top_low or (high - top_low) * 4 > (high - low):
        return None
    pad = 0.15 * (high - top_low) or 0.01
    return [top_low - pad, high + pad]


def plot_confirm(confirm: Mapping[str, Any] | None) -> go.Figure:
    return _get_confirm_plot(_get_confirm_info(confirm))
