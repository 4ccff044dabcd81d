"""Build .devdata/ for bench/gpu.sh on a GPU machine whose image has torch and Python but not
Ray, Optuna or plotly (the device tool's image: torch 2.11, Python 3.12).

It downloads the wheels of those packages and of the dependencies the image lacks, for the
target's Python and platform (pip download --only-binary, no resolver: the versions are pinned
to the ones this project's tests pass on), unpacks them into one site-packages tree
(pip install --target --no-deps), removes what a Tune search never imports (Ray's Java jars,
RLlib, Serve, the dashboard's web client; ray.data stays: ray.air imports it), and packs the
tree as devsite.tar.xz beside a copy of the CIFAR tarball. The whole must fit the device tool's
64 MiB carry; the script refuses to finish otherwise.

    python bench/gpu_bundle.py --cifar ../shared/data/cifar10-train-jpg.tar.gz --out .devdata

On the GPU machine:

    mkdir -p /tmp/site && tar -xJf .devdata/devsite.tar.xz -C /tmp/site
    PYTHONPATH=/tmp/site python -c "import ray.tune, optuna, plotly"   # what is still missing
    PYTHONPATH=/tmp/site bash bench/gpu.sh .devdata/cifar10-train-jpg.tar.gz $OUT

Keep .devdata/ out of git (it is in .gitignore).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CARRY_LIMIT = 64 * 2**20  # the device tool's limit on carried files, all together
# The packages the device image lacks, at the versions this project is tested on.
PACKAGES = (
    "ray==2.60.0", "optuna==5.0.0", "plotly==7.1.0", "alembic==1.20.1", "sqlalchemy==2.1.9",
    "mako==1.4.3", "colorlog==6.12.0", "greenlet==3.5.6", "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1", "referencing==0.37.0", "rpds-py==2026.9.1",
    "tensorboardX==2.6.5", "msgpack==1.2.4", "narwhals",
)  # fmt: skip
# Parts of the unpacked tree a Tune search never imports (relative to site-packages).
TRIM = (
    "ray/jars", "ray/rllib", "ray/serve", "ray/dashboard/client/build",
    "ray/llm", "ray/cpp",
)  # fmt: skip
TRIM_SUFFIXES = (".pyc",)
TRIM_DIRS = ("__pycache__", "tests")


def trim(site: Path) -> int:
    """Remove TRIM, tests and bytecode from the unpacked tree `site`; the bytes removed."""
    removed = 0

    def size(path: Path) -> int:
        if path.is_file():
            return path.stat().st_size
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

    for rel in TRIM:
        path = (site / rel).resolve()
        if site.resolve() in path.parents and path.exists():
            removed += size(path)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if not path.exists():
            continue
        if path.is_dir() and path.name in TRIM_DIRS and path.parent.name != "site":
            removed += size(path)
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in TRIM_SUFFIXES:
            removed += path.stat().st_size
            path.unlink()
    return removed


def pack(site: Path, dst: Path) -> int:
    """site/ as dst (tar.xz, preset 6); its size in bytes."""
    with tarfile.open(dst, "w:xz", preset=6) as tar:
        for path in sorted(site.iterdir()):
            tar.add(path, arcname=path.name)
    return dst.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cifar", type=Path, required=True, help="cifar10-train-jpg.tar.gz")
    parser.add_argument("--out", type=Path, default=Path(".devdata"))
    parser.add_argument("--python-version", default="3.12", help="the target's Python")
    parser.add_argument("--platform", default="manylinux2014_x86_64")
    args = parser.parse_args()
    if not args.cifar.is_file():
        print(f"gpu_bundle: no file {args.cifar}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheels, site = Path(tmp) / "wheels", Path(tmp) / "site"
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
        target = ["--only-binary=:all:", "--no-deps", "--python-version", args.python_version,
                  "--platform", args.platform, "--platform", "manylinux_2_28_x86_64",
                  "--platform", "any"]  # fmt: skip
        subprocess.run([*pip, "download", *target, "-d", str(wheels), *PACKAGES], check=True)
        # For another Python than this one: pip installs the wheels for the target's tags.
        subprocess.run([*pip, "install", *target, "--no-compile", "--target", str(site),
                        *map(str, sorted(wheels.glob("*.whl")))], check=True)  # fmt: skip
        unpacked = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
        removed = trim(site)
        packed = pack(site, args.out / "devsite.tar.xz")
    cifar = args.out / args.cifar.name
    if cifar.resolve() != args.cifar.resolve():
        shutil.copyfile(args.cifar, cifar)
    total = packed + cifar.stat().st_size
    print(f"site-packages {unpacked / 2**20:.0f} MiB, {removed / 2**20:.0f} MiB trimmed, "
          f"devsite.tar.xz {packed / 2**20:.1f} MiB; with {cifar.name}: "
          f"{total / 2**20:.1f} MiB of the {CARRY_LIMIT / 2**20:.0f} MiB carry")  # fmt: skip
    if total > CARRY_LIMIT:
        print("gpu_bundle: over the carry limit; trim more (TRIM) or carry the tarball apart",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
