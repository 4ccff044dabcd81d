"""bench/gpu_bundle.py, the packer of what a bare GPU image lacks: its trimming keeps every
module a Tune search imports and drops the parts it never does, and its archive unpacks to
the same tree."""

from __future__ import annotations

import tarfile

from bench_loader import load_bench


def _bundle():
    return load_bench("gpu_bundle")


def test_trimming_drops_what_tune_never_imports_and_keeps_the_rest(tmp_path):
    bundle = _bundle()
    site = tmp_path / "site"
    keep = ["ray/tune/__init__.py", "ray/train/_internal/session.py", "optuna/__init__.py",
            "plotly/io/_html.py", "ray/_raylet.so", "ray/data/__init__.py"]  # fmt: skip
    drop = ["ray/jars/ray_dist.jar", "ray/rllib/algorithms/ppo.py", "ray/serve/api.py",
            "ray/dashboard/client/build/index.html", "ray/tune/tests/test_api.py",
            "optuna/__pycache__/study.cpython-312.pyc"]  # fmt: skip
    for rel in keep + drop:
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"x" * 100)
    removed = bundle.trim(site)
    assert removed == 100 * len(drop)
    assert all((site / rel).exists() for rel in keep)
    assert not any((site / rel).exists() for rel in drop)
    assert (site / "ray/dashboard").is_dir()  # the dashboard's Python stays: Ray imports it

    packed = bundle.pack(site, tmp_path / "devsite.tar.xz")
    assert 0 < packed < bundle.CARRY_LIMIT
    with tarfile.open(tmp_path / "devsite.tar.xz") as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    assert names == set(keep)


def test_the_pinned_versions_are_the_ones_installed_here():
    """The bundle pins what this project's tests pass on; a bump here must bump it too."""
    from importlib.metadata import version

    bundle = _bundle()
    pinned = dict(p.split("==") for p in bundle.PACKAGES if "==" in p)
    for name in ("ray", "optuna", "plotly"):
        assert version(name) == pinned[name], name
