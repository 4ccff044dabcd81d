"""A user's own network (--model file.py:build): typing its config, building, pricing, the dry
run, the model file and the one-line errors. Real torch, real Optuna; no Ray."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces import SPACES, SpaceError, get_space
from search_spaces.check import check_space, smallest_cost
from tuner.config.search_config import SearchConfig
from tuner.deploy.classifier import load_model
from tuner.deploy.model_file import ModelFileError, model_record, write_model_file
from tuner.errors import ConfigError
from tuner.train.config import TrainConfig
from tuner.train.cost import Budget, model_cost
from tuner.train.model import ConvNet, build_network
from tuner.train.user_model import ModelBuildError, absolute_spec, import_callable

NET = """
from torch import nn


def build(params, input_shape, num_classes):
    c, h, w = input_shape
    width = params["width"]
    if params.get("broken"):
        raise ValueError("width too odd")
    return nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(width * h * w, num_classes))


def not_a_module(params, input_shape, num_classes):
    return "a string"


def needs_values(params, input_shape, num_classes):
    # reads a tensor's value while building: the meta device cannot do that
    n = int(torch.ones(1).sum().item()) * params["width"]
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] ** 2, n),
                         nn.Linear(n, num_classes))


def space(trial):
    trial.suggest_int("width", 2, 8)
    trial.suggest_int("unused", 1, 3)
    trial.suggest_float("lr", 1e-3, 1e-1, log=True)
"""


@pytest.fixture()
def net(tmp_path):
    path = tmp_path / "net.py"
    path.write_text("import torch\n" + textwrap.dedent(NET))
    return path


def test_training_keys_stay_typed_and_the_rest_go_to_build(net):
    cfg = TrainConfig.from_dict(
        {"model": f"{net}:build", "lr": 0.05, "batch_size": 16, "width": 4, "n_blocks": 9}
    )
    assert (cfg.lr, cfg.batch_size, cfg.model) == (0.05, 16, f"{net}:build")
    # every non-training key is the model's, the built-in network's names included
    assert cfg.model_params == {"width": 4, "n_blocks": 9}
    with pytest.raises(ConfigError, match="lr must be a positive number"):
        TrainConfig.from_dict({"model": f"{net}:build", "lr": -1.0, "width": 4})
    # without a model, unknown keys are still an error, and `model: None` changes nothing
    with pytest.raises(ConfigError, match="unknown config key"):
        TrainConfig.from_dict({"width": 4})
    assert TrainConfig.from_dict({"model": None, "lr": 0.1}) == TrainConfig(lr=0.1)


def test_build_network_builds_the_users_module_or_the_convnet(net):
    user = build_network(TrainConfig.from_dict({"model": f"{net}:build", "width": 3}), (1, 8, 8), 5)
    assert isinstance(user, nn.Sequential) and user(torch.zeros(2, 1, 8, 8)).shape == (2, 5)
    assert isinstance(build_network(TrainConfig(), (3, 32, 32), 10), ConvNet)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{dir}/missing.py:build", r"--model .*missing.py:build: no such file"),
        ("{net}:nope", r"has no function 'nope' \(found: \['build', 'needs_values'"),
        ("{net}", r"expected path/to/file.py:function or package.module:function"),
        ("no_such_package_xyz.mod:build", r"cannot import no_such_package_xyz.mod"),
        ("{net}:9x", r"'9x' is not a function name"),
    ],
)
def test_import_errors_are_one_line(net, spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        import_callable(spec.format(net=net, dir=net.parent))
    assert "\n" not in str(info.value)


def test_a_file_that_fails_to_import_says_why_in_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nraise RuntimeError('no GPU\\nhere')\n")
    with pytest.raises(ConfigError, match=r"importing .*bad.py failed: RuntimeError: no GPU here"):
        import_callable(f"{bad}:build")


def test_an_error_inside_build_names_the_file_function_parameters_and_shape(net):
    cfg = TrainConfig.from_dict({"model": f"{net}:build", "width": 3, "broken": True})
    with pytest.raises(ModelBuildError) as info:
        build_network(cfg, (1, 8, 8), 10)
    text = str(info.value)
    assert text.startswith(f"--model {net}:build failed for width=3, broken=True at 1x8x8:")
    assert text.endswith("ValueError: width too odd") and "\n" not in text
    cfg = TrainConfig.from_dict({"model": f"{net}:not_a_module", "width": 3})
    with pytest.raises(ModelBuildError, match="returned str, not a torch.nn.Module"):
        build_network(cfg, (1, 8, 8), 10)


def test_cost_of_a_users_network_on_meta_and_when_meta_cannot_build_it(net):
    cost = model_cost({"model": f"{net}:build", "width": 4}, (1, 8, 8), 10)
    conv, linear = 4 * 9 + 4, 4 * 64 * 10 + 10
    assert cost.params == conv + linear
    assert cost.macs == 64 * 4 * 9 + 4 * 64 * 10  # per image: conv outputs x 9, linear
    # A build that reads values cannot run on the meta device: priced on the CPU instead.
    cost = model_cost({"model": f"{net}:needs_values", "width": 5}, (1, 4, 4), 3)
    assert cost.params == (16 * 5 + 5) + (5 * 3 + 3)


def test_budget_search_and_dry_run_use_the_users_network(net):
    space = get_space(f"{net}:space").with_model(f"{net}:build")
    report = check_space(space, (1, 8, 8), 10, samples=6)
    # "unused" is sampled but build() never reads it: the dry run says so
    assert report.unread == ("unused",)
    low, high = report.params
    assert 2 * 9 + 2 + 2 * 64 * 10 + 10 <= low <= high <= 8 * 9 + 8 + 8 * 64 * 10 + 10
    fits, _, _ = smallest_cost(space, (1, 8, 8), 10, Budget(max_params=2_000))
    assert fits is not None and fits.params <= 2_000
    fits, fewest, _ = smallest_cost(space, (1, 8, 8), 10, Budget(max_params=100), samples=30)
    assert fits is None and fewest > 100


def test_the_dry_run_reports_a_broken_build_as_the_builds_own_line(net, tmp_path):
    broken = tmp_path / "broken_space.py"
    broken.write_text(
        "def space(trial):\n    trial.suggest_int('width', 2, 4)\n    return {'broken': True}\n"
    )
    space = get_space(f"{broken}:space").with_model(f"{net}:build")
    with pytest.raises(SpaceError, match=r"^--model .*net.py:build failed for width=\d, "
                       r"broken=True at 1x8x8: ValueError: width too odd$"):  # fmt: skip
        check_space(space, (1, 8, 8), 10, samples=2)


def test_a_built_in_space_with_a_model_drops_the_lab_baseline(net):
    space = SPACES["seed_cnn"].with_model(f"{net}:build")
    assert space.baseline is None and space.points_to_evaluate() is None
    assert SPACES["seed_cnn"].baseline is not None  # the registry's own is untouched
    assert SPACES["seed_cnn"].with_model(None) is SPACES["seed_cnn"]


def test_model_is_a_reserved_parameter_name(net, tmp_path):
    clash = tmp_path / "clash.py"
    clash.write_text("def space(trial):\n    trial.suggest_categorical('model', ['a', 'b'])\n")
    space = get_space(f"{clash}:space").with_model(f"{net}:build")
    with pytest.raises(SpaceError, match="'model' is reserved for --model"):
        check_space(space, (1, 8, 8), 10, samples=1)


def test_search_config_resolves_a_relative_file_and_checks_it(net, monkeypatch):
    monkeypatch.chdir(net.parent)
    cfg = SearchConfig(model="net.py:build", space="net.py:space")
    assert cfg.model == f"{net.resolve()}:build"  # trials run in their own directories
    assert absolute_spec("pkg.mod:build") == "pkg.mod:build"
    cfg.validate()
    assert cfg.search_space().baseline is None
    with pytest.raises(ConfigError, match="no such file"):
        SearchConfig(model="gone.py:build").validate()
    with pytest.raises(ConfigError, match="has no function 'make'"):
        SearchConfig(model="net.py:make").validate()


def _record(net, **extra):
    config = {"model": f"{net}:build", "width": 3, "lr": 0.01}
    model = build_network(TrainConfig.from_dict(config), (1, 8, 8), 10)
    return model, model_record(
        config=config, state_dict=model.state_dict(), input_shape=(1, 8, 8),
        classes=[str(i) for i in range(10)], mean=[0.5], std=[0.5], **extra,
    )  # fmt: skip


def test_the_model_file_records_the_build_and_loads_with_weights_only(net, tmp_path):
    # numpy scalars (what a row of trials.csv holds) come out as plain floats
    model, record = _record(net, val_acc=np.float64(0.75), test_acc=np.float64(0.5))
    path = write_model_file(tmp_path / "model.pt", record)
    raw = torch.load(path, weights_only=True)
    assert raw["build"]["spec"] == f"{net}:build" and raw["arch"] is None
    assert raw["build"]["source"]["path"] == str(net)
    assert type(raw["val_acc"]) is float and raw["val_acc"] == 0.75
    loaded = load_model(path)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.net(x), model.eval()(x))


def test_a_model_whose_code_moved_loads_with_build(net, tmp_path):
    _, record = _record(net)
    path = write_model_file(tmp_path / "model.pt", record)
    moved = tmp_path / "moved.py"
    net.rename(moved)
    with pytest.raises(ModelFileError, match=r"no such file .*; if its code moved, pass build="):
        load_model(path)
    assert isinstance(load_model(path, build=f"{moved}:build").net, nn.Sequential)


def test_tuner_search_with_a_missing_model_is_one_line_and_exit_2(tmp_path, capsys):
    from tuner.cli import main

    code = main(["search", "--model", str(tmp_path / "none.py") + ":build", "--out",
                 str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "no such file" in err
    assert not (tmp_path / "out").exists()  # nothing written


def test_predict_cli_takes_build(net, tmp_path, capsys):
    from PIL import Image

    from tuner.cli import main

    _, record = _record(net)
    path = write_model_file(tmp_path / "model.pt", record)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(image)
    moved = tmp_path / "moved.py"
    net.rename(moved)
    assert main(["predict", str(path), str(image)]) == 2
    assert "--build" in capsys.readouterr().err
    assert main(["predict", str(path), str(image), "--build", f"{moved}:build"]) == 0
    assert capsys.readouterr().out.startswith(f"{image}: ")


def test_the_readmes_example_network_and_space_pass_the_dry_run(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "docs" / "spaces.md").read_text()
    block = readme.split("```python\n# mynet.py", 1)[1].split("```", 1)[0].split("\n", 1)[1]
    (tmp_path / "mynet.py").write_text(block)
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) <= 15  # the README promises a short example
    space = get_space(f"{tmp_path}/mynet.py:space").with_model(f"{tmp_path}/mynet.py:build")
    for shape in ((1, 8, 8), (3, 32, 32)):
        report = check_space(space, shape, 10, samples=4)
        assert report.unread == () and report.params[0] > 0
