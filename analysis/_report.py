"""The report: one self-contained HTML page per experiment, written atomically.

- plotly.js is embedded once, in the head; each figure is a JSON spec drawn by Plotly.newPlot,
  so nothing is fetched from the network (no CDN, no fonts, no MathJax).
- Everything from the experiment is escaped: html.escape in the page, and inside <script> the
  JSON has `<`, `>` and `&` written as \\u003c, \\u003e, \\u0026, so no value can close the
  script element.
- The same experiment directory gives the same bytes: no clock, no random ids (figure divs are
  named after their section), sorted iteration everywhere.
"""

from __future__ import annotations

import html
import json
import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

import tuner.io
from analysis._compute import ComputeSummary, compute_summary
from analysis._diagnose import (
    IMPROVING_DROP,
    NOT_LEARNING_SHARE,
    OVERFIT_MIN_RISE,
    OVERFIT_RISE,
    diagnose_trials,
    summarize,
)
from analysis._lab import LAB_TEST_ACC, lab_per_class
from analysis._load import (
    Experiment,
    ExperimentError,
    baseline_index,
    best_trial_index,
    display_value,
    load_experiment,
    load_study,
    per_class_table,
)
from analysis.plots import (
    epochs_to_near_best,
    plot_accuracy_cost,
    plot_asha_rungs,
    plot_best_model,
    plot_confirm,
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
from tuner.experiment import (
    BEST_JSON,
    CONFIG_PREFIX,
    EXPLODING_LOSS_FACTOR,
    PROVENANCE_JSON,
    REPORT_HTML,
    TRIALS_CSV,
    is_finite,
)
from tuner.experiment.records import BestRecord
from tuner.experiment.stats import MIN_SEEDS, describe, seeds_text

PLOT_CONFIG = {"responsive": True, "displaylogo": False}

CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #e3e3e6; --accent: #1b9e77; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
  Arial, sans-serif; color: var(--fg); background: #fafafa; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 20px; margin: 36px 0 6px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
p.sub, .muted { color: var(--muted); }
p.sub { margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .k { font-size: 12px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); }
.card .v { font-size: 22px; font-weight: 600; }
.card .d { font-size: 13px; color: var(--muted); }
.up { color: #1a7f37; } .down { color: #c62828; }
.figure { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin: 12px 0;
}
pre { background: #f3f3f5; border: 1px solid var(--line); border-radius: 6px; padding: 10px;
  overflow-x: auto; font-size: 12.5px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; }
.chip { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 1px 9px;
  font-size: 13px; }
details { margin: 14px 0; } summary { cursor: pointer; font-weight: 600; }
nav { margin: 18px 0 0; font-size: 14px; } nav a { margin-right: 14px; color: #1f5fa8; }
.note { background: #fff8e1; border: 1px solid #f0d58c; border-radius: 6px; padding: 8px 12px; }
ul.findings li { margin: 4px 0; }
.table-wrap { overflow-x: auto; background: #fff; border: 1px solid var(--line);
  border-radius: 8px; max-height: 720px; }
table { border-collapse: collapse; font-size: 13px; white-space: nowrap; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: right; }
th { position: sticky; top: 0; background: #f3f3f5; cursor: pointer; user-select: none; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
td.t, th.t { text-align: left; } td.why { white-space: normal; min-width: 280px;
  text-align: left; color: var(--muted); }
tr.best td { background: #e8f5e9; } tr.baseline td { background: #f1f1f1; }
.live-banner { position: sticky; top: 0; z-index: 10; background: #fff3cd; color: #664d03;
  border-bottom: 1px solid #e0c36a; padding: 0.5em 1em; font-weight: 600; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; font-size: 13px; }
dl.prov dt { color: var(--muted); } dl.prov dd { margin: 0; word-break: break-word; }
"""

SCRIPT = """
(function () {
  var specs = JSON.parse(document.getElementById("figure-data").textContent);
  var config = %s;
  Object.keys(specs).forEach(function (id) {
    var el = document.getElementById(id);
    Plotly.newPlot(el, specs[id].data, specs[id].layout, config).then(
      function () { el.setAttribute("data-rendered", "true"); },
      function (err) { console.error("figure " + id + " failed: " + err); });
  });
  function key(row, i) {
    var cell = row.cells[i];
    return cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener("click", function () {
        var asc = !th.classList.contains("asc");
        Array.prototype.forEach.call(heads, function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a, i), y = key(b, i);
          if (x === "" || y === "") { return (x === "") - (y === ""); }  // blanks last
          var nx = Number(x), ny = Number(y), c;
          if (!isNaN(nx) && !isNaN(ny)) { c = nx - ny; } else { c = x.localeCompare(y); }
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""


# --- small helpers -------------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def script_json(obj: Any) -> str:
    """JSON safe inside <script>: no `<`, `>` or `&` survives, so no `</script>` either."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )  # fmt: skip


def figure_spec(fig: go.Figure) -> dict[str, Any]:
    """{data, layout} as plain JSON (plotly's encoder turns numpy arrays and NaN into lists and
    null)."""
    return json.loads(pio.to_json(fig, validate=False, pretty=False, engine="json"))


def pct(value: Any) -> str:
    return f"{float(value):.2%}" if is_finite(value) else "n/a"


def points(new: Any, old: Any) -> str:
    """A change in accuracy, in percentage points, with its sign and a colour class."""
    if not (is_finite(new) and is_finite(old)):
        return ""
    delta = (float(new) - float(old)) * 100
    cls = "up" if delta > 0 else "down" if delta < 0 else ""
    return f'<span class="{cls}">{delta:+.2f} pts</span>'


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def _when(stamp: Any) -> str:
    """An ISO timestamp from provenance as '2026-11-28 16:54 UTC' (as written if unparsable)."""
    try:
        moment = datetime.fromisoformat(str(stamp)).astimezone(timezone.utc)
    except ValueError:
        return str(stamp)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def card(key: str, value: str, detail: str = "") -> str:
    return (
        f'<div class="card"><div class="k">{key}</div><div class="v">{value}</div>'
        f'<div class="d">{detail}</div></div>'
    )


# --- the header --------------------------------------------------------------------------------


def _subtitle(exp: Experiment) -> str:
    cfg, data = exp.config, exp.provenance.get("dataset") or {}
    parts = []
    if cfg.get("space") or data.get("name") or cfg.get("dataset"):
        parts.append(
            f"space <b>{esc(cfg.get('space', '?'))}</b>"
            + (f", network <b>{esc(cfg['model'])}</b>" if cfg.get("model") else "")
            + f" on <b>{esc(data.get('name') or cfg.get('dataset', '?'))}</b>"
        )
    if data.get("input_shape"):
        shape = " x ".join(esc(x) for x in data["input_shape"])
        split = " / ".join(f"{esc(data.get(k, '?'))} {k}" for k in ("train", "val", "test"))
        parts.append(f"images {shape}, {split}")
    if cfg.get("samples"):
        how = f"{esc(cfg.get('searcher', '?')).upper()} + {esc(cfg.get('scheduler', '?')).upper()}"
        if cfg.get("scheduler") == "asha":
            how += (
                f" (grace period {esc(cfg.get('grace_period'))}, "
                f"reduction factor {esc(cfg.get('reduction_factor'))}, "
                f"{esc(cfg.get('asha_rule') or 'ray')} rule)"
            )
        parts.append(
            f"{esc(cfg['samples'])} trials x {esc(exp.epoch_budget)} epochs, {how}, "
            f"seed {esc(cfg.get('seed'))}"
        )
    if exp.provenance.get("started"):
        when = f"started {esc(_when(exp.provenance['started']))}"
        if exp.provenance.get("seconds") is not None:
            when += f", took {esc(duration(float(exp.provenance['seconds'])))}"
        parts.append(when)
    return "; ".join(parts)


def _retrain(exp: Experiment, trial_index: int | None) -> str:
    """The command that retrains the shown configuration from scratch (`tuner train`), on the
    experiment's own dataset and split."""
    command = f"tuner train {shlex.quote(str(exp.path.resolve()))}"
    if trial_index is not None:
        command += f" --trial {int(trial_index)}"
    text = (
        "# Retrain it from scratch under a fresh seed and score it on the test split; the\n"
        "# result is a directory of its own with the checkpoint and a model file:\n"
        f"{command}\n"
        "# Over 3 seeds (mean test accuracy with its 95% interval), the final model trained\n"
        "# on the training and validation images together:\n"
        f"{command} --seeds 3 --train-on trainval\n"
    )
    return f"<pre>{esc(text)}</pre>"


def _winner_cards(
    confirm: Mapping[str, Any], searched: int | None, best: Mapping[str, Any]
) -> list[str]:
    """The header's first cards when the confirm stage named the winner: its means over seeds,
    with the search's best single run beside them."""
    by_index = {c["trial_index"]: c for c in confirm.get("configs", [])}
    winner = by_index.get(confirm["winner"])
    if winner is None:
        return []
    seeds = len(confirm.get("seeds", []))
    val, test = winner["val"], winner.get("test") or {}

    def span(interval: Mapping[str, Any]) -> str:
        if interval.get("low") is None:
            return ""
        return f"{describe(interval)}: {pct(interval['low'])} to {pct(interval['high'])}; "

    single = (
        f"the search's best single run: trial {searched}, val {pct(best.get('val_acc'))}"
        if searched is not None else ""
    )  # fmt: skip
    cards = [
        card(f"winner: trial {confirm['winner']}", f"val {pct(val['mean'])}",
             f"mean over {seeds} fresh seeds; {span(val)}{single}"),
        card("winner on the test split", pct(test.get("mean")) if test else "not scored",
             f"mean over {seeds} seeds; {span(test)}scored once, after choosing on validation"),
    ]  # fmt: skip
    versus = confirm.get("vs_baseline")
    if versus:
        d = versus["val"]
        call = _call(d)
        notes = {"tied": " (tied)", "too few seeds": " (too few seeds to tell them apart)"}
        note = notes.get(call or "", "")
        over = seeds_text(d) if d.get("seeds") else f"{seeds} seeds"
        cards.append(card(
            f"vs lab baseline (trial {versus['trial_index']})", f"{100 * d['diff']:+.2f} pts",
            f"validation, means over {over}{note}"
            + (f"; 95 % CI {100 * d['low']:+.1f} to {100 * d['high']:+.1f} (Welch)"
               if d.get("low") is not None else ""),
        ))  # fmt: skip
    return cards


def _trial_config(exp: Experiment, index: int | None) -> dict[str, Any]:
    """A trial's configuration from trials.csv's config columns (for display)."""
    if index is None or exp.trials.empty:
        return {}
    rows = exp.trials[exp.trials["trial_index"] == index]
    if rows.empty:
        return {}
    row = rows.iloc[0]
    out = {}
    for col in exp.trials.columns:
        if col.startswith(CONFIG_PREFIX) and pd.notna(row[col]):
            value = row[col]
            out[col[len(CONFIG_PREFIX) :]] = value.item() if hasattr(value, "item") else value
    return out


def _best_config(exp: Experiment, best_index: int | None) -> dict[str, Any]:
    if exp.best and isinstance(exp.best.get("config"), dict):
        return dict(exp.best["config"])
    return _trial_config(exp, best_index)


def _header(exp: Experiment, compute: ComputeSummary, best_index: int | None) -> str:
    trials = exp.trials
    best = exp.best or {}
    base: Mapping[str, Any] = best.get("baseline") or {}
    base_index = baseline_index(trials)
    row = trials[trials["trial_index"] == best_index] if best_index is not None else trials[:0]
    base_row = trials[trials["trial_index"] == base_index] if base_index is not None else row[:0]
    cards = []
    confirm = best.get("confirm")
    if confirm and confirm.get("winner") is not None:
        cards += _winner_cards(confirm, best_index, best)
        best_index = int(confirm["winner"])
    elif len(row):
        r = row.iloc[0]
        val = best.get("val_acc", r["best_val_acc"])
        detail = f"{int(r['params']):,} parameters" if is_finite(r["params"]) else ""
        cards.append(card(f"best: trial {best_index}", f"val {pct(val)}", detail))
        test = best.get("test_acc")
        cards.append(
            card("best on the test split", pct(test) if is_finite(test) else "not scored",
                 "scored once, after choosing on validation" if is_finite(test)
                 else f"{BEST_JSON} is written when the search ends")
        )  # fmt: skip
        if len(base_row):
            b = base_row.iloc[0]
            base_val = base.get("val_acc", b["best_val_acc"])
            lines = [f"val {pct(base_val)} &rarr; {pct(val)}"]
            if is_finite(base.get("test_acc")):
                lines.append(
                    f"test {pct(base['test_acc'])} &rarr; {pct(test)} "
                    f"({points(test, base['test_acc'])})"
                )
            if is_finite(b["params"]) and is_finite(r["params"]) and float(b["params"]) > 0:
                ratio = float(r["params"]) / float(b["params"])
                lines.append(f"{int(b['params']):,} parameters (best: {ratio:.3g}x)")
            cards.append(card(f"vs lab baseline (trial {base_index})", points(val, base_val),
                              "<br>".join(lines)))  # fmt: skip
    if lab_per_class(exp.classes) is not None:
        test = best.get("test_acc")
        cards.append(
            card("lab report (CIFAR-10, 20 epochs)", f"test {pct(LAB_TEST_ACC)}",
                 f"best here: {pct(test)} ({points(test, LAB_TEST_ACC)})")
        )  # fmt: skip
    counts = compute.counts
    outcome_text = ", ".join(
        f"{counts.get(k, 0)} {k}" for k in ("completed", "stopped", "diverged", "error")
    )
    if counts.get("running"):
        outcome_text += f", {counts['running']} running"
    cards.append(card("trials", f"{compute.trials}", outcome_text))
    saved = ""
    if compute.epochs_full:
        saved = (
            f"early stopping saved {compute.epochs_saved:,} of {compute.epochs_full:,} epochs "
            f"({compute.epochs_saved / compute.epochs_full:.0%}), "
            f"~{duration(compute.seconds_saved)} of training"
        )
    cards.append(
        card("compute used", f"{compute.epochs_run:,} epochs",
             f"{duration(compute.seconds_run)} of training; {saved}")
    )  # fmt: skip

    parts = [
        f"<h1>Experiment {esc(exp.name)}</h1>",
        f'<p class="sub">{_subtitle(exp)}</p>',
    ]
    if exp.partial:
        parts.append(
            f'<p class="note">Partial experiment: {TRIALS_CSV} is not there yet (the search was '
            "interrupted or is still running), so the tables were rebuilt from the trial "
            "directories and the best trial has not been scored on the test split.</p>"
        )
    parts.append(f'<div class="cards">{"".join(cards)}</div>')
    config = _best_config(exp, best_index) if not confirm else _trial_config(exp, best_index)
    if config:
        chips = "".join(
            f'<span class="chip">{esc(k)} = <b>{esc(display_value(v))}</b></span>'
            for k, v in sorted(config.items())
        )
        title = "The winner's configuration" if confirm else "Best configuration"
        parts.append(
            f'<h3>{title} (trial {esc(best_index)})</h3><div class="chips">{chips}</div>'
            "<details><summary>Retrain it (exact config)</summary>"
            f"{_retrain(exp, best_index)}</details>"
        )
    return "\n".join(parts)


# --- the trials table ---------------------------------------------------------------------------


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
    return (
        '<p class="muted">Click a column to sort. Green: the best trial; grey: the lab '
        "baseline.</p>"
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
    except Exception as e:  # a damaged optuna.db must not cost the whole report
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


# --- provenance ---------------------------------------------------------------------------------


def _provenance(exp: Experiment) -> str:
    prov = exp.provenance
    if not prov:
        return f'<p class="muted">No {PROVENANCE_JSON} in the experiment.</p>'
    items: list[tuple[str, str]] = [("experiment directory", str(exp.path.resolve()))]
    if prov.get("command"):
        items.append(("command", " ".join(str(c) for c in prov["command"])))
    git = prov.get("git") or {}
    if git:
        items.append(("git", f"{git.get('commit')}" + (" (dirty)" if git.get("dirty") else "")))
    for k, v in sorted((prov.get("libraries") or {}).items()):
        items.append((k, str(v)))
    for k, v in sorted((prov.get("hardware") or {}).items()):
        items.append((f"hardware: {k}", json.dumps(v) if isinstance(v, list | dict) else str(v)))
    for k in ("started", "finished", "seconds"):
        if prov.get(k) is not None:
            items.append((k, str(prov[k])))
    if prov.get("config"):
        items.append(("search config", json.dumps(prov["config"], sort_keys=True)))
    body = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return f'<dl class="prov">{body}</dl>'


# --- the page -----------------------------------------------------------------------------------


def _diagnosis_section(diagnoses: pd.DataFrame, trials: pd.DataFrame, params: list[str]) -> str:
    if diagnoses.empty:
        return '<p class="muted">No trials to diagnose yet.</p>'
    merged = trials.merge(diagnoses, on="trial_index")
    lines = summarize(merged, params)
    rules = (
        "Rules, first match wins: <b>diverged</b> = a non-finite loss, or a loss above "
        f"{EXPLODING_LOSS_FACTOR:g} x ln(classes), or the trainer stopped it for that; "
        f"<b>overfitting</b> = the last validation loss is at least {OVERFIT_RISE:.0%} "
        f"(and {OVERFIT_MIN_RISE:g}) above its minimum at an earlier epoch while the train loss "
        "kept falling; <b>stopped early</b> = ended by ASHA or an error before its budget; "
        f"<b>not learning</b> = the lowest validation loss stayed above "
        f"{NOT_LEARNING_SHARE:.0%} of ln(classes), the loss of a uniform guess; "
        f"<b>still improving</b> = the last epoch lowered the validation loss at least "
        f"{IMPROVING_DROP:.0%} below every earlier epoch; otherwise <b>healthy</b>."
    )
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return f'<ul class="findings">{items}</ul><p class="muted">{rules}</p>'


def _call(diff: Mapping[str, Any]) -> str | None:
    """A difference's call (tuner.experiment.stats.difference): better, worse, tied or "too few
    seeds"."""
    return diff.get("call") or ("tied" if diff.get("tied") else None)


def _span(interval: Mapping[str, Any] | None) -> str:
    """A mean and its 95 % interval, in percent: `96.3 % (86.7 to 99.9)`."""
    if not interval:
        return "-"
    if interval.get("low") is None:
        return f"{100 * interval['mean']:.1f} %"
    return (f"{100 * interval['mean']:.1f} % ({100 * interval['low']:.1f} to "
            f"{100 * interval['high']:.1f})")  # fmt: skip


def _diff_cell(diff: Mapping[str, Any] | None) -> str:
    if not diff:
        return "-"
    text = f"{100 * diff['diff']:+.1f} points"
    if diff.get("low") is not None:
        text += f" ({100 * diff['low']:+.1f} to {100 * diff['high']:+.1f})"
    call = _call(diff)
    if call == "too few seeds":
        return esc(f"{text} on {seeds_text(diff)}") + " <strong>too few seeds to tell</strong>"
    return esc(text) + (" <strong>tied</strong>" if call == "tied" else "")


def _seed_values(config: Mapping[str, Any], key: str) -> str:
    return esc(", ".join(f"{100 * r[key]:.1f}" for r in config.get("per_seed", [])))


def _confirm_section(exp: Experiment, plot: Callable[..., str]) -> str:
    """Is the winner really better? The confirm stage's per-seed values, intervals and
    differences (best.json's "confirm"), or how to run it."""
    confirm = (exp.best or {}).get("confirm")
    if not confirm:
        return (
            "<p>This search's winner is one training run with one seed, picked as the best of "
            "many on a few hundred validation images, so part of its lead may be luck. It was "
            "not confirmed over fresh seeds (the search ran with <code>--no-confirm</code>, or "
            "stopped before the stage). To confirm it: <code>"
            + esc(f"tuner confirm {shlex.quote(str(exp.path))}")
            + "</code></p>"
        )
    unfinished = "" if confirm.get("complete", True) else (
        f" <strong>Unfinished: {confirm.get('runs_done', 0)} of {confirm.get('runs', 0)} runs "
        "done</strong>; <code>tuner resume</code> trains the rest."
    )  # fmt: skip
    intro = (
        f"<p>After the search, the top configurations by validation and the lab's baseline "
        f"trained again from scratch with {len(confirm.get('seeds', []))} fresh seeds each "
        f"({esc(', '.join(map(str, confirm.get('seeds', []))))}), {confirm.get('epochs')} epochs, "
        "not as Optuna trials and never stopped by ASHA. The winner is the best mean validation "
        "accuracy; bars are 95 % t intervals on the logit of the per-seed accuracies, mapped "
        "back (so they stay inside 0 to 100 %), which are wide with few seeds. Differences "
        "are Welch's 95 % intervals; with fewer than "
        f"{MIN_SEEDS} seeds on either side no verdict is drawn (too few seeds to tell)."
        f"{unfinished}</p>"
        f'<p class="verdict"><strong>{esc(confirm.get("verdict", ""))}</strong></p>'
    )
    rows = []
    for c in confirm.get("configs", []):
        name = "lab baseline" if c["is_baseline"] else f"trial {c['trial_index']}"
        if c["trial_index"] == confirm.get("winner"):
            name += " (winner)"
        search_val = c.get("search_val_acc")
        rows.append(
            f"<tr><td>{esc(name)}</td><td>{pct(search_val) if search_val is not None else '-'}"
            f"</td><td>{esc(_span(c['val']))}</td><td>{esc(_span(c.get('test')))}</td>"
            f"<td>{_seed_values(c, 'val_acc')}</td><td>{_seed_values(c, 'test_acc')}</td></tr>"
        )
    table = (
        "<table><thead><tr><th>configuration</th><th>search val acc (one run)</th>"
        "<th>val acc over seeds (95 % t interval on the logit)</th>"
        "<th>test acc over seeds (95 % t interval on the logit)</th>"
        "<th>val acc per seed</th><th>test acc per seed</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    diffs = []
    for key, who in (("vs_runner_up", "the runner-up"), ("vs_baseline", "the lab's baseline")):
        d = confirm.get(key)
        if d:
            diffs.append(
                f"<tr><td>winner - {esc(who)} (trial {d['trial_index']})</td>"
                f"<td>{_diff_cell(d.get('val'))}</td><td>{_diff_cell(d.get('test'))}</td></tr>"
            )
    diff_table = (
        "<table><thead><tr><th>difference</th><th>validation (95 % CI, Welch)</th>"
        "<th>test (95 % CI, Welch)</th></tr></thead><tbody>" + "".join(diffs) + "</tbody></table>"
        if diffs else ""
    )  # fmt: skip
    return intro + plot("confirm", plot_confirm(confirm)) + table + diff_table


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


# While a search runs the page reloads itself; the scroll position survives the reload.
LIVE_SCRIPT = """
(function () {
  var key = "cnn-tuner-scroll:" + location.pathname;
  var y = sessionStorage.getItem(key);
  if (y !== null) { window.scrollTo(0, parseInt(y, 10)); }
  window.addEventListener("beforeunload", function () {
    sessionStorage.setItem(key, String(window.scrollY));
  });
})();
"""


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
    except Exception as e:  # a damaged or foreign optuna.db must not cost the whole report
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
            trials, budget, int(cfg.get("grace_period") or 1),
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
