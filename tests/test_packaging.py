"""What a clean clone installs is what the package imports: no module of tuner/, analysis/ or
search_spaces/ may be dropped by a .gitignore rule (an unanchored `data/` once swallowed
tuner/data/torchvision_sets.py, and `--dataset mnist` died on every clean clone), and every
module imports."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tuner", "analysis", "search_spaces")


def _sources() -> list[str]:
    return sorted(
        str(p.relative_to(ROOT))
        for package in PACKAGES
        for p in (ROOT / package).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
    )


def test_no_file_of_the_packages_is_ignored_by_git():
    # --no-index: ask the rules themselves, tracked or not (a new file is what they swallow).
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "-v", "--stdin"],
        input="\n".join(_sources()),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: nothing ignored; 128: not a checkout
    assert proc.stdout == "", "ignored by git, so missing from a clean clone:\n" + proc.stdout


def test_the_rules_that_once_swallowed_a_module_are_anchored():
    """The same rules as above, on names a future module might take."""
    names = ["tuner/data/new_reader.py", "tuner/experiments/x.py", "analysis/data/x.py"]
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        input="\n".join(names),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout
    # ...while the folders the rules are for stay ignored.
    top = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        input="data/x.npy\nexperiments/e/trials.csv\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert top.stdout.split() == ["data/x.npy", "experiments/e/trials.csv"]


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            names.append(info.name)
    return sorted(names)


def test_every_package_has_modules_to_import():
    modules = _modules()
    assert "tuner.data.torchvision_sets" in modules and len(modules) > 40


@pytest.mark.parametrize("module", _modules())
def test_every_module_imports(module):
    importlib.import_module(module)
