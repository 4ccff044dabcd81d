"""A tiny network whose trials train only the epochs the test hands them, so that a test holds a
search at a known point (to kill it, interrupt it, or let a clock run out) on an event, never on
a race with the training.

Before each epoch's first training batch, a trial takes a ticket from its gate (a directory the
test fills before it starts the search): no ticket, no epoch, until the test hands out more or
opens the gate. Epochs are cheap (a 3x3 convolution of 4 to 16 channels on digits), and with
`open` written, or without TUNER_TEST_GATE in the search's environment, nothing ever waits.
Nor once the test's process is gone (killed with its session, say): a search it left behind
then trains on to its end instead of waiting forever.

A held trial never reports, so Tune cannot stop it gracefully (its `stop` waits behind the
epoch in flight): a test that stops a held search with Ctrl-C or a time budget opens the gate
once the search has said it is stopping; a SIGKILL needs nothing.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

GATE_ENV = "TUNER_TEST_GATE"  # the variables NET reads
OWNER_ENV = "TUNER_TEST_GATE_OWNER"

NET = '''
"""The gated network and its space (tests/gate_fixture.py)."""
import os
import sys
import time
from pathlib import Path

from torch import nn


def _in_a_trial():
    # Only trials wait: the driver prices each configuration by running the network, and its
    # dry run of the space builds it too (a driver has no actor id; before Ray, no ray).
    ray = sys.modules.get("ray")
    return (ray is not None and ray.is_initialized()
            and ray.get_runtime_context().get_actor_id() is not None)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


GATE = OWNER = None  # write_net(gate=...): for workers that never see the test's environment


def _take_ticket():
    gate = GATE or os.environ.get("TUNER_TEST_GATE")
    if not gate or not _in_a_trial():
        return
    gate, owner = Path(gate), int(OWNER or os.environ["TUNER_TEST_GATE_OWNER"])
    me = os.getpid()
    waiting = gate / f"waiting-{me}"  # says which trial waits where (Gate.waiting)
    waiting.write_text(sys.modules["ray"].get_runtime_context().get_node_id())
    try:
        while not (gate / "open").exists() and _alive(owner):
            # A ticket for this process (Gate.give_to), else one for anyone.
            for ticket in [*sorted(gate.glob(f"for-{me}-*")), *sorted(gate.glob("ticket-*"))]:
                try:  # a rename is atomic: of two trials that see one ticket, one gets it
                    ticket.rename(gate / f"taken-{ticket.name}-{me}")
                    return
                except FileNotFoundError:
                    continue
            time.sleep(0.02)
    finally:
        waiting.unlink(missing_ok=True)


class Turnstile(nn.Module):
    """Takes a ticket at the first training batch of each epoch: the first after the model
    was built (epoch 1, or the one after a restored checkpoint), then the first after each
    validation pass (eval mode and a batch of more than one image: the cost probes run
    batches of one)."""

    def __init__(self):
        super().__init__()
        self.in_epoch = False

    def forward(self, x):
        if self.training and not self.in_epoch and not x.is_meta:
            self.in_epoch = True
            _take_ticket()
        elif not self.training and x.shape[0] > 1:
            self.in_epoch = False
        return x


def build(params, input_shape, num_classes):
    width = params["width"]
    return nn.Sequential(
        Turnstile(), nn.Conv2d(input_shape[0], width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
    )


def space(trial):
    trial.suggest_int("width", 4, 16)
    trial.suggest_float("lr", 3e-3, 3e-2, log=True)
    return {"optimizer": "adam", "batch_size": 64}
'''


def write_net(directory: Path, gate: Gate | None = None) -> Path:
    """net.py in `directory`; pass --model PATH:build --space PATH:space. With `gate`, its
    trials take their tickets there whatever their environment (the nodes of a cluster that
    was started before the test made its gate)."""
    path = directory / "gated_net.py"
    text = NET
    if gate is not None:
        text = text.replace("GATE = OWNER = None",
                            f"GATE, OWNER = {str(gate.dir)!r}, {os.getpid()}")  # fmt: skip
    path.write_text(text)
    return path


def gated_search_args(net: Path) -> list[str]:
    return ["--model", f"{net}:build", "--space", f"{net}:space", "--dataset", "digits"]


class Gate:
    """One run's gate: a directory of tickets (one epoch each), or open."""

    _numbers = itertools.count()

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True)

    def env(self) -> dict[str, str]:
        """The environment of a search whose trials take their tickets here. (A trial still
        running from a killed search keeps its own: it never takes this run's tickets.)"""
        return {**os.environ, GATE_ENV: str(self.dir), OWNER_ENV: str(os.getpid())}

    def give(self, tickets: int) -> None:
        for _ in range(tickets):
            (self.dir / f"ticket-{next(self._numbers):06d}").touch()

    def give_to(self, pid: int) -> None:
        """One epoch for the trial in process `pid` only."""
        (self.dir / f"for-{pid}-{next(self._numbers):06d}").touch()

    def waiting(self) -> dict[int, str]:
        """{process id: Ray node id} of the trials waiting at this gate now."""
        found = {}
        for f in self.dir.glob("waiting-*"):
            try:
                found[int(f.name.split("-")[1])] = f.read_text()
            except FileNotFoundError:  # it just passed
                continue
        return found

    def open(self) -> None:
        (self.dir / "open").touch()

    def taken(self) -> int:
        return len(list(self.dir.glob("taken-*")))
