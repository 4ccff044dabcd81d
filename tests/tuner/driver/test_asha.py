"""ASHA's rule for passing a rung: the paper's floor(n/rf) where enough trials arrive, Ray's
elsewhere, and Ray's for the known points a search begins with (the space's baseline and start
points)."""

from __future__ import annotations

import json

from tuner.driver.fence.asha import PersistentASHA, judged_rungs


class _Trial:  # the scheduler reads trial_id, and experiment_tag to know the baseline
    def __init__(self, index: int) -> None:
        self.trial_id = f"t{index}"
        self.experiment_tag = f"{index + 1}_lr=0.01"


def decisions(scheduler: PersistentASHA, losses: list[float], epoch: int = 1) -> list[str]:
    out = []
    for i, loss in enumerate(losses):
        trial = _Trial(i)
        scheduler.on_trial_add(None, trial)
        out.append(scheduler.on_trial_result(None, trial, {"epoch": epoch, "val_loss": loss}))
    return out


def make(tmp_path, samples: int | None, known_points: int = 0,
         baseline_points: int | None = None) -> PersistentASHA:  # fmt: skip
    return PersistentASHA(state_path=tmp_path / "asha.json", samples=samples,
                          known_points=known_points, baseline_points=baseline_points,
                          time_attr="epoch",
                          metric="val_loss", mode="min", max_t=27, grace_period=1,
                          reduction_factor=3)  # fmt: skip


def test_judged_rungs_are_those_enough_trials_reach():
    assert judged_rungs(27, 1, 3, 27) == {1, 3}  # 27 and 9 expected arrivals; 3 at rung 9
    assert judged_rungs(81, 1, 3, 27) == {1, 3, 9}
    assert judged_rungs(20, 1, 3, 10) == {1}  # ~7 of 20 expected at rung 3
    assert judged_rungs(8, 1, 3, 10) == set()
    assert judged_rungs(100, 2, 2, 16) == {2, 4, 8}


def test_the_paper_rule_passes_only_the_best_third_of_those_at_the_rung(tmp_path):
    # Improving trials, as a searcher that learns produces them: each beats all before it.
    losses = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    ray = decisions(make(tmp_path / "r", samples=None), losses)
    paper = decisions(make(tmp_path / "p", samples=27), losses)
    assert ray == ["CONTINUE"] * 6  # every newcomer beats the rung so far
    # No one passes before 3 have arrived; then only a trial in the best floor(n/3).
    assert paper == ["STOP", "STOP", "CONTINUE", "CONTINUE", "CONTINUE", "CONTINUE"]
    worse = decisions(make(tmp_path / "w", samples=27), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert worse == ["STOP", "STOP", "STOP", "STOP", "STOP", "STOP"]
    mixed = decisions(make(tmp_path / "m", samples=27), [3.0, 1.0, 2.0, 5.0, 4.0, 1.5])
    # t2 (2.0) is not the best of 3 (t1 is); t5 (1.5) is 2nd of 6, and floor(6/3) = 2 pass.
    assert mixed == ["STOP", "STOP", "STOP", "STOP", "STOP", "CONTINUE"]


def test_rungs_too_high_to_judge_keep_rays_rule(tmp_path):
    scheduler = make(tmp_path, samples=27)  # judged: 1 (27 expected), 3 (9); not 9 (3)
    trial = _Trial(1)
    scheduler.on_trial_add(None, trial)
    # The first trial at rung 9 continues (Ray's rule), though it is alone there.
    assert scheduler.on_trial_result(None, trial, {"epoch": 9, "val_loss": 1.0}) == "CONTINUE"


def test_the_baseline_is_judged_by_rays_rule(tmp_path):
    baseline = decisions(make(tmp_path / "b", samples=27, known_points=1), [2.0])
    assert baseline == ["CONTINUE"]  # trial 0, first at the rung: the reference runs on
    unprotected = decisions(make(tmp_path / "u", samples=27), [2.0])
    assert unprotected == ["STOP"]


def test_start_points_after_the_baseline_are_never_stopped(tmp_path):
    """seed_cnn's baseline and start point (trials 0 and 1) first at a rung both run on; the
    third trial, a sample, has the paper's rule: with no trial beaten, it stops."""
    known = decisions(make(tmp_path / "k", samples=27, known_points=2, baseline_points=1),
                      [3.0, 2.0, 2.5])  # fmt: skip
    assert known == ["CONTINUE", "CONTINUE", "STOP"]
    # Behind a better trial, Ray's rule stops the baseline; a start point runs on, and its
    # result is on the rung: the samples after it face it.
    late = decisions(make(tmp_path / "l", samples=27, known_points=3, baseline_points=1),
                     [1.0, 2.0, 3.0, 2.5])  # fmt: skip
    assert late == ["CONTINUE", "CONTINUE", "CONTINUE", "STOP"]
    behind = decisions(make(tmp_path / "b", samples=27, known_points=3, baseline_points=1),
                       [1.0, 0.5, 3.0])  # fmt: skip
    assert behind == ["CONTINUE", "CONTINUE", "CONTINUE"]
    only_baselines = decisions(make(tmp_path / "o", samples=27, known_points=3),
                               [1.0, 2.0, 3.0])  # fmt: skip
    assert only_baselines == ["CONTINUE", "STOP", "STOP"]  # Ray's rule for each
    # With no baseline (over a size budget) trial 0 is a start point: behind trial 1 at the
    # rung it runs on, where Ray's rule, as for a baseline, stops it.
    for baseline_points, expected in ((0, "CONTINUE"), (1, "STOP")):
        scheduler = make(tmp_path / f"n{baseline_points}", samples=27, known_points=1,
                         baseline_points=baseline_points)  # fmt: skip
        first, start = _Trial(1), _Trial(0)
        for trial in (first, start):
            scheduler.on_trial_add(None, trial)
        scheduler.on_trial_result(None, first, {"epoch": 1, "val_loss": 1.0})
        assert scheduler.on_trial_result(None, start, {"epoch": 1, "val_loss": 3.0}) == expected


def test_a_scheduler_pickled_before_start_points_were_protected_keeps_its_baseline(tmp_path):
    """tuner.pkl of an older search holds brackets with `protect_baseline`: restored, trial 0
    is still its one known point."""
    import pickle

    old = make(tmp_path, samples=27, known_points=0)
    for bracket in old._brackets:  # as an older tree pickled it
        del bracket.__dict__["known_points"]
        bracket.__dict__["protect_baseline"] = True
    restored = pickle.loads(pickle.dumps(old))
    assert [b.known_points for b in restored._brackets] == [1] * len(old._brackets)
    assert decisions(restored, [2.0, 1.0]) == ["CONTINUE", "STOP"]


def test_a_scheduler_pickled_before_start_points_were_never_stopped_judges_them_as_it_did(
    tmp_path,
):
    """A search begun before start points were never stopped resumes with Ray's rule for all
    its known points, as its trials so far were judged."""
    import pickle

    old = make(tmp_path, samples=27, known_points=3, baseline_points=1)
    for bracket in old._brackets:  # as the tree before this one pickled it
        del bracket.__dict__["baseline_points"]
    restored = pickle.loads(pickle.dumps(old))
    assert decisions(restored, [1.0, 2.0, 3.0]) == ["CONTINUE", "STOP", "STOP"]
    assert decisions(pickle.loads(pickle.dumps(make(tmp_path / "n", samples=27, known_points=3,
                                                    baseline_points=1))),
                     [1.0, 2.0, 3.0]) == ["CONTINUE", "CONTINUE", "CONTINUE"]  # fmt: skip


def test_a_diverged_trials_infinite_loss_ranks_last_without_numpy_warnings(tmp_path):
    import json
    import math
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Ray's cutoff warned "invalid value" after an inf
        ray = decisions(make(tmp_path / "r", samples=None), [2.0, math.inf, 1.5, 3.0, 1.0])
    # Ray's rule: the median of the rung so far; the inf is its worst value, not a NaN
    assert ray == ["CONTINUE", "STOP", "CONTINUE", "STOP", "CONTINUE"]
    on_disk = [(tmp_path / "r" / name).read_text() for name in ("asha.json", "asha.jsonl")]
    assert all("Infinity" not in text for text in on_disk)  # a finite floor, valid JSON
    assert [json.loads(line) for line in on_disk[1].splitlines()][:1] == [
        {"rung": [0, 1, "t1", -1e300]}
    ]


def test_the_trials_a_budget_pays_for_follow_the_rungs():
    from tuner.driver.fence.asha import expected_trials

    # Grace 1, rf 3, 10 epochs: rungs 1, 3, 9; a trial trains 1 + 2/3 + 6/9 + 1/27 epochs.
    assert expected_trials(20, 10, 1, 3, cap=200) == int(200 / (1 + 2 / 3 + 6 / 9 + 1 / 27))
    assert expected_trials(20, 10, 1, 3, cap=50) == 50  # --max-trials caps it
    assert expected_trials(20, 10, 1, 3, cap=20) == 20  # a trial count: exactly --samples
    assert expected_trials(5, 1, 1, 3, cap=5) == 5  # one epoch: no rung, nothing saved
    # A later first rung saves less: grace 3 (rung 3, 9) pays for fewer trials than grace 1.
    assert expected_trials(20, 10, 3, 3, cap=200) < expected_trials(20, 10, 1, 3, cap=200)


def test_the_default_search_stops_no_trial_before_its_third_epoch(tmp_path):
    """The default grace period (3 at 10 epochs): scripted results of 20 trials, each worse
    than the one before, pass epochs 1 and 2 unjudged; at epoch 3 the paper's rule stops all
    but the best third of those there."""
    from tuner.config.search_config import SearchConfig
    from tuner.driver.tuner_setup import SCHEDULER_METRIC, make_scheduler

    cfg = SearchConfig(out=str(tmp_path), name="default")
    scheduler = make_scheduler(cfg, known_points=0)
    trials = [_Trial(i) for i in range(20)]
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    said: dict[int, list[str]] = {}
    for epoch in (1, 2, 3):
        said[epoch] = [
            scheduler.on_trial_result(None, t, {"epoch": epoch, SCHEDULER_METRIC: float(i)})
            for i, t in enumerate(trials)
        ]
    assert said[1] == said[2] == ["CONTINUE"] * 20  # a grace of 1 judged them at 1
    # At rung 3, each trial is worse than every one before it, so it is never in the best
    # floor(n/3) of those there (and the first two are too few for anyone to pass).
    assert said[3].count("CONTINUE") == 0
    assert [m for m, _ in scheduler.rungs()[0]] == [9, 3]


def test_a_restored_trial_is_judged_at_the_rung_of_its_epoch(tmp_path):
    """A trial restored from a checkpoint newer than Tune's record reports epoch 3 while
    Tune's training_iteration counts on from the record's 1: it is judged at rung 3, among
    the trials there, both by a new scheduler and by one pickled (tuner.pkl) before the rungs
    were measured in epochs."""
    import pickle

    old = PersistentASHA(state_path=tmp_path / "old.json", samples=27, known_points=0,
                         time_attr="training_iteration", metric="val_loss", mode="min",
                         max_t=27, grace_period=1, reduction_factor=3)  # fmt: skip
    for scheduler in (make(tmp_path, samples=27), pickle.loads(pickle.dumps(old))):
        trials = [_Trial(i) for i in range(4)]
        for trial, loss in zip(trials[:3], (1.0, 2.0, 3.0), strict=True):
            scheduler.on_trial_add(None, trial)
            result = {"epoch": 3, "training_iteration": 3, "val_loss": loss}
            scheduler.on_trial_result(None, trial, result)
        scheduler.on_trial_add(None, trials[3])
        restored = {"epoch": 3, "training_iteration": 1, "val_loss": 0.5}
        # Best of the 4 at rung 3: it goes on. Judged at rung 1, alone there, it was stopped.
        assert scheduler.on_trial_result(None, trials[3], restored) == "CONTINUE"
        rungs = dict(scheduler.rungs()[0])
        assert "t3" in rungs[3] and "t3" not in rungs[1]


def test_the_rungs_are_on_disk_when_a_rung_changes_and_only_then(tmp_path):
    """A result between rungs changes nothing and writes nothing (a write is an fsync); a
    result at a rung, and a stop, are on disk before the decision is returned: the first as
    the snapshot, the next ones as a line each appended to the log, not the whole state again;
    a scheduler restored from a pickle writes a whole snapshot at its next change."""
    import pickle

    from tuner.driver.fence.asha import read_rungs

    scheduler = make(tmp_path, samples=None)
    state, log = tmp_path / "asha.json", tmp_path / "asha.jsonl"
    trial = _Trial(0)
    scheduler.on_trial_add(None, trial)
    scheduler.on_trial_result(None, trial, {"epoch": 1, "val_loss": 2.0})  # rung 1
    assert json.loads(state.read_text())["brackets"][0][-1] == [1, {"t0": -2.0}]
    assert not log.exists()
    snapshot = state.read_text()
    scheduler.on_trial_result(None, trial, {"epoch": 2, "val_loss": 1.5})  # between rungs
    assert state.read_text() == snapshot and not log.exists()
    scheduler.on_trial_result(None, trial, {"epoch": 3, "val_loss": 1.0})  # rung 3
    assert state.read_text() == snapshot  # not rewritten: one line appended
    assert [json.loads(x) for x in log.read_text().splitlines()] == [{"rung": [0, 3, "t0", -1.0]}]
    assert dict(read_rungs(state)["brackets"][0])[3] == {"t0": -1.0}
    restored = pickle.loads(pickle.dumps(scheduler))
    other = _Trial(1)
    restored.on_trial_add(None, other)
    assert restored.on_trial_result(None, other, {"epoch": 1, "val_loss": 9.0}) == "STOP"
    saved = json.loads(state.read_text())  # the whole state again, the log folded in
    assert not log.exists()
    assert saved["num_stopped"] == 1 and dict(saved["brackets"][0]) == {
        27: {}, 9: {}, 3: {"t0": -1.0}, 1: {"t0": -2.0, "t1": -9.0},
    }  # fmt: skip


def _scheduler_state(scheduler: PersistentASHA, stops: int) -> dict:
    return {"brackets": [[[m, dict(rec)] for m, rec in rungs] for rungs in scheduler.rungs()],
            "num_stopped": stops}  # fmt: skip


def test_the_log_folds_into_the_snapshot_and_replays_to_the_same_rungs(tmp_path):
    """Hundreds of decisions: the log is folded into the snapshot once it is as long (a few
    whole writes, not one a decision); what is on disk reads back as the scheduler's own state
    at every step, also with a log line cut short by a kill, or a log replayed over a snapshot
    that already holds it (a kill between the snapshot's write and the log's removal)."""
    from tuner.driver.fence.asha import COMPACT_AT_LEAST, compact, read_rungs

    scheduler = make(tmp_path, samples=27)
    state, log = tmp_path / "asha.json", tmp_path / "asha.jsonl"
    snapshots, decisions_, stops = set(), 0, 0
    for i in range(400):
        trial = _Trial(i)
        scheduler.on_trial_add(None, trial)
        for epoch in (1, 3):
            decisions_ += 1
            result = {"epoch": epoch, "val_loss": (i * 7919) % 101}
            if scheduler.on_trial_result(None, trial, result) == "STOP":
                stops += 1
                break
        snapshots.add(state.stat().st_mtime_ns)
        assert read_rungs(state) == json.loads(json.dumps(_scheduler_state(scheduler, stops)))
    assert 1 < len(snapshots) < decisions_ / COMPACT_AT_LEAST + 3  # whole writes: a handful
    lines = log.read_text()
    assert lines.count("\n") > 0
    whole = read_rungs(state)
    log.write_text(lines + '{"rung": [0, 1, "t9')  # a kill mid-line
    assert read_rungs(state) == whole
    log.write_text(lines)
    compact(state)
    assert not log.exists() and json.loads(state.read_text()) == whole
    log.write_text(lines)  # replayed over the snapshot that holds it: nothing changes
    assert read_rungs(state) == whole
    restored = make(tmp_path, samples=27)  # a fresh scheduler reads it all back
    assert json.loads(json.dumps(_scheduler_state(restored, stops))) == whole
