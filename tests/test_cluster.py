"""`tuner search --address` against a real two-node Ray cluster on loopback."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_a_search_joins_the_cluster_and_uses_both_nodes(tmp_path, two_node_cluster):
    cluster, worker = two_node_cluster
    proc = subprocess.run(
        [sys.executable, "-m", "tuner.cli", "search", "--address", cluster.address,
         "--samples", "4", "--epochs", "2", "--scheduler", "fifo", "--searcher", "random",
         "--concurrency", "2", "--out", str(tmp_path), "--name", "two-nodes"],
        capture_output=True, text=True, timeout=600, env={**os.environ},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"Connecting to the Ray cluster at {cluster.address}" in proc.stdout
    trials = pd.read_csv(tmp_path / "two-nodes" / "trials.csv")
    assert len(trials) == 4 and (trials["status"] == "completed").all()
    assert set(trials["node_id"]) == {cluster.head_node.node_id, worker.node_id}
    epochs = pd.read_csv(tmp_path / "two-nodes" / "epochs.csv")
    assert len(epochs) == 8  # every epoch of every trial is in the results
