"""Learning curves: train and validation loss per epoch for the best trial, the lab's baseline
and the next k best, with the epoch of minimum validation loss (the weights each trial keeps)
marked."""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.plots._style import BASELINE, BEST, PALETTE, base_layout, empty_figure, log_ticks
from tuner.experiment import finite

TITLE = "Learning curves: best trial, lab baseline and the next best"
# a search with no baseline (the lab's network over its size budget, or a space without one)
TITLE_NO_BASELINE = "Learning curves: best trial and the next best"
TOP_K = 5


class Curve(NamedTuple):
    trial_index: int
    role: str  # "best" | "baseline" | "top k"
    epochs: list[int]
    train_loss: list[float | None]  # None where not finite
    val_loss: list[float | None]
    min_epoch: int | None  # epoch of the lowest (finite) validation loss
    min_val_loss: float | None


class CurvesInfo(NamedTuple):
    curves: list[Curve]


def _clean(values: pd.Series) -> list[float | None]:
    return [finite(v) for v in values]


def _pick(trials: pd.DataFrame, best: int | None, k: int) -> list[tuple[int, str]]:
    chosen: list[tuple[int, str]] = []
    if best is not None:
        chosen.append((best, "best"))
    base = trials[trials["is_baseline"]]
    if len(base) and int(base.iloc[0]["trial_index"]) != best:
        chosen.append((int(base.iloc[0]["trial_index"]), "baseline"))
    taken = {i for i, _ in chosen}
    ranked = trials[trials["best_val_acc"].notna()].sort_values(
        ["best_val_acc", "best_val_loss", "trial_index"], ascending=[False, True, True]
    )
    others = [int(i) for i in ranked["trial_index"] if int(i) not in taken][:k]
    return chosen + [(i, "top k") for i in others]


def _get_learning_curves_info(
    trials: pd.DataFrame, epochs: pd.DataFrame, best: int | None, k: int = TOP_K
) -> CurvesInfo:
    if trials.empty or epochs.empty:
        return CurvesInfo([])
    curves = []
    for index, role in _pick(trials, best, k):
        rows = epochs[epochs["trial_index"] == index].sort_values("epoch")
        if rows.empty:
            continue
        val = _clean(rows["val_loss"])
        finite = [(v, e) for v, e in zip(val, rows["epoch"], strict=True) if v is not None]
        low = min(finite) if finite else (None, None)
        curves.append(
            Curve(
                trial_index=index, role=role, epochs=[int(e) for e in rows["epoch"]],
                train_loss=_clean(rows["train_loss"]), val_loss=val,
                min_epoch=int(low[1]) if low[1] is not None else None, min_val_loss=low[0],
            )
        )  # fmt: skip
    return CurvesInfo(curves)


def _color(curve: Curve, k: int) -> str:
    if curve.role == "best":
        return BEST
    if curve.role == "baseline":
        return BASELINE
    return PALETTE[k % len(PALETTE)]


def _get_learning_curves_plot(info: CurvesInfo) -> go.Figure:
    if not info.curves:
        return empty_figure(TITLE, "No epoch has been reported yet.")
    fig = make_subplots(
        rows=1, cols=2, shared_xaxes=True, horizontal_spacing=0.08,
        subplot_titles=["train loss", "validation loss (star: lowest, the kept weights)"],
    )  # fmt: skip
    others = 0
    for curve in info.curves:
        color = _color(curve, others)
        others += curve.role == "top k"
        name = {"best": "best", "baseline": "lab baseline"}.get(curve.role, "")
        name = f"trial {curve.trial_index}" + (f" ({name})" if name else "")
        width = 3 if curve.role != "top k" else 1.5
        for col, values in ((1, curve.train_loss), (2, curve.val_loss)):
            fig.add_trace(
                go.Scatter(
                    x=curve.epochs, y=values, mode="lines+markers", name=name,
                    legendgroup=name, showlegend=col == 1,
                    line={"color": color, "width": width}, marker={"size": 4},
                    hovertemplate=f"{name}<br>epoch %{{x}}<br>loss %{{y:.4f}}<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
        if curve.min_epoch is not None:
            fig.add_trace(
                go.Scatter(
                    x=[curve.min_epoch], y=[curve.min_val_loss], mode="markers", name=name,
                    legendgroup=name, showlegend=False,
                    marker={"symbol": "star", "size": 14, "color": color,
                            "line": {"width": 1, "color": "white"}},
                    hovertemplate=f"{name}<br>lowest validation loss %{{y:.4f}}"
                    f"<br>at epoch %{{x}}<extra></extra>",
                ),
                row=1, col=2,
            )  # fmt: skip
    ticks = log_ticks(v for c in info.curves for v in [*c.train_loss, *c.val_loss])
    fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    fig.update_yaxes(title_text="cross-entropy loss (log)", row=1, col=1)
    last = max(max(c.epochs) for c in info.curves)
    fig.update_xaxes(title_text="epoch", dtick=max(1, math.ceil(last / 10)))
    title = TITLE if any(c.role == "baseline" for c in info.curves) else TITLE_NO_BASELINE
    return base_layout(fig, title, height=440)


def plot_learning_curves(
    trials: pd.DataFrame, epochs: pd.DataFrame, best: int | None, k: int = TOP_K
) -> go.Figure:
    """Train and validation loss per epoch of the best trial, the baseline and the top k."""
    return _get_learning_curves_plot(_get_learning_curves_info(trials, epochs, best, k))
