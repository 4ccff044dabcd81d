"""bench/replay.py on scripted curves: the simulated clock, the schedulers' real decisions, and
what a replay reports against the sweep. No Ray is started (the schedulers are plain classes)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from bench_loader import load_bench


@pytest.fixture(scope="module")
def replay():
    return load_bench("replay")


def write_curves(exp: Path, finals: list[float], epochs: int = 9) -> None:
    """Trial i climbs linearly to finals[i] (val_loss = 1 - val_acc), each epoch 1 s."""
    rows = []
    for index, final in enumerate(finals):
        for epoch in range(1, epochs + 1):
            acc = final * epoch / epochs
            rows.append({"trial_index": index, "epoch": epoch, "val_acc": acc,
                         "val_loss": 1 - acc, "epoch_time_s": 1.0})  # fmt: skip
    exp.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(exp / "epochs.csv", index=False)


def test_the_sweep_trains_every_epoch_on_a_clock_shared_by_the_slots(replay, tmp_path):
    write_curves(tmp_path / "e", [0.5, 0.6, 0.7, 0.8], epochs=3)
    curves, max_t = replay.load_curves(tmp_path / "e", None)
    from ray.tune.schedulers import FIFOScheduler

    run = replay.simulate(curves, [0, 1, 2, 3], FIFOScheduler(), concurrency=2, overhead=0.5)
    assert max_t == 3 and run.epochs == 12 and run.best == pytest.approx(0.8)
    # Two slots: trials 0 and 1 end at 3.5 s, trials 2 and 3 then run to 7.0 s.
    assert run.events[-1][0] == pytest.approx(7.0)
    assert [e[1] for e in run.events] == list(range(1, 13))
    assert [e[2] for e in run.events] == sorted(e[2] for e in run.events)


def test_asha_stops_the_weak_and_the_baseline_is_protected(replay, tmp_path):
    # Trial 0 (the baseline) is the weakest: Ray's rule keeps it; the paper's rule at judged
    # rungs stops the weak newcomers.
    finals = [0.1, 0.9, 0.2, 0.3, 0.85, 0.25, 0.2, 0.15, 0.8]
    write_curves(tmp_path / "e", finals)
    curves, max_t = replay.load_curves(tmp_path / "e", None)
    make = replay.methods(samples=len(finals), max_t=max_t)
    order = list(range(len(finals)))
    sweep = replay.simulate(curves, order, make["sweep (fifo)"].scheduler(), 1, 0.0)
    default = make["ours (paper rule, grace 1, rf 3)"].scheduler
    ours = replay.simulate(curves, order, default(), 1, 0.0)
    assert sweep.epochs == 9 * len(finals) and sweep.best == pytest.approx(0.9)
    assert ours.epochs < sweep.epochs / 2
    # One at a time, trial 0 (the baseline, protected) runs its 9 epochs first, its best so
    # far its own; the paper's rule then stops trial 1, the best, at epoch 1: only one other
    # trial has reached that rung, and it keeps floor(2 / 3) = 0 (the complaint).
    assert [round(e[2], 4) for e in ours.events[:9]] == [
        round(0.1 * k / 9, 4) for k in range(1, 10)
    ]
    assert ours.best < 0.9


def test_a_replay_reports_each_method_against_the_sweep_of_the_same_configurations(
    replay, tmp_path
):
    finals = [0.3 + 0.6 * ((i * 37) % 23) / 23 for i in range(40)]
    write_curves(tmp_path / "e", finals)
    out = tmp_path / "r.json"
    replay.main([str(tmp_path / "e"), "--samples", "12", "--seeds", "20", "--json", str(out)])
    result = json.loads(out.read_text())
    sweep = result["methods"]["sweep (fifo)"]
    assert sweep["gap_to_sweep"][0] == 0 and sweep["epochs_fraction_of_sweep"] == 1
    assert sweep["reached_sweep_within_1pt"] == 1
    for name, method in result["methods"].items():
        assert method["worst_gap_to_sweep"] <= 0, name  # nothing beats the sweep of its configs
        assert method["epochs_fraction_of_sweep"] <= 1, name
        mean, low, high = method["final_best"]
        assert low <= mean <= high
    ours = result["methods"]["ours (paper rule, grace 1, rf 3)"]
    assert ours["epochs_fraction_of_sweep"] < 0.6


def test_a_directory_without_curves_is_one_line_and_exit_2(replay, tmp_path, capsys):
    with pytest.raises(SystemExit) as ended:
        replay.main([str(tmp_path)])
    assert ended.value.code == 2
    assert "has no epochs.csv" in capsys.readouterr().err


def test_an_equal_epoch_budget_starts_no_trial_once_it_is_spent(replay, tmp_path):
    finals = [0.2 + 0.7 * ((i * 11) % 17) / 17 for i in range(30)]
    write_curves(tmp_path / "e", finals, epochs=6)
    curves, max_t = replay.load_curves(tmp_path / "e", None)
    make = replay.methods(samples=10, max_t=max_t)
    order = list(range(len(curves)))
    ours = make["ours (paper rule, grace 1, rf 3)"].scheduler
    free = replay.simulate(curves, order, ours(), 2, 0.0)
    capped = replay.simulate(curves, order, ours(), 2, 0.0, budget=40)
    assert free.epochs > 40 + 2 * max_t
    # Once 40 epochs are trained no trial starts; the two running may finish theirs.
    assert 40 <= capped.epochs <= 40 + 2 * max_t
    # Up to the budget the two runs are the same run.
    spent = next(i for i, e in enumerate(capped.events) if e[1] >= 40)
    assert capped.events[: spent + 1] == free.events[: spent + 1]


def test_start_points_go_to_this_services_methods_only(replay, tmp_path):
    # The recording's trial 0 (an older start point) is the best recorded; the start point
    # recorded today is better still. Only the methods named "ours ..." may start from it, and
    # no method may draw the recording's trial 0.
    finals = [0.95] + [0.3 + 0.5 * ((i * 37) % 23) / 23 for i in range(1, 40)]
    write_curves(tmp_path / "e", finals)
    # The start point learns late (a one-cycle schedule's peak): the worst loss of any trial
    # at every epoch but its last, where it ends best. Ray's rule would stop it at its first
    # rung, where the others (1 s an epoch, it 2 s) get first; a start point is never stopped.
    (tmp_path / "s").mkdir()
    late = [
        {"trial_index": 0, "epoch": e, "val_acc": 0.99 if e == 9 else 0.01,
         "val_loss": 0.01 if e == 9 else 5.0, "epoch_time_s": 2.0}
        for e in range(1, 10)
    ]  # fmt: skip
    pd.DataFrame(late).to_csv(tmp_path / "s" / "epochs.csv", index=False)
    out = tmp_path / "r.json"
    replay.main([str(tmp_path / "e"), "--samples", "12", "--seeds", "10", "--start-points",
                 str(tmp_path / "s"), "--json", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    assert result["start_point_curves"][0]["acc"][-1] == pytest.approx(0.99)
    for name, method in result["methods"].items():
        mean, low, high = method["final_best"]
        if name.startswith("ours"):
            # protected as a known point, the start point runs to its end in every seed
            assert low == pytest.approx(0.99), name
        else:
            assert high <= 0.8 + 1e-9, name  # neither the start point nor the old trial 0
    ours = result["methods"]["ours (paper rule, grace 1, rf 3)"]
    assert ours["best_by_fraction_of_sweep_seconds"]["1.0"][0] == pytest.approx(0.99)


def test_start_points_of_another_epoch_budget_are_refused(replay, tmp_path):
    write_curves(tmp_path / "e", [0.5, 0.6, 0.7], epochs=9)
    write_curves(tmp_path / "s", [0.9], epochs=4)
    with pytest.raises(SystemExit, match="ran 4 epochs, the recording's 9"):
        replay.main([str(tmp_path / "e"), "--samples", "3", "--seeds", "1", "--start-points",
                     str(tmp_path / "s")])  # fmt: skip


def test_the_start_points_training_seed_is_drawn_from_its_retrained_runs(replay, tmp_path):
    # Recorded once at 0.99; retrained under 3 other seeds (`tuner train --seeds 3`) at 0.5:
    # the searches that draw a retrained run end lower, and no other method changes.
    finals = [0.3 + 0.3 * ((i * 37) % 23) / 23 for i in range(40)]
    write_curves(tmp_path / "e", finals)
    write_curves(tmp_path / "s", [0.99])
    rows = [{"seed": 2000 + k, "epoch": e, "val_acc": 0.5 * e / 9, "val_loss": 1 - 0.5 * e / 9,
             "epoch_time_s": 1.0} for k in range(3) for e in range(1, 10)]  # fmt: skip
    (tmp_path / "r").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "r" / "epochs.csv", index=False)
    args = [str(tmp_path / "e"), "--samples", "12", "--seeds", "40", "--start-points",
            str(tmp_path / "s")]  # fmt: skip
    replay.main([*args, "--json", str(tmp_path / "one.json")])
    replay.main([*args, "--start-point-seeds", str(tmp_path / "r"), "--json",
                 str(tmp_path / "four.json")])  # fmt: skip
    one, four = (
        json.loads((tmp_path / n).read_text())["methods"] for n in ("one.json", "four.json")
    )
    ours = "ours (paper rule, grace 1, rf 3)"
    assert one[ours]["final_best"][0] == pytest.approx(0.99)
    mean, low, high = four[ours]["final_best"]
    assert 0.6 < mean < 0.95 and four[ours]["worst_gap_to_sweep"] < 0  # some searches drew 0.5
    assert four["stock ray asha (grace 1, rf 4)"] == one["stock ray asha (grace 1, rf 4)"]
    assert len(json.loads((tmp_path / "four.json").read_text())["start_point_variants"]) == 4


def test_start_point_seeds_need_start_points(replay, tmp_path, capsys):
    write_curves(tmp_path / "e", [0.5, 0.6])
    with pytest.raises(SystemExit) as ended:
        replay.main([str(tmp_path / "e"), "--start-point-seeds", str(tmp_path)])
    assert ended.value.code == 2
    assert "--start-point-seeds needs --start-points" in capsys.readouterr().err
