"""bench/replay_goals.py: issue 24's goals read from replay summaries (scripted here)."""

from __future__ import annotations

import json

import pytest
from bench_loader import load_bench


@pytest.fixture(scope="module")
def goals():
    return load_bench("replay_goals")


def method(curve: dict[str, list[float]], clock: dict[str, list[float]], *, tenth: float,
           to_target: float, worst: float) -> dict:  # fmt: skip
    return {"best_by_fraction_of_sweep_epochs": curve, "best_by_fraction_of_sweep_seconds": clock,
            "seeds_within_1pt_at_tenth_of_sweep_epochs": tenth,
            "median_seconds_to_target": to_target, "worst_gap_to_sweep": worst}  # fmt: skip


def test_each_goal_is_read_the_way_the_issue_words_it(goals, tmp_path):
    ours = method({"0.1": [0.50, 0.48, 0.52], "1.0": [0.70, 0.69, 0.71]},
                  {"0.05": [0.0, 0.0, 0.0], "1.0": [0.70, 0.69, 0.71]},
                  tenth=0.9, to_target=40.0, worst=-0.01)  # fmt: skip
    stock = method({"0.1": [0.40, 0.39, 0.41], "1.0": [0.72, 0.71, 0.73]},
                   {"0.05": [0.0, 0.0, 0.0], "1.0": [0.60, 0.59, 0.61]},
                   tenth=0.5, to_target=100.0, worst=-0.05)  # fmt: skip
    sweep = method({"0.1": [0.45, 0.44, 0.46], "1.0": [0.70, 0.70, 0.70]},
                   {"0.05": [0.0, 0.0, 0.0], "1.0": [0.70, 0.70, 0.70]},
                   tenth=0.0, to_target=200.0, worst=0.0)  # fmt: skip
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"methods": {"sweep (fifo)": sweep, "ours": ours,
                                            goals.STOCK: stock}}))  # fmt: skip
    lines = goals.check(goals.methods_of([path]), "ours")
    text = "\n".join(lines)
    # at 1.0 of the epochs stock's 0.72 is above ours' interval [0.69, 0.71]: one point missed
    assert "| epochs, 1.0 of the sweep's | 0.700 [0.690, 0.710] | 0.720 (" in text
    assert "anytime: **missed** at 1 point(s)" in text
    assert "clock, 0.05" not in text  # no finished epoch anywhere yet: not a point of the curve
    assert "90 % of seeds (met" in text
    assert "time to target, 2x stock Ray Tune: yes: 2.50x (40 s / 100 s)" in text
    assert "worst seed against the sweep: -1.0 points (met" in text


def test_an_unknown_method_is_one_line_and_exit_2(goals, tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"methods": {"sweep (fifo)": {}}}))
    with pytest.raises(SystemExit) as ended:
        goals.main([str(path), "--ours", "nope"])
    assert ended.value.code == 2
    assert "is not in these replays" in capsys.readouterr().err
