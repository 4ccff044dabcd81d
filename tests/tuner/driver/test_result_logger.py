"""The result.json logger on a real Tune Trial (a stub: no Ray cluster): result.json, params.json
and trial_end.json go straight into the trial's directory, and the end record tells `tuner
status` whether and how the trial ended whatever Tune's saved state says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuner.experiment import TRIAL_END_JSON, collect_tables, trial_end


def _trial(root: Path, trial_id: str = "a", index: int = 0):
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment import Trial

    from tuner.experiment import trial_dir_name

    class NoSession(StorageContext):
        """Tune's staging dir lives in the Ray session's directory; these tests start no Ray."""

        def _get_session_path(self) -> str:
            return str(root / "staging")

    storage = NoSession(storage_path=str(root), experiment_dir_name="exp")
    # named as the search names them
    trial = Trial("cnn_tuner_test", config={"lr": 0.1}, trial_id=trial_id, storage=storage,
                  experiment_tag=f"{index + 1}_lr=0.1", stub=True,
                  trial_dirname_creator=trial_dir_name)  # fmt: skip
    trial.init_local_path()  # what Tune does as it adds the trial
    return trial


def _report(logger, trial, epoch: int) -> None:
    result = {"trial_id": trial.trial_id, "epoch": epoch, "val_acc": 0.5, "val_loss": 1.0}
    logger.log_trial_result(0, trial, result)


@pytest.mark.parametrize("failed", [False, True])
def test_the_end_is_on_disk_the_moment_tune_ends_the_trial(tmp_path, failed):
    from tuner.driver.fence.loggers import ResultJsonLogger

    logger = ResultJsonLogger()
    trial = _trial(tmp_path)
    here = Path(trial.path)
    logger.log_trial_start(trial)
    _report(logger, trial, 1)
    # in the experiment, not in Tune's staging dir, before any save of Tune's state
    assert json.loads((here / "params.json").read_text()) == {"lr": 0.1}
    assert [json.loads(x)["epoch"] for x in (here / "result.json").read_text().splitlines()] == [1]
    assert trial_end(here) is None
    running, _ = collect_tables(tmp_path / "exp", epoch_budget=3)
    assert running["status"].tolist() == ["running"]  # Tune has saved no state: not ended

    logger.log_trial_end(trial, failed=failed)
    assert trial_end(here) == ("ERROR" if failed else "TERMINATED")
    ended, _ = collect_tables(tmp_path / "exp", epoch_budget=3)
    assert ended["status"].tolist() == ["error" if failed else "stopped"]

    # started again (resume, --retry-errored): it has not ended
    logger.log_trial_start(trial)
    assert not (here / TRIAL_END_JSON).exists()
    _report(logger, trial, 2)
    again, _ = collect_tables(tmp_path / "exp", epoch_budget=3)
    assert again["status"].tolist() == ["running"] and again["epochs_run"].tolist() == [2]


def test_the_end_record_outranks_tunes_older_saved_state(tmp_path):
    """Tune's state, saved before the trial ended, still says RUNNING: the end record wins; and
    a trial Tune's state says ended, without a record (a search older than the record), ended."""
    from tuner.driver.fence.loggers import ResultJsonLogger

    logger = ResultJsonLogger()
    first, second = _trial(tmp_path, "a", 0), _trial(tmp_path, "b", 1)
    for trial in (first, second):
        logger.log_trial_start(trial)
        _report(logger, trial, 1)
    logger.log_trial_end(first)
    state = {"trial_data": [
        [json.dumps({"trial_id": "a", "status": "RUNNING"}), json.dumps({"num_failures": 0})],
        [json.dumps({"trial_id": "b", "status": "TERMINATED"}), json.dumps({"num_failures": 0})],
    ]}  # fmt: skip
    (tmp_path / "exp" / "experiment_state-2026-12-07_00-00-00.json").write_text(json.dumps(state))
    trials, _ = collect_tables(tmp_path / "exp", epoch_budget=3)
    assert trials["status"].tolist() == ["stopped", "stopped"]
    # and when the driver says which are unfinished (the end of a search), it is believed
    trials, _ = collect_tables(tmp_path / "exp", epoch_budget=3, running={"b"})
    assert trials["status"].tolist() == ["stopped", "running"]
