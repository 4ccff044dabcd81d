"""Shared by the CPU benchmarks: how busy the shared machine is, and what it is."""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path


def machine_busy(seconds: float = 1.0) -> float:
    """Fraction of all cores busy over `seconds` (from /proc/stat), whoever keeps them busy."""

    def snapshot() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]  # user .. steal
        return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait

    total0, idle0 = snapshot()
    time.sleep(seconds)
    total1, idle1 = snapshot()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_idle(max_busy: float, timeout: float) -> float:
    """Wait (at most `timeout` s) until other processes leave the cores idle; last busy fraction.

    The machine is shared: a run that starts while someone else's job holds a core is slowed
    many times over (2 torch threads on 2 busy cores spin at every barrier).
    """
    deadline = time.monotonic() + timeout
    while True:
        busy = machine_busy(3.0) if os.path.exists("/proc/stat") else 0.0
        if busy <= max_busy or time.monotonic() >= deadline:
            return busy


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
