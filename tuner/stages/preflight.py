"""Checks before any trial runs: the dataset loaded and what trials get of it made, the space
dry-run at the dataset's shape, the size budget priced, the free disk space, and whether an
experiment may be resumed safely. Each failure is one ConfigError or DataError line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tuner.config.search_config import SearchConfig
from tuner.data import DatasetBundle, load_dataset
from tuner.errors import ConfigError
from tuner.experiment import (
    SEARCH_GEN_STATE_GLOB,
    SEARCHER_STATE_GLOB,
    STATE_BACKUP_DIR,
    TUNER_PKL,
)
from tuner.stages import torch_work
from tuner.stages.console import say
from tuner.stages.torch_work import TorchWork
from tuner.train.trial_data import TrialData

if TYPE_CHECKING:
    from search_spaces import SearchSpace
    from tuner.train.budget import Budget

SPACE_CHECK_SAMPLES = 8  # configurations dry-run before any trial (while Ray starts)


def load_data(cfg: SearchConfig, stream: TextIO) -> tuple[DatasetBundle, TrialData]:
    bundle = load_dataset(
        cfg.dataset, cfg.data_dir, val_count=cfg.val_count, image_size=cfg.image_size,
        progress=lambda m: say(stream, m), decode_workers=cfg.decode_workers,
    )  # fmt: skip
    # On a cluster every node opens the dataset from the shared cache itself; the driver sends
    # each trial only where it is. In-process Ray shares the arrays through the object store.
    cache = bundle.cache if cfg.address is not None else None
    if cfg.address is not None and cache is None:
        say(stream, "warning: the dataset could not be cached; the driver sends it to trials")
    if cache is not None:
        say(stream, f"trials open the dataset on their own node from {cache.cache_dir}")
    return bundle, TrialData.from_bundle(bundle, from_cache=cache is not None)


def dry_run_space(
    cfg: SearchConfig, space: SearchSpace, bundle: DatasetBundle, stream: TextIO, work: TorchWork
) -> Any:
    """Dry-run a few of the space's configurations on this dataset's shape (ConfigError), in
    `work`'s helper process."""
    from search_spaces import SpaceError

    try:
        report = work.run_or_here(
            torch_work.dry_run, space, bundle.input_shape, bundle.num_classes, SPACE_CHECK_SAMPLES
        )
    except SpaceError as e:
        raise ConfigError(str(e)) from e
    say(
        stream,
        f"Checked {report.samples} samples of {cfg.space} in {report.seconds:.1f} s: "
        f"{report.params[0]:,}-{report.params[1]:,} params",
    )
    if report.unread:
        say(
            stream,
            f"warning: {cfg.model} never read {', '.join(report.unread)}, which {cfg.space} "
            "samples: the search spends trials on values that change nothing",
        )
    return report


def warn_if_short_of_space(cfg: SearchConfig, mean_params: float, stream: TextIO) -> None:
    """One line when --out has less free space than the search will probably write."""
    from tuner.stages.disk import estimate_bytes, free_bytes, mb

    needed = estimate_bytes(cfg.samples, cfg.epochs, mean_params)
    free = free_bytes(cfg.experiment_dir)
    if free < needed:
        say(
            stream,
            f"warning: {cfg.experiment_dir.parent} has {mb(free)} free and this search may "
            f"write about {mb(needed)} (a checkpoint per trial, tables, report); it stops "
            "cleanly if the disk fills, and `tuner resume` continues once there is room",
        )


def check_budget(
    cfg: SearchConfig, space: SearchSpace, bundle: DatasetBundle, work: TorchWork
) -> None:
    """ConfigError (one line) when no configuration the space samples at this dataset's shape
    fits --max-params / --max-macs (priced in `work`'s helper process)."""
    from search_spaces.check import BUDGET_SAMPLES
    from tuner.train.budget import Budget

    budget = Budget(cfg.max_params, cfg.max_macs)
    shape = bundle.input_shape
    fits, params, macs = work.run_or_here(
        torch_work.smallest, space, shape, bundle.num_classes, budget
    )
    if fits is not None:
        return
    asked = ", ".join(
        f"--max-{name} {value:,}" for name, value in (("params", cfg.max_params),
                                                       ("macs", cfg.max_macs)) if value
    )  # fmt: skip
    raise ConfigError(
        f"no configuration of {cfg.space} at {'x'.join(map(str, shape))} fits {asked}: the "
        f"smallest of {BUDGET_SAMPLES} samples had {params:,} params and {macs:,} MACs; raise "
        "the budget or narrow the space"
    )


def space_for_run(
    cfg: SearchConfig, space: SearchSpace, bundle: DatasetBundle | None, work: TorchWork
) -> tuple[SearchSpace, str | None]:
    """The space this search runs, and the note that says what changed: without the lab's
    baseline under --no-baseline, or when the baseline is over the size budget (`bundle`, the
    loaded dataset, is needed then to price it)."""
    from dataclasses import replace

    from tuner.train.budget import Budget

    if not space.baseline:
        return space, None
    if cfg.no_baseline:
        return replace(space, baseline=None), (
            f"note: the lab's baseline of {space.name} left out (--no-baseline): this search "
            "has no baseline to compare with"
        )
    budget = Budget(cfg.max_params, cfg.max_macs)
    if not budget.active:
        return space, None
    assert bundle is not None, "a size budget is priced on the loaded dataset's shape"
    return space_within_budget(space, bundle, budget, work)


def space_within_budget(
    space: SearchSpace, bundle: DatasetBundle, budget: Budget, work: TorchWork
) -> tuple[SearchSpace, str | None]:
    """The space this search runs: `space`, or, when the lab's baseline is over the size
    budget, `space` without a baseline (no trial is the lab's, and the report compares with
    none), and the note that says so."""
    from dataclasses import replace

    from search_spaces.fit_to_run import baseline_over
    from tuner.stages.torch_work import Pricer

    pricer = Pricer(work, bundle.input_shape, bundle.num_classes)
    why = baseline_over(space, bundle.input_shape[1], budget, pricer.many)
    if why is None:
        return space, None
    note = (f"note: the lab's baseline of {space.name} is over the size budget ({why}); "
            "left out: this search has no baseline to compare with")  # fmt: skip
    return replace(space, baseline=None), note


def _private_group(gid: int) -> bool:
    """A user's own group (Debian's umask 002 setups): named after the user, no other members."""
    import grp
    import pwd

    try:
        group = grp.getgrgid(gid)
        return not group.gr_mem and group.gr_name == pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return False


def refuse_writable_by_others(exp: Path) -> None:
    """ConfigError unless only its owner can change what a resume unpickles.

    tuner.pkl, searcher-state-*.pkl and search_gen_state-*.json are pickles, and loading a
    pickle runs code: anyone who can write them (or replace them, through the directory) could
    run code as whoever resumes. So the directory and those files must be writable by their
    owner alone (or the owner's private group), and owned by the user resuming (or root).
    """
    me = os.geteuid()
    pickles = [exp / TUNER_PKL, *exp.glob(SEARCHER_STATE_GLOB)]
    backups = exp.glob(f"{STATE_BACKUP_DIR}/*")  # copied back over cut-short state files
    search_gen = exp.glob(SEARCH_GEN_STATE_GLOB.removesuffix(".json"))  # and any left aside
    for path in [exp, *pickles, *search_gen, *backups]:
        st = path.stat()
        if st.st_mode & 0o002 or (st.st_mode & 0o020 and not _private_group(st.st_gid)):
            raise ConfigError(
                f"refusing to resume {exp}: {path.name} is writable by other users "
                f"(mode {st.st_mode & 0o777:o}) and a resume loads the pickles inside, which "
                f"runs code; if you trust it, `chmod -R go-w {exp}`"
            )
        if st.st_uid not in (me, 0):
            raise ConfigError(
                f"refusing to resume {exp}: {path.name} belongs to another user (uid "
                f"{st.st_uid}) and a resume loads the pickles inside, which runs code; copy "
                "the experiment to a directory of your own first"
            )
