"""The Pareto front of a multi-objective search, and the point the page shows as the best."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pandas as pd

from analysis._load import ExperimentError
from analysis.report.html import esc
from analysis.report.trials_table import _cell
from tuner.experiment import is_finite
from tuner.experiment.records import BestRecord


def _front_point(best: Mapping[str, Any], pick: int) -> BestRecord:
    """The Pareto point `pick` as the best-model section shows it (ExperimentError if none)."""
    front = best.get("pareto_front") or []
    for point in front:
        if int(point["trial_index"]) == pick:
            if point.get("test_acc") is None:
                raise ExperimentError(f"trial {pick} is on the front but was not scored on test")
            return cast(BestRecord, {**best, **point})
    on_front = ", ".join(str(p["trial_index"]) for p in front) or "none (single objective)"
    raise ExperimentError(f"--pick {pick}: not a Pareto point; the front's trials are {on_front}")


def _pareto_section(best: Mapping[str, Any], trials: pd.DataFrame, pick: int | None) -> str:
    names = [o["name"] for o in best["objectives"]]
    th = "".join(f"<th>{esc(h)}</th>" for h in ["trial", *names, "test acc", ""])
    rows = []
    for point in best["pareto_front"]:
        index = int(point["trial_index"])
        mark = "knee (the search's pick)" if index == best["trial_index"] else ""
        if pick is not None and index == pick and index != best["trial_index"]:
            mark = "your pick"
        cells = [_cell(index)]
        for name in names:
            value = point["objectives"].get(name)
            text = f"{value:,}" if isinstance(value, int) else (
                f"{value:.4g}" if is_finite(value) else "")  # fmt: skip
            cells.append(_cell(value, text))
        test = point.get("test_acc")
        cells += [_cell(test, f"{test:.4f}" if is_finite(test) else "not scored"),
                  _cell(mark, cls="t")]  # fmt: skip
        cls = ' class="best"' if mark else ""
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    completed = int((trials["status"] == "completed").sum()) if not trials.empty else 0
    return (
        f"<p>{len(best['pareto_front'])} of the {completed} trials that ran their whole budget "
        f"are on the front: none of the others beats them in every objective "
        f"({', '.join(esc(n) for n in names)}). The knee is the point nearest the ideal once "
        "each objective is scaled to the front's range; it is the model the next section "
        "shows. Choose another with <code>tuner report DIR --pick TRIAL</code>.</p>"
        f'<div class="table-wrap"><table class="sortable" id="pareto-table"><thead><tr>{th}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
