"""What the driver prints: progress lines, the Ctrl-C plan and the summary at the end."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from tuner.data import DatasetBundle
from tuner.driver.config import SearchConfig


def say(stream: TextIO, message: str) -> None:
    stream.write(message + "\n")
    stream.flush()


def interrupt_plan(cfg: SearchConfig, bundle: DatasetBundle, in_fit: bool) -> str:
    """What the first Ctrl-C leads to, and about how long the test scoring takes: the best
    trial's validation pass, scaled from its validation images to the test split's."""
    from search_spaces import get_space
    from tuner.driver import progress
    from tuner.driver.best import MAX_FRONT_EVALUATIONS

    shown = progress.ACTIVE
    steps = []
    if in_fit:
        running = len(shown.running) if shown else 0
        steps.append(
            f"stopping the {running} running trial(s) as their current epoch ends (each keeps "
            "its last checkpoint)"
            if running
            else "stopping the search"
        )
    tests = len(bundle.test.y)
    if cfg.objectives:
        scoring = f"scoring up to {MAX_FRONT_EVALUATIONS} Pareto-front trials"
    elif shown and shown.best:
        scoring = f"scoring trial {shown.best[1]}, the best so far,"
    else:
        scoring = "scoring the best trial"
    scoring += f" on {tests:,} test images"
    if get_space(cfg.space).baseline is not None:
        scoring += " (and the lab baseline)"
    if shown and shown.best and not cfg.objectives:
        val_seconds = shown.kept_result(shown.best[1]).get("val_time_s")
        if val_seconds and len(bundle.val.y):
            estimate = float(val_seconds) * tests / len(bundle.val.y)
            scoring += f", about {max(1, round(estimate)):,} s"
    steps += [scoring, "writing the report"]
    text = ", then ".join(steps) + "."
    return text[0].upper() + text[1:]


def _fmt(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_summary(
    stream: TextIO, exp: Path, trials: pd.DataFrame, best: dict | None, report: Path | None
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
            say(
                stream, f"Lab baseline (trial {base['trial_index']}): val acc {base['val_acc']:.4f}"
            )
    say(stream, f"Results: {exp}")
    if report:
        say(stream, f"Report:  {report}")
