"""What one epoch's bookkeeping costs a trial: tune.report alone, and with a checkpoint.

Runs a Ray Tune function trainable (in-process Ray, loopback, 1 trial) that does no training:
it reports --reports times, either bare or with a checkpoint shaped like the trainable's (the
model's weights, SGD momentum buffers and the kept best weights, torch.save'd into a temporary
directory and handed to tune.report, one kept by Tune), for models of three sizes. The figure is
the time per report measured inside the trial, i.e. what each epoch waits for. Compare it with
an epoch's length to see what checkpointing every epoch costs: `--checkpoint-interval` exists
because on quick epochs it is not small.

    python bench/report_cost.py --json /tmp/bench-report.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _machine import HelpFormatter, cpu_model  # bench/ is sys.path[0]

SIZES = {"10k": 10_000, "200k": 200_000, "2.2M (the lab's network)": 2_211_338}


def trial(config: dict) -> None:
    import torch
    from ray import tune

    model = torch.nn.Linear(config["params"] - 1, 1)  # params - 1 weights + 1 bias
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, config["params"] - 1)).sum().backward()
    optimizer.step()  # creates the momentum buffers
    best = {k: v.clone() for k, v in model.state_dict().items()}
    start = time.perf_counter()
    for i in range(config["reports"]):
        metrics = {"i": i}
        if config["checkpoint"]:
            state = {
                "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "best_state": best,
            }
            with tempfile.TemporaryDirectory() as d:
                torch.save(state, Path(d) / "state.pt")
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report(metrics)
    per_report_ms = 1000 * (time.perf_counter() - start) / config["reports"]
    Path(config["out"]).write_text(json.dumps({"per_report_ms": per_report_ms}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--reports", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback only (tuner.driver.run)
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    import ray._private.ray_constants as ray_constants
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from tuner.driver.ray_runtime import keep_local_ray_on_loopback

    keep_local_ray_on_loopback()
    ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(address="local", include_dashboard=False, num_cpus=2, logging_level="ERROR",
             log_to_driver=False)  # fmt: skip
    figures: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for r in range(args.rounds):
                for name, params in SIZES.items():
                    for checkpoint in (False, True):
                        out = Path(tmp) / "figure.json"
                        config = {"params": params, "checkpoint": checkpoint, "out": str(out),
                                  "reports": args.reports}  # fmt: skip
                        tune.Tuner(
                            trial, param_space=config,
                            run_config=tune.RunConfig(
                                storage_path=f"{tmp}/runs", name=f"r{r}-{params}-{checkpoint}",
                                verbose=0, callbacks=[JsonLoggerCallback()],
                                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                            ),
                        ).fit()  # fmt: skip
                        ms = json.loads(out.read_text())["per_report_ms"]
                        key = "report + checkpoint" if checkpoint else "report"
                        figures.setdefault(name, {}).setdefault(key, []).append(round(ms, 2))
                        print(f"round {r} {name:>26} {key:>20}: {ms:7.2f} ms", flush=True)
        finally:
            ray.shutdown()
    summary = {"cpu": cpu_model(), "reports": args.reports, "ms_per_report": figures}
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
