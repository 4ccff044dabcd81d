"""`RAY_ADDRESS` works like `--address` (README, Options): `tuner search` joins the cluster it
names instead of starting a private Ray, `--address` given on the command line wins, and an
address where no cluster listens is bad input: one line, exit 2, no experiment directory left,
in seconds (ray.init alone retries such an address for minutes). No Ray is started: ray.init
is replaced by a stand-in (or by the conftest's refusal, which fails the test if reached)."""

from __future__ import annotations

import socket

import pytest

from tuner.cli import build_parser, config_from_args, main
from tuner.config.search_config import SearchConfig
from tuner.driver.ray_runtime import _endpoint


def _search_args(out, *extra: str) -> list[str]:
    return ["search", "--samples", "1", "--epochs", "1", "--no-confirm", "--out", str(out),
            "--name", "joined", *extra]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_address_comes_from_RAY_ADDRESS_unless_given(monkeypatch):
    parser = build_parser()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert config_from_args(parser.parse_args(["search"])).address is None
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    assert config_from_args(parser.parse_args(["search"])).address == "10.1.2.3:6379"
    assert SearchConfig().address == "10.1.2.3:6379"  # the Python API too
    given = parser.parse_args(["search", "--address", "head:6379"])
    assert config_from_args(given).address == "head:6379"


@pytest.mark.parametrize(
    "address, endpoint",
    [("10.1.2.3:6379", ("10.1.2.3", 6379)), ("ray://head:10001", ("head", 10001)),
     ("[::1]:6379", ("::1", 6379)), ("auto", None), ("local", None),
     ("http://head:8265", None)],
)  # fmt: skip
def test_which_addresses_are_checked_before_ray_init(address, endpoint):
    assert _endpoint(address) == endpoint


def test_a_search_joins_the_cluster_RAY_ADDRESS_names(tmp_path, monkeypatch, capsys):
    import ray

    head = socket.socket()  # something listening where the cluster's head would be
    head.bind(("127.0.0.1", 0))
    head.listen()
    address = f"127.0.0.1:{head.getsockname()[1]}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    calls: list[dict] = []

    def init(*args, **kwargs):
        calls.append(kwargs)
        raise ConnectionError("the stand-in for the cluster does not speak Ray")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    try:
        code = main(_search_args(tmp_path / "out"))
    finally:
        head.close()
    captured = capsys.readouterr()
    assert [c.get("address") for c in calls] == [address]  # that cluster, not "local"
    assert f"Connecting to the Ray cluster at {address}" in captured.out
    assert code == 2 and captured.err.count("\n") == 1
    assert f"cannot reach the Ray cluster at {address}" in captured.err
    assert not (tmp_path / "out" / "joined").exists()


def test_RAY_ADDRESS_where_nothing_listens_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    address = f"127.0.0.1:{_free_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    tried: list[dict] = []
    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: tried.append(kwargs))
    code = main(_search_args(tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("tuner: error: cannot reach the Ray cluster")
    assert address in err and "RAY_ADDRESS" in err
    assert not (tmp_path / "out" / "joined").exists()  # the directory prepared beside is gone
    assert tried == []  # refused before ray.init, which would retry the address for minutes


def test_the_address_flag_wins_over_RAY_ADDRESS(tmp_path, monkeypatch, capsys):
    nowhere = f"127.0.0.1:{_free_port()}"
    monkeypatch.setenv("RAY_ADDRESS", "10.255.255.1:6379")  # would wait for its timeout
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    assert main(_search_args(tmp_path / "out", "--address", nowhere)) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Ray cluster at {nowhere}" in err and "10.255" not in err
