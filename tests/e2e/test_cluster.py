"""`tuner search --address` against a real two-node Ray cluster on loopback."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from cli_fixture import run, tail, tuner
from gate_fixture import Gate, gated_search_args, write_net

pytestmark = pytest.mark.slow


def test_a_search_joins_a_ray_start_cluster_and_uses_both_nodes(tmp_path, ray_start_cluster):
    cluster = ray_start_cluster
    listening = cluster.listening_ips()
    assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
    # Tiny trials finish before the worker node's actor has started, and then Tune may hand
    # every trial to the head (CI saw all four there). The gated network (its gate written into
    # its file: the nodes started before the gate existed) holds each trial at its first epoch
    # until two have started: the first keeps the head's one CPU, so the second is on the worker.
    gate = Gate(tmp_path / "gate")
    net = write_net(tmp_path, gate=gate)
    exp = tmp_path / "two-nodes"

    def open_once_two_trials_started() -> None:
        while not (gate.dir / "open").exists():
            if len(list(exp.glob("trial_*/params.json"))) >= 2:
                gate.open()
            time.sleep(0.05)

    thread = threading.Thread(target=open_once_two_trials_started, daemon=True)
    thread.start()
    try:
        proc = run(
            tuner("search", *gated_search_args(net), "--no-confirm", "--address",
                  cluster.address, "--samples", "4", "--epochs", "2", "--scheduler", "fifo",
                  "--searcher", "random", "--concurrency", "2", "--out", str(tmp_path),
                  "--name", "two-nodes"),
            env=cluster.env,
        )  # fmt: skip
    finally:
        gate.open()  # the thread ends, and no trial waits for ever
    thread.join()
    assert proc.returncode == 0, tail(proc.stderr)
    assert f"Connecting to the Ray cluster at {cluster.address}" in proc.stdout
    # The driver sent each trial the cache's location, not the arrays.
    assert "trials open the dataset on their own node from" in proc.stdout
    trials = pd.read_csv(tmp_path / "two-nodes" / "trials.csv")
    assert len(trials) == 4 and (trials["status"] == "completed").all()
    nodes = cluster.node_ids()
    assert set(trials["node_id"]) == {nodes["head"], nodes["worker"]}
    epochs = pd.read_csv(tmp_path / "two-nodes" / "epochs.csv")
    assert len(epochs) == 8  # every epoch of every trial is in the results
