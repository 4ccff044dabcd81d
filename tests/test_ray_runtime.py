"""The in-process Ray cluster listens on loopback only, and refuses unschedulable requests."""

from __future__ import annotations

import io

import psutil
import pytest

from tuner.config import ConfigError
from tuner.search import check_schedulable, start_ray
from tuner.search_config import SearchConfig

pytestmark = pytest.mark.slow

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


@pytest.fixture
def local_ray(tmp_path):
    import ray

    cfg = SearchConfig(out=str(tmp_path), name="ray")
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
    local_ray.gpus_per_trial = 1
    with pytest.raises(ConfigError, match="no node can run a trial"):
        check_schedulable(local_ray)
    local_ray.gpus_per_trial = 0
    check_schedulable(local_ray)  # and the same request without a GPU fits
