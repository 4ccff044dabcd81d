"""optuna-dashboard, run for real on a study's storage URL and read over its HTTP API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def dashboard_studies(url: str) -> dict[str, list[dict]]:
    """{study name: its trials} as optuna-dashboard, started on `url` (a server's password
    from PGPASSWORD), serves them on loopback; stopped by its own handle."""

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return json.loads(response.read())

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dashboard = subprocess.Popen(
        [str(Path(sys.executable).parent / "optuna-dashboard"), url, "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while True:  # until it answers (or fails the test if it exits)
            try:
                studies = get("/api/studies")
                break
            except OSError:
                assert dashboard.poll() is None, "optuna-dashboard exited"
                time.sleep(0.3)
        return {
            study["study_name"]: get(f"/api/studies/{study['study_id']}?after=0")["trials"]
            for study in studies["study_summaries"]
        }
    finally:
        dashboard.terminate()  # by its own handle: nothing else is touched
        dashboard.wait(timeout=30)
