"""The whole page: the sections in order, the live banner of a running search, and the atomic
write of report.html."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.offline

import tuner.io
from analysis._compute import compute_summary
from analysis._diagnose import diagnose_trials
from analysis._lab import lab_per_class
from analysis._load import (
    Experiment,
    best_trial_index,
    load_experiment,
    load_study,
    per_class_table,
)
from analysis.plots import (
    epochs_to_near_best,
    plot_accuracy_cost,
    plot_asha_rungs,
    plot_best_model,
    plot_diagnoses,
    plot_learning_curves,
    plot_parallel_coordinates,
    plot_param_effects,
    plot_pareto_front,
    plot_search_progress,
)
from analysis.plots._importance import (
    ImportanceInfo,
    _get_importance_info,
    _get_importance_plot,
    objective_names,
)
from analysis.report.confirm import _confirm_section
from analysis.report.diagnoses import _diagnosis_section
from analysis.report.header import _header
from analysis.report.html import (
    CSS,
    LIVE_SCRIPT,
    PLOT_CONFIG,
    SCRIPT,
    duration,
    esc,
    figure_spec,
    script_json,
)
from analysis.report.pareto import _front_point, _pareto_section
from analysis.report.provenance import _provenance
from analysis.report.trials_table import _imported_section, _rejected_section, _trials_table
from tuner.experiment import REPORT_HTML, grace_period_for


@dataclass(frozen=True)
class Running:
    """A search still running: the report says so in a banner and reloads itself."""

    finished: int  # trials finished
    total: int  # trials the search will run
    updated: datetime  # when this copy of the report was written
    reload_s: float  # the page reloads itself after this long (the rewrite interval)
    stage: str = ""  # e.g. "confirming the winner over seeds", after the search's trials
    # (trained, budget) where the budget is epochs, spent on as many trials as it pays for
    epochs: tuple[int, int] | None = None

    def banner(self) -> str:
        stage = f"; {self.stage}" if self.stage else ""
        count = f"{self.finished} of {self.total} trials finished"
        if self.epochs is not None:
            count = (f"{self.finished} trials finished, {self.epochs[0]} of {self.epochs[1]} "
                     "epochs of the budget trained")  # fmt: skip
        return f"running: {count}{stage}, updated {self.updated.astimezone().strftime('%H:%M')}"


def against_sweep(trials: pd.DataFrame, epochs: pd.DataFrame, budget: int, used: int) -> str:
    """What the search saved against a sweep (every trial to its last epoch) of its compute."""
    near = epochs_to_near_best(trials, epochs, budget)
    if near is None or used <= 0 or budget <= 0:
        return ""
    sweep = max(1, used // budget)
    return (f"A sweep of the same {used:,} epochs trains {sweep:,} network(s) to the end; this "
            f"search tried {len(trials):,}, and was within 1 point of its best after {near:,} "
            f"epochs ({100 * near / used:.0f} % of its compute).")  # fmt: skip


def build_report(
    experiment: Experiment | str | Path, pick: int | None = None, live: Running | None = None
) -> str:
    """The report's HTML for an experiment (an Experiment or its directory).

    pick: in a multi-objective search, the Pareto point (trial index) the best-model section
    shows instead of the knee. live: the search is still running (a banner, and the page
    reloads itself every live.reload_s seconds); None for a finished or stopped search.
    """
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    shown = exp.best
    if pick is not None:
        shown = _front_point(exp.best or {}, pick)
    trials, epochs, budget = exp.trials, exp.epochs, exp.epoch_budget
    cfg = exp.config
    best_index = best_trial_index(exp)
    params = exp.hyperparameters
    num_classes = len(exp.classes) or None
    diagnoses = (
        diagnose_trials(trials, epochs, num_classes) if not trials.empty
        else pd.DataFrame(columns=["trial_index", "diagnosis", "reason"])
    )  # fmt: skip
    compute = compute_summary(trials, budget)
    try:
        importance = _get_importance_info(
            load_study(exp), trials=trials, epochs=epochs,
            scheduler=str(cfg.get("scheduler") or "asha"), objectives=objective_names(cfg),
        )  # fmt: skip
    except Exception as e:  # a damaged or foreign study file must not cost the whole report
        importance = ImportanceInfo([], [], 0, f"Could not read the Optuna study: {e}")

    figures: dict[str, go.Figure] = {}
    sections: list[tuple[str, str, str]] = []  # id, title, body HTML

    def plot(name: str, fig: go.Figure, caption: str = "") -> str:
        div = f"fig-{name}"
        figures[div] = fig
        cap = f'<p class="muted">{caption}</p>' if caption else ""
        # A responsive plot takes its container's height on every window resize: give the
        # container the figure's own, or a resize squashes the figure to the CSS minimum.
        height = int(fig.layout.height or 450)
        return f'<div class="figure" id="{div}" style="height:{height}px"></div>{cap}'

    sections.append(("confirm", "Is the winner really better?", _confirm_section(exp, plot)))
    if exp.best and exp.best.get("pareto_front"):
        sections.append((
            "pareto", "Pareto front: the result",
            plot("pareto", plot_pareto_front(trials, exp.best, pick))
            + _pareto_section(exp.best, trials, pick),
        ))  # fmt: skip
    sections.append((
        "accuracy-cost", "Accuracy against size and time",
        '<p>Each point is a trial at the validation accuracy of the weights it kept (lowest '
        'validation loss). The dotted line is the Pareto front: no other trial is both smaller '
        '(or faster) and more accurate. Hover for a trial\'s whole configuration.</p>'
        + plot("accuracy-cost", plot_accuracy_cost(trials, budget)),
    ))  # fmt: skip
    sections.append((
        "progress", "Search progress and compute",
        plot("progress", plot_search_progress(trials, epochs, budget),
             f"Compute used: {compute.epochs_run:,} epochs, {duration(compute.seconds_run)} of "
             f"training. Had every trial run its {budget} epochs: {compute.epochs_full:,} epochs "
             f"(~{duration(compute.seconds_full)}, at each stopped trial's own epoch time). "
             + against_sweep(trials, epochs, budget, compute.epochs_run))
        + plot("rungs", plot_asha_rungs(
            trials, budget, grace_period_for(cfg.get("grace_period"), budget),
            int(cfg.get("reduction_factor") or 3), str(cfg.get("scheduler") or "asha"))),
    ))  # fmt: skip
    sections.append((
        "hyperparameters", "What each hyperparameter did",
        plot("param-effects", plot_param_effects(trials, budget),
             "Colour: how the trial ended. Points in one category are spread sideways so they "
             "don't hide each other.")
        + plot("parallel", plot_parallel_coordinates(trials),
               "Drag along an axis to pick a range; lines are coloured by validation accuracy.")
        + plot("importance", _get_importance_plot(importance), esc(importance.note)),
    ))  # fmt: skip
    sections.append((
        "curves", "Learning curves",
        plot("learning-curves", plot_learning_curves(trials, epochs, best_index)),
    ))  # fmt: skip
    sections.append((
        "diagnoses", "Diagnoses: why runs diverged or overfit",
        _diagnosis_section(diagnoses, trials, params)
        + plot("diagnoses", plot_diagnoses(diagnoses, epochs)),
    ))  # fmt: skip
    confirmed = (exp.best or {}).get("confirm") or {}
    sections.append((
        "best-model", "Best model",
        (f'<p>Showing Pareto point trial {pick}, picked with --pick.</p>' if pick is not None
         else "")
        + (f"<p>The search's best single run, trial {best_index}, with the lab's seed; the "
           f"confirmed winner is trial {esc(confirmed['winner'])} (see "
           '<a href="#confirm">Is the winner really better?</a>).</p>'
           if confirmed.get("winner") not in (None, best_index) else "")
        + plot("best-model", plot_best_model(shown, per_class_table(shown)),
             "" if lab_per_class(exp.classes) is not None else
             "The lab report's per-class figures are for CIFAR-10; here the baseline is the "
             "lab's network trained in this search (trial 0)."),
    ))  # fmt: skip
    sections.append(("trials", "All trials", _trials_table(trials, diagnoses, params, best_index)))
    if not exp.rejected.empty:
        sections.append(
            ("rejected", "Refused by the size budget", _rejected_section(exp.rejected, cfg))
        )
    if exp.provenance.get("warm_start"):
        sections.append(("imported", "Imported by --warm-start", _imported_section(exp)))
    sections.append(("provenance", "Provenance", _provenance(exp)))

    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in sections)
    body = "\n".join(
        f'<section id="{sid}"><h2>{esc(title)}</h2>{html_body}</section>'
        for sid, title, html_body in sections
    )
    specs = {div: figure_spec(fig) for div, fig in figures.items()}
    refresh = banner = ""
    if live is not None:
        refresh = f'<meta http-equiv="refresh" content="{max(5, round(live.reload_s))}">'
        banner = (
            f'<div class="live-banner" id="live-banner" role="status">{esc(live.banner())}'
            f"</div><script>{LIVE_SCRIPT}</script>\n"
        )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{refresh}<title>{esc(exp.name)}: search report</title>"
        f"<style>{CSS}</style>\n"
        f"<script>{plotly.offline.get_plotlyjs()}</script>\n"
        "</head><body>\n"
        f"{banner}<main>\n"
        f"{_header(exp, compute, best_index)}\n<nav>{nav}</nav>\n{body}\n</main>\n"
        f'<script type="application/json" id="figure-data">{script_json(specs)}</script>\n'
        f"<script>{SCRIPT % json.dumps(PLOT_CONFIG)}</script>\n"
        "</body></html>\n"
    )


def write_report(
    experiment_dir: str | Path,
    output: str | Path | None = None,
    pick: int | None = None,
    warn: Callable[[str], None] | None = None,
    live: Running | None = None,
) -> Path:
    """Build the report and write it atomically to `output` (default
    <experiment>/report.html). Returns the path written. pick, live: see build_report. warn:
    told each line of what reading the experiment skipped (files cut short)."""
    exp = load_experiment(experiment_dir)
    for line in exp.warnings:
        if warn is not None:
            warn(line)
    path = Path(output) if output is not None else exp.path / REPORT_HTML
    return tuner.io.atomic_write_text(path, build_report(exp, pick, live))
