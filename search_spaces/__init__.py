"""Search spaces: define-by-run functions of an Optuna trial, and the registry that names them.

A space is a plain function `space(trial, input_size) -> dict | None` that only calls
`trial.suggest_*` (and pure arithmetic to bound its ranges); a returned dict holds constants
merged into every config. Parameter names are TrainConfig's flat keys (see tuner/config.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from search_spaces.resnet_cnn import RECIPE as RESNET_RECIPE
from search_spaces.resnet_cnn import resnet_cnn
from search_spaces.seed_cnn import BASELINE as SEED_CNN_BASELINE
from search_spaces.seed_cnn import seed_cnn

__all__ = ["SPACES", "SearchSpace", "SpaceError", "get_space", "describe_space"]

DefineByRun = Callable[..., "dict[str, Any] | None"]


class SpaceError(ValueError):
    """Unknown or broken search space; the message is one line for the user."""


@dataclass(frozen=True)
class SearchSpace:
    name: str
    summary: str
    define: DefineByRun  # define(trial, input_size)
    baseline: dict[str, Any] | None  # the lab's configuration in this space's names, if it has one
    # Known-good configurations tried right after the baseline (not labelled as the lab's).
    start_points: tuple[dict[str, Any], ...] = ()

    def points_to_evaluate(self) -> list[dict[str, Any]] | None:
        """What the search tries first: the lab's baseline (always trial 0), then start points."""
        points = ([dict(self.baseline)] if self.baseline else []) + [
            dict(p) for p in self.start_points
        ]
        return points or None

    def for_input(self, input_size: int) -> Callable[[Any], dict[str, Any] | None]:
        """The one-argument function OptunaSearch calls, for a fixed image size."""
        return functools.partial(self.define, input_size=input_size)


SPACES: dict[str, SearchSpace] = {
    "seed_cnn": SearchSpace(
        name="seed_cnn",
        summary="the lab's plain CNN: depth, widths, kernel, stride, padding, dilation, "
        "pooling, batch norm, FC sizes, dropout, batch size, lr, optimizer",
        define=seed_cnn,
        baseline=SEED_CNN_BASELINE,
    ),
    "resnet_cnn": SearchSpace(
        name="resnet_cnn",
        summary="a residual CNN with batch norm (depth, width multiplier) and a modern recipe: "
        "(Nesterov) SGD, weight decay, one-cycle or cosine, label smoothing, crop + flip + cutout, "
        "batch up to 1024",
        define=resnet_cnn,
        baseline=None,  # the lab's network is not in this space
        start_points=(RESNET_RECIPE,),
    ),
}


def get_space(name: str) -> SearchSpace:
    """A built-in space by name, or a user's: `file.py:function`, `space.toml`, `space.yaml`."""
    if name in SPACES:
        return SPACES[name]
    from search_spaces.user import is_user_space, load_user_space

    if is_user_space(name):
        return load_user_space(name)
    raise SpaceError(
        f"unknown space {name!r}; choose one of: {', '.join(sorted(SPACES))}, "
        "or give a file: path/to/file.py:function, space.toml or space.yaml"
    )


@dataclass(frozen=True)
class ParamInfo:
    name: str
    distribution: str  # e.g. "int 1..3", "log-float 0.0001..0.1", "one of [3, 5]"
    conditional: bool  # absent from some samples


def _describe_distribution(dist: Any) -> str:
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        return f"one of {list(dist.choices)}"
    kind = "int" if isinstance(dist, od.IntDistribution) else "float"
    if getattr(dist, "log", False):
        kind = "log-" + kind
    return f"{kind} {dist.low:g}..{dist.high:g}"


def describe_space(space: SearchSpace, input_size: int = 32, samples: int = 200) -> list[ParamInfo]:
    """Parameters of a define-by-run space, found by sampling it (in memory, no training).

    Define-by-run spaces have no static description, so this asks an in-memory Optuna study for
    `samples` random trials and records each parameter's distribution and whether it is
    conditional. Integer bounds that depend on other choices show their widest range.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    define = space.for_input(input_size)
    seen: dict[str, list[Any]] = {}
    for _ in range(samples):
        trial = study.ask()
        define(trial)
        for name, dist in trial.distributions.items():
            seen.setdefault(name, []).append(dist)
        study.tell(trial, 0.0)
    out = []
    for name, dists in seen.items():
        widest = dists[0]
        if hasattr(widest, "low"):
            lows, highs = [d.low for d in dists], [d.high for d in dists]
            widest = type(widest)(low=min(lows), high=max(highs), log=widest.log)
        out.append(ParamInfo(name, _describe_distribution(widest), len(dists) < samples))
    return out
