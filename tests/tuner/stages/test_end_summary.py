"""The lines a search ends with on the terminal (README, "Run a search"): Outcomes, Best, Lab
baseline, Confirmed over seeds (one line per configuration, the winner marked, then the
verdict), Model, Results, Report, in that order, from a finished experiment's recorded
tables and best.json (tuner.stages.console.print_summary, which write_results calls). No Ray."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
from analysis_fixture import add_confirm, write_experiment

from tuner.stages.console import print_summary

VERDICT = "Over 3 fresh seeds, trial W has the best mean validation accuracy."


def _summary(exp, best, report) -> list[str]:
    stream = io.StringIO()
    trials = pd.read_csv(exp / "trials.csv")
    print_summary(stream, exp, trials, best, report)
    return stream.getvalue().splitlines()


def test_the_summary_after_a_confirm_stage(tmp_path):
    exp = add_confirm(write_experiment(tmp_path / "exp", trials=12, epochs=10), VERDICT)
    best = json.loads((exp / "best.json").read_text())
    win = best["confirm"]["winner"]
    best["model"] = {"file": "model.pt", "trial_index": win, "seed": 1001, "test_acc": 0.8}
    trials = pd.read_csv(exp / "trials.csv")
    counts = trials["status"].value_counts()
    lines = _summary(exp, best, exp / "report.html")

    assert lines[0] == ""
    assert lines[1] == "Outcomes: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    assert lines[2] == (
        f"Best: trial {best['trial_index']} val acc {best['val_acc']:.4f}, test acc 0.8100, "
        f"{best['params']:,} params"
    )
    assert lines[3] == f"Lab baseline (trial 0): val acc {best['baseline']['val_acc']:.4f}"
    assert lines[4].startswith("Confirmed over seeds 1000, 1001, 1002")
    rows = lines[5:8]  # one per configuration, as best.json lists them: baseline, winner, other
    assert [r.split(" val ")[0].strip() for r in rows] == ["lab baseline", f"trial {win}",
                                                            "trial 99"]  # fmt: skip
    for row, config in zip(rows, best["confirm"]["configs"], strict=True):
        val, test = config["val"], config["test"]
        assert f"val {val['mean']:.4f} [{val['low']:.4f}, {val['high']:.4f}]" in row
        assert f"test {test['mean']:.4f} [{test['low']:.4f}, {test['high']:.4f}]" in row
        assert row.endswith("<- winner") == (config["trial_index"] == win)
    assert lines[8] == VERDICT
    assert lines[9] == f"Model:   {exp / 'model.pt'} (trial {win}, seed 1001)"
    assert lines[10] == f"Results: {exp}"
    assert lines[11] == f"Report:  {exp / 'report.html'}"
    assert len(lines) == 12


def test_the_summary_without_a_confirm_stage_or_a_report(tmp_path):
    exp = write_experiment(tmp_path / "exp", trials=6, epochs=10)
    best = json.loads((exp / "best.json").read_text())
    best["model"] = {"file": "model.pt", "trial_index": best["trial_index"], "seed": None}
    lines = _summary(exp, best, None)
    assert [re.match(r"[A-Za-z ]+", x).group(0) for x in lines[1:]] == [
        "Outcomes", "Best", "Lab baseline ", "Model", "Results"
    ]  # fmt: skip
    assert lines[-2] == f"Model:   {exp / 'model.pt'} (trial {best['trial_index']})"


def test_a_search_that_finished_nothing(tmp_path):
    stream = io.StringIO()
    print_summary(stream, tmp_path, pd.DataFrame(), None, None)
    assert stream.getvalue().splitlines() == ["", "Outcomes: none", f"Results: {tmp_path}"]
