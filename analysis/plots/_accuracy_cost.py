"""Accuracy against cost: validation accuracy against parameters and against training seconds,
with the Pareto front of each trade-off and the lab's baseline marked."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis._load import hyperparameters
from analysis.plots._style import (
    BASELINE,
    base_layout,
    empty_figure,
    outcome_color,
    outcome_order,
    trial_hover,
)
from tuner.experiment import pareto_front

TITLE = "Accuracy against cost"
COSTS = (("params", "parameters"), ("train_seconds", "training seconds"))


class AccuracyCostInfo(NamedTuple):
    trial_index: list[int]
    params: list[float]
    train_seconds: list[float]
    val_acc: list[float]  # best_val_acc: accuracy of each trial's kept weights
    outcome: list[str]
    hover: list[str]
    front: dict[str, list[bool]]  # cost column -> Pareto membership, aligned with trial_index
    baseline: int | None  # trial index of the lab's baseline
    budget: int


def _get_accuracy_cost_info(trials: pd.DataFrame, epoch_budget: int = 1) -> AccuracyCostInfo:
    scored = trials[trials["best_val_acc"].notna()] if not trials.empty else trials
    params = hyperparameters(trials) if not trials.empty else []
    front = {
        cost: pareto_front(scored[cost], scored["best_val_acc"]).tolist() if len(scored) else []
        for cost, _ in COSTS
    }
    base = scored[scored["is_baseline"]] if len(scored) else scored
    return AccuracyCostInfo(
        trial_index=[int(i) for i in scored.get("trial_index", [])],
        params=[float(x) for x in scored.get("params", [])],
        train_seconds=[float(x) for x in scored.get("train_seconds", [])],
        val_acc=[float(x) for x in scored.get("best_val_acc", [])],
        outcome=[str(x) for x in scored.get("outcome", [])],
        hover=[trial_hover(row, params) for _, row in scored.iterrows()],
        front=front,
        baseline=int(base.iloc[0]["trial_index"]) if len(base) else None,
        budget=epoch_budget,
    )


def _get_accuracy_cost_plot(info: AccuracyCostInfo) -> go.Figure:
    if not info.trial_index:
        return empty_figure(TITLE, "No trial has a validation accuracy yet.")
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
        subplot_titles=[f"against {label}" for _, label in COSTS],
    )  # fmt: skip
    cost_values = {"params": np.array(info.params), "train_seconds": np.array(info.train_seconds)}
    acc = np.array(info.val_acc)
    outcomes = np.array(info.outcome)
    hover = np.array(info.hover, dtype=object)
    for col, (cost, label) in enumerate(COSTS, start=1):
        x = cost_values[cost]
        for outcome in outcome_order(info.outcome):
            mask = outcomes == outcome
            fig.add_trace(
                go.Scatter(
                    x=x[mask], y=acc[mask], mode="markers", name=outcome, legendgroup=outcome,
                    showlegend=col == 1, hovertext=hover[mask], hoverinfo="text",
                    marker={"color": outcome_color(outcome, info.budget), "size": 9,
                            "line": {"width": 0.5, "color": "white"}},
                ),
                row=1, col=col,
            )  # fmt: skip
        on = np.array(info.front[cost], dtype=bool)
        order = np.argsort(x[on], kind="stable")
        fig.add_trace(
            go.Scatter(
                x=x[on][order], y=acc[on][order], mode="lines", line_shape="hv",
                name="Pareto front", legendgroup="front", showlegend=col == 1,
                line={"color": "#444", "dash": "dot", "width": 1.5}, hoverinfo="skip",
            ),
            row=1, col=col,
        )  # fmt: skip
        if info.baseline is not None:
            i = info.trial_index.index(info.baseline)
            fig.add_trace(
                go.Scatter(
                    x=[x[i]], y=[acc[i]], mode="markers", name="lab baseline (trial 0)",
                    legendgroup="baseline", showlegend=col == 1, hovertext=[hover[i]],
                    hoverinfo="text",
                    marker={"symbol": "star", "size": 18, "color": "rgba(0,0,0,0)",
                            "line": {"width": 2, "color": BASELINE}},
                ),
                row=1, col=col,
            )  # fmt: skip
        fig.update_xaxes(type="log", title_text=label, row=1, col=col)
    fig.update_yaxes(title_text="validation accuracy (kept weights)", row=1, col=1)
    return base_layout(fig, TITLE, height=460)


def plot_accuracy_cost(trials: pd.DataFrame, epoch_budget: int = 1) -> go.Figure:
    """Validation accuracy against parameters and training seconds, Pareto fronts, baseline."""
    return _get_accuracy_cost_plot(_get_accuracy_cost_info(trials, epoch_budget))
