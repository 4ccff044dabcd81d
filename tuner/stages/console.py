"""What the driver prints at the end: the outcomes, the Pareto front, the best trial (progress
lines: progress.py; the Ctrl-C plan: interrupt.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from tuner.experiment.records import BestRecord


def say(stream: TextIO, message: str) -> None:
    stream.write(message + "\n")
    stream.flush()


def _fmt(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_summary(
    stream: TextIO, exp: Path, trials: pd.DataFrame, best: BestRecord | None, report: Path | None
) -> None:
    counts = trials["status"].value_counts().to_dict() if not trials.empty else {}
    counts.pop("running", None)  # unfinished trials are counted once, on the line that follows
    say(stream, "")
    say(stream, "Outcomes: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"))
    if best and best.get("pareto_front"):
        say(stream, f"Pareto front ({len(best['pareto_front'])} trials, best first):")
        for point in best["pareto_front"]:
            values = ", ".join(f"{k} {_fmt(v)}" for k, v in point["objectives"].items())
            test = point.get("test_acc")
            test_text = f", test acc {test:.4f}" if test is not None else ""
            knee = "  <- knee" if point["trial_index"] == best["trial_index"] else ""
            say(stream, f"  trial {point['trial_index']}: {values}{test_text}{knee}")
    if best:
        test = best.get("test_acc")
        test_text = f", test acc {test:.4f}" if test is not None and math.isfinite(test) else ""
        say(
            stream,
            f"Best: trial {best['trial_index']} val acc {best['val_acc']:.4f}{test_text}, "
            f"{best['params']:,} params",
        )
        base = best.get("baseline")
        if base and base.get("val_acc") is not None:
            why = f" (not scored on the test split: {base['not_scored']})" if base.get(
                "not_scored"
            ) else ""  # fmt: skip
            say(stream, f"Lab baseline (trial {base['trial_index']}): val acc "
                        f"{base['val_acc']:.4f}{why}")  # fmt: skip
    confirmed = best.get("confirm") if best else None
    if confirmed:
        done = "" if confirmed.get("complete") else " (unfinished)"
        say(stream, f"Confirmed over seeds {', '.join(map(str, confirmed['seeds']))}{done}, "
                    "accuracy as mean [95 % t interval on the logit]:")  # fmt: skip
        for c in confirmed["configs"]:
            label = "lab baseline" if c["is_baseline"] else f"trial {c['trial_index']}"
            mark = "  <- winner" if c["trial_index"] == confirmed["winner"] else ""
            test_text = f", test {_interval(c['test'])}" if c.get("test") else ""
            n = c["val"].get("n")
            seeds = f" ({n} seed{'s' if n != 1 else ''})" if n != len(confirmed["seeds"]) else ""
            say(stream, f"  {label:<14} val {_interval(c['val'])}{test_text}{seeds}{mark}")
        say(stream, confirmed["verdict"])
    model = best.get("model") if best else None
    if model:
        seed = f", seed {model['seed']}" if model.get("seed") is not None else ""
        say(stream, f"Model:   {exp / model['file']} (trial {model['trial_index']}{seed})")
    say(stream, f"Results: {exp}")
    if report:
        say(stream, f"Report:  {report}")


def _interval(interval: dict | None) -> str:
    """0.9625 [0.9512, 0.9738] (a mean and its 95 % interval, tuner.experiment.stats's)."""
    if not interval:
        return "-"
    if interval.get("low") is None:
        return f"{interval['mean']:.4f}"
    return f"{interval['mean']:.4f} [{interval['low']:.4f}, {interval['high']:.4f}]"
