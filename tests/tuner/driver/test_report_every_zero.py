"""`--report-every 0` writes report.html only at the end (README, "The report fills in"): the
live report callback the search runs never writes a copy while trials report, however long
the search goes on, where any other setting writes one. No Ray: the callback gets the calls
Tune would make."""

from __future__ import annotations

import json

import pytest

from tuner.cli import build_parser, config_from_args
from tuner.driver import live_report
from tuner.experiment import PROVENANCE_JSON, REPORT_HTML


def test_the_flag_reads_0_as_zero_seconds():
    args = build_parser().parse_args(["search", "--report-every", "0"])
    assert config_from_args(args).report_every == 0
    assert config_from_args(build_parser().parse_args(["search"])).report_every == 60


@pytest.mark.parametrize("every, copies", [(0.0, 0), (1.0, 3)])
def test_no_live_copy_with_report_every_0(tmp_path, monkeypatch, every, copies):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / PROVENANCE_JSON).write_text(json.dumps({"config": {"samples": 3, "epochs": 2}}))
    clock = [1000.0]  # Tune's loop time, as the callback reads it
    monkeypatch.setattr(live_report.time, "monotonic", lambda: clock[0])
    live = live_report.LiveReport(exp, total=3, every=every)
    live.setup()
    try:
        for step in range(3):  # a result and a trial's end came in, and a long time passed
            live.on_trial_result(step, [], None, {"epoch": step + 1})
            live.on_trial_complete(step, [], None)
            clock[0] += 3600.0
            live.on_step_end(step, [])
            live.wait()
        live.on_experiment_end([])
    finally:
        cost = live_report.wait_all()
    assert live.writes == copies and cost["writes"] == copies
    assert (exp / REPORT_HTML).exists() == bool(copies)
