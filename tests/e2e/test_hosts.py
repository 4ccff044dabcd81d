"""Three hosts, one search: a head and two workers in network namespaces, each with its own
address on a private subnet (veth pairs through a bridge, tests/netns_fixture.py), Ray started
on each with docs/cluster.md's own `ray start` commands and token authentication, and real
searches run with `--address` from the head, their experiment on a directory every host sees.

- a lost host: every process of a worker killed while its trial waits at an epoch;
- a cut cable: a worker's link down until Ray gives the node up, then up again;
- a stranger: a fourth host without the token tries to join during the search;
- where Ray listens, on every host, while trials run;
- `tuner status` and `tuner report` from a worker while the search runs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_fixture import tail
from gate_fixture import Gate, gated_search_args, write_net
from netns_fixture import Network, usable

# own_ray: the driver joins the hosts' cluster with --address, which an in-process Ray left
# running by another test would shadow.
pytestmark = [pytest.mark.slow, pytest.mark.own_ray]

DOCS = Path(__file__).parents[2] / "docs" / "cluster.md"
EPOCHS = 4


def documented_commands() -> dict[str, list[str]]:
    """The head's and a worker's `ray start` from docs/cluster.md's "Your own hosts" block."""
    text = DOCS.read_text().split("## Your own hosts", 1)[1]
    block = text.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    starts = [shlex.split(line) for line in block.splitlines() if line.startswith("ray start")]
    return {("head" if "--head" in argv else "worker"): argv for argv in starts}


ANYWHERE = {"*", "0.0.0.0", "::"}
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}


def where_the_docs_let_ray_listen(role: str, ip: str, address: str, port: int) -> bool:
    """docs/cluster.md's "Where Ray listens", with the ports of its `ray start` lines: the
    GCS (head), the raylet, the dashboard agent and metrics, and each driver's and trial's
    port on every interface; the runtime-env agent on the node's own address; the Ray client
    on the head's address and loopback; the dashboard on loopback only."""
    flags = dict(arg.split("=", 1) for argv in documented_commands().values() for arg in argv
                 if arg.startswith("--") and "=" in arg)  # fmt: skip
    port_of = {name: int(flags[f"--{name}"]) for name in (
        "port", "node-manager-port", "object-manager-port", "runtime-env-agent-port",
        "dashboard-agent-grpc-port", "dashboard-agent-listen-port", "metrics-export-port",
        "ray-client-server-port")}  # fmt: skip
    own = {ip, f"::ffff:{ip}"}
    workers = range(int(flags["--min-worker-port"]), int(flags["--max-worker-port"]) + 1)
    every = [
        port_of[n]
        for n in (
            "node-manager-port",
            "object-manager-port",
            "dashboard-agent-grpc-port",
            "dashboard-agent-listen-port",
            "metrics-export-port",
        )
    ]
    if port in workers or port in every:
        return address in ANYWHERE | own
    if port == port_of["runtime-env-agent-port"]:
        return address in own
    if role == "head" and port == port_of["port"]:
        return address in ANYWHERE | own
    if role == "head" and port == port_of["ray-client-server-port"]:
        return address in own | LOOPBACK
    return role == "head" and port == 8265 and address in LOOPBACK  # the dashboard's default


FAST_HEALTH_CHECKS = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
                      "RAY_health_check_failure_threshold": "5"}  # fmt: skip


@dataclass
class Cluster:
    net: Network
    env: dict[str, str]  # with the token: what the docs tell every host to export
    log_dir: Path
    head_ip: str

    @property
    def address(self) -> str:
        return f"{self.head_ip}:6379"

    def ray(self) -> str:
        return str(Path(sys.executable).with_name("ray"))

    def start(self, name: str) -> None:
        """docs/cluster.md's `ray start` for this host, in the foreground (--block), so that
        the node's processes stay in the host's namespace and the test holds their parent."""
        host = self.net[name]
        role = "head" if name == "head" else "worker"
        argv = [a.replace("HEAD_IP", self.head_ip).replace("NODE_IP", host.ip)
                for a in documented_commands()[role]]  # fmt: skip
        argv = [self.ray(), *argv[1:], "--block", "--disable-usage-stats",
                f"--temp-dir=/tmp/{self.net.prefix}-{name}"]  # fmt: skip
        env = self.env
        if role == "head":
            # The head's health checks give a silent node up after about a minute by default
            # (65 s here); these knobs (docs/cluster.md) make it seconds, for the cut cable.
            env = {**env, **FAST_HEALTH_CHECKS}
        host.popen(argv, self.log_dir / f"ray-{name}.log", env)

    def nodes(self) -> list[dict]:
        """Ray's list of nodes, asked from the head by a short-lived driver."""
        code = ("import json, ray\n"
                f"ray.init(address={self.address!r}, logging_level='ERROR')\n"
                "print('NODES', json.dumps([{'ip': n['NodeManagerAddress'], 'id': n['NodeID'],"
                " 'alive': n['Alive']} for n in ray.nodes()]))\n")  # fmt: skip
        done = self.net["head"].run([sys.executable, "-c", code], env=self.env, timeout=120)
        assert done.returncode == 0, tail(done.stderr)
        # (Ray may print its own news to this driver's stdout too: a node marked dead.)
        line = next(x for x in done.stdout.splitlines() if x.startswith("NODES "))
        return json.loads(line.removeprefix("NODES "))

    def wait_for(self, check: Callable[[list[dict]], bool], what: str) -> list[dict]:
        deadline = time.monotonic() + 180  # Ray's own start is seconds; this is a hang
        while time.monotonic() < deadline:
            nodes = self.nodes()
            if check(nodes):
                return nodes
            time.sleep(1)
        raise AssertionError(f"{what}: not in 180 s; nodes {nodes}")

    def ids(self) -> dict[str, str]:
        alive = {n["ip"]: n["id"] for n in self.nodes() if n["alive"]}
        return {name: alive[h.ip] for name, h in self.net.hosts.items() if h.ip in alive}


def host_env() -> dict[str, str]:
    """The environment of a real host: none of the variables this test session sets to keep
    its own in-process Rays on loopback (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 would)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


@pytest.fixture
def cluster(tmp_path):
    why = usable()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI runs as root with iproute2")
        pytest.skip(why)
    env = {**host_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    with Network.build(["head", "w1", "w2", "stranger"]) as net:
        try:
            c = Cluster(net=net, env=env, log_dir=tmp_path, head_ip=net["head"].ip)
            c.start("head")
            c.wait_for(lambda nodes: len(nodes) == 1, "the head up")
            c.start("w1")
            c.start("w2")
            c.wait_for(lambda nodes: sum(n["alive"] for n in nodes) == 3, "both workers joined")
            yield c
        finally:
            net.close()  # every process first: then the nodes' temp dirs can go
            for temp_dir in Path("/tmp").glob(f"{net.prefix}-*"):  # the nodes' --temp-dir
                shutil.rmtree(temp_dir, ignore_errors=True)


def trial_rows(exp: Path) -> dict[str, list[dict]]:
    return {f.parent.name: [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
            for f in exp.glob("trial_*/result.json")}  # fmt: skip


def start_search(c: Cluster, tmp_path: Path, name: str, gate: Gate):
    net = write_net(tmp_path, gate=gate)
    argv = [sys.executable, "-m", "tuner.cli", "search", *gated_search_args(net),
            "--address", c.address, "--no-confirm", "--samples", "3", "--epochs", str(EPOCHS),
            "--scheduler", "fifo", "--searcher", "random", "--concurrency", "2",
            "--checkpoint-interval", "0", "--seed", "0",
            "--out", str(tmp_path), "--name", name]  # fmt: skip
    return c.net["head"].popen(argv, tmp_path / f"{name}.log", c.env)


def wait_until(check: Callable[[], object], what: str, proc, log: Path) -> Any:
    """Until check() is truthy; fails with the search's log if the search ends first."""
    while True:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the search ended ({proc.returncode}) before {what}:\n"
                                 + tail(log.read_text()))  # fmt: skip
        time.sleep(0.05)


def hold_one_on_each_worker(exp: Path, ids: dict[str, str], proc, log: Path,
                            gate: Gate) -> dict[str, str]:  # fmt: skip
    """Once a trial waits at its gate on each worker, hand each one epoch of its own, and
    wait until both have reported it (and checkpointed it) and wait at their next: then
    {worker: its trial's directory}."""

    def waiting() -> dict[str, int] | None:
        by_node = {node: pid for pid, node in gate.waiting().items()}
        found = {w: by_node[ids[w]] for w in ("w1", "w2") if ids[w] in by_node}
        return found if len(found) == 2 else None

    pids = wait_until(waiting, "a trial waiting on each worker", proc, log)
    for pid in pids.values():
        gate.give_to(pid)

    def reported_and_waiting() -> dict[str, str] | None:
        now, where = gate.waiting(), {}
        for trial, rows in trial_rows(exp).items():
            for worker, pid in pids.items():
                if rows and rows[-1]["pid"] == pid and pid in now:
                    where[worker] = trial
        return where if len(where) == 2 else None

    return wait_until(reported_and_waiting, "an epoch on each worker", proc, log)


def assert_finished_where_each_left_off(exp: Path, victim: str, ids: dict[str, str]) -> None:
    trials = pd.read_csv(exp / "trials.csv").set_index("trial_dir")
    assert len(trials) == 3 and (trials["status"] == "completed").all(), trials.to_string()
    assert set(trials["node_id"]) <= {ids["w1"], ids["w2"]}  # never the head, never a stranger
    # The tables have every epoch of every trial, once; and no epoch was trained twice: each
    # trial's reports go up one epoch at a time, across its move too.
    epochs = pd.read_csv(exp / "epochs.csv")
    for index, rows in epochs.groupby("trial_index"):
        assert rows["epoch"].tolist() == list(range(1, EPOCHS + 1)), (index, rows)
    for trial, rows in trial_rows(exp).items():
        reported = [r["epoch"] for r in rows]
        assert reported == sorted(set(reported)), (trial, reported)
    rows = trial_rows(exp)[victim]
    moved = [r for r in rows if r["node_id"] == ids["w2"]]
    assert rows[0]["node_id"] == ids["w1"] and moved, rows
    resumed = moved[0]
    assert resumed["epoch"] > 1 and resumed["iterations_since_restore"] == 1, rows
    assert trials.loc[victim, "num_failures"] >= 1


def test_a_lost_host_a_stranger_and_where_ray_listens(cluster, tmp_path):
    """The search goes on past a worker lost mid-trial and strangers knocking, from one end to
    the other; Ray listens where the docs say; status and report run from a worker."""
    c = cluster
    ids = c.ids()
    gate = Gate(tmp_path / "gate")
    exp = tmp_path / "lost"
    proc = start_search(c, tmp_path, "lost", gate)
    log = tmp_path / "lost.log"
    timeline = Timeline(tmp_path / "timeline.txt")
    where = hold_one_on_each_worker(exp, ids, proc, log, gate)
    timeline.stamp(f"a trial waits on each worker: {where}")

    # While trials run: every socket of Ray's on every host listens where the docs say.
    for name in ("head", "w1", "w2"):
        role, ip = ("head" if name == "head" else "worker"), c.net[name].ip
        for address, port, program in c.net[name].listening():
            assert where_the_docs_let_ray_listen(role, ip, address, port), (
                name, address, port, program)  # fmt: skip
        timeline.stamp(f"{name} listens on {sorted(c.net[name].listening())}")

    # A stranger without the token, and one with another token, try to join while the search
    # runs (Ray retries for about 20 s before it gives up: they go on beside what follows).
    stranger = c.net["stranger"]
    no_token = {k: v for k, v in c.env.items() if not k.startswith("RAY_AUTH")}
    attempts = {}
    for label, env in (
        ("no token", no_token),
        ("another token", {**c.env, "RAY_AUTH_TOKEN": secrets.token_hex(32)}),
    ):
        log_file = tmp_path / f"stranger-{label.replace(' ', '-')}.log"
        argv = [
            c.ray(),
            "start",
            f"--address={c.address}",
            f"--node-ip-address={stranger.ip}",
            "--disable-usage-stats",
            f"--temp-dir=/tmp/{c.net.prefix}-stranger{len(attempts)}",
        ]
        attempts[label] = (stranger.popen(argv, log_file, env), log_file)  # fmt: skip

    # `tuner status` and `tuner report` from a worker, on the shared directory, mid-search.
    for command in ("status", "report"):
        done = c.net["w2"].run([sys.executable, "-m", "tuner.cli", command, str(exp)],
                               env=c.env, timeout=300)  # fmt: skip
        assert done.returncode == 0, tail(done.stdout) + tail(done.stderr)
        timeline.stamp(f"tuner {command} from w2")
    assert (exp / "report.html").is_file()

    # w1's trial has trained epoch 1 (checkpointed) and waits at epoch 2: w1 is lost.
    victim = where["w1"]
    killed = c.net["w1"].kill_everything()
    timeline.stamp(f"w1 lost: {len(killed)} processes killed")
    gate.open()
    assert proc.wait(timeout=480) == 0, tail(log.read_text())
    timeline.stamp("search finished")
    assert_finished_where_each_left_off(exp, victim, ids)
    # Each stranger was refused for its token (not for a network error), and never was a node.
    for label, (attempt, log_file) in attempts.items():
        assert attempt.wait(timeout=300) != 0, (label, tail(log_file.read_text()))
        said = log_file.read_text()
        assert "AuthenticationError" in said and "InvalidAuthToken" in said, (label, tail(said))
        timeline.stamp(f"the stranger with {label} refused: {said.strip().splitlines()[-1][:200]}")
    assert stranger.ip not in {node["ip"] for node in c.nodes()}
    ran_on = {row["node_id"] for rows in trial_rows(exp).values() for row in rows}
    assert ran_on == {ids["w1"], ids["w2"]}  # both workers trained, and nothing else did
    printed = log.read_text()
    assert f"Connecting to the Ray cluster at {c.address}" in printed
    # The driver sent each trial the cache's location on the shared directory, not the arrays.
    assert "trials open the dataset on their own node from" in printed
    # The lost host was said in one line, and no traceback of Tune's was printed.
    index = int(victim.split("_")[1])
    assert re.search(
        rf"trial +{index}  failed after epoch \d+ \(its worker process or node was "
        r"lost\): retried from its last checkpoint",
        printed,
    ), printed
    assert "Traceback" not in printed, printed


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_cut_cable_moves_the_trial_and_the_node_leaves_when_it_comes_back(cluster, tmp_path):
    c = cluster
    ids = c.ids()
    gate = Gate(tmp_path / "gate")
    exp = tmp_path / "cut"
    log = tmp_path / "cut.log"
    timeline = Timeline(tmp_path / "timeline.txt")
    proc = start_search(c, tmp_path, "cut", gate)
    where = hold_one_on_each_worker(exp, ids, proc, log, gate)
    victim = where["w1"]
    stranded = trial_rows(exp)[victim][-1]["pid"]  # the trial's process on w1
    timeline.stamp(f"{victim} waits on w1 (pid {stranded}); cable cut")
    c.net.cut("w1")
    c.wait_for(lambda nodes: any(n["ip"] == c.net["w1"].ip and not n["alive"] for n in nodes),
               "the head gives w1 up")  # fmt: skip
    timeline.stamp("the head lists w1 dead")
    # With the cable back, w1's Ray learns that the head has given it up and ends itself, its
    # trial's process with it: nothing of the old trial trains beside its retry.
    c.net.mend("w1")
    timeline.stamp("cable back")
    while alive(stranded) or c.net["w1"].procs[0].poll() is None:
        time.sleep(0.1)
    timeline.stamp(f"w1's ray start exited ({c.net['w1'].procs[0].returncode}), its trial gone")
    assert set(c.ids()) == {"head", "w2"}  # it did not come back by itself
    gate.open()
    assert proc.wait(timeout=480) == 0, tail(log.read_text())
    timeline.stamp("search finished")
    assert_finished_where_each_left_off(exp, victim, ids)
    printed = log.read_text()
    assert "its worker process or node was lost" in printed and "Traceback" not in printed


class Timeline:
    """When each step of a test happened, written as it goes (for the notes on Ray's
    behaviour; the assertions do not read it)."""

    def __init__(self, path: Path) -> None:
        self.path, self.t0 = path, time.monotonic()

    def stamp(self, what: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{time.monotonic() - self.t0:7.1f} s  {what}\n")
