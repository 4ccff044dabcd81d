"""Shared fixtures. Tests read no data from outside the repository: it is generated here or
ships with a package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything imports ray: Ray reads this when imported, and with it every port of a test
# cluster binds to 127.0.0.1.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.pop("RAY_ADDRESS", None)  # never join a cluster someone else started


# The files whose tests take longest, in seconds of CI's run on 2 cores (2026-12-07,
# --durations=0): test_resume 189, test_failures 159, test_matrix 153, test_promises_search
# 137, test_hosts 114, test_confirm 96, test_storage_search 87, ... of 1,662 in all. They start
# first, so that neither of the two workers is left running one of them alone at the end.
# xdist's own order (--loadscope-reorder, files with the most tests first) started them last:
# the run's last minute was one file on one worker. pyproject.toml turns that order off.
SLOWEST_FIRST = (
    "test_resume.py", "test_failures.py", "test_matrix.py", "test_promises_search.py",
    "test_hosts.py", "test_confirm.py", "test_storage_search.py", "test_search.py",
    "test_disk_full.py", "test_report_browser_search.py", "test_unrecorded_trial.py",
    "test_user_model_search.py", "test_warm_start_search.py", "test_budget.py",
    "test_experiment_dir.py", "test_live_search.py", "test_config_file_search.py",
    "test_ray_runtime.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest as found


@pytest.fixture(scope="session", autouse=True)
def torch_in_this_process() -> None:
    """The searches a test runs in its own process do their torch work there, as a notebook
    that imported torch does (tuner.stages.torch_work: where torch is loaded already, no helper
    process). Without this, each such search started the helper twice, two more imports of
    torch (~2.5 s of a core each): in CI a test of one such search took 3-17 s longer. The
    CLI's own processes, which
    the end-to-end tests run as a user does, still use the helper, and
    tests/e2e/test_live_search.py checks that their driver never imports torch."""
    import torch  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def private_dirs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test session gets its own dataset cache and Ray temp dir.

    Ray's default temp dir is shared with whoever else runs Ray on the machine; a private one
    keeps our in-process clusters (always address="local") apart from theirs.
    """
    base = tmp_path_factory.mktemp("env")
    os.environ["TUNER_DATA_DIR"] = str(base / "data")
    os.environ["RAY_TMPDIR"] = str(Path("/tmp") / f"rt{os.getpid()}")  # short: socket paths


@pytest.fixture(scope="session", autouse=True)
def no_ray_left_running():
    """The in-process Ray that shared_ray leaves running, stopped by its handle at the end."""
    yield
    if _in_process_ray():
        import ray

        ray.shutdown()


@pytest.fixture(autouse=True)
def only_slow_tests_start_ray(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """The README promises that `-m "not slow"` skips every test that starts Ray: a test that
    is not marked slow and starts an in-process Ray fails here, at once. A slow one runs its
    searches in this process only if it asked for shared_ray or is marked own_ray: otherwise
    it would find Ray running or not, by the order the tests ran in (ray_as_the_test_asks)."""
    if request.node.get_closest_marker("slow") is not None:
        if not (_asks_for_shared_ray(request.node) or _wants_its_own_ray(request.node)):
            from tuner.driver import ray_runtime

            def refuse_search(*args: object, **kwargs: object) -> None:
                raise AssertionError("this test runs a search in its own process: ask for the "
                                     "shared_ray fixture, or mark it own_ray")  # fmt: skip

            monkeypatch.setattr(ray_runtime, "start_ray", refuse_search)
        yield
        return
    import ray

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("this test starts Ray: mark it @pytest.mark.slow")

    monkeypatch.setattr(ray, "init", refuse)
    yield


def _in_process_ray() -> bool:
    import sys

    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def _start_shared_ray() -> None:
    import ray

    from tuner.driver.ray_runtime import TUNE_ACTOR_ENV, keep_local_ray_on_loopback

    keep_local_ray_on_loopback()
    for name, value in {**TUNE_ACTOR_ENV, "RAY_USAGE_STATS_ENABLED": "0"}.items():
        os.environ.setdefault(name, value)  # as tuner.driver.ray_runtime.start_ray does
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)  # fmt: skip


@pytest.fixture(scope="module")
def shared_ray():
    """One in-process Ray for the searches of every test that asks for it: a search finds it
    running and leaves it so. Loopback only, private temp dir (above). It outlives the test and
    the module, and is stopped only before a test marked own_ray (ray_as_the_test_asks): Ray's
    start and stop cost 3-5 s of wall and ~5 s of CPU (two prestarted workers among them), and
    were paid 17 times in a run of the slow tests when every test that did not ask for it found
    it stopped, although most of those only run the CLI in a child of their own. For tests whose
    subject is the process (signals, exit codes of a killed driver, Ray's own start-up): a
    child of their own, or the own_ray marker."""
    if not _in_process_ray():
        _start_shared_ray()
    yield


def _asks_for_shared_ray(item: pytest.Item) -> bool:
    return "shared_ray" in getattr(item, "fixturenames", ())


def _wants_its_own_ray(item: pytest.Item) -> bool:
    return item.get_closest_marker("own_ray") is not None


def _stop_in_process_ray() -> None:
    import ray

    ray.shutdown()


@pytest.fixture(scope="module", autouse=True)
def no_ray_in_own_ray_modules(request: pytest.FixtureRequest):
    """A module with a test marked own_ray finds no in-process Ray, also in its module-scoped
    fixtures (set up before any test's own): the hosts' cluster, for one, is joined with
    --address, which a running in-process Ray would shadow."""
    items = [i for i in request.session.items if getattr(i, "module", None) is request.module]
    if any(_wants_its_own_ray(i) for i in items) and _in_process_ray():
        _stop_in_process_ray()
    yield


@pytest.fixture(autouse=True)
def ray_as_the_test_asks(request: pytest.FixtureRequest):
    """A test that asked for shared_ray finds it running (started again if an own_ray test
    stopped it); one marked own_ray finds none; any other finds whatever the test before it
    left, and may not run a search in this process (only_slow_tests_start_ray refuses it): it
    runs the CLI in a child of its own, or nothing of Ray's."""
    if _wants_its_own_ray(request.node):
        if _in_process_ray():
            _stop_in_process_ray()
    elif _asks_for_shared_ray(request.node) and not _in_process_ray():
        _start_shared_ray()
    yield


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright (tests/browser_fixture.py); skipped without it
    locally, a failure in CI."""
    from browser_fixture import open_browser

    yield from open_browser()


def _postgres():
    """A real PostgreSQL server (tests/postgres_fixture.py): needs root (it runs the server as
    the `postgres` user) and Debian's server package; skipped without them locally, a failure
    in CI (.ci/run installs the package)."""
    from postgres_fixture import binaries, postgres_server

    why = None
    if binaries() is None:
        why = "PostgreSQL's server is not installed (apt-get install postgresql)"
    elif os.geteuid() != 0:
        why = "starting PostgreSQL as its own user needs root"
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{why}: .ci/run installs it and runs as root, so CI must have it")
        pytest.skip(why)
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def postgres():
    """One server for a test module's searches (_postgres)."""
    yield from _postgres()


@pytest.fixture
def postgres_to_lose():
    """A server of the test's own, which it may kill (PostgresServer.kill) and start again."""
    yield from _postgres()
