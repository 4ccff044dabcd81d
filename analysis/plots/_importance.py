"""Parameter importance: Optuna's fANOVA on the stored study, or on one epoch's measurements.

fANOVA fits a random forest from the parameters to a value and splits its variance among the
parameters. With enough trials that Optuna records as COMPLETE (the search marks ASHA's stops
PRUNED and divergence or crashes FAIL; experiments from before that change recorded ASHA's stops
as COMPLETE, with the accuracy reached when stopped) the value is the study's objective:
best_val_acc, or in a multi-objective search (--objectives) the first objective.

Under ASHA most trials stop early, so there are often too few COMPLETE ones. Then the forest is
fit on what every trial measured at one shared budget: the validation loss (ASHA's own yardstick)
at the highest epoch that at least MIN_TRIALS trials reached with a finite value (epochs.csv),
each joined to its Optuna trial (the `tune_trial_id` user attribute) for its parameters and their
distributions. Comparing trials at the same epoch is sound; comparing each trial at the epoch it
was stopped would mostly measure how long it trained.

Only parameters every trial of the fit has are assessed (Optuna's rule), so conditional ones (a
third block's channels, a dropout rate) are left out. Seeded, so a report is the same every time.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go

from analysis.plots._style import base_layout, empty_figure
from tuner.experiment import OPTUNA_JOURNAL, TUNE_TRIAL_ID, trial_id_of

TITLE = "Parameter importance (fANOVA)"
MIN_TRIALS = 5  # fewer trials than this and a forest's variance split means nothing
SEED = 0
EPOCH_METRIC, EPOCH_METRIC_NAME = "val_loss", "validation loss"  # what ASHA compares at a rung


class ImportanceInfo(NamedTuple):
    params: list[str]  # most important first
    importances: list[float]  # shares of the value's variance, summing to 1
    trials: int  # trials the forest was fit on
    note: str  # what was computed, or why nothing was
    title: str = TITLE  # names the data it came from
    value: str = "validation accuracy"  # whose variance is split (the x axis)
    epoch: int | None = None  # the epoch the values were read at; None: the study's objective


def _all_finite(values: Sequence[float] | None) -> bool:
    return bool(values) and all(v is not None and math.isfinite(v) for v in values or ())


def _finished(study: Any) -> list[Any]:
    import optuna

    return [
        t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if _all_finite(t.values)
    ]  # fmt: skip


def _fanova(study: Any, target: Any = None) -> list[tuple[str, float]]:
    """(parameter, share) most important first; RuntimeError/ValueError when it cannot run."""
    import optuna

    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=SEED)
    scores = optuna.importance.get_param_importances(study, evaluator=evaluator, target=target)
    return sorted(((k, float(v)) for k, v in scores.items()), key=lambda kv: (-kv[1], kv[0]))


def _on_finished(
    study: Any, finished: list[Any], objectives: Sequence[str] | None
) -> ImportanceInfo:
    """The classic figure: fANOVA on the COMPLETE trials' objective."""
    target, objective, value = None, "best_val_acc", "validation accuracy"
    if len(study.directions) > 1:  # --objectives: fANOVA needs one value, the first objective
        names = list(objectives or [])
        first = names[0] if names else "the first objective"
        target, objective, value = (lambda t: t.values[0]), first, first
        if len(names) > 1:
            objective = f"{first} (the first of the search's objectives {', '.join(names)})"
    try:
        ranked = _fanova(study, target)
    except (RuntimeError, ValueError) as e:  # e.g. every parameter constant
        return ImportanceInfo([], [], len(finished), f"fANOVA could not run: {e}")
    note = (
        f"fANOVA (seed {SEED}) on the {len(finished)} complete trials of study "
        f"'{study.study_name}', objective {objective}; parameters that only some trials have "
        "are left out."
    )
    if not ranked:
        note = "fANOVA found no parameter that every finished trial has."
    return ImportanceInfo(
        [k for k, _ in ranked], [v for _, v in ranked], len(finished), note, TITLE, value
    )


def _measured(
    study: Any, trials: pd.DataFrame, epochs: pd.DataFrame
) -> tuple[dict[int, list[Any]], set[int]]:
    """(epoch -> [(trial_index, Optuna trial, value)] for every finite EPOCH_METRIC measured,
    the indices of the trials found in the study): trials whose Optuna trial is in the study
    (found by its Tune trial id) with params in their distributions."""
    import optuna

    need = {"trial_index", "epoch", EPOCH_METRIC}
    if trials.empty or epochs.empty or not need <= set(epochs.columns):
        return {}, set()
    by_tune_id: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        tune_id = t.user_attrs.get(TUNE_TRIAL_ID)
        if tune_id is None or not t.params:
            continue
        try:  # a parameter outside its own distribution (an enqueued point) can't be refit
            optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=0.0)
        except ValueError:
            continue
        by_tune_id[str(tune_id)] = t  # a trial retried under the same id: its latest record
    ours: dict[int, Any] = {}
    for row in trials.to_dict("records"):
        # trial_dir (`trial_0003_<id>`) keeps the id as written; trial_id may have been read
        # back from the CSV as a number (an all-digit hex id)
        trial_dir = row.get("trial_dir")
        tune_id = trial_id_of(trial_dir) if isinstance(trial_dir, str) and trial_dir else None
        t = by_tune_id.get(tune_id or str(row.get("trial_id")))
        if t is not None:
            ours[int(row["trial_index"])] = t
    rows = epochs[epochs["trial_index"].isin(list(ours))]
    if "diverged" in rows:  # the epoch it blew up is no measurement of the configuration
        rows = rows[~rows["diverged"].astype(str).str.lower().eq("true")]
    values = pd.to_numeric(rows[EPOCH_METRIC], errors="coerce")
    rows = rows.assign(_value=values)[values.map(lambda v: math.isfinite(v))]
    rows = rows.drop_duplicates(["trial_index", "epoch"], keep="last")
    found: dict[int, list[Any]] = {}
    for index, epoch, value in zip(rows["trial_index"], rows["epoch"], rows["_value"], strict=True):
        found.setdefault(int(epoch), []).append((int(index), ours[int(index)], float(value)))
    return found, set(ours)


def _others(trials: pd.DataFrame, left: set[int], scheduler: str) -> str:
    """How the study's trials left out of the fit ended: 'of the others, ASHA stopped 10
    earlier, 2 diverged'."""
    if not left or "status" not in trials:
        return ""
    status = dict(zip(trials["trial_index"], trials["status"].astype(str), strict=True))
    counts: dict[str, int] = {}
    for index in left:
        s = status.get(index, "")
        counts[s] = counts.get(s, 0) + 1
    stopper = "ASHA" if scheduler == "asha" else "the search"
    words = {"stopped": f"{stopper} stopped {{}} earlier", "diverged": "{} diverged",
             "error": "{} failed", "running": "{} still running"}  # fmt: skip
    parts = [words[s].format(counts[s]) for s in words if s in counts]
    rest = sum(n for s, n in counts.items() if s not in words)
    if rest:
        parts.append(f"{rest} had no value there")
    return "of the others, " + ", ".join(parts)


def _on_epoch(
    study: Any,
    complete: int,
    trials: pd.DataFrame | None,
    epochs: pd.DataFrame | None,
    min_trials: int,
    scheduler: str,
) -> ImportanceInfo:
    """fANOVA on EPOCH_METRIC at the highest epoch at least min_trials trials reached."""
    import optuna

    too_few = (
        f"Not enough trials for fANOVA: {complete} complete in the Optuna study, it needs at "
        f"least {min_trials}"
    )
    if trials is None or epochs is None:
        return ImportanceInfo([], [], complete, too_few + ".")
    found, joined = _measured(study, trials, epochs)
    if not found:
        return ImportanceInfo([], [], complete, too_few + ".")
    enough = [e for e, rows in found.items() if len(rows) >= min_trials]
    if not enough:
        most = max(found, key=lambda e: (len(found[e]), e))
        return ImportanceInfo(
            [], [], complete,
            f"{too_few}, and no epoch has as many: at most {len(found[most])} trials measured "
            f"the {EPOCH_METRIC_NAME} at one epoch (epoch {most}).",
        )  # fmt: skip
    epoch = max(enough)
    rows = found[epoch]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fit = optuna.create_study(direction="minimize")  # in memory
    source = f"{EPOCH_METRIC_NAME} at epoch {epoch}"
    try:
        for _, t, value in rows:
            fit.add_trial(optuna.trial.create_trial(
                params=t.params, distributions=t.distributions, value=value
            ))  # fmt: skip
        ranked = _fanova(fit)
    except (RuntimeError, ValueError) as e:  # every parameter constant, clashing distributions
        return ImportanceInfo([], [], len(rows), f"fANOVA on the {source} could not run: {e}")
    others = _others(trials, joined - {i for i, _, _ in rows}, scheduler)
    lead = {0: "No trial is", 1: "Only 1 trial is"}.get(complete, f"Only {complete} trials are")
    note = (
        f"{lead} complete in the Optuna study (fANOVA needs {min_trials}), so this is "
        f"fANOVA (seed {SEED}) on the {source}, the highest epoch at least {min_trials} trials "
        f"reached: {len(rows)} did"
        + (f" ({others})" if others else "")
        + "; parameters that only some of these trials have are left out."
    )
    if not ranked:
        note = f"fANOVA on the {source} found no parameter that all {len(rows)} trials have."
    return ImportanceInfo(
        [k for k, _ in ranked], [v for _, v in ranked], len(rows), note,
        f"Parameter importance (fANOVA on {source})", source, epoch,
    )  # fmt: skip


def _get_importance_info(
    study: Any | None,
    min_trials: int = MIN_TRIALS,
    *,
    trials: pd.DataFrame | None = None,
    epochs: pd.DataFrame | None = None,
    scheduler: str = "asha",
    objectives: Sequence[str] | None = None,
) -> ImportanceInfo:
    """fANOVA on the COMPLETE trials when there are min_trials of them, else on each trial's
    validation loss at one epoch (trials.csv and epochs.csv: trials, epochs).

    scheduler: the search's (asha, fifo), for the note; objectives: the names of a
    multi-objective search's objectives, in order."""
    if study is None:
        return ImportanceInfo([], [], 0, f"No Optuna study ({OPTUNA_JOURNAL}) in the experiment.")
    finished = _finished(study)
    if len(finished) >= min_trials:
        return _on_finished(study, finished, objectives)
    return _on_epoch(study, len(finished), trials, epochs, min_trials, scheduler)


def objective_names(config: dict[str, Any]) -> list[str]:
    """The --objectives names a search's provenance config records, in order ([] for one)."""
    text = config.get("objectives")
    if not isinstance(text, str):
        return []
    return [p.split(":")[0].strip() for p in text.split(",") if p.strip()]


def _get_importance_plot(info: ImportanceInfo) -> go.Figure:
    if not info.params:
        return empty_figure(info.title, info.note)
    fig = go.Figure(
        go.Bar(
            x=info.importances[::-1], y=[html.escape(p) for p in info.params[::-1]],
            orientation="h", marker_color="#3182bd",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_xaxes(title_text=html.escape(f"share of the variance of {info.value}"))
    return base_layout(fig, info.title, height=max(300, 26 * len(info.params) + 120))


def plot_param_importance(
    study: Any | None,
    min_trials: int = MIN_TRIALS,
    *,
    trials: pd.DataFrame | None = None,
    epochs: pd.DataFrame | None = None,
    scheduler: str = "asha",
    objectives: Sequence[str] | None = None,
) -> go.Figure:
    """fANOVA importance of each parameter, or a note saying why it can't be computed. With too
    few COMPLETE trials and the experiment's trials/epochs tables: fANOVA on the validation
    loss at the highest epoch min_trials trials reached (the title says which)."""
    info = _get_importance_info(
        study, min_trials, trials=trials, epochs=epochs, scheduler=scheduler,
        objectives=objectives,
    )  # fmt: skip
    return _get_importance_plot(info)
