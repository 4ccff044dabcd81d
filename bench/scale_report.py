"""The report at scale ([scale], part 1): `tuner report` on synthetic experiments of 200, 1,000
and 5,000 trials of up to 10 epochs (most stopped early, as under ASHA): the trial directories
of bench/live_report.py's `synthetic`, with trials.csv and epochs.csv written by
tuner.experiment as a finished search writes them. For each size: the wall time of `tuner
report` (a fresh process, as a user runs it), the page's size, the process's own peak RSS, and
whether the page renders in Chromium (figures drawn, no page error) and how long that takes.

    python bench/scale_report.py --json bench/results/scale_report.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from _machine import HelpFormatter, cpu_model  # bench/ is sys.path[0]
from live_report import synthetic

ROOT = Path(__file__).resolve().parents[1]
TARGETS = "1,000 trials: <= 10 MB, written in <= 10 s; 5,000 trials: tuner report within 1 GB"


def finish_tables(exp: Path) -> None:
    """trials.csv and epochs.csv, as a finished search writes them."""
    sys.path.insert(0, str(ROOT))
    from tuner.experiment import EPOCHS_CSV, TRIALS_CSV, collect_tables
    from tuner.io import atomic_write_csv

    trials, epochs = collect_tables(exp, 10)
    atomic_write_csv(exp / TRIALS_CSV, trials)
    atomic_write_csv(exp / EPOCHS_CSV, epochs)


def render(page: Path) -> dict:
    """Open the page in Debian's Chromium (Playwright); count drawn figures and page errors."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        tab = browser.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        start = time.perf_counter()
        tab.goto(page.as_uri(), timeout=300_000)
        tab.wait_for_load_state("load", timeout=300_000)
        figures = tab.evaluate("document.querySelectorAll('.figure').length")
        drawn = tab.evaluate("document.querySelectorAll('.figure .main-svg').length > 0")
        seconds = time.perf_counter() - start
        browser.close()
    return {"render_s": seconds, "figures": figures, "drawn": drawn, "page_errors": errors}


def one(trials: int, browser: bool) -> dict:
    with tempfile.TemporaryDirectory() as d:
        exp = Path(d) / f"synthetic-{trials}"
        synthetic(exp, trials)
        finish_tables(exp)
        # `tuner report` in a fresh process that prints its own peak RSS (KiB) when done
        code = ("import resource, sys; from tuner.cli import main; rc = main(['report', "
                f"{str(exp)!r}]); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
                "file=sys.stderr); sys.exit(rc)")  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                              text=True, cwd=ROOT)  # fmt: skip
        seconds = time.perf_counter() - start
        peak_kb = int(proc.stderr.strip().splitlines()[-1])
        page = exp / "report.html"
        out = {"trials": trials, "report_s": seconds, "bytes": page.stat().st_size,
               "peak_rss_mb": peak_kb / 1024}  # fmt: skip
        if browser:
            out.update(render(page))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    out: dict = {"cpu": cpu_model(), "date": datetime.now().isoformat(timespec="seconds"),
                 "targets": TARGETS, "runs": []}  # fmt: skip
    for n in args.sizes:
        r = one(n, not args.no_browser)
        out["runs"].append(r)
        shown = ""
        if "render_s" in r:
            shown = (f"; Chromium: {r['figures']} figures, drawn {r['drawn']}, "
                     f"{len(r['page_errors'])} page errors, {r['render_s']:.1f} s")  # fmt: skip
        print(
            f"{n:>5} trials: tuner report {r['report_s']:.1f} s, {r['bytes'] / 1e6:.1f} MB, "
            f"peak {r['peak_rss_mb']:.0f} MB{shown}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
