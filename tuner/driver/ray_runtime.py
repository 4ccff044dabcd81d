"""Starting Ray for a search: in this process on loopback, or joining --address; the
preparation that runs beside Ray's start; whether the cluster can run a trial at all."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

from tuner.config.search_config import SearchConfig
from tuner.stages.console import say
from tuner.stages.provenance import Timings

T = TypeVar("T")


def keep_local_ray_on_loopback() -> None:
    """Make an in-process Ray bind every port (GCS, raylet, workers) to 127.0.0.1.

    On Linux Ray listens on every interface by default (seen with `ss -ltnp`). Its switch for
    "local only" is the constant behind RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when ray is
    imported; set the variable for the processes Ray spawns and the constant for this one,
    which may have imported ray already.
    """
    from tuner.driver.fence.internals import keep_ray_on_loopback

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    keep_ray_on_loopback()


# The environment Tune gives its trial actors (DEFAULT_ENV_VARS in ray/tune/execution/
# class_cache.py; for PyTorch Lightning, ray-project/ray#28197). An in-process Ray is started
# with it already in place, so that its prestarted workers can take trials (below).
TUNE_ACTOR_ENV = {"PL_DISABLE_FORK": "1"}


def let_trials_use_prestarted_workers() -> None:
    """Let Tune's trial actors run in the worker processes an in-process Ray prestarts.

    Ray starts idle Python workers with the cluster, but hands an actor only to a worker whose
    runtime env matches the actor's, and Tune gives its trial actors one of their own
    (TUNE_ACTOR_ENV). So the first trial of every slot waited for a new Python process and its
    `import ray`, about 1 s (bench/overhead.py, start-up). start_ray puts those variables into
    the environment every process of an in-process Ray inherits; this empties Tune's copy, but
    only when all of it is in that environment already. Should Tune add variables of its own
    (it also propagates a few, such as AWS keys, when they are set), its actors simply start
    fresh processes as before. Call it after Ray has started, for an in-process Ray only.
    """
    from tuner.driver.fence.internals import tune_actor_env

    defaults = tune_actor_env()  # None if it moved in some Ray release: only this saving is lost
    if defaults is not None and all(os.environ.get(k) == v for k, v in defaults.items()):
        defaults.clear()


def start_ray(cfg: SearchConfig, stream: TextIO) -> bool:
    """Connect to `cfg.address`, or start Ray in this process. Returns True if we started it."""
    import ray

    # Read by Tune in this process when fit() starts, so set even when Ray already runs here
    # (a notebook, or the test matrix sharing one Ray between searches).
    # The legacy reporter honours verbose=0; the new one prints its own tables regardless, and
    # SearchProgress replaces both.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune adds CSV, JSON and TensorBoard loggers; the TensorBoard one prints "NaN or Inf found
    # in input tensor" for every diverged trial. build_tuner adds the two we read instead.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # A failed trial printed Tune's whole traceback (15 lines for a lost node); the progress
    # prints one line instead, and the trace is in the trial's error.txt. --verbose keeps it.
    os.environ["TUNE_PRINT_ALL_TRIAL_ERRORS"] = "1" if cfg.verbose else "0"
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {
        "log_to_driver": cfg.verbose,
        "logging_level": logging.INFO if cfg.verbose else logging.ERROR,
    }
    if cfg.address:
        say(stream, f"Connecting to the Ray cluster at {cfg.address}")
        check_reachable(cfg.address)
        try:
            ray.init(address=cfg.address, **quiet)
        except ConnectionError as e:  # e.g. "auto" with no cluster running on this machine
            raise _unreachable(cfg.address, " ".join(str(e).split())) from None
        return True
    keep_local_ray_on_loopback()
    for name, value in TUNE_ACTOR_ENV.items():  # see let_trials_use_prestarted_workers
        os.environ.setdefault(name, value)
    # Ray's usage statistics (sent to Anyscale when a network is there) cost ray.init ~0.9 s
    # here (bench/overhead.py, start-up). A private in-process Ray for one search does not send
    # them unless the user asks for it with RAY_USAGE_STATS_ENABLED=1.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # address="local" always starts a private instance: it never joins a cluster someone else
    # started on this machine (which address=None or "auto" could).
    ray.init(address="local", include_dashboard=False, **quiet)
    return True


REACH_TIMEOUT_S = 10.0  # a cluster's head answers a TCP connect in milliseconds


def _endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) of a `host:port` or `ray://host:port` address; None for the forms Ray
    resolves itself ("auto", "local", ...)."""
    text = address.strip()
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme != "ray":
            return None
    host, sep, port = text.rstrip("/").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port.isdigit():
        return None
    return host, int(port)


def _unreachable(address: str, reason: str) -> Exception:
    from tuner.train.config import ConfigError

    return ConfigError(
        f"cannot reach the Ray cluster at {address} ({reason}); start it, or fix --address "
        "(or $RAY_ADDRESS, which --address replaces)"
    )


def check_reachable(address: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """ConfigError (one line) unless something listens at a `host:port` --address (or
    $RAY_ADDRESS). ray.init would otherwise retry an address where nothing listens for
    minutes, printing a warning every few seconds, before it gives up."""
    endpoint = _endpoint(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            pass
    except OSError as e:
        raise _unreachable(address, e.strerror or type(e).__name__) from None


def while_ray_starts(
    cfg: SearchConfig, stream: TextIO, prepare: Callable[[], T], timings: Timings
) -> tuple[T, bool]:
    """Run `prepare` (load the dataset, dry-run the space, write provenance), then import Tune,
    in a thread while this thread imports and starts Ray; together they take about the longer
    of the two instead of the sum (bench/overhead.py, start-up).

    Returns prepare's result and whether Ray was started here. If `prepare` fails, Ray is shut
    down again and its error (a one-line ConfigError or DataError) is raised: nothing of the
    search was written, and no trial ran.
    """
    outcome: dict[str, Any] = {}
    ray_imported = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = prepare()
            # Then Tune's own import (~0.8 s), which building the Tuner would wait for. Only
            # once `ray` itself is imported, so the two threads never import it at once.
            ray_imported.wait()
            import ray.tune  # noqa: F401
        except BaseException as e:  # handed to the main thread below
            outcome["error"] = e

    thread = threading.Thread(target=work, name="tuner-prepare", daemon=True)
    thread.start()
    try:
        with timings("ray_start"):
            try:
                import ray  # only now: input that fails validate() never pays for importing Ray
            finally:
                ray_imported.set()
            we_started = start_ray(cfg, stream)
    finally:
        thread.join()
    if "error" in outcome:
        if we_started:
            ray.shutdown()
        raise outcome["error"]
    return outcome["value"], we_started


def check_schedulable(cfg: SearchConfig) -> None:
    """Refuse a per-trial request that no node of the cluster can ever satisfy.

    Ray would otherwise keep the trial PENDING forever with a warning every 60 s.
    """
    import ray

    from tuner.driver.gpu_packing import TRIALS_PER_GPU
    from tuner.train.config import ConfigError

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    # auto: every trial asks for at least this share (its configuration's may be more)
    gpus = 1.0 / TRIALS_PER_GPU if cfg.gpus_per_trial == "auto" else float(cfg.gpus_per_trial)
    fits = any(
        n["Resources"].get("CPU", 0) >= cfg.cpus_per_trial and n["Resources"].get("GPU", 0) >= gpus
        for n in nodes
    )
    if not fits:
        have = ", ".join(
            f"{n['NodeManagerAddress']}: {n['Resources'].get('CPU', 0):g} CPU, "
            f"{n['Resources'].get('GPU', 0):g} GPU"
            for n in nodes
        )
        raise ConfigError(
            f"no node can run a trial with {cfg.cpus_per_trial:g} CPU and "
            f"{gpus:g} GPU (cluster has {have}); "
            "lower --cpus-per-trial or --gpus-per-trial"
        )
