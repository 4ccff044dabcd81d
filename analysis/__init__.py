"""Experiment analysis: experiment directory -> tidy DataFrames -> plotly figures -> one
self-contained HTML report.

    from analysis import load_experiment, write_report
    exp = load_experiment("experiments/digits-tpe")
    exp.trials, exp.epochs, exp.best, exp.per_class
    write_report("experiments/digits-tpe")          # -> experiments/digits-tpe/report.html

Works on finished, interrupted and copied experiments, without Ray (never imported here).
"""

from analysis._compute import ComputeSummary, compute_summary
from analysis._diagnose import LABELS, Diagnosis, diagnose, diagnose_trials, summarize
from analysis._load import Experiment, ExperimentError, load_experiment, load_study
from analysis.plots import (
    plot_accuracy_cost,
    plot_asha_rungs,
    plot_best_model,
    plot_diagnoses,
    plot_learning_curves,
    plot_parallel_coordinates,
    plot_param_effects,
    plot_param_importance,
    plot_search_progress,
)
from analysis.report import Running, build_report, write_report
from tuner.experiment import pareto_front  # the Pareto mask the driver's best.json uses too

__all__ = [
    "Running",
    "LABELS",
    "ComputeSummary",
    "Diagnosis",
    "Experiment",
    "ExperimentError",
    "build_report",
    "compute_summary",
    "diagnose",
    "diagnose_trials",
    "load_experiment",
    "load_study",
    "pareto_front",
    "plot_accuracy_cost",
    "plot_asha_rungs",
    "plot_best_model",
    "plot_diagnoses",
    "plot_learning_curves",
    "plot_param_effects",
    "plot_param_importance",
    "plot_parallel_coordinates",
    "plot_search_progress",
    "summarize",
    "write_report",
]
