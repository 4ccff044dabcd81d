"""Diagnoses: the loss curves of every trial, one panel per diagnosis (validation loss solid,
train loss dotted), so the reader sees what "diverged" or "overfitting" looked like here."""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis._diagnose import LABELS
from analysis.plots._style import COMPLETED, DIVERGED, base_layout, empty_figure, log_ticks
from tuner.experiment import finite

TITLE = "Diagnoses: loss curves by label (validation solid, train dotted)"
LABEL_COLORS = {
    "diverged": DIVERGED, "overfitting": "#9467bd", "stopped early": "#e6550d",
    "not learning": "#8c564b", "still improving": "#1f77b4", "healthy": COMPLETED,
}  # fmt: skip


class LabelCurves(NamedTuple):
    label: str
    trial_index: list[int]
    epochs: list[list[int]]
    train_loss: list[list[float | None]]
    val_loss: list[list[float | None]]


class DiagnosesInfo(NamedTuple):
    panels: list[LabelCurves]  # labels present, in LABELS order


def _clean(values: pd.Series) -> list[float | None]:
    return [v if v is not None and v > 0 else None for v in map(finite, values)]


def _get_diagnoses_info(diagnoses: pd.DataFrame, epochs: pd.DataFrame) -> DiagnosesInfo:
    if diagnoses.empty:
        return DiagnosesInfo([])
    groups = {int(k): g for k, g in epochs.groupby("trial_index")} if not epochs.empty else {}
    panels = []
    for label in LABELS:
        ids = [int(i) for i in diagnoses.loc[diagnoses["diagnosis"] == label, "trial_index"]]
        if not ids:
            continue
        empty = pd.DataFrame({"epoch": [], "train_loss": [], "val_loss": []})
        rows = [groups.get(i, empty).sort_values("epoch") for i in ids]
        panels.append(
            LabelCurves(
                label=label, trial_index=ids,
                epochs=[[int(e) for e in r["epoch"]] for r in rows],
                train_loss=[_clean(r["train_loss"]) for r in rows],
                val_loss=[_clean(r["val_loss"]) for r in rows],
            )
        )  # fmt: skip
    return DiagnosesInfo(panels)


def _joined(panel: LabelCurves, curves: list[list[float | None]]) -> tuple[list, list, list]:
    """All curves of a panel as one trace, separated by gaps (one trace per label keeps a
    200-trial report light)."""
    xs, ys, text = [], [], []
    for index, epochs, values in zip(panel.trial_index, panel.epochs, curves, strict=True):
        xs += [*epochs, None]
        ys += [*values, None]
        text += [f"trial {index}"] * len(epochs) + [None]
    return xs, ys, text


def _get_diagnoses_plot(info: DiagnosesInfo) -> go.Figure:
    if not info.panels:
        return empty_figure(TITLE, "No trial to diagnose yet.")
    fig = make_subplots(
        rows=1, cols=len(info.panels), shared_yaxes=True, horizontal_spacing=0.03,
        subplot_titles=[f"{p.label} ({len(p.trial_index)})" for p in info.panels],
    )  # fmt: skip
    for col, panel in enumerate(info.panels, start=1):
        color = LABEL_COLORS[panel.label]
        for which, curves, dash, opacity in (
            ("validation", panel.val_loss, "solid", 0.9),
            ("train", panel.train_loss, "dot", 0.6),
        ):
            xs, ys, text = _joined(panel, curves)
            fig.add_trace(
                go.Scatter(
                    x=xs, y=ys, mode="lines+markers", marker={"size": 3},
                    name=f"{which} loss", showlegend=False,
                    opacity=opacity, hovertext=text,
                    line={"color": color if which == "validation" else "#555", "dash": dash,
                          "width": 1.5},
                    hovertemplate=f"%{{hovertext}}<br>epoch %{{x}}<br>{which} loss %{{y:.4f}}"
                    "<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    # every panel: shared axes must share their type
    ticks = log_ticks(v for p in info.panels for c in [*p.val_loss, *p.train_loss] for v in c)
    fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    last = max((max(e) for p in info.panels for e in p.epochs if e), default=1)
    fig.update_xaxes(dtick=max(1, math.ceil(last / 5)), range=[0.7, last + 0.3])
    fig.update_yaxes(title_text="loss (log)", row=1, col=1)
    return base_layout(fig, TITLE, height=400)


def plot_diagnoses(diagnoses: pd.DataFrame, epochs: pd.DataFrame) -> go.Figure:
    """Loss curves grouped by diagnosis (see analysis.diagnose_trials for the labels)."""
    return _get_diagnoses_plot(_get_diagnoses_info(diagnoses, epochs))
