"""The private parts of Ray and Optuna the search relies on are still there and as expected
(tuner/driver/internals.py). When this fails after an upgrade, its message names each one."""

from __future__ import annotations

import importlib.metadata

from tuner.driver import internals


def test_every_private_internal_the_search_relies_on_is_as_expected():
    problems = internals.check()
    versions = {n: importlib.metadata.version(n) for n in ("ray", "optuna")}
    assert problems == [], (
        f"Ray {versions['ray']} / Optuna {versions['optuna']} changed internals that "
        "tuner/driver/internals.py relies on:\n  " + "\n  ".join(problems)
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
