"""A resume puts the last whole copy back over a Tune state file the disk cut short
(tuner/driver/fence/recovery.py repair_state), however the cut falls."""

import pickle

from tuner.driver.fence.recovery import back_up_state, repair_state
from tuner.experiment import STATE_BACKUP_DIR

NAME = "searcher-state-2026-12-07_14-00-00.pkl"


def _state() -> bytes:
    # Floats and strings with "." in them, as the searcher's state has.
    return pickle.dumps({"lr": [0.001 * i for i in range(500)], "names": ["a.b.c"] * 50}, 5)


def test_a_pickle_cut_where_its_last_byte_is_a_dot_is_put_back_from_the_copy(tmp_path):
    whole = _state()
    back_up_state(tmp_path, {})  # nothing there yet: nothing copied
    (tmp_path / NAME).write_bytes(whole)
    back_up_state(tmp_path, {})
    assert (tmp_path / STATE_BACKUP_DIR / NAME).read_bytes() == whole
    # The cut that sank a CI run: the byte before it is a "." inside the data, not STOP.
    cut = next(i for i in range(len(whole) - 2, 0, -1) if whole[i - 1 : i] == b".")
    (tmp_path / NAME).write_bytes(whole[:cut])
    assert (tmp_path / NAME).read_bytes().endswith(b".")

    notes = repair_state(tmp_path)

    assert (tmp_path / NAME).read_bytes() == whole
    assert notes == [f"{NAME} was cut short (a full disk?); restored the copy of its last whole "
                     "version: the trials go on from there"]  # fmt: skip


def test_a_cut_pickle_is_never_backed_up_over_the_whole_copy(tmp_path):
    whole = _state()
    (tmp_path / NAME).write_bytes(whole)
    seen: dict[str, float] = {}
    back_up_state(tmp_path, seen)
    for cut in (1, len(whole) // 2, len(whole) - 1):
        (tmp_path / NAME).write_bytes(whole[:cut] + b".")
        back_up_state(tmp_path, {})
        assert (tmp_path / STATE_BACKUP_DIR / NAME).read_bytes() == whole


def test_a_cut_pickle_without_a_copy_is_set_aside(tmp_path):
    (tmp_path / NAME).write_bytes(_state()[:100] + b".")

    notes = repair_state(tmp_path)

    assert not (tmp_path / NAME).exists()
    assert (tmp_path / f"{NAME}.cut-short").is_file()
    assert notes == [f"{NAME} was cut short and there is no copy; set aside as {NAME}.cut-short"]
