"""Figures: each a pure function from the experiment's DataFrames to a plotly Figure.

Each module follows Optuna's visualization shape: `_get_X_info(...)` extracts a small
NamedTuple from the tables, `_get_X_plot(info)` draws it, and `plot_X` composes the two.
"""

from analysis.plots._accuracy_cost import plot_accuracy_cost
from analysis.plots._best_model import plot_best_model
from analysis.plots._confirm import plot_confirm
from analysis.plots._diagnoses import plot_diagnoses
from analysis.plots._importance import plot_param_importance
from analysis.plots._learning_curves import plot_learning_curves
from analysis.plots._parallel import plot_parallel_coordinates
from analysis.plots._param_effects import plot_param_effects
from analysis.plots._pareto_front import plot_pareto_front
from analysis.plots._progress import epochs_to_near_best, plot_search_progress
from analysis.plots._rungs import plot_asha_rungs

__all__ = [
    "epochs_to_near_best",
    "plot_accuracy_cost",
    "plot_asha_rungs",
    "plot_best_model",
    "plot_confirm",
    "plot_diagnoses",
    "plot_learning_curves",
    "plot_param_effects",
    "plot_param_importance",
    "plot_parallel_coordinates",
    "plot_pareto_front",
    "plot_search_progress",
]
