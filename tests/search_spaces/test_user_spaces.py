"""User spaces: file.py:function and TOML / YAML, validated with errors that name the problem."""

from __future__ import annotations

import pytest

from search_spaces import SpaceError, get_space
from search_spaces.check import check_space

TOML = """
summary = "a small user space"
[constants]
batch_norm = true
n_blocks = 2
fc_layers = 0
[params]
channels_b0 = { choices = [8, 16] }
channels_b1 = { choices = [16, 32] }
optimizer = { choices = ["sgd", "adam"] }
lr = { float = [1e-4, 0.1], log = true }
momentum = { float = [0.5, 0.99], when = { optimizer = "sgd" } }
batch_size = { int = [32, 128], step = 32 }
"""


def _sample(space, n=40, size=8):
    from search_spaces.check import sample_configs

    return [config for _, config in sample_configs(space, size, n)]


def test_a_toml_space_samples_its_ranges_conditions_and_constants(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(TOML)
    space = get_space(str(path))
    assert space.summary == "a small user space"
    configs = _sample(space)
    assert all(c["batch_norm"] is True and c["n_blocks"] == 2 for c in configs)
    assert all(1e-4 <= c["lr"] <= 0.1 and c["batch_size"] % 32 == 0 for c in configs)
    assert all(("momentum" in c) == (c["optimizer"] == "sgd") for c in configs)
    assert {c["optimizer"] for c in configs} == {"sgd", "adam"}
    check_space(space, (1, 8, 8), samples=10)


def test_a_yaml_space_is_the_same_format(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(
        "constants: {n_blocks: 1, fc_layers: 0}\n"
        "params:\n"
        "  channels_b0: {choices: [4, 8]}\n"
        "  lr: {float: [0.001, 0.1], log: true}\n"
    )
    configs = _sample(get_space(str(path)), n=10)
    assert {c["channels_b0"] for c in configs} == {4, 8}


@pytest.mark.parametrize(
    "params, message",
    [
        ('lr = { float = [0.1, 0.01] }', "parameter 'lr': low 0.1 must be below high 0.01"),
        ('lr = { float = [0, 0.1], log = true }', "parameter 'lr': a log range needs low > 0"),
        ('lr = { floats = [0.1, 1] }', "parameter 'lr': unknown key(s) ['floats']"),
        ('lr = { float = [0.01, 0.1], choices = [1] }', "parameter 'lr' needs exactly one of"),
        ('momentum = { float = [0.1, 0.9], when = { optimizer = "sgd" } }',
         "parameter 'momentum': 'when' names 'optimizer', which is not a parameter declared"),
        ('batch_size = { int = [32.5, 64] }', "parameter 'batch_size': int bounds must be int"),
    ],
)  # fmt: skip
def test_a_broken_declarative_space_names_the_parameter(tmp_path, params, message):
    path = tmp_path / "broken.toml"
    path.write_text(f"[params]\n{params}\n")
    with pytest.raises(SpaceError) as err:
        get_space(str(path))
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_space_with_an_unknown_config_key_fails_the_check_naming_the_values(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("[params]\nlearning_rate = { float = [0.001, 0.1] }\n")
    with pytest.raises(SpaceError) as err:
        check_space(get_space(str(path)), (3, 32, 32), samples=3)
    text = str(err.value)
    assert "sample 1 (learning_rate=" in text and "unknown config key(s) ['learning_rate']" in text


def test_a_python_space_file_and_function(tmp_path):
    path = tmp_path / "myspace.py"
    path.write_text(
        "def small(trial):\n"
        "    '''Two widths, one block.'''\n"
        "    trial.suggest_categorical('channels_b0', [4, 8])\n"
        "    return {'n_blocks': 1, 'fc_layers': 0}\n"
        "def sized(trial, input_size):\n"
        "    trial.suggest_int('n_blocks', 1, 1 if input_size < 16 else 2)\n"
        "    trial.suggest_categorical('channels_b0', [4])\n"
        "    if trial.params['n_blocks'] == 2:\n"
        "        trial.suggest_categorical('channels_b1', [8])\n"
    )
    space = get_space(f"{path}:small")
    assert space.summary == "Two widths, one block."
    assert {c["channels_b0"] for c in _sample(space, n=10)} == {4, 8}
    assert {c["n_blocks"] for c in _sample(get_space(f"{path}:sized"), n=10, size=8)} == {1}
    check_space(get_space(f"{path}:sized"), (3, 32, 32), samples=10)


def test_a_broken_python_space_gets_a_precise_error(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(
        "def deep(trial):\n"
        "    trial.suggest_int('n_blocks', 5, 6)\n"  # channels_b<i> never given
        "def crash(trial):\n"
        "    trial.suggest_float('lr', 0.01, 0.1)\n"
        "    raise KeyError('oops')\n"
    )
    with pytest.raises(SpaceError, match=r"sample 1 \(n_blocks=[56]\).*n_blocks=[56] but"):
        check_space(get_space(f"{path}:deep"), samples=2)
    with pytest.raises(SpaceError, match=r"failed after sampling lr=.*KeyError: 'oops'"):
        check_space(get_space(f"{path}:crash"), samples=2)
    with pytest.raises(SpaceError, match=r"has no function 'nope' \(found: \['crash', 'deep'\]\)"):
        get_space(f"{path}:nope")
    with pytest.raises(SpaceError, match="no such file"):
        get_space(f"{tmp_path}/missing.py:f")


def test_user_spaces_survive_a_pickle_round_trip(tmp_path):
    """Ray pickles the searcher, space included, each time it saves the experiment's state; a
    space that cannot be pickled ended the search with an AttributeError."""
    import pickle

    toml = tmp_path / "small.toml"
    toml.write_text(TOML)
    py = tmp_path / "myspace.py"
    py.write_text(
        "def small(trial, input_size):\n"
        "    trial.suggest_categorical('channels_b0', [4, 8, 16])\n"
        "    trial.suggest_float('lr', 1e-3, 0.1, log=True)\n"
        "    return {'n_blocks': 1, 'fc_layers': 0}\n"
    )
    for name in (str(toml), f"{py}:small"):
        space = get_space(name)
        copy = pickle.loads(pickle.dumps(space))
        assert _sample(copy, n=12) == _sample(space, n=12)  # same seeded samples
        assert pickle.loads(pickle.dumps(space.for_input(8)))  # what OptunaSearch holds
