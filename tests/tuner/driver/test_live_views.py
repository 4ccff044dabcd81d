"""The views of a running search, piece by piece: the TensorBoard callback (real tensorboardX
files, read back with TensorBoard's own reader), the live report's banner, the progress bar on
a terminal, and `tuner status` on a directory. No Ray cluster: the callbacks get the few trial
attributes they read."""

from __future__ import annotations

import io
import json
import math
from datetime import datetime
from pathlib import Path

import pytest

from tuner.driver.progress import SearchProgress
from tuner.driver.tensorboard import TensorBoardLogger
from tuner.errors import ConfigError
from tuner.experiment.status import format_status, read_status


class FakeTrial:
    """What the callbacks read of a Tune trial."""

    def __init__(self, path: Path, trial_id: str = "abc", config: dict | None = None) -> None:
        self.trial_id = trial_id
        self.local_path = str(path)
        self.config = config or {"lr": 0.1, "optimizer": "sgd", "channels": [8, 16]}
        self.status = "RUNNING"
        self.last_result: dict = {}
        self.experiment_tag = "4_lr=0.1"  # Tune's 1-based counter: trial_0003_<id>

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


def _epoch(epoch: int, **kw) -> dict:
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.2 / epoch,
            "train_acc": 0.5, "val_acc": 0.4 + epoch / 10, "lr": 0.1, "images_per_s": 900.0,
            "epoch_time_s": 0.5, "best_val_acc": 0.4 + epoch / 10, "best_val_loss": 1.2 / epoch,
            **kw}  # fmt: skip


def _events(path: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(path))
    events.Reload()
    return events


def test_tensorboard_writes_one_scalar_per_epoch_and_the_hparams(tmp_path):
    trial = FakeTrial(tmp_path / "t")
    logger = TensorBoardLogger()
    for epoch in (1, 2, 3):
        logger.on_trial_result(0, [], trial, _epoch(epoch))
    logger.on_trial_complete(0, [], trial)
    events = _events(tmp_path / "t")
    val = events.Scalars("accuracy/val")
    assert [(e.step, round(e.value, 6)) for e in val] == [(1, 0.5), (2, 0.6), (3, 0.7)]
    for tag in ("loss/train", "loss/val", "accuracy/train", "lr", "images_per_s",
                "epoch_time_s"):  # fmt: skip
        assert [e.step for e in events.Scalars(tag)] == [1, 2, 3]
    assert events.Scalars("final/best_val_acc")[0].value == pytest.approx(0.7)
    assert set(events.PluginTagToContent("hparams")) == {
        "_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"
    }  # fmt: skip
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["lr"].number_value == pytest.approx(0.1)
    assert start.hparams["optimizer"].string_value == "sgd"
    assert start.hparams["status"].string_value == "finished"
    assert start.hparams["channels"].string_value == "[8, 16]"  # a list, as text


def test_a_running_trials_scalars_reach_its_file_once_a_flush_is_due(tmp_path, monkeypatch):
    from tuner.driver import tensorboard

    trial = FakeTrial(tmp_path / "r")
    logger = TensorBoardLogger()
    logger.on_trial_result(0, [], trial, _epoch(1))
    assert _events(tmp_path / "r").Tags()["scalars"] == []  # buffered: no flush due yet
    monkeypatch.setattr(tensorboard, "FLUSH_SECS", 0)
    logger.on_trial_result(0, [], trial, _epoch(2))  # the trial still runs
    val = _events(tmp_path / "r").Scalars("accuracy/val")
    assert [e.step for e in val] == [1, 2]


def test_a_diverged_trial_writes_no_nan_and_is_tagged(tmp_path, recwarn):
    trial = FakeTrial(tmp_path / "d")
    logger = TensorBoardLogger()
    logger.on_trial_result(0, [], trial, _epoch(1))
    logger.on_trial_result(0, [], trial, _epoch(2, val_loss=math.inf, val_acc=math.nan,
                                                train_loss=math.nan, diverged=True))  # fmt: skip
    logger.on_trial_complete(0, [], trial)
    events = _events(tmp_path / "d")
    for tag in events.Tags()["scalars"]:
        assert all(math.isfinite(e.value) for e in events.Scalars(tag)), tag
    assert [e.step for e in events.Scalars("loss/val")] == [1]  # epoch 2's inf left out
    text = events.Tensors("status/text_summary")[0].tensor_proto.string_val[0]
    assert text == b"diverged at epoch 2"
    assert not [w for w in recwarn.list if "nan" in str(w.message).lower()]


def test_a_confirm_runs_hparams_are_its_configuration_and_seed(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    trial = FakeTrial(tmp_path / "c", config={"confirm": {"config": {"lr": 0.3}, "seed": 1001,
                                                          "trial_index": 4}})  # fmt: skip
    logger = TensorBoardLogger(wrapped="confirm")
    logger.on_trial_result(0, [], trial, _epoch(1))
    logger.on_trial_error(0, [], trial)
    content = _events(tmp_path / "c").PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["seed"].number_value == 1001 and start.hparams["lr"].number_value == 0.3
    assert start.hparams["status"].string_value == "error"


def test_the_live_banner_and_reload_are_only_in_a_running_report(tmp_path):
    from analysis import Running, build_report
    from tuner.experiment import PROVENANCE_JSON

    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / PROVENANCE_JSON).write_text(json.dumps({"config": {"samples": 5, "epochs": 2}}))
    updated = datetime(2026, 12, 1, 14, 2)
    live = build_report(exp, live=Running(2, 5, updated, reload_s=30))
    assert '<meta http-equiv="refresh" content="30">' in live
    assert f"running: 2 of 5 trials finished, updated {updated.strftime('%H:%M')}" in live
    final = build_report(exp)
    assert 'id="live-banner"' not in final and "http-equiv" not in final
    stage = Running(5, 5, updated, 1, stage="confirming the winner over seeds: 1 of 6 runs done")
    assert "5 of 5 trials finished; confirming the winner" in stage.banner()
    assert 'content="5"' in build_report(exp, live=stage)  # never faster than every 5 s
    budget = Running(12, 5, updated, 30, epochs=(7, 10))  # ASHA's savings: more trials than 5
    assert budget.banner().startswith("running: 12 trials finished, 7 of 10 epochs of the budget")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_live_bar_on_a_terminal_and_plain_lines_elsewhere(tmp_path):
    trials = [FakeTrial(tmp_path / f"t{i}", trial_id=f"id{i}") for i in range(2)]
    for stream, bar in ((Terminal(), True), (io.StringIO(), False)):
        shown = SearchProgress(2, 3, stream=stream, log_every_s=0)
        shown.setup()
        for t in trials:
            shown.on_trial_start(0, trials, t)
            t.last_result = _epoch(3, best_epoch=3)
            shown.on_trial_result(0, trials, t, t.last_result)
            t.status = "TERMINATED"
            shown.on_trial_complete(0, trials, t)
        assert shown._progress(trials) == 6  # every epoch of both budgets
        shown.on_experiment_end(trials)
        out = stream.getvalue()
        assert "trial   3  completed            val_acc 0.7000 (epoch 3)" in out
        assert ("━" in out) == bar  # rich's bar only on a terminal
        assert ("\x1b[" in out) == bar  # no terminal codes in a log
        for t in trials:
            t.status = "RUNNING"


def test_a_log_gets_status_lines_while_no_trial_reports(tmp_path, monkeypatch):
    from tuner.driver import progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    trials = [FakeTrial(tmp_path / "t0", trial_id="id0")]
    trials[0].status = "RUNNING"
    stream = io.StringIO()
    shown = SearchProgress(2, 3, stream=stream, log_every_s=15)
    shown.setup()
    shown.on_trial_start(0, trials, trials[0])
    before = stream.getvalue().count("trials done")
    for _ in range(3):  # Tune's loop turns while the one trial trains a long epoch
        clock[0] += 16
        shown.on_step_end(0, trials)
        shown.on_step_end(0, trials)  # within the same 15 s: nothing more
    assert stream.getvalue().count("trials done") == before + 3
    assert "0/2 trials done, 1 running" in stream.getvalue()


def test_status_of_a_directory_without_an_experiment_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="holds no experiment") as info:
        read_status(tmp_path)
    assert "\n" not in str(info.value)


def test_status_counts_the_trial_dirs_of_an_interrupted_search(tmp_path):
    from tuner.experiment import PROVENANCE_JSON

    exp = tmp_path / "exp"
    # trial 1 ended after 1 epoch (stopped); trial 2 had not ended when the driver went, and
    # Tune never saved its state: the driver's own end record is what tells them apart
    for index, epochs, ended in ((0, 2, True), (1, 1, True), (2, 1, False)):
        trial = exp / f"trial_{index:04d}_id{index}"
        trial.mkdir(parents=True)
        (trial / "params.json").write_text(json.dumps({"lr": 0.1 * (index + 1), "epochs": 2}))
        rows = [_epoch(e, trial_id=f"id{index}", best_epoch=e, params=100) for e in
                range(1, epochs + 1)]  # fmt: skip
        (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if ended:
            (trial / "trial_end.json").write_text('{"status": "TERMINATED"}')
    (exp / PROVENANCE_JSON).write_text(json.dumps({
        "config": {"samples": 5, "epochs": 2, "time_budget": 600.0},
        "started": "2026-12-01T10:00:00+00:00", "finished": None,
    }))  # fmt: skip
    from tuner.experiment.status import STALE_S

    # read long after its files were last written: the driver is gone
    newest = max(p.stat().st_mtime for p in exp.rglob("result.json"))
    status = read_status(exp, now=newest + STALE_S + 1)
    assert status["state"] == "interrupted"
    assert (status["finished"], status["running"], status["pending"]) == (2, 1, 2)
    assert status["by_status"] == {"completed": 1, "stopped": 1, "running": 1}
    assert status["epochs_trained"] == 4
    assert status["best"]["trial_index"] == 0 and status["best"]["config"]["lr"] == 0.1
    assert "tuner resume" in format_status(status)
    # the same files, read as if just written: running, with what is left of the time budget
    fresh = newest + 1
    running = read_status(exp, now=fresh)
    assert running["state"] == "running" and running["time_left_is"] == "budget"
    started = datetime.fromisoformat("2026-12-01T10:00:00+00:00").timestamp()
    assert running["time_left_s"] == pytest.approx(max(0.0, 600 - (fresh - started)))


def test_status_counts_the_confirm_runs_that_ended_before_tune_saved_them(tmp_path):
    """The confirm stage's runs, counted from their end records: Tune's state of the stage
    trails by its save interval (here it was never saved)."""
    from tuner.experiment import PROVENANCE_JSON

    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / PROVENANCE_JSON).write_text(json.dumps({"config": {"samples": 1, "epochs": 1}}))
    assert read_status(exp, now=0.0)["confirm"] is None  # before the stage
    for seed, ended in ((1000, True), (1001, False)):
        run = exp / "confirm" / f"run_0000_seed{seed}"
        run.mkdir(parents=True)
        (run / "params.json").write_text(json.dumps({"confirm": {"seed": seed}}))
        if ended:
            (run / "trial_end.json").write_text('{"status": "TERMINATED"}')
    assert read_status(exp, now=0.0)["confirm"] == {"done": 1, "total": 2}


def test_live_copies_keep_to_a_twentieth_of_the_drivers_time(tmp_path, monkeypatch):
    from tuner.driver import live_report
    from tuner.experiment import PROVENANCE_JSON, REPORT_HTML

    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / PROVENANCE_JSON).write_text(json.dumps({"config": {"samples": 3, "epochs": 2}}))
    clock = [1000.0]  # Tune's loop time, as the callback reads it
    monkeypatch.setattr(live_report.time, "monotonic", lambda: clock[0])
    live = live_report.LiveReport(exp, total=3, every=1.0)
    live.setup()
    clock[0] += 1.0  # the first copy is due --report-every after the start
    live.on_step_end(0, [])
    live.wait()
    assert live.writes == 1 and 'id="live-banner"' in (exp / REPORT_HTML).read_text()
    gap = live._gap
    assert gap == pytest.approx(live_report.SHARE_LIMIT * live.seconds) and gap > 0
    live.every = gap / 4  # a --report-every shorter than 20x what a copy takes
    live.on_trial_complete(0, [], None)  # something changed
    clock[0] += gap * 0.99  # past --report-every, not past 20x the last copy's time
    live.on_step_end(0, [])
    live.wait()
    assert live.writes == 1
    clock[0] += gap * 0.02
    live.on_step_end(0, [])
    live.wait()
    assert live.writes == 2
    clock[0] += 1e6
    live.on_step_end(0, [])  # nothing changed since: no copy, however long it has been
    live.wait()
    assert live.writes == 2
    assert live_report.wait_all()["writes"] == 2


def test_a_new_search_has_a_starting_page_and_its_first_copy_after_report_every(
    tmp_path, monkeypatch
):
    from tuner.driver import live_report
    from tuner.experiment import PROVENANCE_JSON, REPORT_HTML

    exp = tmp_path / "a<b>&c"  # the name is the user's: escaped in the page
    exp.mkdir()
    (exp / PROVENANCE_JSON).write_text(json.dumps({"config": {"samples": 3, "epochs": 2}}))
    clock = [1000.0]
    monkeypatch.setattr(live_report.time, "monotonic", lambda: clock[0])
    live = live_report.LiveReport(exp, total=3, every=30.0)
    live.setup()
    page = (exp / REPORT_HTML).read_text()
    assert '<meta http-equiv="refresh" content="30">' in page
    assert "<h1>a&lt;b&gt;&amp;c</h1>" in page and "<b>" not in page
    assert "plotly" not in page.lower() and 'id="live-banner"' not in page
    live.on_trial_result(0, [], None, {"epoch": 1})
    clock[0] += 29.0
    live.on_step_end(0, [])  # something changed, but --report-every has not passed
    live.wait()
    assert live.writes == 0 and (exp / REPORT_HTML).read_text() == page
    clock[0] += 1.0
    live.on_step_end(0, [])
    live.wait()
    assert live.writes == 1 and 'id="live-banner"' in (exp / REPORT_HTML).read_text()
    assert live_report.wait_all()["writes"] == 1


def test_a_resumed_search_and_the_confirm_stage_keep_the_page_they_have(tmp_path):
    from tuner.driver import live_report
    from tuner.experiment import REPORT_HTML

    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / REPORT_HTML).write_text("the report of the run before")
    for live in (live_report.LiveReport(exp, total=3, every=30.0),
                 live_report.LiveReport(exp, total=6, every=30.0, confirm_of=3)):  # fmt: skip
        live.setup()
        assert (exp / REPORT_HTML).read_text() == "the report of the run before"
    (exp / REPORT_HTML).unlink()
    live_report.LiveReport(exp, total=6, every=30.0, confirm_of=3).setup()
    live_report.LiveReport(exp, total=3, every=0.0).setup()  # --report-every 0: only the end
    assert not (exp / REPORT_HTML).exists()
    live_report.wait_all()


@pytest.mark.parametrize(
    ("error_txt", "said"),
    [
        (  # a node lost (the cut cable and the lost host of tests/e2e/test_hosts.py)
            "Failure # 1 (occurred at 2026-12-06_13-36-19)\nThe actor ed29 is unavailable: "
            "The actor is temporarily unavailable: RpcError: RPC error: Socket closed",
            "its worker process or node was lost",
        ),
        (  # the trial's own code: the newest failure's exception, not the first
            "Failure # 1 (occurred at 1)\nray.exceptions.RayTaskError(ValueError): boom\n"
            'Failure # 2 (occurred at 2)\nray::ImplicitFunc.train()\n  File "x.py", line 1\n'
            "RuntimeError: CUDA error: an illegal memory access was encountered\n",
            "RuntimeError: CUDA error: an illegal memory access was encountered",
        ),
        ("", "error"),  # no error.txt (yet): never a failure of the search itself
    ],
)
def test_a_failed_trial_is_one_line_with_what_failed(tmp_path, error_txt, said):
    from types import SimpleNamespace

    from tuner.driver.progress import error_summary

    path = tmp_path / "error.txt"
    if error_txt:
        path.write_text(error_txt)
    assert error_summary(SimpleNamespace(error_file=str(path))) == said
