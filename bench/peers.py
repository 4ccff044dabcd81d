"""The same search done four ways, side by side ([scale], part 2).

Same space, dataset, trial count, epoch cap, concurrency, size budget and seeds for each:

- ours:   `tuner search` as it ships (TPE + ASHA, the lab's baseline as a start point), the
          confirm stage off (the others have none);
- stock:  Ray Tune as its documentation shows it: OptunaSearch + ASHAScheduler with their
          defaults (TPE, reduction factor 4, grace period 1), the per-epoch validation accuracy
          as the metric, a checkpoint whenever it improves;
- optuna: plain Optuna in one process: TPE + HyperbandPruner, n_jobs = the concurrency;
- sweep:  a random FIFO sweep (`tuner search --searcher random --scheduler fifo`).

stock and optuna train with this project's own trial code (tuner.train.trial.set_up and
tuner.train.loop's train_epoch / evaluate), so they build the same networks, optimizers,
schedules and augmentations from the same configurations; a configuration over --max-macs
trains no epoch and scores 0 (the stock tools have no size budget; this is the glue a user
writes). Each run is a fresh process; its clock starts before it imports anything.

Per run: the anytime curves (the best validation accuracy of any epoch so far, against the
wall clock and against the epochs trained), the held-out accuracy of the winner's kept weights
(each method's own pick), and the bookkeeping errors: Optuna trial states that say something
other than what ran (a trial stopped early and told COMPLETE, a trial left RUNNING).

    python bench/cifar_split.py /tmp/cifar-jpg/train /tmp/cifar-3k --per-class 300 \\
        --hold-out-every 6      # the subset of bench/search_efficiency.py
    python bench/peers.py --dataset digits --space seed_cnn --samples 20 --epochs 12 \\
        --json bench/results/peers-digits-seed_cnn.json
    python bench/peers.py --dataset imagefolder --data-dir /tmp/cifar-3k --val-count 500 \\
        --space resnet_cnn --json bench/results/peers-cifar-resnet_cnn.json
    python bench/peers.py --page bench/results/peers.html bench/results/peers-*.json
"""

from __future__ import annotations

import time

STARTED = time.time()  # the run's clock: before any import below

import argparse  # noqa: E402
import html  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _machine import HelpFormatter, cpu_model  # noqa: E402  (bench/ is sys.path[0])

METHODS = ("ours", "stock", "optuna", "sweep")
PID_TAG = f"pid{os.getpid()}"  # names this run's temp dirs, removed at its end
REPO = Path(__file__).resolve().parent.parent


# --- what every method shares ----------------------------------------------------------------


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    from tuner.data import load_dataset
    from tuner.train.trial_data import TrialData

    bundle = load_dataset(args.dataset, args.data_dir, val_count=args.val_count)
    return bundle, TrialData.from_bundle(bundle)


def base_config(args: argparse.Namespace, bundle: Any) -> dict[str, Any]:
    """What `tuner search` puts under every sampled configuration (tuner_setup.fixed_params)."""
    from tuner.data import MIRROR_SENSITIVE

    base: dict[str, Any] = {"epochs": args.epochs}
    if bundle.name in MIRROR_SENSITIVE:
        base["hflip"] = False
    return base


def over_budget(config: dict[str, Any], args: argparse.Namespace, data: Any) -> bool:
    if not args.max_macs:
        return False
    from tuner.errors import ConfigError
    from tuner.train.cost import model_cost

    try:
        cost = model_cost(config, data.input_shape, data.num_classes)
    except (ConfigError, ValueError):
        return False  # unbuildable: set_up raises, the trial fails as it would anywhere
    return cost.macs > parse_macs(args.max_macs)


def parse_macs(text: str) -> int:
    units = {"K": 10**3, "M": 10**6, "G": 10**9}
    text = text.strip().upper()
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def epochs(config: dict[str, Any], data: Any):  # type: ignore[no-untyped-def]
    """Train `config` epoch by epoch with the project's trial code; yields (epoch, val_acc,
    val_loss, the epoch's weights when val_acc improved else None, diverged)."""
    from tuner.train.loop import evaluate, train_epoch
    from tuner.train.trial import set_up

    trial = set_up(config, data.opened(), threads=1)
    best = -1.0
    for epoch in range(1, int(config["epochs"]) + 1):
        train = train_epoch(trial.model, trial.train_loader, trial.optimizer, trial.schedule,
                            trial.loss_fn, trial.device)  # fmt: skip
        if train.diverged:
            yield epoch, 0.0, float("inf"), None, True
            return
        val, _ = evaluate(trial.model, trial.val_loader, trial.device)
        weights = None
        if val.acc > best:
            best = val.acc
            weights = {k: v.detach().clone() for k, v in trial.model.state_dict().items()}
        yield epoch, val.acc, val.loss, weights, False


def held_out(config: dict[str, Any], weights: dict[str, Any], bundle: Any, data: Any) -> float:
    """Test-split accuracy of `weights` (scored once, after the search)."""
    from tuner.train.config import TrainConfig
    from tuner.train.loader import DeviceLoader
    from tuner.train.loop import evaluate, pick_device
    from tuner.train.trial import EVAL_BATCH, build_model, normalization

    cfg = TrainConfig.from_dict(config)
    device = pick_device()
    model = build_model(cfg, data, device)
    model.load_state_dict(weights)
    mean, std = normalization(cfg, data)
    test = DeviceLoader(bundle.test.x, bundle.test.y, batch_size=EVAL_BATCH, device=device,
                        mean=mean, std=std, shuffle=False)  # fmt: skip
    return float(evaluate(model, test, device)[0].acc)


def expected_state(epochs_run: int, budget: int, failed: bool, rejected: bool) -> str:
    """What an Optuna trial's state should say about what ran."""
    if rejected:
        return "COMPLETE"  # scored 0 without training, by every method's rule
    if failed:
        return "FAIL"
    return "COMPLETE" if epochs_run >= budget else "PRUNED"


# --- the four methods, each in a child process ------------------------------------------------


def data_flags(args: argparse.Namespace) -> list[str]:
    """The dataset and budget options a run passes on, as `tuner search` spells them."""
    flags = ["--dataset", args.dataset]
    if args.data_dir:
        flags += ["--data-dir", str(args.data_dir)]
    if args.val_count:
        flags += ["--val-count", str(args.val_count)]
    if args.max_macs:
        flags += ["--max-macs", args.max_macs]
    return flags


def run_ours(args: argparse.Namespace, seed: int, sweep: bool) -> dict[str, Any]:
    import pandas as pd

    out = Path(tempfile.mkdtemp(prefix="peers-", suffix=f"-{PID_TAG}"))
    cmd = [sys.executable, "-m", "tuner.cli", "search", *data_flags(args),
           "--space", args.space, "--samples", str(args.samples), "--epochs", str(args.epochs),
           "--seed", str(seed), "--concurrency", str(args.concurrency), "--no-confirm",
           "--out", str(out), "--name", "run"]  # fmt: skip
    if sweep:
        cmd += ["--searcher", "random", "--scheduler", "fifo"]
    proc = subprocess.run(cmd, text=True, capture_output=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    wall = time.time() - STARTED
    exp = out / "run"
    events = []
    for f in exp.glob("trial_*/result.json"):
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("val_acc") is None:
                    continue
                end = r["epoch_started_at"] + r["epoch_time_s"] + r.get("val_time_s", 0.0)
                events.append((end - STARTED, float(r["val_acc"])))
    trials = pd.read_csv(exp / "trials.csv")
    best = json.loads((exp / "best.json").read_text())
    errors = ours_bookkeeping(exp, trials, args.epochs)
    return {"wall_s": wall, "events": events, "held_out_acc": float(best["test_acc"]),
            "winner_val_acc": float(best["val_acc"]), "bookkeeping_errors": errors,
            "trials": int(len(trials)), "epochs": int(trials["epochs_run"].sum())}  # fmt: skip


def ours_bookkeeping(exp: Path, trials: Any, budget: int) -> list[str]:
    import optuna

    from tuner.driver.fence.recovery import TUNE_TRIAL_ID
    from tuner.driver.study_storage import open_storage
    from tuner.experiment import REJECTED_ATTR, study_url

    study = optuna.load_study(study_name=None, storage=open_storage(study_url(exp)))
    ran = {row.trial_id: row for row in trials.itertuples()}
    errors = []
    for t in study.trials:
        if t.user_attrs.get(REJECTED_ATTR):
            continue
        tune_id = t.user_attrs.get(TUNE_TRIAL_ID)
        row = ran.get(tune_id)
        if row is None:
            errors.append(f"optuna trial {t.number} ({t.state.name}) has no trial that ran")
            continue
        want = expected_state(int(row.epochs_run), budget,
                              row.status in ("error", "diverged"), False)  # fmt: skip
        if t.state.name != want:
            errors.append(f"trial {t.number}: {t.state.name}, ran {row.epochs_run} epochs")
    return errors


def run_stock(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    import optuna
    import ray
    import torch
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces import get_space
    from tuner.driver.ray_runtime import keep_local_ray_on_loopback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bundle, data = load(args)
    base = base_config(args, bundle)

    def trainable(config: dict[str, Any], data: Any) -> None:
        config = {**base, **config}
        if over_budget(config, args, data):
            tune.report({"val_acc": 0.0, "epochs_trained": 0, "t_end": time.time()})
            return
        for epoch, acc, loss, weights, diverged in epochs(config, data):
            metrics = {"val_acc": acc, "val_loss": loss, "epochs_trained": epoch,
                       "diverged": diverged, "t_end": time.time()}  # fmt: skip
            if weights is None:
                tune.report(metrics)
                continue
            with tempfile.TemporaryDirectory() as d:
                torch.save(weights, Path(d) / "weights.pt")
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    keep_local_ray_on_loopback()
    ray.init(num_cpus=args.concurrency, include_dashboard=False, logging_level="ERROR")
    db = Path(tempfile.mkdtemp(prefix="peers-stock-", suffix=f"-{PID_TAG}")) / "optuna.db"
    space = get_space(args.space).for_input(bundle.input_shape[1])
    searcher = OptunaSearch(space=space, metric="val_acc", mode="max", seed=seed,
                            storage=optuna.storages.RDBStorage(f"sqlite:///{db}"))  # fmt: skip
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, data=data), {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=args.samples,
            scheduler=ASHAScheduler(metric="val_acc", mode="max", max_t=args.epochs),
            max_concurrent_trials=args.concurrency,
        ),
        run_config=tune.RunConfig(storage_path=str(db.parent), name="run", verbose=0),
    )  # fmt: skip
    grid = tuner.fit()
    wall = time.time() - STARTED
    events, ran = [], []
    for result in grid:
        frame = result.metrics_dataframe
        trained = frame[frame["epochs_trained"] > 0] if frame is not None else []
        for row in trained.itertuples() if len(trained) else []:
            events.append((row.t_end - STARTED, float(row.val_acc)))
        tune_id = result.metrics.get("trial_id") or Path(result.path).name
        rejected = frame is not None and bool((frame["epochs_trained"] == 0).any())
        ran.append((tune_id, len(trained), result.error is not None, rejected))
    best = grid.get_best_result(metric="val_acc", mode="max", scope="all")
    kept = [r for r in grid if r.checkpoint is not None and r.metrics_dataframe is not None]
    if best.checkpoint is None and kept:
        # Tune's pick can be a trial with no checkpoint (its summary's max is NaN when its
        # first epoch diverged): the user's glue then takes the best trial that has one.
        best = max(kept, key=lambda r: float(r.metrics_dataframe["val_acc"].max()))
    weights = None
    if best.checkpoint is not None:  # None: every configuration was over --max-macs
        with best.checkpoint.as_directory() as d:
            weights = torch.load(Path(d) / "weights.pt", weights_only=True)
    config = {**base, **best.config}
    ray.shutdown()
    # Optuna's trial numbers follow the order Tune asked for them, as do Tune's trial ids.
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{db}")
    errors = []
    for t, (_, epochs_run, failed, rejected) in zip(study.trials, sorted(ran), strict=False):
        want = expected_state(epochs_run, args.epochs, failed, rejected)
        if t.state.name != want:
            errors.append(f"trial {t.number}: {t.state.name}, ran {epochs_run} epochs")
    score = held_out(config, weights, bundle, data) if weights is not None else 0.0
    winner_val = float(best.metrics["val_acc"]) if weights is not None else 0.0
    return {"wall_s": wall, "events": events, "held_out_acc": score,
            "winner_val_acc": winner_val, "bookkeeping_errors": errors,
            "trials": len(ran), "epochs": sum(r[1] for r in ran)}  # fmt: skip


def run_optuna(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    import optuna

    from search_spaces import get_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bundle, data = load(args)
    base = base_config(args, bundle)
    space = get_space(args.space).for_input(bundle.input_shape[1])
    db = Path(tempfile.mkdtemp(prefix="peers-optuna-", suffix=f"-{PID_TAG}")) / "optuna.db"
    study = optuna.create_study(
        storage=f"sqlite:///{db}", direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=args.epochs),
    )  # fmt: skip
    lock = threading.Lock()
    events: list[tuple[float, float]] = []
    kept: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}  # trial number -> its best epoch
    kept_acc: dict[int, float] = {}
    ran: dict[int, tuple[int, bool, bool]] = {}  # trial number -> (epochs, diverged, rejected)

    def objective(trial: optuna.Trial) -> float:
        config = {**base, **(space(trial) or {}), **trial.params}
        if over_budget(config, args, data):
            ran[trial.number] = (0, False, True)
            return 0.0
        best = 0.0
        for epoch, acc, _loss, weights, diverged in epochs(config, data):
            with lock:
                events.append((time.time() - STARTED, acc))
            ran[trial.number] = (epoch, diverged, False)
            if diverged:
                raise optuna.TrialPruned("diverged")  # as a user's objective would stop it
            if weights is not None:
                best, kept[trial.number] = acc, (config, weights)
                kept_acc[trial.number] = acc
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return best

    study.optimize(objective, n_trials=args.samples, n_jobs=args.concurrency)
    wall = time.time() - STARTED
    errors = []
    for t in study.trials:
        epochs_run, diverged, rejected = ran.get(t.number, (0, True, False))
        want = "PRUNED" if diverged else expected_state(epochs_run, args.epochs, False, rejected)
        if t.state.name != want:
            errors.append(f"trial {t.number}: {t.state.name}, ran {epochs_run} epochs")
    winner = study.best_trial  # Optuna's pick: the best COMPLETE trial
    number, value = winner.number, float(winner.value)
    if number not in kept and kept:
        # Optuna's pick scored 0 without training (over --max-macs): every trained trial was
        # pruned. The user's glue then takes the best trained one.
        number = max(kept_acc, key=kept_acc.__getitem__)
        value = kept_acc[number]
    score = 0.0
    if number in kept:
        config, weights = kept[number]
        score = held_out(config, weights, bundle, data)
    return {"wall_s": wall, "events": events, "held_out_acc": score,
            "winner_val_acc": value, "bookkeeping_errors": errors,
            "trials": len(study.trials), "epochs": sum(r[0] for r in ran.values())}  # fmt: skip


def child(args: argparse.Namespace) -> None:
    import shutil

    method, seed = args.one, args.seed
    try:
        if method in ("ours", "sweep"):
            row = run_ours(args, seed, sweep=method == "sweep")
        elif method == "stock":
            row = run_stock(args, seed)
        else:
            row = run_optuna(args, seed)
    finally:  # each run's experiment, checkpoints and study: read, then gone
        for d in Path(tempfile.gettempdir()).glob(f"peers-*-{PID_TAG}"):
            shutil.rmtree(d, ignore_errors=True)
    print("PEERS-ROW " + json.dumps({"method": method, "seed": seed, **row}), flush=True)


# --- the parent: runs, summary, page ---------------------------------------------------------


def anytime(events: list[tuple[float, float]]) -> list[tuple[float, int, float]]:
    """(seconds, epochs trained, best validation accuracy so far) after each epoch."""
    best, out = 0.0, []
    for n, (t, acc) in enumerate(sorted(events), 1):
        best = max(best, acc)
        out.append((t, n, best))
    return out


def best_at(curve: list[tuple[float, int, float]], axis: int, x: float) -> float:
    """The curve's best accuracy at x seconds (axis 0) or x epochs (axis 1); 0 before it starts."""
    best = 0.0
    for point in curve:
        if point[axis] > x:
            break
        best = point[2]
    return best


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {m: [r for r in rows if r["method"] == m] for m in METHODS}
    by = {m: rs for m, rs in by.items() if rs}
    out: dict[str, Any] = {}
    for m, rs in by.items():
        out[m] = {
            "best_val_acc": spread([r["anytime"][-1][2] for r in rs]),
            "winner_val_acc": spread([r["winner_val_acc"] for r in rs]),
            "held_out_acc": spread([r["held_out_acc"] for r in rs]),
            "wall_s": spread([r["wall_s"] for r in rs]),
            "epochs": spread([r["epochs"] for r in rs]),
            "bookkeeping_errors": sum(len(r["bookkeeping_errors"]) for r in rs),
        }
    if "ours" in by and "sweep" in by:
        # Compute to reach the sweep's best within 1 point, seed by seed.
        fractions = []
        for ours in by["ours"]:
            sweep = next(r for r in by["sweep"] if r["seed"] == ours["seed"])
            target = sweep["anytime"][-1][2] - 0.01
            reached = next((p[1] for p in ours["anytime"] if p[2] >= target), None)
            fractions.append(reached / sweep["epochs"] if reached else None)
        out["ours_epochs_to_sweep_best_within_1pt"] = fractions
    if "ours" in by:
        # Our curve against each peer's at every point (seconds and epochs), in seed means.
        gaps: dict[str, dict[str, float]] = {}
        for peer in (m for m in by if m != "ours"):
            for axis, name in ((0, "seconds"), (1, "epochs")):
                end = max(max(p[axis] for p in r["anytime"]) for r in by["ours"] + by[peer])
                grid = [end * k / 40 for k in range(1, 41)]
                worst = min(
                    statistics.mean(best_at(r["anytime"], axis, x) for r in by["ours"])
                    - statistics.mean(best_at(r["anytime"], axis, x) for r in by[peer])
                    for x in grid
                )  # fmt: skip
                gaps.setdefault(peer, {})[f"worst_gap_vs_{name}"] = worst
        out["ours_minus_peer"] = gaps
    return out


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values)}


def run_all(args: argparse.Namespace) -> None:
    rows = []
    passthrough = [*data_flags(args), "--space", args.space, "--samples", str(args.samples),
                   "--epochs", str(args.epochs), "--concurrency",
                   str(args.concurrency)]  # fmt: skip
    for seed in args.seeds:
        for method in args.methods:  # alternated, seed by seed: the machine's noise is shared
            cmd = [sys.executable, __file__, "--one", method, "--seed", str(seed), *passthrough]
            proc = subprocess.run(cmd, text=True, capture_output=True, cwd=REPO)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("PEERS-ROW ")), None)
            if proc.returncode != 0 or line is None:
                raise SystemExit(f"{method} seed {seed} failed:\n{proc.stderr[-3000:]}")
            row = json.loads(line.removeprefix("PEERS-ROW "))
            # nothing trained (every configuration over --max-macs): 0 throughout
            row["anytime"] = anytime([tuple(e) for e in row.pop("events")]) or [
                (row["wall_s"], 0, 0.0)
            ]
            rows.append(row)
            print(f"{args.dataset}/{args.space} {method:6s} seed {seed}: best val "
                  f"{row['anytime'][-1][2]:.4f}, winner held-out {row['held_out_acc']:.4f}, "
                  f"{row['epochs']} epochs, {row['wall_s']:.0f} s, "
                  f"{len(row['bookkeeping_errors'])} bookkeeping errors", flush=True)  # fmt: skip
        write_result(args, rows)  # after every seed: a long run keeps what it measured


def write_result(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    result = {
        "date": datetime.now().isoformat(timespec="seconds"), "cpu": cpu_model(),
        "dataset": args.dataset, "data_dir": str(args.data_dir) if args.data_dir else None,
        "space": args.space, "samples": args.samples, "epochs": args.epochs,
        "concurrency": args.concurrency, "max_macs": args.max_macs,
        "seeds": sorted({r["seed"] for r in rows}),
        "summary": summarize(rows), "runs": rows,
    }  # fmt: skip
    if len(rows) == len(args.seeds) * len(args.methods):
        print(json.dumps(result["summary"], indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


def goals(summary: dict[str, Any]) -> str:
    """The issue's two goals, as read from one (dataset, space)'s summary."""
    items = []
    for peer, gap in summary.get("ours_minus_peer", {}).items():
        items.append(
            f"<li>ours minus {html.escape(peer)}, seed means, worst point: "
            f"{100 * gap['worst_gap_vs_seconds']:+.1f} points against the clock, "
            f"{100 * gap['worst_gap_vs_epochs']:+.1f} against epochs</li>"
        )
    fractions = summary.get("ours_epochs_to_sweep_best_within_1pt")
    if fractions is not None:
        shown = ", ".join("never" if f is None else f"{f:.2f}" for f in fractions)
        items.append(
            f"<li>ours' epochs to the sweep's best within 1 point, as a share of the "
            f"sweep's epochs, seed by seed: {shown} (goal: at most 0.20)</li>"
        )
    return f"<ul>{''.join(items)}</ul>"


COLORS = {"ours": "#1f77b4", "stock": "#d62728", "optuna": "#2ca02c", "sweep": "#7f7f7f"}


def page(out: Path, files: list[Path]) -> None:
    """One self-contained HTML page: per (dataset, space), the seed-mean anytime curves with
    their min..max band, against seconds and against epochs, and the summary table."""
    import plotly.graph_objects as go
    import plotly.io as pio

    sections = []
    first = True
    for f in files:
        result = json.loads(f.read_text())
        title = html.escape(f"{result['dataset']} / {result['space']}")
        for axis, label in ((0, "wall clock (s)"), (1, "epochs trained")):
            fig = go.Figure()
            for m in METHODS:
                runs = [r for r in result["runs"] if r["method"] == m]
                if not runs:
                    continue
                end = max(max(p[axis] for p in r["anytime"]) for r in runs)
                xs = [end * k / 100 for k in range(1, 101)]
                ys = [[best_at(r["anytime"], axis, x) for x in xs] for r in runs]
                mean = [statistics.mean(col) for col in zip(*ys, strict=True)]
                lo = [min(col) for col in zip(*ys, strict=True)]
                hi = [max(col) for col in zip(*ys, strict=True)]
                fig.add_trace(go.Scatter(x=xs + xs[::-1], y=hi + lo[::-1], fill="toself",
                                         line={"width": 0}, fillcolor=COLORS[m], opacity=0.15,
                                         showlegend=False, hoverinfo="skip"))  # fmt: skip
                fig.add_trace(go.Scatter(x=xs, y=mean, name=m, line={"color": COLORS[m]}))
            fig.update_layout(title=f"{title}: best validation accuracy vs {label}",
                              xaxis_title=label, yaxis_title="best val accuracy so far",
                              height=380, margin={"t": 50, "b": 40})  # fmt: skip
            sections.append(pio.to_html(fig, full_html=False,
                                        include_plotlyjs="inline" if first else False))  # fmt: skip
            first = False
        rows = "".join(
            f"<tr><td>{html.escape(m)}</td><td>{s['best_val_acc']['mean']:.4f}</td>"
            f"<td>{s['held_out_acc']['mean']:.4f} ({s['held_out_acc']['min']:.4f}.."
            f"{s['held_out_acc']['max']:.4f})</td>"
            f"<td>{s['epochs']['mean']:.0f}</td><td>{s['wall_s']['mean']:.0f}</td>"
            f"<td>{s['bookkeeping_errors']}</td></tr>"
            for m, s in result["summary"].items() if m in METHODS
        )  # fmt: skip
        sections.append(
            f"<h2>{title}</h2><p>{result['samples']} trials x {result['epochs']} epochs, "
            f"concurrency {result['concurrency']}, "
            f"--max-macs {html.escape(str(result['max_macs']))}, "
            f"seeds {html.escape(str(result['seeds']))}</p><table border=1 cellpadding=4>"
            "<tr><th>method</th><th>best val (mean)</th><th>winner held-out (mean, min..max)"
            "</th><th>epochs</th><th>wall s</th><th>bookkeeping errors</th></tr>"
            f"{rows}</table>{goals(result['summary'])}"
        )
    body = "\n".join(sections)
    text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>cnn-tuner against its "
        f"peers</title></head><body><h1>cnn-tuner against its peers</h1>{body}</body></html>"
    )
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--val-count", type=int, default=None)
    parser.add_argument("--space", default="seed_cnn", choices=("seed_cnn", "resnet_cnn"))
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--max-macs", default="1M")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--page", type=Path, default=None, metavar="HTML",
                        help="write the page from the JSON files given after it")  # fmt: skip
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--one", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.page:
        page(args.page, args.files)
    elif args.one:
        child(args)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
