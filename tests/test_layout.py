"""The package's rooms, checked on the source with `ast` (nothing is imported): who may import
whom, and that the experiment directory's file names are written in tuner.experiment only.

    analysis/*          reads the directory through tuner.experiment, tuner.io, tuner.errors
    tuner/experiment/   pandas, numpy, the standard library: no torch, Ray, Optuna or analysis
    tuner/data/         numpy: no torch or Ray (torchvision's CIFAR-10 reader inside functions)
    tuner/train/        torch: never Ray or Optuna
    tuner/deploy/       torch: never Ray, Optuna, the driver or analysis
    tuner/config/       the search's options and config: no torch, Ray or Optuna on import,
                        never the driver, the stages or analysis
    tuner/stages/       the search's steps around the fit: never Ray, Optuna or the driver
    tuner/retrain.py    `tuner retrain`: torch, never Ray, Optuna or the driver
    tuner/driver/       Ray and Optuna; the only room (with tuner/cli.py) that imports itself
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILE_NAMES = (
    "trials.csv", "epochs.csv", "best.json", "provenance.json", "report.html", "optuna.db",
    "asha_state.json", "rejected.csv", "params.json", "result.json", "error.txt", "history.json",
    "state.pt", ".tuner-state-backup", "tuner.pkl", "model.pt", "confirm.csv", "search.toml",
    "retrain.json",
)  # fmt: skip


class Import(NamedTuple):
    path: str  # relative to the repository
    line: int
    name: str  # `import a.b` -> a.b; `from a import b` -> a.b
    where: str  # "module" (runs on import), "function" (runs when called), "type" (never runs)

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.name} ({self.where} level)"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[Import]:
    rel = path.relative_to(ROOT).as_posix()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(rel, child.lineno, a.name, where) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: resolved against this module's package
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parts, *([base] if base else [])])
                found.extend(Import(rel, child.lineno, f"{base}.{a.name}", where)
                             for a in child.names)  # fmt: skip
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, "type" if where == "type" else "function")
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), "type")
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), where)
            else:
                visit(child, where)

    visit(ast.parse(path.read_text(), filename=rel), "module")
    return found


def _sources(*rooms: str) -> list[Path]:
    paths: list[Path] = []
    for room in rooms:
        target = ROOT / room
        paths.extend([target] if target.is_file() else sorted(target.rglob("*.py")))
    return paths


def _in(name: str, *modules: str) -> bool:
    """Whether `name` is one of `modules` or inside one of them."""
    return any(name == m or name.startswith(m + ".") for m in modules)


def _runtime(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.where != "type"]


def _all(*rooms: str) -> list[Import]:
    return [i for path in _sources(*rooms) for i in imports_of(path)]


def test_the_source_is_there():
    """A moved room must not leave the rules below checking nothing."""
    for room in (
        "analysis",
        "tuner/experiment",
        "tuner/data",
        "tuner/train",
        "tuner/driver",
        "tuner/config",
        "tuner/stages",
        "tuner/retrain.py",
    ):
        assert _sources(room), room
    assert any(i.name == "tuner.experiment.collect_tables" for i in _all("analysis"))


def test_analysis_reads_through_tuner_experiment_only():
    allowed = ("tuner.experiment", "tuner.io", "tuner.errors")
    bad = [
        i
        for i in _all("analysis")
        if (_in(i.name, "tuner") and not _in(i.name, *allowed)) or _in(i.name, "ray", "torch")
    ]
    assert not bad, "\n".join(map(str, bad))


def test_tuner_experiment_needs_no_torch_ray_optuna_or_analysis():
    own = ("tuner.experiment", "tuner.io", "tuner.errors")
    bad = []
    for i in _runtime(_all("tuner/experiment")):
        if _in(i.name, "torch", "ray", "optuna", "analysis", "tuner.driver"):
            bad.append(i)
        elif _in(i.name, "tuner") and not _in(i.name, *own):
            bad.append(i)
    assert not bad, "\n".join(map(str, bad))


def test_tuner_data_imports_no_torch_or_ray():
    """numpy only. torchvision (which imports torch) reads CIFAR-10's files and lists image
    folders, inside the two functions that do that; never on import."""
    bad = [
        i
        for i in _runtime(_all("tuner/data"))
        if _in(i.name, "torch", "ray", "optuna", "tuner.train", "tuner.driver", "analysis")
        or (_in(i.name, "torchvision") and i.where == "module")
    ]
    assert not bad, "\n".join(map(str, bad))


def test_tuner_train_never_imports_ray_or_optuna():
    bad = [i for i in _all("tuner/train") if _in(i.name, "ray", "optuna", "analysis")]
    assert not bad, "\n".join(map(str, bad))


def test_tuner_deploy_never_imports_ray_optuna_the_driver_or_analysis():
    """Using a model file needs torch (and PIL), never the search's machinery."""
    bad = [
        i for i in _all("tuner/deploy") if _in(i.name, "ray", "optuna", "tuner.driver", "analysis")
    ]
    assert _sources("tuner/deploy") and not bad, "\n".join(map(str, bad))


def test_tuner_config_needs_no_torch_ray_or_optuna_and_no_room_above_it():
    """`tuner --help` and a config's checks run before anything heavy is imported: the
    config imports torch only inside the checks that need it (a user's model file, a GPU's
    memory), and never Ray, Optuna, the driver, the stages or analysis."""
    bad = [
        i
        for i in _runtime(_all("tuner/config"))
        if _in(i.name, "ray", "optuna", "tuner.driver", "tuner.stages", "analysis")
        or (_in(i.name, "torch", "torchvision") and i.where == "module")
    ]
    assert not bad, "\n".join(map(str, bad))


def test_the_stages_and_retrain_never_import_ray_optuna_or_the_driver():
    """What runs before and after the fit (and `tuner retrain`) works on the experiment
    directory and torch; the driver hands it what it needs."""
    bad = [
        i
        for i in _all("tuner/stages", "tuner/retrain.py")
        if _in(i.name, "ray", "optuna", "tuner.driver", "analysis")
    ]
    assert not bad, "\n".join(map(str, bad))


def test_only_the_driver_and_the_cli_import_the_driver():
    bad = []
    for i in _all("tuner", "analysis", "search_spaces"):
        if not _in(i.name, "tuner.driver") or i.path.startswith("tuner/driver/"):
            continue
        if i.path == "tuner/cli.py":
            continue
        # tuner/__init__.py is the public facade (`from tuner import search, SearchConfig`):
        # it names the driver only lazily (PEP 562 __getattr__) and for type checkers, so that
        # `import tuner.experiment` loads no driver.
        if i.path == "tuner/__init__.py" and i.where != "module":
            continue
        bad.append(i)
    assert not bad, "\n".join(map(str, bad))


def test_the_driver_takes_the_pareto_mask_from_tuner_experiment():
    """The report and best.json must draw the same front: one mask, in tuner.experiment."""
    objectives = imports_of(ROOT / "tuner/config/objectives.py")
    assert not [i for i in objectives if _in(i.name, "analysis")]
    assert any(i.name == "tuner.experiment.pareto_mask" for i in objectives)
    # Elsewhere in tuner/ only the report writers import analysis, when they are called.
    writers = ("tuner/cli.py", "tuner/driver/finish.py", "tuner/driver/live_report.py")
    bad = [
        i
        for i in _all("tuner")
        if _in(i.name, "analysis") and not (i.path in writers and i.where == "function")
    ]
    assert not bad, "\n".join(map(str, bad))


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """String literals that are not docstrings (f-strings' literal parts included)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


@pytest.mark.parametrize("room", ["tuner", "analysis"])
def test_file_names_are_written_in_tuner_experiment_only(room):
    """A file of the experiment directory is named by its constant in tuner.experiment; a
    literal elsewhere (a path, a glob, a message) would drift from it."""
    owner = ROOT / "tuner/experiment/files.py"
    bad = []
    for path in _sources(room):
        if path == owner:
            continue
        for line, text in _string_constants(path):
            if any(name in text for name in FILE_NAMES):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not bad, "\n".join(bad)


def test_test_files_have_names_of_their_own():
    """pytest imports test files by their base name (no packages under tests/): two files of one
    name make the whole run fail to collect."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert not {n for n in names if names.count(n) > 1}


FENCE = "tuner/driver/fence/"


def _own_names() -> set[str]:
    """Every name the project defines itself (functions, classes, attributes it assigns,
    variables, arguments): a `_name` outside this set belongs to a library."""
    names: set[str] = set()
    for path in _sources("tuner", "search_spaces", "analysis"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return names


def test_private_parts_of_ray_and_optuna_are_reached_only_inside_the_fence():
    """Outside tuner/driver/fence/: no import of a private module or name of Ray or Optuna
    (ray._private, ray.train._internal, `from optuna.x import _Y`), and no attribute with a
    leading underscore that the project does not define itself (a library's private state)."""
    own = _own_names()
    bad = []
    for path in _sources("tuner", "search_spaces", "analysis"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(FENCE):
            continue
        for i in imports_of(path):
            parts = i.name.split(".")
            if parts[0] in ("ray", "optuna") and any(p.startswith("_") for p in parts[1:]):
                bad.append(str(i))
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in own
            ):
                bad.append(f"{rel}:{node.lineno} reaches .{node.attr}")
    assert not bad, "\n".join(bad)


def test_the_fence_holds_the_reaches_it_lists():
    """The check above would pass on an empty fence: the reaches must really be in it."""
    fenced = [i for i in _all(FENCE) if i.name.split(".")[0] in ("ray", "optuna")]
    assert any(any(p.startswith("_") for p in i.name.split(".")[1:]) for i in fenced)
    text = (ROOT / FENCE / "internals.py").read_text()
    for reach in ("tune_graceful_stop", "killed_by_memory_monitor", "reopen_finished_trials"):
        assert f"def {reach}(" in text, reach


def _torch_modules() -> set[str]:
    """torch, torchvision, and every module of tuner/ whose import loads them (at its module
    level, directly or through another such module)."""
    heavy = {"torch", "torchvision"}
    modules = {}
    for path in _sources("tuner", "search_spaces"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = [i.name for i in imports_of(path) if i.where == "module"]
    changed = True
    while changed:
        changed = False
        for name, imported in modules.items():
            if name not in heavy and any(_in(i, *heavy) for i in imported):
                heavy.add(name)
                changed = True
    return heavy


# Where the driver's rooms may still name torch: code that runs in another process, or only
# where a GPU is asked for. Each with why.
TORCH_OUTSIDE_THE_DRIVER = {
    # The helper's calls: they run in its child process (tuner/stages/torch_work.py).
    "tuner/stages/torch_work.py",
    # The Tune trainable's body runs in the trial's process; the driver only names it.
    "tuner/driver/trainable.py",
}
TORCH_WITH_A_GPU = {
    # --gpus-per-trial auto: each trial's memory estimate and the GPU's size (a GPU machine,
    # where the driver's torch is the least of the memory).
    ("tuner/driver/tuner_setup.py", "tuner.train.memory.gpu_memory_bytes"),
    ("tuner/driver/tuner_setup.py", "tuner.train.memory.estimated_peak"),
}


def test_the_driver_leaves_torch_to_its_helper_and_the_trials():
    """The driver's process never imports torch (506 MB of its memory; and a CUDA context in
    it would hold GPU memory beside the trials): the dry run, the pricing, the test scoring
    and model.pt run in the helper (tuner/stages/torch_work.py). tests/e2e/test_live_search.py
    checks the same on a real search's imports."""
    heavy = _torch_modules()
    assert {"torch", "tuner.train.scoring", "tuner.train.cost"} <= heavy
    bad = [
        i
        for i in _runtime(_all("tuner/driver", "tuner/stages", "tuner/experiment"))
        if any(_in(i.name, h) for h in heavy)
        and i.path not in TORCH_OUTSIDE_THE_DRIVER
        and (i.path, i.name) not in TORCH_WITH_A_GPU
    ]
    assert not bad, "\n".join(map(str, bad))
