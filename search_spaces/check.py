"""Dry-run a search space on the CPU before anything trains: `tuner spaces --check NAME`.

For each of N sampled configurations it runs the space's function, types the result as a
TrainConfig, builds the network and runs a forward pass on a dummy batch of the dataset's shape.
A failure names the sample's parameter values, so a broken space fails in seconds, before any
trial runs, instead of as a wall of errored trials. `tuner search` runs the same check on every
space while Ray starts up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from search_spaces import SearchSpace, SpaceError

DUMMY_BATCH = 2  # more than one image, so a network that mixes the batch up shows in the shape


@dataclass(frozen=True)
class CheckReport:
    space: str
    samples: int
    seconds: float
    params: tuple[int, int]  # smallest and largest network sampled
    macs: tuple[int, int]
    mean_params: float = 0.0  # what a trial's checkpoint costs on disk scales with this
    # Parameters the space samples for a user's build() that it never read: searched for nothing.
    unread: tuple[str, ...] = ()


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def _values(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no parameters"


def sample_configs(space: SearchSpace, input_size: int, samples: int, seed: int = 0):
    """Yield (params, config) for `samples` random draws of the space (Optuna, in memory)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    define = space.for_input(input_size)
    for _ in range(samples):
        trial = study.ask()
        try:
            constants = define(trial)
        except Exception as e:  # user code: any error is the space's
            raise SpaceError(
                f"space {space.name}: the space function failed after sampling "
                f"{_values(trial.params)}: {_one_line(e)}"
            ) from e
        if constants is not None and not isinstance(constants, dict):
            raise SpaceError(
                f"space {space.name}: the space function must return a dict of constants or "
                f"None, not {type(constants).__name__}"
            )
        study.tell(trial, 0.0)
        yield dict(trial.params), {**trial.params, **(constants or {})}


def check_space(
    space: SearchSpace,
    input_shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    samples: int = 20,
    seed: int = 0,
    device: str = "cpu",
) -> CheckReport:
    """Sample, type, build and run `samples` configurations; SpaceError names the first that
    breaks (its parameter values and the error). device "meta" checks every shape without
    allocating or computing anything (what `tuner search` uses before any trial runs)."""
    import torch

    from tuner.train.config import TrainConfig
    from tuner.train.cost import run_and_count
    from tuner.train.model import build_network
    from tuner.train.user_model import ModelBuildError, ReadRecorder

    start = time.perf_counter()
    channels, height, width = input_shape
    params, macs = [], []
    sampled: set[str] = set()  # the space's parameters handed to a user's build()
    read: set[str] = set()  # those its build() looked at
    for i, (values, config) in enumerate(sample_configs(space, height, samples, seed), 1):
        try:
            cfg = TrainConfig.from_dict(config)
            recorder = ReadRecorder(cfg.model_params)
            if cfg.model:
                cfg = replace(cfg, model_params=recorder)  # type: ignore[arg-type]
            with torch.device(device):
                model = build_network(cfg, input_shape, num_classes)
                batch = torch.zeros(DUMMY_BATCH, channels, height, width)
            cost, out = run_and_count(model, batch)  # the forward pass prices it too
            if out.shape != (DUMMY_BATCH, num_classes):
                raise ValueError(f"output shape {tuple(out.shape)}, expected (2, {num_classes})")
        except ModelBuildError as e:  # names the build, its parameters and the shape itself
            raise SpaceError(str(e)) from e
        except Exception as e:
            raise SpaceError(
                f"space {space.name}: sample {i} ({_values(values)}) at "
                f"{channels}x{height}x{width}: {_one_line(e)}"
            ) from e
        params.append(cost.params)
        macs.append(cost.macs)
        if cfg.model:
            sampled.update(set(values) & set(recorder.given))
            read.update(recorder.read)
    return CheckReport(
        space=space.name,
        samples=samples,
        seconds=time.perf_counter() - start,
        params=(min(params), max(params)),
        macs=(min(macs), max(macs)),
        mean_params=sum(params) / len(params),
        unread=tuple(sorted(sampled - read)),
    )


BUDGET_SAMPLES = 300  # ~1 s on the meta device (bench figure below); enough to find the floor


def smallest_cost(
    space: SearchSpace,
    input_shape: tuple[int, int, int],
    num_classes: int,
    budget: Any,
    samples: int = BUDGET_SAMPLES,
    seed: int = 0,
) -> tuple[Any, int, int]:
    """Price the space's start points and `samples` random draws on the meta device (shapes
    only). Returns (a Cost within `budget` or None, the fewest params seen, the fewest MACs
    seen), stopping at the first configuration that fits."""
    from tuner.train.cost import model_cost

    points = space.fit_points(input_shape[1])[0] or []
    drawn = (config for _, config in sample_configs(space, input_shape[1], samples, seed))
    fewest_params = fewest_macs = None
    for config in [*points, *drawn]:
        try:
            cost = model_cost(config, input_shape, num_classes)
        except Exception:  # an unbuildable sample: the dry run reports those
            continue
        fewest_params = min(cost.params, fewest_params or cost.params)
        fewest_macs = min(cost.macs, fewest_macs or cost.macs)
        if budget.reason(cost) is None:
            return cost, fewest_params, fewest_macs
    return None, fewest_params or 0, fewest_macs or 0
