"""The in-process Ray cluster listens on loopback only, and refuses unschedulable requests."""

from __future__ import annotations

import io
from dataclasses import replace

import psutil
import pytest

from tuner.config.search_config import SearchConfig
from tuner.driver.ray_runtime import (
    check_schedulable,
    let_trials_use_prestarted_workers,
    start_ray,
)
from tuner.train.config import ConfigError

pytestmark = [pytest.mark.slow, pytest.mark.own_ray]  # Ray's own start is the subject

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


@pytest.fixture
def local_ray(tmp_path):
    import ray

    cfg = SearchConfig(no_confirm=True, out=str(tmp_path), name="ray")
    started = start_ray(cfg, io.StringIO())
    assert started
    yield cfg
    ray.shutdown()


def test_every_ray_port_is_bound_to_loopback(local_ray):
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    names = {p.name() for p in procs}
    assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names), names
    listening = [
        (p.name(), c.laddr)
        for p in procs
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening, "Ray should be listening somewhere"
    exposed = [(name, addr) for name, addr in listening if addr.ip not in LOOPBACK]
    assert not exposed, exposed


def test_a_gpu_request_on_a_cpu_only_cluster_is_refused(local_ray):
    with pytest.raises(ConfigError, match="no node can run a trial"):
        check_schedulable(replace(local_ray, gpus_per_trial=1))
    check_schedulable(replace(local_ray, gpus_per_trial=0))  # the same request without a GPU fits
    with pytest.raises(ConfigError, match="0.25 GPU"):  # auto asks for at least 1/4 of one
        check_schedulable(replace(local_ray, gpus_per_trial="auto", gpu_memory=80))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_a_search_refused_for_its_resources_leaves_no_directory(tmp_path):
    """The request is checked once Ray is up; the experiment directory made just before (its
    provenance, search.toml and an empty study) is removed, so the same command can run again
    once the resources are right."""
    from cli_fixture import run, tuner

    out = run(tuner("search", "--gpus-per-trial", "1", "--out", str(tmp_path), "--name",
                    "nogpu", "--samples", "2", "--epochs", "1"), timeout=300)  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    assert "no node can run a trial" in out.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "nogpu").exists()


def test_trials_run_in_the_workers_ray_started_with_the_cluster(local_ray, tmp_path):
    """No fresh Python process (and `import ray`) before a search's first trial: Tune's actor
    lands on one of the idle workers Ray prestarted (see let_trials_use_prestarted_workers)."""
    import time

    from ray import tune

    let_trials_use_prestarted_workers()  # as make_trainable does for an in-process Ray

    def report_pid(config):  # defined here so that Ray pickles it by value
        import os

        tune.report({"pid": os.getpid()})

    me = psutil.Process()
    deadline = time.monotonic() + 30
    prestarted: set[int] = set()
    while not prestarted and time.monotonic() < deadline:
        prestarted = {p.pid for p in me.children(recursive=True) if "IDLE" in p.name()}
        time.sleep(0.2)
    assert prestarted, "Ray started no idle workers with the cluster"
    tuner = tune.Tuner(
        tune.with_resources(report_pid, {"cpu": 1}),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    (result,) = tuner.fit()
    assert result.metrics["pid"] in prestarted


def test_in_process_ray_sends_no_usage_statistics(local_ray):
    """The cluster's metadata in its GCS, which Ray's usage reporter sends, holds only the
    versions Ray records in any case: none of the details (commit, OS, start time) that it
    adds when usage statistics are on."""
    import ray
    from ray._common.usage import usage_lib

    metadata = usage_lib.get_cluster_metadata(ray._private.worker.global_worker.gcs_client)
    assert metadata["ray_init_cluster"] is True  # the cluster start_ray started
    assert set(metadata) == {"ray_version", "python_version", "ray_init_cluster"}, metadata
