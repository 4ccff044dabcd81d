"""ASHA rungs: at which epoch each trial ended, stacked by outcome, with ASHA's rungs marked.

ASHA (as Ray Tune builds it) compares trials at epochs grace_period x reduction_factor^k below
the budget and stops the ones outside the best 1/reduction_factor there; a trial ASHA stopped
ends at one of those rungs.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go

from analysis.plots._style import COMPLETED, DIVERGED, ERROR, RUNNING, base_layout, empty_figure
from tuner.experiment import rung_epochs

TITLE = "Where trials ended: ASHA rungs"
SERIES = (
    ("stopped", "stopped by ASHA", "#e6550d"),
    ("completed", "ran the whole budget", COMPLETED),
    ("diverged", "diverged", DIVERGED),
    ("error", "error", ERROR),
    ("running", "still running", RUNNING),
)


class RungInfo(NamedTuple):
    epochs: list[int]  # 1 .. budget (or the last epoch any trial reached, if later)
    rungs: list[int]  # ASHA's milestones; empty without ASHA
    counts: dict[str, list[int]]  # status -> trials that ended at each epoch
    scheduler: str


def _get_rungs_info(
    trials: pd.DataFrame,
    epoch_budget: int,
    grace_period: int = 1,
    reduction_factor: int = 3,
    scheduler: str = "asha",
) -> RungInfo:
    last = int(trials["epochs_run"].max()) if not trials.empty else 0
    epochs = list(range(1, max(epoch_budget, last) + 1))
    counts = {}
    for status, _, _ in SERIES:
        ended = trials.loc[trials["status"] == status, "epochs_run"] if len(trials) else []
        tally = pd.Series(ended).value_counts() if len(ended) else pd.Series(dtype=int)
        counts[status] = [int(tally.get(e, 0)) for e in epochs]
    asha = scheduler == "asha"
    rungs = rung_epochs(grace_period, reduction_factor, epoch_budget) if asha else []
    return RungInfo(epochs, rungs, counts, scheduler)


def _get_rungs_plot(info: RungInfo) -> go.Figure:
    if not any(sum(c) for c in info.counts.values()):
        return empty_figure(TITLE, "No trial has finished an epoch yet.")
    fig = go.Figure()
    for status, label, color in SERIES:
        if sum(info.counts[status]):
            fig.add_trace(
                go.Bar(
                    x=info.epochs, y=info.counts[status], name=label, marker_color=color,
                    hovertemplate=f"{label}<br>ended at epoch %{{x}}: %{{y}} trials"
                    "<extra></extra>",
                )
            )  # fmt: skip
    ticktext = [f"{e}<br>rung" if e in info.rungs else str(e) for e in info.epochs]
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text="epoch the trial ended at", tickvals=info.epochs, ticktext=ticktext)
    fig.update_yaxes(title_text="trials")
    if info.rungs:
        title = f"{TITLE} at epochs {', '.join(str(r) for r in info.rungs)}"
    elif info.scheduler != "asha":
        title = f"Where trials ended (scheduler {info.scheduler}: no early stopping)"
    else:
        title = TITLE
    return base_layout(fig, title, height=380)


def plot_asha_rungs(
    trials: pd.DataFrame,
    epoch_budget: int,
    grace_period: int = 1,
    reduction_factor: int = 3,
    scheduler: str = "asha",
) -> go.Figure:
    """How many trials ended at each epoch, by outcome; ASHA's rungs are labelled."""
    return _get_rungs_plot(
        _get_rungs_info(trials, epoch_budget, grace_period, reduction_factor, scheduler)
    )
