"""The sortable table of every trial, and the tables of rejected and imported configurations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from analysis._load import (
    Experiment,
    display_value,
    load_study,
)
from analysis.report.html import esc
from tuner.experiment import (
    CONFIG_PREFIX,
    is_finite,
)


def _cell(value: Any, text: str | None = None, cls: str = "") -> str:
    sort = ""
    if isinstance(value, bool):
        sort = f' data-v="{int(value)}"'
    elif is_finite(value):
        sort = f' data-v="{float(value)!r}"'
    elif value is None or (isinstance(value, float) and math.isnan(value)):
        sort = ' data-v=""'
    shown = text if text is not None else display_value(value)
    cls_attr = f' class="{cls}"' if cls else ""
    return f"<td{cls_attr}{sort}>{esc(shown)}</td>"


def _trials_table(
    trials: pd.DataFrame, diagnoses: pd.DataFrame, params: Sequence[str], best_index: int | None
) -> str:
    if trials.empty:
        return '<p class="muted">No trials yet.</p>'
    merged = trials.merge(diagnoses, on="trial_index", how="left")
    heads = ["trial", "outcome", "diagnosis", "epochs", "best val acc", "best val loss",
             "best epoch", "parameters", "train s", *params, "why (diagnosis)"]  # fmt: skip
    text_cols = {"outcome", "diagnosis", "why (diagnosis)"}
    th = "".join(f'<th class="t">{esc(h)}</th>' if h in text_cols else f"<th>{esc(h)}</th>"
                 for h in heads)  # fmt: skip
    rows = []
    for _, r in merged.iterrows():
        cls = "best" if int(r["trial_index"]) == best_index else (
            "baseline" if r["is_baseline"] else "")  # fmt: skip
        reason = str(r.get("reason") or "")
        if r.get("error"):
            reason += f" ({r['error']})"
        acc, loss = r["best_val_acc"], r["best_val_loss"]
        cells = [
            _cell(int(r["trial_index"]),
                  f"{int(r['trial_index'])}" + (" (baseline)" if r["is_baseline"] else "")),
            _cell(str(r["outcome"]), cls="t"),
            _cell(str(r.get("diagnosis") or ""), cls="t"),
            _cell(int(r["epochs_run"])),
            _cell(acc, f"{acc:.4f}" if is_finite(acc) else ""),
            _cell(loss, f"{loss:.4f}" if is_finite(loss) else ""),
            _cell(r["best_epoch"]),
            _cell(r["params"], f"{int(r['params']):,}" if is_finite(r["params"]) else ""),
            _cell(r["train_seconds"], f"{r['train_seconds']:.1f}"
                  if is_finite(r["train_seconds"]) else ""),
        ]  # fmt: skip
        for p in params:
            value = r.get(f"{CONFIG_PREFIX}{p}")
            value = value.item() if hasattr(value, "item") else value
            cells.append(_cell(value, cls="" if is_finite(value) else "t"))
        cells.append(_cell(reason, cls="why"))
        cls_attr = f' class="{cls}"' if cls else ""
        rows.append(f"<tr{cls_attr}>{''.join(cells)}</tr>")
    grey = "; grey: the lab baseline" if trials["is_baseline"].astype(bool).any() else ""
    return (
        f'<p class="muted">Click a column to sort. Green: the best trial{grey}.</p>'
        f'<div class="table-wrap"><table class="sortable" id="trials-table"><thead><tr>{th}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _rejected_section(rejected: pd.DataFrame, cfg: dict[str, Any]) -> str:
    limits = [f"{k.replace('_', '-')} {int(v):,}" for k, v in cfg.items()
              if k in ("max_params", "max_macs") and v]  # fmt: skip
    intro = (
        f"<p>{len(rejected)} configuration(s) the searcher proposed were over the budget "
        f"(--{', --'.join(esc(x) for x in limits)}) and were never trained; the searcher was "
        "told, so it learned to propose smaller ones.</p>"
    )
    config_cols = [c for c in rejected.columns if c.startswith(CONFIG_PREFIX)]
    heads = ["parameters", "MACs", "why", *[c[len(CONFIG_PREFIX) :] for c in config_cols]]
    th = "".join(f"<th>{esc(h)}</th>" for h in heads)
    rows = []
    for _, r in rejected.iterrows():
        cells = [
            _cell(r["params"], f"{int(r['params']):,}"),
            _cell(r["macs"], f"{int(r['macs']):,}"),
            _cell(str(r["reason"]), cls="t"),
        ]
        for c in config_cols:
            value = r[c]
            value = value.item() if hasattr(value, "item") else value
            cells.append(_cell(value, cls="" if is_finite(value) else "t"))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        intro + f'<div class="table-wrap"><table class="sortable" id="rejected-table"><thead>'
        f"<tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _imported_section(exp: Experiment) -> str:
    """The trials --warm-start told to the study: where from, their values and parameters."""
    warm = exp.provenance.get("warm_start") or {}
    intro = (
        f"<p>{esc(warm.get('trials', '?'))} completed trial(s) of the experiment "
        f"<code>{esc(warm.get('from', '?'))}</code> were told to this search's Optuna study "
        "before it began, so its sampler started from them. They did not train here: they are "
        "not in the tables, figures, parameter importances or the confirm stage above."
    )
    if warm.get("over_budget_left_out"):
        intro += (f" {esc(warm['over_budget_left_out'])} more were over this search's size "
                  "budget and were left out.")  # fmt: skip
    intro += "</p>"
    try:
        study = load_study(exp, imported=True)
    except Exception as e:  # a damaged study file must not cost the whole report
        return intro + f'<p class="muted">Could not read the Optuna study: {esc(e)}</p>'
    trials = [] if study is None else study.trials
    if not trials:
        return intro
    names = sorted({k for t in trials for k in t.params})
    heads = ["trial there", *(["value"] if len(trials[0].values) == 1 else ["values"]), *names]
    th = "".join(f"<th>{esc(h)}</th>" for h in heads)
    rows = []
    for t in trials:
        values = t.values[0] if len(t.values) == 1 else ", ".join(f"{v:.4g}" for v in t.values)
        cells = [_cell(t.user_attrs.get("imported_number", "")), _cell(values)]
        cells += [_cell(t.params.get(n, ""), cls="" if is_finite(t.params.get(n)) else "t")
                  for n in names]  # fmt: skip
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        intro + f'<div class="table-wrap"><table class="sortable" id="imported-table"><thead>'
        f"<tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
