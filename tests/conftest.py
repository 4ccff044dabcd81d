"""Shared fixtures. Tests never read ../shared: data is generated here or ships with a package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything imports ray: Ray reads this when imported, and with it every port of a test
# cluster binds to 127.0.0.1.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.pop("RAY_ADDRESS", None)  # never join a cluster someone else started


@pytest.fixture(scope="session", autouse=True)
def private_dirs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test session gets its own dataset cache and Ray temp dir.

    Ray's default temp dir is shared with whoever else runs Ray on the machine; a private one
    keeps our in-process clusters (always address="local") apart from theirs.
    """
    base = tmp_path_factory.mktemp("env")
    os.environ["TUNER_DATA_DIR"] = str(base / "data")
    os.environ["RAY_TMPDIR"] = str(Path("/tmp") / f"rt{os.getpid()}")  # short: socket paths


def _free_port() -> int:
    """A port nobody listens on now: never Ray's default 6379, which another cluster may own."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_node_cluster(tmp_path):
    """A head and one worker node on loopback, private temp dir and ports; stopped through its
    handle (never `ray stop`, which would end every Ray process on the machine)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "node_ip_address": "127.0.0.1",
            "gcs_server_port": _free_port(),
            "include_dashboard": False,
        },
    )
    worker = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    try:
        yield cluster, worker
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
