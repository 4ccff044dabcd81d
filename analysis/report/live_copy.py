"""One live copy of report.html, written in a process of its own (tuner.driver.live_report).

    python -m analysis.report.live_copy EXPERIMENT_DIR '{"finished": 3, "total": 20, ...}'

The second argument is the banner's Running fields as JSON (`updated` as an ISO time, `epochs`
as a pair). A copy reads every trial directory and draws every figure: about 1.6 s of Python at
1,000 trials. In the search's own process that work held the interpreter's lock against the
searcher and Tune's loop, and cost them 6-7 ms a trial and suggestions of up to 625 ms at 1,000
tiny trials (bench/scale.py --report-every 0 against 60, BENCHMARKS.md). Exit 0 when written;
on an error, its one line on stderr and exit 1.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime


def main(argv: list[str]) -> int:
    from analysis.report import Running, write_report

    experiment_dir, fields = argv[0], json.loads(argv[1])
    fields["updated"] = datetime.fromisoformat(fields["updated"])
    if fields.get("epochs") is not None:
        fields["epochs"] = tuple(fields["epochs"])
    try:
        write_report(experiment_dir, live=Running(**fields))
    except Exception as e:  # noqa: BLE001  the driver says it once and goes on
        print(f"{type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
