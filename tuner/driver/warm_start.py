"""`tuner search --warm-start DIR`: a new search whose Optuna study already knows the completed
trials of an earlier experiment, so TPE starts informed instead of from random samples.

The earlier trials are told to the new study before Tune starts, as COMPLETE trials with their
values, parameters and per-epoch values, and the user attribute `imported_from` (IMPORTED_ATTR).
They never ran here: Tune, ASHA, trials.csv and the confirm stage know nothing of them; the
report lists them apart. The study's own trials keep their link to Tune through
`tune_trial_id`, which the imported ones lack, so crash recovery (recovery.py) never touches them.

Everything is checked before the experiment directory is made: the source's study, its
objectives against this search's, and its parameters against this search's space (names and
ranges, at this dataset's image size). A mismatch is one line naming the parameter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.config.objectives import SEARCHER_MODE, parse_objectives
from tuner.driver.study_storage import open_storage
from tuner.errors import ConfigError
from tuner.experiment import (
    IMPORTED_ATTR,
    OPTUNA_JOURNAL,
    PROVENANCE_JSON,
    REJECTED_ATTR,
    has_study,
    study_url,
)

if TYPE_CHECKING:
    from search_spaces import SearchSpace
    from tuner.config.search_config import SearchConfig
    from tuner.stages.torch_work import TorchWork

SPACE_SAMPLES = 300  # samples of the new space that map its parameters (~0.3 s at 32x32)


@dataclass(frozen=True)
class WarmStart:
    """What a warm start will tell the new study: the source's completed trials, checked."""

    source: Path
    trials: list[Any]  # optuna FrozenTrial, COMPLETE, trained (not refused for a budget)
    over_budget: int  # completed trials left out: over this search's --max-params/--max-macs
    # this space's categorical distributions, which the trials are told with
    choices: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """provenance.json["warm_start"]: where the trials came from and what they were."""
        values = [t.values for t in self.trials]
        return {
            "from": str(self.source),
            "trials": len(self.trials),
            "numbers": [t.number for t in self.trials],
            "over_budget_left_out": self.over_budget,
            "best_value": max(v[0] for v in values) if len(values[0]) == 1 else None,
        }


def _objectives(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(objective, mode) of a search's options: what its study's values are."""
    text = config.get("objectives")
    if not text:
        return [("val_acc", SEARCHER_MODE)]  # SEARCHER_METRIC, best_val_acc: its best epoch's
    return [(o.name, o.mode) for o in parse_objectives(text)]


def check_source(dir_text: str) -> Path:
    """The source experiment directory, or ConfigError (one line) when it holds no study."""
    source = Path(dir_text).expanduser()
    if not source.is_dir():
        raise ConfigError(f"--warm-start {dir_text}: no such experiment directory")
    if not has_study(source) or not (source / PROVENANCE_JSON).is_file():
        raise ConfigError(
            f"--warm-start {dir_text}: not an experiment directory (no {OPTUNA_JOURNAL} and "
            f"{PROVENANCE_JSON}); give one that `tuner search` wrote"
        )
    return source.resolve()


def plan(
    cfg: SearchConfig,
    space: SearchSpace,
    input_shape: tuple[int, int, int],
    num_classes: int,
    work: TorchWork | None = None,
) -> WarmStart:
    """Read and check the source of cfg.warm_start against this search and its `space`
    (ConfigError, one line naming what differs). Reads only; writes nothing."""
    import optuna
    from optuna.trial import TrialState

    from search_spaces import config_of, describe_distribution, space_distributions, widest
    from tuner.stages import torch_work
    from tuner.train.budget import Budget

    assert cfg.warm_start is not None
    flag = f"--warm-start {cfg.warm_start}"
    source = check_source(cfg.warm_start)
    try:
        old_config = json.loads((source / PROVENANCE_JSON).read_text()).get("config") or {}
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(study_url(source))
        names = optuna.get_all_study_names(storage=storage)
        name = old_config.get("name")
        if name not in names and old_config.get("storage"):  # a server holds other studies too
            raise ConfigError(f"no study named {name!r} on {old_config['storage']}")
        study = optuna.load_study(study_name=name if name in names else names[0], storage=storage)
        completed = [
            t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if REJECTED_ATTR not in t.user_attrs and IMPORTED_ATTR not in t.user_attrs
        ]  # fmt: skip
    except Exception as e:  # a damaged or foreign database: one line, not a traceback
        raise ConfigError(f"{flag}: cannot read its study: {' '.join(str(e).split())}") from e
    if not completed:
        raise ConfigError(f"{flag}: its study has no completed trials to start from")
    theirs, ours = _objectives(old_config), _objectives(cfg.to_dict())
    if theirs != ours:
        show = lambda objs: ",".join(f"{m}:{d}" for m, d in objs)  # noqa: E731
        raise ConfigError(
            f"{flag}: its trials were scored on {show(theirs)}, this search on {show(ours)}; "
            "use the same --objectives"
        )

    # The parameters: every one of theirs must be one of this space's, with the same range,
    # and every parameter this space always samples must be in their trials.
    here = space_distributions(space, input_shape[1], SPACE_SAMPLES)
    seen: dict[str, list[Any]] = {}
    for t in completed:
        for key, dist in t.distributions.items():
            seen.setdefault(key, []).append(dist)
    for key, dists in seen.items():
        if key not in here:
            raise ConfigError(
                f"{flag}: parameter {key!r} of its trials is not in this search's space "
                f"{cfg.space}; warm-start from a search of the same space"
            )
        mine, old = here[key][0], widest(dists)
        if not _within(old, mine):
            raise ConfigError(
                f"{flag}: parameter {key!r} has another range: {describe_distribution(old)} "
                f"there, {describe_distribution(mine)} here"
            )
    for key, (_, conditional) in here.items():
        if not conditional and key not in seen:
            raise ConfigError(
                f"{flag}: parameter {key!r} of this search's space is missing from its trials"
            )

    # Under this search's size budget, a configuration it would refuse is left out: told as a
    # good trial, it would draw TPE to where nothing may train.
    budget = Budget(cfg.max_params, cfg.max_macs)
    kept, over = completed, 0
    if budget.active:
        kept = []
        configs: list[dict[str, Any] | None] = []
        for t in completed:
            try:  # with the space's constants
                configs.append(config_of(space, t.params, input_shape[1]))
            except Exception:
                configs.append(None)  # cannot be built at this dataset's shape
        priced = (work or torch_work.TorchWork()).run(
            torch_work.prices, [c for c in configs if c is not None], input_shape, num_classes
        )
        costs = iter(priced)
        for t, config in zip(completed, configs, strict=True):
            cost = next(costs) if config is not None else None
            if cost is None:
                over += 1  # cannot be built at this dataset's shape: nothing to learn from
                continue
            if budget.reason(cost) is None:
                kept.append(t)
            else:
                over += 1
        if not kept:
            raise ConfigError(
                f"{flag}: none of its {len(completed)} completed trials fits this search's "
                "size budget"
            )
    choices = {k: dist for k, (dist, _) in here.items() if hasattr(dist, "choices")}
    return WarmStart(source=source, trials=kept, over_budget=over, choices=choices)


def tell(warm: WarmStart, storage: Any, study_name: str, directions: list[str]) -> int:
    """Create the new study on `storage` and add the source's trials to it, marked imported.
    Returns how many. Ray's OptunaSearch then opens this study (load_if_exists)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage, study_name=study_name,
        directions=[optuna.study.StudyDirection[d.upper()] for d in directions],
    )  # fmt: skip
    study.add_trials(
        optuna.trial.create_trial(
            params=t.params,
            distributions={k: warm.choices.get(k, d) for k, d in t.distributions.items()},
            values=t.values,
            intermediate_values=t.intermediate_values,
            user_attrs={IMPORTED_ATTR: warm.source.name, "imported_number": t.number},
        )  # fmt: skip
        for t in warm.trials
    )
    return len(warm.trials)


def directions_of(cfg: SearchConfig) -> list[str]:
    """The new study's directions, as OptunaSearch would create them."""
    return ["maximize" if mode == "max" else "minimize" for _, mode in _objectives(cfg.to_dict())]


def _within(old: Any, mine: Any) -> bool:
    """Whether every value of the old trials' distribution is one this space can sample: choices
    all among this space's, or a numeric range of the same kind inside this one's. Inside, not
    equal: an integer bound that depends on another choice (dropout_layers up to fc_layers)
    spans less over a few old trials than over this space's 200 samples (1..1 there, 1..2
    here)."""
    if hasattr(old, "choices") and hasattr(mine, "choices"):
        # Choices this space has added (resnet_cnn's batches of 32 and 64) leave the old trials'
        # values valid; `tell` restates them with this space's choices, which Optuna requires of
        # every trial of a study.
        return all(any(o == m and type(o) is type(m) for m in mine.choices) for o in old.choices)
    if not hasattr(old, "low") or not hasattr(mine, "low"):
        return bool(old == mine)
    same_kind = (type(old), old.log, getattr(old, "step", None)) == (
        type(mine),
        mine.log,
        getattr(mine, "step", None),
    )
    return same_kind and mine.low <= old.low and old.high <= mine.high
