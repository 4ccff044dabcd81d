"""Best model: its normalised test confusion matrix, and its per-class test accuracy beside the
lab baseline trial's and (on CIFAR-10) the lab report's own figures."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.plots._style import BASELINE, BEST, base_layout, empty_figure
from tuner.experiment import BEST_JSON

TITLE = "Best model on the test split"
MAX_ANNOTATED_CLASSES = 20  # write the numbers in the cells up to this many classes
SERIES_COLORS = (BEST, BASELINE, "#9e9ac8")


class BestModelInfo(NamedTuple):
    trial_index: int | None
    classes: list[str]
    confusion: list[list[float]]  # rows = true class, normalised to sum to 1
    series: list[tuple[str, list[float | None]]]  # (model, per-class test accuracy)
    test_acc: float | None


def _get_best_model_info(best: Mapping[str, Any] | None, per_class: pd.DataFrame) -> BestModelInfo:
    if not best:
        return BestModelInfo(None, [], [], [], None)
    classes = [str(c) for c in best.get("classes") or []]
    confusion = best.get("confusion_normalized")
    if confusion is None and best.get("confusion_matrix"):  # normalise the counts here
        counts = best["confusion_matrix"]
        confusion = [[v / max(sum(row), 1) for v in row] for row in counts]
    series = []
    for model, rows in per_class.groupby("model", sort=False):
        accs = rows.set_index("class")["test_acc"]
        series.append((str(model), [_num(accs.get(c)) for c in classes]))
    test = best.get("test_acc")
    return BestModelInfo(
        trial_index=best.get("trial_index"),
        classes=classes,
        confusion=[[float(v) for v in row] for row in (confusion or [])],
        series=series,
        test_acc=float(test) if test is not None else None,
    )


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _get_best_model_plot(info: BestModelInfo) -> go.Figure:
    if not info.confusion and not info.series:
        return empty_figure(TITLE, f"No best trial scored on the test split (no {BEST_JSON}).")
    labels = [html.escape(c) for c in info.classes]
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.1,
        subplot_titles=["normalised confusion matrix (rows: true class)",
                        "per-class test accuracy"],
    )  # fmt: skip
    if info.confusion:
        annotate = len(labels) <= MAX_ANNOTATED_CLASSES
        fig.add_trace(
            go.Heatmap(
                z=info.confusion, x=labels, y=labels, zmin=0, zmax=1, colorscale="Blues",
                showscale=False, texttemplate="%{z:.2f}" if annotate else None,
                hovertemplate="true %{y}, predicted %{x}: %{z:.3f}<extra></extra>",
            ),
            row=1, col=1,
        )  # fmt: skip
        fig.update_yaxes(autorange="reversed", title_text="true", type="category", row=1, col=1)
        fig.update_xaxes(title_text="predicted", type="category", row=1, col=1)
    for k, (model, accs) in enumerate(info.series):
        fig.add_trace(
            go.Bar(
                x=labels, y=accs, name=html.escape(model),
                marker_color=SERIES_COLORS[k % len(SERIES_COLORS)],
                hovertemplate=f"{html.escape(model)}<br>%{{x}}: %{{y:.3f}}<extra></extra>",
            ),
            row=1, col=2,
        )  # fmt: skip
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category", row=1, col=2)
    fig.update_yaxes(range=[0, 1.05], title_text="test accuracy", row=1, col=2)
    title = TITLE
    if info.trial_index is not None and info.test_acc is not None:
        title = f"{TITLE}: trial {info.trial_index}, test accuracy {info.test_acc:.2%}"
    return base_layout(fig, title, height=460)


def plot_best_model(best: Mapping[str, Any] | None, per_class: pd.DataFrame) -> go.Figure:
    """Confusion matrix and per-class accuracy of the best model, beside the baselines."""
    return _get_best_model_plot(_get_best_model_info(best, per_class))
