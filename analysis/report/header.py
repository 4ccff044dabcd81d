"""The page's head: the subtitle, the winner's cards, its configuration and how to retrain it."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

import pandas as pd

from analysis._compute import ComputeSummary
from analysis._lab import LAB_TEST_ACC, lab_per_class
from analysis._load import (
    Experiment,
    baseline_index,
    display_value,
)
from analysis.report.confirm import _call
from analysis.report.html import (
    _when,
    card,
    duration,
    esc,
    pct,
    points,
)
from tuner.experiment import (
    BEST_JSON,
    CONFIG_PREFIX,
    TRIALS_CSV,
    grace_period_for,
    is_finite,
)
from tuner.experiment.stats import describe, seeds_text


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
                f" (grace period {grace_period_for(cfg.get('grace_period'), exp.epoch_budget)}, "
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
