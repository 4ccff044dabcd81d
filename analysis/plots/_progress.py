"""Search progress: the best validation accuracy found so far against the compute spent
(cumulative epochs, cumulative training seconds), with the baseline as a line and the compute
early stopping saved shaded.

The tables record each trial's own epochs, not one clock for the whole search, so compute is
accumulated trial by trial in the order the searcher proposed them (trial 0, 1, ...).
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis._compute import compute_summary
from analysis.plots._style import BASELINE, BEST, base_layout, empty_figure

TITLE = "Search progress: best validation accuracy against compute"


class ProgressInfo(NamedTuple):
    trial_index: list[int]  # per epoch reported, in trial order
    cum_epochs: list[int]
    cum_seconds: list[float]
    best_so_far: list[float]  # running max of best_val_acc
    baseline_acc: float | None
    epochs_run: int
    epochs_full: int  # had every stopped trial run its budget
    seconds_run: float
    seconds_full: float


def _get_progress_info(
    trials: pd.DataFrame, epochs: pd.DataFrame, epoch_budget: int
) -> ProgressInfo:
    summary = compute_summary(trials, epoch_budget)
    base = trials[trials["is_baseline"]] if not trials.empty else trials
    baseline_acc = float(base.iloc[0]["best_val_acc"]) if len(base) else None
    if baseline_acc is not None and pd.isna(baseline_acc):
        baseline_acc = None
    if epochs.empty:
        return ProgressInfo(
            [], [], [], [], baseline_acc, summary.epochs_run, summary.epochs_full,
            summary.seconds_run, summary.seconds_full,
        )  # fmt: skip
    rows = epochs.sort_values(["trial_index", "epoch"], kind="stable")
    acc = pd.to_numeric(rows["best_val_acc"], errors="coerce").fillna(float("-inf"))
    best = acc.cummax()
    seconds = pd.to_numeric(rows["epoch_time_s"], errors="coerce").fillna(0.0).cumsum()
    keep = best > float("-inf")
    return ProgressInfo(
        trial_index=[int(i) for i in rows["trial_index"][keep]],
        cum_epochs=[int(i) for i in (pd.Series(range(1, len(rows) + 1), index=rows.index)[keep])],
        cum_seconds=[float(s) for s in seconds[keep]],
        best_so_far=[float(b) for b in best[keep]],
        baseline_acc=baseline_acc,
        epochs_run=summary.epochs_run,
        epochs_full=summary.epochs_full,
        seconds_run=summary.seconds_run,
        seconds_full=summary.seconds_full,
    )


def epochs_to_near_best(trials: pd.DataFrame, epochs: pd.DataFrame, epoch_budget: int,
                        within: float = 0.01) -> int | None:  # fmt: skip
    """Epochs trained (in trial order) until the best so far was within `within` of the
    search's final best; None before any epoch."""
    info = _get_progress_info(trials, epochs, epoch_budget)
    if not info.best_so_far:
        return None
    final = info.best_so_far[-1]
    return next(e for e, b in zip(info.cum_epochs, info.best_so_far, strict=True)
                if b >= final - within)  # fmt: skip


def _get_progress_plot(info: ProgressInfo) -> go.Figure:
    if not info.cum_epochs:
        return empty_figure(TITLE, "No epoch has been reported yet.")
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
        subplot_titles=["against epochs trained", "against training seconds"],
    )  # fmt: skip
    axes = (
        (1, info.cum_epochs, info.epochs_run, info.epochs_full, "epochs trained (all trials)",
         "{:,.0f} epochs"),
        (2, info.cum_seconds, info.seconds_run, info.seconds_full, "training seconds (all trials)",
         "~{:,.0f} s"),
    )  # fmt: skip
    hover = [f"trial {i}" for i in info.trial_index]
    for col, x, used, full, label, fmt in axes:
        fig.add_trace(
            go.Scatter(
                x=x, y=info.best_so_far, mode="lines", line_shape="hv", name="best so far",
                legendgroup="best", showlegend=col == 1, line={"color": BEST, "width": 2.5},
                hovertext=hover, hovertemplate="%{hovertext}<br>best so far %{y:.4f}"
                "<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
        right = max(full, used)
        if info.baseline_acc is not None:
            fig.add_trace(
                go.Scatter(
                    x=[0, right], y=[info.baseline_acc] * 2, mode="lines",
                    name="lab baseline (trial 0)", legendgroup="baseline", showlegend=col == 1,
                    line={"color": BASELINE, "dash": "dash", "width": 1.5},
                    hovertemplate="lab baseline %{y:.4f}<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
        if full > used:
            fig.add_vrect(
                x0=used, x1=full, fillcolor="#fdbe85", opacity=0.35, line_width=0,
                annotation_text=f"saved by<br>early stopping:<br>{fmt.format(full - used)}",
                annotation_position="inside top left", annotation_align="left", row=1, col=col,
            )  # fmt: skip
        fig.update_xaxes(title_text=label, range=[0, right * 1.02], row=1, col=col)
    fig.update_yaxes(title_text="best validation accuracy so far", row=1, col=1)
    return base_layout(fig, TITLE, height=420)


def plot_search_progress(
    trials: pd.DataFrame, epochs: pd.DataFrame, epoch_budget: int
) -> go.Figure:
    """Best validation accuracy so far against cumulative epochs and seconds."""
    return _get_progress_plot(_get_progress_info(trials, epochs, epoch_budget))
