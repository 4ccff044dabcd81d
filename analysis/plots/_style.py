"""What every figure shares: outcome colours, the layout, and hover text for a trial.

Text that comes from the experiment (config values, class names) goes into figures escaped:
plotly renders a subset of HTML in labels and decodes entities, so `&lt;` shows as `<`.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from analysis._load import display_value
from tuner.experiment import CONFIG_PREFIX

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
COMPLETED, DIVERGED, ERROR, RUNNING = "#1b9e77", "#d62728", "#7f7f7f", "#1f77b4"
BEST, BASELINE = "#1b9e77", "#222222"
# Qualitative colours for a handful of trials (learning curves), skipping green and black.
PALETTE = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_STOPPED = re.compile(r"^stopped by .* at epoch (\d+)$")


def esc(value: Any) -> str:
    return html.escape(display_value(value), quote=True)


def stopped_epoch(outcome: str) -> int | None:
    match = _STOPPED.match(outcome)
    return int(match.group(1)) if match else None


def outcome_order(outcomes: Iterable[str]) -> list[str]:
    """completed, stopped ... at epoch 1, 2, ..., diverged, error, running, anything else."""
    fixed = {"completed": 0, "diverged": 2, "error": 3, "running": 4}

    def key(o: str) -> tuple:
        e = stopped_epoch(o)
        return (1, e, o) if e is not None else (fixed.get(o, 5), 0, o)

    return sorted(set(outcomes), key=key)


def outcome_color(outcome: str, budget: int) -> str:
    """Stopped trials in oranges, darker the later ASHA stopped them."""
    e = stopped_epoch(outcome)
    if e is not None:
        t = min(max((e - 1) / max(budget - 1, 1), 0.0), 1.0)
        light, dark = (253, 190, 133), (166, 54, 3)
        r, g, b = (round(a + (z - a) * t) for a, z in zip(light, dark, strict=True))
        return f"rgb({r},{g},{b})"
    return {"completed": COMPLETED, "diverged": DIVERGED, "error": ERROR}.get(outcome, RUNNING)


def config_lines(row: pd.Series, params: Sequence[str]) -> list[str]:
    lines = []
    for p in params:
        value = row.get(f"{CONFIG_PREFIX}{p}")
        if value is None or (isinstance(value, float) and pd.isna(value)):
            continue
        lines.append(f"{html.escape(p)} = {esc(value)}")
    return lines


def trial_hover(row: pd.Series, params: Sequence[str]) -> str:
    """Hover text for one trial: who it is, how it ended, its scores and its whole config."""
    head = f"<b>trial {int(row['trial_index'])}</b>"
    if bool(row.get("is_baseline")):
        head += " (lab baseline)"
    acc = row.get("best_val_acc")
    params_count = row.get("params")
    lines = [
        head,
        html.escape(str(row.get("outcome", row.get("status", "")))),
        f"val acc {acc:.4f}" if pd.notna(acc) else "val acc n/a",
        f"{int(params_count):,} parameters" if pd.notna(params_count) else "",
        f"{row['train_seconds']:.1f} s training" if pd.notna(row.get("train_seconds")) else "",
    ]
    return "<br>".join([x for x in lines if x] + config_lines(row, params))


def log_ticks(values: Iterable[float | None]) -> list[float]:
    """1-2-5 ticks spanning the positive values, for a log axis (plotly's own minor labels
    read "5 2 1 5" without their decade)."""
    finite = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not finite:
        return []
    lo, hi = math.floor(math.log10(min(finite))), math.ceil(math.log10(max(finite)))
    ticks = [m * 10.0**e for e in range(lo, hi + 1) for m in (1, 2, 5)]
    inside = [t for t in ticks if min(finite) / 2 <= t <= max(finite) * 2]
    return [float(f"{t:.12g}") for t in inside]


def base_layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        title={"text": html.escape(title), "x": 0.01, "xanchor": "left"},
        font={"family": FONT, "size": 12},
        height=height,
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        hoverlabel={"align": "left"},
    )
    return fig


def empty_figure(title: str, note: str, height: int = 260) -> go.Figure:
    """A figure that says why there is nothing to plot (too few trials, no study...)."""
    fig = go.Figure()
    fig.add_annotation(
        text=html.escape(note), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
        font={"size": 14},
    )  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, title, height)
