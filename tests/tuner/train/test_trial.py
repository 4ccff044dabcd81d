"""One trial without Ray (tuner/train/trial.py) and its checkpoints (tuner/train/checkpoints.py):
they import no Ray, a checkpoint saved is read back as it was, and a trial restored from one
continues after its epoch."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from tuner.data import load_dataset
from tuner.experiment import CHECKPOINT_FILE, HISTORY_FILE, read_history
from tuner.train.checkpoints import (
    CheckpointPolicy,
    load_best_weights,
    newest_readable,
    read_state,
    save_checkpoint,
)
from tuner.train.trial import restore, run_trial, set_up, train_epochs, training_state
from tuner.train.trial_data import TrialData

TINY = {"n_blocks": 1, "channels_b0": 4, "fc_layers": 0, "hflip": False, "batch_size": 128,
        "optimizer": "adam", "lr": 3e-3}  # fmt: skip


@pytest.fixture(scope="module")
def data() -> TrialData:
    return TrialData.from_bundle(load_dataset("digits"))


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """set_up pins torch's threads for its trial; give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_the_trial_and_its_checkpoints_import_no_ray():
    code = (
        "import sys\n"
        "import tuner.train.checkpoints\n"
        "print('torch' in sys.modules)\n"  # tuner.experiment reads history.json without torch
        "import tuner.train.trial, tuner.train.trial_data\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_a_saved_checkpoint_reads_back_with_weights_only(data, tmp_path):
    trial = set_up(TINY, data)
    progress = restore(trial, None)
    progress.epoch = 3
    progress.best = {"val_loss": 0.5, "val_acc": 0.9, "epoch": 2}
    progress.history = [{"epoch": e, "val_loss": 1.0 / e} for e in (1, 2, 3)]
    state = training_state(trial, progress)
    checkpoint = tmp_path / "checkpoint_000002"
    checkpoint.mkdir()
    save_checkpoint(checkpoint, state)

    assert sorted(p.name for p in checkpoint.iterdir()) == [HISTORY_FILE, CHECKPOINT_FILE]
    torch.load(checkpoint / CHECKPOINT_FILE, weights_only=True)  # tensors and plain types only
    read = read_state(checkpoint)
    assert read is not None and read["epoch"] == 3 and read["best"] == progress.best
    assert read["history"] == progress.history == read_history(checkpoint)
    assert json.loads((checkpoint / HISTORY_FILE).read_text()) == progress.history
    for name, tensor in trial.model.state_dict().items():
        assert torch.equal(read["model"][name], tensor)
    weights, kept = load_best_weights(checkpoint)
    assert kept == progress.best
    assert weights.keys() == progress.best_state.keys()
    assert all(torch.equal(weights[k], progress.best_state[k]) for k in weights)
    assert newest_readable(tmp_path)[0] == checkpoint


def test_a_restored_trial_continues_after_its_checkpoint(data, tmp_path):
    """Epochs reported in order, a checkpoint each; restored from epoch 2's, the trial goes on
    with epoch 3 and keeps the history before it."""
    config = {**TINY, "epochs": 3}
    reports: list[tuple[dict, dict | None, bool]] = []

    def report(metrics, state, wait=False):
        reports.append((metrics, state, wait))

    run_trial(config, data, report, checkpoints=CheckpointPolicy(stop_epochs=frozenset({2})))
    assert [m["epoch"] for m, _, _ in reports] == [1, 2, 3]
    assert [wait for _, _, wait in reports] == [False, True, False]  # ASHA's rung waits
    assert all(state is not None and state["epoch"] == m["epoch"] for m, state, _ in reports)
    last = reports[-1][0]
    assert last["best_epoch"] == min(reports, key=lambda r: r[0]["val_loss"])[0]["epoch"]
    assert {"params", "macs", "latency_ms", "setup_s", "node_id"} <= set(last)

    after_two = reports[1][1]
    checkpoint = tmp_path / "checkpoint_000001"
    checkpoint.mkdir()
    save_checkpoint(checkpoint, after_two)
    again: list[dict] = []
    run_trial(
        config, data, lambda metrics, state, wait=False: again.append(metrics),
        read_state=lambda: read_state(checkpoint),
    )  # fmt: skip
    assert [m["epoch"] for m in again] == [3]
    assert again[0]["best_epoch"] >= reports[1][0]["best_epoch"]
    # The same epoch 3 as without the interruption: weights, optimizer, loader and RNG restored.
    assert again[0]["train_loss"] == pytest.approx(reports[2][0]["train_loss"], rel=1e-5)
    assert again[0]["val_loss"] == pytest.approx(reports[2][0]["val_loss"], rel=1e-5)


def test_trial_data_pickles_small_by_cache_reference(tmp_path):
    """What tune.with_parameters puts in Ray's object store: on a cluster, only the cache's
    location travels, and each trial opens the same arrays from it."""
    bundle = load_dataset("digits", tmp_path, val_count=150)
    by_path = pickle.loads(pickle.dumps(TrialData.from_bundle(bundle, from_cache=True)))
    arrays = pickle.loads(pickle.dumps(TrialData.from_bundle(bundle)))
    assert len(pickle.dumps(by_path)) < 2_000 < len(pickle.dumps(arrays))
    opened = by_path.opened()
    assert opened.cache is None and opened.classes == bundle.classes
    assert (opened.train.y == arrays.train.y).all() and (opened.val.x == arrays.val.x).all()
    with pytest.raises(ValueError, match="opened"):
        by_path.splits()


def test_a_checkpoint_newer_than_tunes_record_is_continued_from(tmp_path):
    # Ctrl-C can leave the checkpoint of the epoch a trial was finishing on disk after Tune's
    # last save; Tune hands over the one before. Continuing from Tune's trained that epoch
    # twice. A newer one cut short is passed over, and one older than Tune's is not preferred.
    def write(name, epoch):
        (tmp_path / name).mkdir()
        save_checkpoint(tmp_path / name, {"epoch": epoch, "best_state": {}, "best": {},
                                          "history": []})  # fmt: skip

    write("checkpoint_000000", 1)
    write("checkpoint_000001", 2)
    write("checkpoint_000002", 3)
    tunes = tmp_path / "checkpoint_000001"
    chosen, state, skipped = newest_readable(tmp_path, preferred=tunes)
    assert chosen == tmp_path / "checkpoint_000002" and state["epoch"] == 3 and skipped == []
    (tmp_path / "checkpoint_000002" / CHECKPOINT_FILE).write_bytes(b"cut short")
    chosen, state, skipped = newest_readable(tmp_path, preferred=tunes)
    assert chosen == tunes and state["epoch"] == 2
    assert skipped == [tmp_path / "checkpoint_000002"]
    chosen, _, _ = newest_readable(tmp_path, preferred=tmp_path / "checkpoint_000000")
    assert chosen == tunes  # the newest readable, never an older one than Tune's


def test_a_trial_restored_from_its_last_epoch_reports_how_it_ended(data):
    # Nothing is left to train, but Tune and the searcher must hear the last epoch once more.
    config = {**TINY, "epochs": 2}
    trial = set_up(config, data)
    progress = restore(trial, None)
    progress.epoch = 2
    progress.history = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.75}]
    reported = []
    train_epochs(trial, progress, lambda metrics, state, wait=False: reported.append(metrics))
    assert reported == [{"epoch": 2, "val_acc": 0.75}]


def test_a_trial_restored_from_a_checkpoint_tune_had_not_recorded_reports_its_epoch_again(
    data, tmp_path
):
    """A kill between a trial's checkpoint and the driver's hearing of its epoch: restored from
    that checkpoint (marked UNHEARD by the trainable), the trial reports the epoch once more,
    for ASHA to judge it, before it trains the next. Restored from Tune's record, it does not."""
    from tuner.train.trial import UNHEARD

    config = {**TINY, "epochs": 3}
    first: list[tuple[dict, dict | None]] = []
    run_trial(config, data, lambda m, s, wait=False: first.append((m, s)))
    after_one = first[0][1]
    assert after_one is not None
    for marked, epochs in ((True, [(1, True), (2, False), (3, False)]),
                           (False, [(2, False), (3, False)])):  # fmt: skip
        again: list[tuple[int, bool]] = []
        state = {**after_one, UNHEARD: True} if marked else after_one
        run_trial(config, data, lambda m, s, wait=False, out=again: out.append((m["epoch"], wait)),
                  read_state=lambda state=state: state)  # fmt: skip
        # The epoch reported again is waited on, like a rung's: a stop comes before epoch 2.
        assert again == epochs


def test_a_compiled_trial_trains_the_same_network_and_checkpoints_it_plainly(data):
    """--compile: the trial trains and validates through torch.compile (here its aot_eager
    backend, which traces without generating kernels: no C++ compiler needed), and gets the
    same losses as without; its checkpoints hold the plain network's state (no _orig_mod.),
    which a trial without --compile restores."""
    config = {**TINY, "epochs": 2}
    trial = set_up(config, data, compile_backend="aot_eager")
    assert type(trial.forward).__name__ == "OptimizedModule"
    assert trial.forward._orig_mod is trial.model

    def reports(backend: str) -> list[tuple[dict, dict | None, bool]]:
        torch._dynamo.reset()
        out: list[tuple[dict, dict | None, bool]] = []
        run_trial(config, data, lambda m, s, wait=False: out.append((m, s, wait)),
                  compile_backend=backend)  # fmt: skip
        return out

    compiled, plain = reports("aot_eager"), reports("off")
    for (c, state, _), (p, _, _) in zip(compiled, plain, strict=True):
        assert c["train_loss"] == pytest.approx(p["train_loss"], rel=1e-4)
        assert c["val_loss"] == pytest.approx(p["val_loss"], rel=1e-4)
        assert state is not None
        assert not any(k.startswith("_orig_mod") for k in state["model"])
    resumed = set_up(config, data)
    restore(resumed, compiled[0][1])  # loads the compiled trial's checkpoint into a plain one
    assert torch.equal(next(iter(resumed.model.state_dict().values())),
                       next(iter(compiled[0][1]["model"].values())))  # fmt: skip
