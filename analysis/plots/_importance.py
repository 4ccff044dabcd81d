"""Parameter importance: Optuna's fANOVA on the stored study.

fANOVA fits a random forest from the parameters to the objective (best_val_acc) and splits its
variance among the parameters. It is fit on the trials Optuna records as COMPLETE: the search
marks ASHA's stops PRUNED and divergence or crashes FAIL (experiments from before that change
recorded ASHA's stops as COMPLETE, with the accuracy reached when stopped). Only parameters every
such trial has are assessed (Optuna's rule), so conditional ones (a third block's channels, a
dropout rate) are left out. Seeded, so a report is the same every time.
"""

from __future__ import annotations

import html
import math
from typing import Any, NamedTuple

import plotly.graph_objects as go

from analysis.plots._style import base_layout, empty_figure
from tuner.experiment import OPTUNA_DB

TITLE = "Parameter importance (fANOVA)"
MIN_TRIALS = 5  # fewer finished trials than this and a forest's variance split means nothing
SEED = 0


class ImportanceInfo(NamedTuple):
    params: list[str]  # most important first
    importances: list[float]  # shares of the objective's variance, summing to 1
    trials: int  # complete trials the forest was fit on
    note: str  # what was computed, or why nothing was


def _finished(study: Any) -> list[Any]:
    import optuna

    return [
        t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]  # fmt: skip


def _get_importance_info(study: Any | None, min_trials: int = MIN_TRIALS) -> ImportanceInfo:
    if study is None:
        return ImportanceInfo([], [], 0, f"No Optuna study ({OPTUNA_DB}) in the experiment.")
    import optuna

    finished = _finished(study)
    if len(finished) < min_trials:
        return ImportanceInfo(
            [], [], len(finished),
            f"Not enough trials for fANOVA: {len(finished)} complete in the Optuna study, it "
            f"needs at least {min_trials}.",
        )  # fmt: skip
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=SEED)
    try:
        scores = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError) as e:  # e.g. every parameter constant
        return ImportanceInfo([], [], len(finished), f"fANOVA could not run: {e}")
    ranked = sorted(scores.items(), key=lambda kv: (-float(kv[1]), kv[0]))
    note = (
        f"fANOVA (seed {SEED}) on the {len(finished)} complete trials of study "
        f"'{study.study_name}', objective best_val_acc; parameters that only some trials have "
        "are left out."
    )
    if not ranked:
        note = "fANOVA found no parameter that every finished trial has."
    return ImportanceInfo(
        [k for k, _ in ranked], [float(v) for _, v in ranked], len(finished), note
    )


def _get_importance_plot(info: ImportanceInfo) -> go.Figure:
    if not info.params:
        return empty_figure(TITLE, info.note)
    fig = go.Figure(
        go.Bar(
            x=info.importances[::-1], y=[html.escape(p) for p in info.params[::-1]],
            orientation="h", marker_color="#3182bd",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_xaxes(title_text="share of the variance of validation accuracy")
    return base_layout(fig, TITLE, height=max(300, 26 * len(info.params) + 120))


def plot_param_importance(study: Any | None, min_trials: int = MIN_TRIALS) -> go.Figure:
    """fANOVA importance of each parameter, or a note saying why it can't be computed."""
    return _get_importance_plot(_get_importance_info(study, min_trials))
