"""ASHA whose rungs survive a crash.

Ray keeps ASHA's rungs in memory only: the experiment state drops the scheduler and a restore
unpickles the copy written at start-up, with empty rungs (see ray-optuna-notes.md). After a
resume every trial would then pass its next rung unopposed. This subclass keeps the rungs on
disk as every decision is made (`<experiment>/asha_state.json`, a snapshot, and
`asha_state.jsonl`, the entries since: see read_rungs) and reads them back the first time the
restored scheduler is used.

It also judges trials the way the ASHA paper does where it can. Ray's rule lets a trial
continue past a rung if it is in the best 1/rf of the trials recorded there *so far*; the first
trial to reach a rung has no one to beat and always continues, the second continues whenever it
beats the first, and so on. Early trials therefore run to the end almost unopposed, and with a
searcher that keeps improving (TPE) most later ones pass too: on 27-trial digits searches ASHA
+ TPE used 0.32-0.48 of a full sweep's epochs (bench/search_efficiency.py). The paper promotes
only the top floor(n/rf) of the n trials at a rung, so nobody passes until rf have arrived.
Here a trial continues past a rung only if it is among the best floor(n/rf) of the n trials
recorded there, itself included, at every rung expected to pass at least rf trials on
(--samples / rf^(k+1) >= rf at the k-th rung), where that is a fair test among enough peers.
Rungs too high for that, and the space's baseline (the reference the report compares
against), keep Ray's rule. The space's start points (resnet_cnn's recipe, seed_cnn's
quarter-width network, each fitted to the run) are never stopped: they are known to be good,
and their one-cycle schedules peak near ASHA's first rung, where even Ray's rule stopped
seed_cnn's narrowed start point whenever a better trial had reached the rung first (replayed on
the CIFAR-10 subset under --max-macs 1M, 100 seeds: the search's best 0.496 on average, 0.502
with the start point run to its end; BENCHMARKS.md, "the start points, replayed"). They cost
at most their own epochs: one or two trials of --samples.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from typing import Any, cast

from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from tuner.experiment import rung_epochs, trial_number
from tuner.io import atomic_write_text, file_mode


def is_known_point(trial: Any, known_points: int) -> bool:
    """One of the first `known_points` trials: the baseline and start points the searcher
    proposes before it samples (points_to_evaluate)."""
    number = trial_number(trial)
    return number is not None and number < known_points


def is_start_point(trial: Any, known_points: int, baseline_points: int) -> bool:
    """One of the known points after the first `baseline_points` (the lab's baseline, when the
    search has one): the space's start points, which ASHA never stops."""
    number = trial_number(trial)
    return number is not None and baseline_points <= number < known_points


# What the rungs are measured in: the epoch each result reports (tuner/train/trial.py), not
# Tune's training_iteration, which counts a restored trial's reports on from Tune's record of its
# checkpoint and falls behind the epoch when the trial continues from a newer one on disk.
TIME_ATTR = "epoch"

WORST_REWARD = -1e300  # finite: below every real (negated) validation loss


class PeerJudgedBracket(_Bracket):
    """An ASHA bracket whose rungs in `judged` continue only the best floor(n/rf) trials."""

    def __init__(self, *args: Any, judged: frozenset[int], known_points: int,
                 baseline_points: int | None = None, **kw: Any):  # fmt: skip
        """known_points: the first trials, judged by Ray's rule; of them, those after the first
        `baseline_points` (default: all of them are baselines) are never stopped."""
        super().__init__(*args, **kw)
        self.judged = judged
        self.known_points = known_points
        self.baseline_points = known_points if baseline_points is None else baseline_points

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A bracket pickled before start points were protected (tuner.pkl) held
        `protect_baseline`: trial 0 alone, or none; one pickled before start points were never
        stopped has no `baseline_points`, and its search goes on judging them as it did."""
        if "known_points" not in state:
            state["known_points"] = int(bool(state.pop("protect_baseline", False)))
        state.setdefault("baseline_points", state["known_points"])
        self.__dict__.update(state)

    def on_result(self, trial: Any, cur_iter: int, cur_rew: float | None) -> str:
        action = TrialScheduler.CONTINUE
        if cur_rew is not None and cur_rew == -math.inf:  # a diverged trial's val_loss of inf
            # Recorded as -inf, it made Ray's cutoff (np.nanpercentile) compute inf - inf and
            # warn "invalid value" for every trial after it at that rung; it ranks last anyway.
            cur_rew = WORST_REWARD
        for milestone, recorded in self._rungs:  # highest first
            if cur_iter < milestone or trial.trial_id in recorded:
                continue
            ray_rule = milestone not in self.judged or is_known_point(trial, self.known_points)
            if cur_rew is None:
                break
            if ray_rule:
                # Ray annotates cutoff() as int | float | complex | ndarray; it is a
                # np.nanpercentile of floats at one percentile, so a float (or None: empty rung)
                cutoff = cast("float | None", self.cutoff(recorded))
                stop = cutoff is not None and cur_rew < cutoff
            else:
                values = sorted(
                    (v for v in (*recorded.values(), cur_rew) if not math.isnan(v)),
                    reverse=True,
                )
                keep = int(len(values) // self.rf)
                stop = keep < 1 or math.isnan(cur_rew) or cur_rew < values[keep - 1]
            if stop and not is_start_point(trial, self.known_points, self.baseline_points):
                action = TrialScheduler.STOP
            recorded[trial.trial_id] = cur_rew  # a start point's too: the others face it
            break
        return action


def judged_rungs(samples: int, grace_period: int, reduction_factor: float, max_t: int) -> set[int]:
    """Rungs expected to pass at least rf of the `samples` trials on: at the k-th (from 0),
    samples / rf^k arrive and 1/rf of them pass, so samples / rf^(k+1) >= rf."""
    rungs = rung_epochs(grace_period, reduction_factor, max_t)
    return {e for k, e in enumerate(rungs) if samples / reduction_factor ** (k + 2) >= 1}


def expected_trials(samples: int, max_t: int, grace_period: int, reduction_factor: float,
                    cap: int) -> int:  # fmt: skip
    """How many trials a budget of `samples` full trials pays for when each rung keeps 1/rf
    (at most `cap`, at least `samples`): every trial trains to the first rung, 1/rf of them on
    to the second, and so on. Grace 1, rf 3, 10 epochs: 1 + (3-1)/3 + (9-3)/9 + (10-9)/27 =
    2.37 epochs a trial, so 20 trials' budget pays for 84."""
    rungs = rung_epochs(grace_period, reduction_factor, max_t)
    if not rungs:
        return min(cap, samples)
    ends = [*rungs[1:], max_t]
    per_trial = rungs[0] + sum(
        (end - start) / reduction_factor ** (k + 1)
        for k, (start, end) in enumerate(zip(rungs, ends, strict=True))
    )
    return min(cap, max(samples, int(samples * max_t / per_trial)))


def experiment_path(trial: Any) -> str | None:
    """The experiment directory a trial runs in now (its storage path: not Tune's staging dir
    under /tmp/ray), or None where Tune keeps it elsewhere (cloud storage)."""
    storage = getattr(trial, "storage", None)
    if storage is None or getattr(storage, "custom_fs_provided", False):
        return None
    try:
        return str(storage.experiment_fs_path)
    except AttributeError:
        return None


# The rungs on disk. asha_state.json is a snapshot: {"brackets": [[[milestone, {trial id:
# reward}], ...] per bracket], "num_stopped": n}. asha_state.jsonl beside it holds what was
# recorded since, a line a decision: {"rung": [bracket, milestone, trial id, reward]} or
# {"stopped": n}. Rewriting the whole snapshot at every decision cost O(trials) each: 12 % of
# the driver's main thread at trial 8,000 of 10,000 tiny trials (BENCHMARKS.md [scale]). A
# line is appended instead, and the snapshot is written again only when the log has grown as
# long as it (amortized O(1) a decision), at a process's first decision, and when the search
# ends (compact). Replaying a line twice changes nothing, so a kill between a snapshot and the
# log's removal loses nothing.
COMPACT_AT_LEAST = 256  # log lines before a compaction, however small the snapshot


def log_path(state_path: str | Path) -> Path:
    return Path(state_path).with_suffix(".jsonl")


def read_rungs(state_path: str | Path) -> dict[str, Any] | None:
    """The rungs as last decided: the snapshot with the log's lines applied (a last line cut
    short by a kill is left out). None where no decision was ever written."""
    path = Path(state_path)
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    try:
        lines = log_path(path).read_text().split("\n")
    except FileNotFoundError:
        lines = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:  # the empty string after the last newline, or a torn last line
            continue
        if "stopped" in entry:
            state["num_stopped"] = entry["stopped"]
            continue
        bracket, milestone, trial_id, reward = entry["rung"]
        rungs = state["brackets"][bracket]
        for rung in rungs:
            if rung[0] == milestone:
                rung[1][trial_id] = reward
                break
        else:
            rungs.append([milestone, {trial_id: reward}])
    return state


def write_snapshot(state_path: str | Path, state: dict[str, Any]) -> None:
    """The whole state as the snapshot, and no log beside it."""
    # Python's json writes and reads back -Infinity (a diverged trial's reward).
    atomic_write_text(state_path, json.dumps(state))
    log_path(state_path).unlink(missing_ok=True)


def compact(state_path: str | Path) -> None:
    """Fold the log into the snapshot (when a search or a resume ends: what it leaves is one
    asha_state.json)."""
    state = read_rungs(state_path)
    if state is not None:
        write_snapshot(state_path, state)


class PersistentASHA(ASHAScheduler):
    def __init__(
        self,
        *,
        state_path: str | Path,
        samples: int | None = None,
        known_points: int = 1,
        baseline_points: int | None = None,
        **kwargs: Any,
    ) -> None:
        """samples: the search's trial count; None keeps Ray's rule at every rung.
        known_points: the first trials, the space's baseline and start points, judged by Ray's
        rule at every rung; of them, the start points (those after the first
        `baseline_points`; default: none) are never stopped."""
        super().__init__(**kwargs)
        self._state_path = str(state_path)
        self._loaded = False
        grace, rf = kwargs.get("grace_period", 1), self._reduction_factor  # as Ray set them
        self._grace, self._paper_rule = grace, samples is not None  # for a raised --samples
        judged = (
            frozenset(judged_rungs(samples, grace, rf, self._max_t)) if samples else frozenset()
        )
        self._brackets = [
            PeerJudgedBracket(
                grace,
                self._max_t,
                rf,
                s,
                judged=judged,
                known_points=known_points,
                baseline_points=baseline_points,
                stop_last_trials=self._stop_last_trials,
            )  # fmt: skip
            for s in range(len(self._brackets))
        ]

    def __setstate__(self, state: dict[str, Any]) -> None:
        """An experiment begun before the rungs were measured in epochs (its tuner.pkl holds
        training_iteration) is judged by epoch on resume as well: the two agree for every
        result already recorded, and only the epoch stays right for a trial restored from a
        checkpoint newer than Tune's record."""
        self.__dict__.update(state)
        for name in ("_saved_signature", "_logged"):  # the state is read again: written anew
            self.__dict__.pop(name, None)
        if self._time_attr == "training_iteration":
            self._time_attr = TIME_ATTR

    def _follow(self, trial: Any) -> None:
        """Keep the state file in the experiment directory the trials run in now. tuner.pkl
        holds this scheduler with the path it had when the search began; after the directory
        was moved or copied, that path points at the old place (or nowhere)."""
        if self._loaded:
            return
        here = experiment_path(trial)
        if here:
            self._state_path = str(Path(here) / Path(self._state_path).name)

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from tuner.driver.restore_context import current

        raised = current()
        if raised.raised_samples is not None and getattr(self, "_paper_rule", False):
            # `tuner resume --samples N`: more trials reach each rung, so more rungs are
            # judged by the paper's rule.
            cap = raised.raised_trial_cap or raised.raised_samples
            arriving = expected_trials(raised.raised_samples, self._max_t, self._grace,
                                       self._reduction_factor, cap)  # fmt: skip
            judged = frozenset(judged_rungs(arriving, self._grace, self._reduction_factor,
                                            self._max_t))  # fmt: skip
            for bracket in self._brackets:
                if isinstance(bracket, PeerJudgedBracket):
                    bracket.judged = judged
        state = read_rungs(self._state_path)
        if state is None:
            return
        for bracket, rungs in zip(self._brackets, state["brackets"], strict=True):
            bracket._rungs = [(milestone, dict(recorded)) for milestone, recorded in rungs]
        self._num_stopped = int(state.get("num_stopped", 0))

    def _save(self, trial_id: str) -> None:
        """On disk before the decision is returned. trial_id: the trial whose result was just
        judged, the only one Ray's brackets add to a rung (once per rung)."""
        # Only when it changed. Ray's brackets only ever add a trial's reward to a rung (once
        # per trial and rung) and count stopped trials up, so the rungs' sizes and the count
        # say whether anything did: most results (between rungs) change nothing.
        sizes = [len(rec) for b in self._brackets for _, rec in b._rungs]
        signature = (self._num_stopped, tuple(sizes))
        before = getattr(self, "_saved_signature", None)
        if signature == before:
            return
        logged = getattr(self, "_logged", 0)
        lines = self._new_lines(before, sizes, trial_id) if before is not None else []
        if lines and logged + len(lines) < max(COMPACT_AT_LEAST, sum(sizes)):
            self._append(lines)
            self._logged = logged + len(lines)
        else:
            write_snapshot(self._state_path, {
                "brackets": [[[m, rec] for m, rec in b._rungs] for b in self._brackets],
                "num_stopped": self._num_stopped,
            })  # fmt: skip
            self._logged = 0
        self._saved_signature = signature

    def _new_lines(
        self, before: tuple[int, tuple[int, ...]], sizes: list[int], trial_id: str
    ) -> list[dict[str, Any]]:
        """The log lines for what changed since `before` (the last signature written), or []
        where it is not one entry of this trial a rung: then the whole state is written."""
        if len(before[1]) != len(sizes):
            return []
        rungs = [(b, m, rec) for b, br in enumerate(self._brackets) for m, rec in br._rungs]
        lines: list[dict[str, Any]] = []
        for (b, milestone, recorded), was, now in zip(rungs, before[1], sizes, strict=True):
            if now == was:
                continue
            if now != was + 1 or trial_id not in recorded:
                return []
            lines.append({"rung": [b, milestone, trial_id, recorded[trial_id]]})
        if self._num_stopped != before[0]:
            lines.append({"stopped": self._num_stopped})
        return lines

    def _append(self, lines: list[dict[str, Any]]) -> None:
        """`lines` at the log's end, fsynced; on a full disk, no part line stays behind for the
        next line to be glued to."""
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        fd = os.open(log_path(self._state_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                     file_mode())  # fmt: skip
        try:
            size = os.fstat(fd).st_size
            if os.write(fd, data) != len(data):
                os.ftruncate(fd, size)
                raise OSError(errno.ENOSPC, "No space left on device", str(self._state_path))
            os.fsync(fd)
        finally:
            os.close(fd)

    def rungs(self) -> list[list[tuple[float, dict[str, float]]]]:
        self._ensure_loaded()
        return [list(b._rungs) for b in self._brackets]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._follow(trial)
        self._ensure_loaded()
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._follow(trial)
        self._ensure_loaded()
        if trial.trial_id not in self._trial_info:  # restored trials may skip on_trial_add
            super().on_trial_add(tune_controller, trial)
        action = super().on_trial_result(tune_controller, trial, result)
        self._save(trial.trial_id)
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._follow(trial)
        self._ensure_loaded()
        if trial.trial_id not in self._trial_info:
            super().on_trial_add(tune_controller, trial)
        super().on_trial_complete(tune_controller, trial, result)
        self._save(trial.trial_id)
