"""Test hosts with their own addresses on a private link: Linux network namespaces joined by
veth pairs through a bridge, so that traffic between them crosses a real network stack.

    with Network.build(["head", "w1", "w2"]) as net:
        net["head"].ip                    # 10.X.Y.1, on the test's own /24
        net["w1"].popen([...], log)       # a process on that host
        net.cut("w1"); net.mend("w1")     # its cable out and back in
        net["w1"].kill_everything()       # the host lost: every process in it, SIGKILL

Each host has its loopback, one interface `eth0` with its address and a default route through
it (as a real host has: Ray finds a node's address by asking for the route to the internet).
The bridge lives in a namespace of its own, so nothing is added to the machine's own network.
The hosts share the machine's file system and process table: a directory is the shared volume
every node mounts, and a test can wait on files the trials write.

Needs root and iproute2. Everything is removed by handle on close(): every process in each
namespace (SIGKILL), then the namespaces, which takes their links and the bridge with them.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def usable() -> str | None:
    """Why network namespaces cannot be built here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    try:
        subprocess.run(["ip", "-V"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "iproute2's `ip` is not installed"
    return None


@dataclass
class Host:
    name: str  # its label in the test: "head", "w1", ...
    netns: str  # the namespace's name
    ip: str
    cable: str  # the veth end on the bridge: down = the cable cut
    procs: list[subprocess.Popen] = field(default_factory=list)

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *map(str, argv)]

    def popen(self, argv: Sequence[str], log: Path, env: dict[str, str], **kw: Any):
        """Start `argv` on this host, its output to `log`, in a session of its own."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(self.command(argv), stdout=out, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True, **kw)  # fmt: skip
        self.procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], env: dict[str, str], timeout: float = 300, **kw: Any):
        return subprocess.run(self.command(argv), capture_output=True, text=True, env=env,
                              timeout=timeout, **kw)  # fmt: skip

    def pids(self) -> list[int]:
        """Every process in this host's namespace (`ip netns pids`)."""
        out = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True,
                             text=True).stdout  # fmt: skip
        return [int(p) for p in out.split()]

    def kill_everything(self) -> list[int]:
        """SIGKILL every process on this host until none is left: the host is lost."""
        killed: list[int] = []
        for _ in range(50):  # a dying parent may have forked a moment before
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed += pids
            time.sleep(0.1)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        return killed

    def listening(self) -> set[tuple[str, int, str]]:
        """(address, port, program) of every TCP socket listening in this namespace."""
        out = subprocess.run(["ip", "netns", "exec", self.netns, "ss", "-Hltnp"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        found = set()
        for line in out.splitlines():
            fields = line.split()
            host, _, port = fields[3].rpartition(":")
            program = re.search(r'users:\(\("([^"]+)"', line)
            found.add((host.strip("[]"), int(port), program.group(1) if program else "?"))
        return found


@dataclass
class Network:
    prefix: str
    subnet: str  # "10.X.Y": the hosts are .1, .2, ...
    hosts: dict[str, Host] = field(default_factory=dict)
    switch: str = ""

    @classmethod
    @contextlib.contextmanager
    def build(cls, names: Sequence[str]) -> Iterator[Network]:
        rng = random.Random()
        net = cls(prefix=f"ct{os.getpid() % 100000}",
                  subnet=f"10.{rng.randint(100, 250)}.{rng.randint(1, 250)}")  # fmt: skip
        try:
            net._make_switch()
            for i, name in enumerate(names, start=1):
                net._add_host(name, i)
            yield net
        finally:
            net.close()

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def _make_switch(self) -> None:
        self.switch = f"{self.prefix}sw"
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def _add_host(self, name: str, index: int) -> None:
        netns, cable = f"{self.prefix}{name}", f"{self.prefix}c{index}"
        host = Host(name=name, netns=netns, ip=f"{self.subnet}.{index}", cable=cable)
        _ip("netns", "add", netns)
        self.hosts[name] = host  # from here on close() removes it
        _ip("link", "add", cable, "netns", self.switch, "type", "veth", "peer", "eth0",
            "netns", netns)  # fmt: skip
        _ip("-n", self.switch, "link", "set", cable, "master", "br0")
        _ip("-n", self.switch, "link", "set", cable, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "route", "add", "default", "dev", "eth0")

    def cut(self, name: str) -> None:
        """Pull the host's cable: its link on the bridge goes down (both ends lose carrier)."""
        _ip("-n", self.switch, "link", "set", self.hosts[name].cable, "down")

    def mend(self, name: str) -> None:
        _ip("-n", self.switch, "link", "set", self.hosts[name].cable, "up")

    def close(self) -> None:
        for host in self.hosts.values():
            host.kill_everything()
        for netns in [h.netns for h in self.hosts.values()] + [self.switch]:
            if netns:
                subprocess.run(["ip", "netns", "del", netns], capture_output=True)
