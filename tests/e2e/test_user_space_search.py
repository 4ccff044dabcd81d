"""A user's broken space stops `tuner search` in one line before any trial runs."""

from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.own_ray  # it starts Ray (and must stop it again)
def test_search_refuses_a_broken_space_before_any_trial_runs(tmp_path, capsys):
    """The space's dry run happens while Ray starts; a failure there stops Ray again and ends
    with one line, exit 2, and nothing written."""
    import ray

    from tuner.cli import main

    path = tmp_path / "typo.toml"
    path.write_text("[params]\nlearning_rate = { float = [0.001, 0.1] }\n")
    code = main(
        ["search", "--no-confirm", "--space", str(path), "--out", str(tmp_path), "--samples", "2"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "learning_rate" in err and err.count("\n") == 1
    assert not any(tmp_path.glob("typo-*"))  # nothing was created
    assert not ray.is_initialized()  # the Ray started alongside the check was stopped again
