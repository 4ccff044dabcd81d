"""'Is the winner really better?': the confirm stage's runs over fresh seeds and the verdicts."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import Any

from analysis._load import Experiment
from analysis.plots import plot_confirm
from analysis.report.html import (
    esc,
    pct,
)
from tuner.experiment import CONFIRM_DIR
from tuner.experiment.stats import MIN_SEEDS, seeds_text


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
    if not confirm and (exp.path / CONFIRM_DIR).is_dir():
        # Started and stopped (Ctrl-C, --time-budget) before any configuration had its seeds:
        # `tuner resume` trains the rest (`tuner confirm` would start the stage over).
        return (
            "<p>This search's winner is one training run with one seed, so part of its lead may "
            "be luck. The confirm stage, which trains the top configurations again over fresh "
            "seeds, was stopped before it finished. To finish it: <code>"
            + esc(f"tuner resume {shlex.quote(str(exp.path))}")
            + "</code></p>"
        )
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
    if confirm.get("cut"):  # cut to fit --time-budget: say what was left out
        unfinished += f" <strong>{esc(confirm['cut'])}.</strong>"
    with_baseline = any(c.get("is_baseline") for c in confirm.get("configs", []))
    baseline = " and the lab's baseline" if with_baseline else ""
    intro = (
        f"<p>After the search, the top configurations by validation{baseline} "
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
