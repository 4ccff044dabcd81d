"""The private parts of Ray and Optuna the search relies on are still there and as expected
(tuner/driver/fence/internals.py). When this fails after an upgrade, its message names each one."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from tuner.driver.fence import internals


def test_every_private_internal_the_search_relies_on_is_as_expected():
    problems = internals.check()
    versions = {n: importlib.metadata.version(n) for n in ("ray", "optuna")}
    assert problems == [], (
        f"Ray {versions['ray']} / Optuna {versions['optuna']} changed internals that "
        "tuner/driver/fence/internals.py relies on:\n  " + "\n  ".join(problems)
    )


def test_a_changed_internal_is_reported_by_name(monkeypatch):
    import ray._private.ray_constants as ray_constants
    from ray.tune.schedulers import async_hyperband

    monkeypatch.delattr(ray_constants, "ENABLE_RAY_CLUSTER")
    monkeypatch.delattr(async_hyperband, "_Bracket")
    problems = internals.check()
    assert any("ENABLE_RAY_CLUSTER" in p for p in problems), problems
    assert any("_Bracket is gone" in p for p in problems), problems


def test_the_checkpoint_bookkeeping_accessors_round_trip_tunes_json():
    from ray.train import Checkpoint, CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult

    manager = _CheckpointManager(CheckpointConfig(num_to_keep=2))
    for name in ("c_0", "c_1"):
        manager.register_checkpoint(
            _TrainingResult(checkpoint=Checkpoint(f"/t/{name}"), metrics={})
        )
    back = internals.load_tune_json(internals.dump_tune_json({"m": manager}))["m"]
    kept = internals.checkpoint_results(back)
    internals.set_checkpoint_results(back, kept[:1], kept[0])
    assert internals.latest_checkpoint_result(back).checkpoint.path == "/t/c_0"
    assert [r.checkpoint.path for r in internals.checkpoint_results(back)] == ["/t/c_0"]


class _Controller:
    """What TuneController.save_to_dir reads of its controller, with real trial states."""

    def __init__(self, staging, trials):
        from types import SimpleNamespace

        self._storage = SimpleNamespace(experiment_driver_staging_path=str(staging))
        self.experiment_state_file_name = "experiment_state-x.json"
        self._session_str = "x"
        self._start_time = 1796167519.25
        self._trial_metadata = trials
        saved = []
        self._search_alg = SimpleNamespace(save_to_dir=lambda d, session_str: saved.append(d))
        self._callbacks = SimpleNamespace(save_to_dir=lambda d, session_str: saved.append(d))
        self.saved = saved

    def _get_trial_checkpoints(self):
        return self._trial_metadata

    def __getstate__(self):
        return {"_iteration": 7, "_global_time_limit": float("inf"), "_name": 'x "y" ü'}


def test_the_fast_state_save_writes_the_bytes_rays_save_writes(tmp_path):
    """install_fast_state_save: the same experiment_state file as Ray's own save_to_dir, byte
    for byte, from real trial states (quotes, newlines, non-ASCII, NaN), before and after one
    trial changes; and the searcher's and callbacks' saves still happen."""
    import json

    from ray.tune.execution.tune_controller import TuneController

    internals.install_fast_state_save()
    fast = TuneController.save_to_dir
    original = fast._cnn_tuner_original

    def state(i, loss):
        meta = json.dumps({"last_result": {"val_loss": loss, "tag": f'trial "{i}"\nü'}}, indent=2)
        return (json.dumps({"trial_id": f"t{i}", "status": "RUNNING"}, indent=2), meta)

    trials = {f"t{i}": state(i, 0.5 / (i + 1)) for i in range(5)}
    trials["t4"] = state(4, float("nan"))
    controller = _Controller(tmp_path, trials)  # one controller: its cache carries over
    for change in (False, True):
        if change:
            trials["t2"] = state(2, 0.01)  # Tune makes a new pair for a changed trial
            del trials["t3"]
        ours, rays = tmp_path / f"ours{change}", tmp_path / f"rays{change}"
        controller._storage.experiment_driver_staging_path = str(ours)
        controller.saved.clear()
        fast(controller)
        fast(controller)  # the second save from the cache
        original(_Controller(rays, trials))
        name = "experiment_state-x.json"
        assert (ours / name).read_bytes() == (rays / name).read_bytes()
        assert controller.saved == [str(ours)] * 4


TUNER = Path(__file__).resolve().parents[3] / "tuner"


def test_raw_sql_on_optunas_tables_lives_only_behind_the_fence():
    """The one reach into Optuna's schema is internals.reopen_finished_trials."""
    holders = sorted(p.relative_to(TUNER).as_posix() for p in TUNER.rglob("*.py")
                     if re.search(r"UPDATE trials|DELETE FROM|sqlite3", p.read_text()))  # fmt: skip
    assert holders == ["driver/fence/internals.py"], holders


def test_provenance_and_best_have_one_writer_each():
    writers = {}
    for path in TUNER.rglob("*.py"):
        for name in ("PROVENANCE_JSON", "BEST_JSON"):
            if re.search(rf"atomic_write_\w+\([^)\n]*{name}", path.read_text()):
                writers.setdefault(name, []).append(path.relative_to(TUNER).as_posix())
    assert writers == {"PROVENANCE_JSON": ["stages/provenance.py"],
                       "BEST_JSON": ["stages/best.py"]}  # fmt: skip


def test_a_changed_optuna_schema_is_reported(monkeypatch):
    import sqlite3

    reopen = internals.reopen_finished_trials

    def moved(url, trial_ids):
        if url.startswith("sqlite"):
            raise sqlite3.OperationalError("no such column: datetime_complete")
        reopen(url, trial_ids)

    monkeypatch.setattr(internals, "reopen_finished_trials", moved)
    assert internals._check_optuna_reopen() == [
        "optuna's RDB schema changed (reopening a trial): no such column: datetime_complete"
    ]


def test_a_renumbered_journal_operation_is_reported(monkeypatch):
    """Optuna numbering its journal's operations differently: the check says so, and the
    reopening it would do (dropping the finishing line) no longer reopens the trial."""
    monkeypatch.setattr(internals, "JOURNAL_SET_TRIAL_STATE", 7)
    assert internals._check_optuna_reopen() == [
        "optuna's journal numbers SET_TRIAL_STATE_VALUES differently",
        "a reopened Optuna trial (journal) no longer takes a new outcome",
    ]
