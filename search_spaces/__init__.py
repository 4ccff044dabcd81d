"""Search spaces: define-by-run functions of an Optuna trial, and the registry that names them.

A space is a plain function `space(trial, input_size) -> dict | None` that only calls
`trial.suggest_*` (and pure arithmetic to bound its ranges); a returned dict holds constants
merged into every config. Parameter names are TrainConfig's flat keys (see tuner/train/config.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from search_spaces.resnet_cnn import BATCH_SIZES as RESNET_BATCH_SIZES
from search_spaces.resnet_cnn import RECIPE as RESNET_RECIPE
from search_spaces.resnet_cnn import resnet_cnn
from search_spaces.seed_cnn import BASELINE as SEED_CNN_BASELINE
from search_spaces.seed_cnn import START as SEED_CNN_START
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
    # Architecture parameters a size budget may step down in a start point, the first given up
    # first (search_spaces/fit_to_run.py).
    scalable: tuple[str, ...] = ()

    def points_to_evaluate(self, input_size: int | None = None) -> list[dict[str, Any]] | None:
        """What the search tries first: the lab's baseline (always trial 0), then start points.

        With `input_size`, each point is made a point of the space at that size (see
        `fit_points`); the notes on what changed are dropped here, `fit_points` returns them.
        """
        if input_size is not None:
            return self.fit_points(input_size)[0]
        points = ([dict(self.baseline)] if self.baseline else []) + [
            dict(p) for p in self.start_points
        ]
        return points or None

    def fit_points(self, input_size: int) -> tuple[list[dict[str, Any]] | None, list[str]]:
        """The baseline and start points as points of the space at `input_size`, and one line
        for each point that had to change.

        A space adapts its ranges to the image size (cutout 8 is no choice at 8x8, nor four
        blocks of pooling), so a point written for 32x32 may not be a point at another size;
        Optuna would refuse it with a traceback. Each value that is not allowed becomes the
        nearest one that is, found by replaying the point through the space (so conditional
        parameters follow the values actually used); names the space does not sample at this
        size are left out.
        """
        raw = self.points_to_evaluate()
        if not raw:
            return None, []
        side = f"{input_size}x{input_size}"
        fitted, notes = [], []
        for number, point in enumerate(raw):
            kept, changes = fit_point(self, point, input_size)
            fitted.append(kept)
            if changes:
                what = (
                    "the lab's baseline"
                    if number == 0 and self.baseline
                    else (f"start point {number + 1 - bool(self.baseline)}")
                )
                notes.append(
                    f"note: {what} of {self.name} is not a point of the space at {side}; using "
                    + ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in changes)
                )
        return fitted, notes

    def for_input(self, input_size: int) -> Callable[[Any], dict[str, Any] | None]:
        """The one-argument function OptunaSearch calls, for a fixed image size."""
        return functools.partial(self.define, input_size=input_size)

    def with_model(self, model: str | None) -> SearchSpace:
        """This space training the user's network `model` (`file.py:build`): every config it
        yields carries `model`, so trials, the confirm stage, retraining and model.pt all build
        that network. The built-in network's baseline and start points do not apply to it."""
        if not model:
            return self
        return replace(
            self, define=WithModel(self.define, model), baseline=None, start_points=(),
            summary=f"{self.summary}; network: {model}",
        )  # fmt: skip


class WithModel:
    """A space's define-by-run function whose constants name the user's network. Plain data
    around the space's own function, so it pickles as the searcher is saved."""

    def __init__(self, define: DefineByRun, model: str) -> None:
        self.define = define
        self.model = model

    def __call__(self, trial: Any, input_size: int = 32) -> dict[str, Any]:
        constants = self.define(trial, input_size=input_size)
        if "model" in trial.params or "model" in (constants or {}):
            raise SpaceError("'model' is reserved for --model; name the parameter otherwise")
        return {**(constants or {}), "model": self.model}


SPACES: dict[str, SearchSpace] = {
    "seed_cnn": SearchSpace(
        name="seed_cnn",
        summary="the lab's plain CNN: depth, widths, kernel, stride, padding, dilation, "
        "pooling, batch norm, FC sizes, dropout, batch size, lr, optimizer, lr schedule",
        define=seed_cnn,
        baseline=SEED_CNN_BASELINE,
        start_points=(SEED_CNN_START,),
        # the widest block first (most of the multiply-adds, and it feeds the head), then the
        # head, which holds most of the weights
        scalable=(
            "channels_b2",
            "channels_b1",
            "channels_b0",
            "fc_width_0",
            "fc_width_1",
            "convs_per_block",
            "n_blocks",
        ),
    ),
    "resnet_cnn": SearchSpace(
        name="resnet_cnn",
        summary="a residual CNN with batch norm (depth, width multiplier) and a modern recipe: "
        "(Nesterov) SGD, weight decay, one-cycle or cosine, label smoothing, crop + flip + cutout, "
        "batch up to 1024",
        define=functools.partial(resnet_cnn, batch_sizes=RESNET_BATCH_SIZES),
        baseline=None,  # the lab's network is not in this space
        start_points=(RESNET_RECIPE,),
        scalable=("width_mult", "convs_per_block", "n_blocks"),
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


def _nearest(value: Any, dist: Any) -> Any:
    """The allowed value of `dist` nearest to `value` (`value` itself when it is allowed)."""
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        choices = list(dist.choices)
        if any(value == c and type(value) is type(c) for c in choices):
            return value
        numeric = [c for c in choices if isinstance(c, int | float) and not isinstance(c, bool)]
        if isinstance(value, int | float) and not isinstance(value, bool) and numeric:
            return min(numeric, key=lambda c: (abs(c - value), c))
        return choices[0]
    if not isinstance(value, int | float) or isinstance(value, bool):
        return dist.low
    clamped = min(max(value, dist.low), dist.high)
    step = getattr(dist, "step", None)
    if step:
        clamped = dist.low + round((clamped - dist.low) / step) * step
        clamped = min(clamped, dist.high)
    if isinstance(dist, od.IntDistribution):
        return int(round(clamped))
    return float(clamped)


def _replay(space: SearchSpace, point: dict[str, Any], input_size: int) -> tuple[Any, dict]:
    """Run the space at `input_size` in an in-memory Optuna study whose sampler answers each
    parameter with the point's value, or the nearest allowed one. Returns the trial and the
    constants the space returned."""
    import optuna

    class _PointSampler(optuna.samplers.BaseSampler):
        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return {}

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
            return {}

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            if name in point:
                return _nearest(point[name], dist)
            return _nearest(None, dist)  # not in the point: the search samples it as usual

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=_PointSampler())
    trial = study.ask()
    constants = space.for_input(input_size)(trial)
    return trial, dict(constants or {})


def fit_point(
    space: SearchSpace, point: dict[str, Any], input_size: int
) -> tuple[dict[str, Any], list[tuple[str, Any, Any]]]:
    """Replay `point` through the space at `input_size` (see `_replay`). Returns the point as
    the space samples it there, and (name, given, used) for each change."""
    trial, _ = _replay(space, point, input_size)
    kept = {k: v for k, v in trial.params.items() if k in point}
    return kept, [(k, point[k], v) for k, v in kept.items() if v != point[k]]


def config_of(space: SearchSpace, params: dict[str, Any], input_size: int) -> dict[str, Any]:
    """The whole flat config a trial with these sampled `params` trains: the params and the
    constants the space adds (what Tune hands the trainable)."""
    trial, constants = _replay(space, params, input_size)
    return {**trial.params, **constants}


@dataclass(frozen=True)
class ParamInfo:
    name: str
    distribution: str  # e.g. "int 1..3", "log-float 0.0001..0.1", "one of [3, 5]"
    conditional: bool  # absent from some samples


def describe_distribution(dist: Any) -> str:
    """e.g. "int 1..3", "log-float 0.0001..0.1", "one of [3, 5]"."""
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        return f"one of {list(dist.choices)}"
    kind = "int" if isinstance(dist, od.IntDistribution) else "float"
    if getattr(dist, "log", False):
        kind = "log-" + kind
    return f"{kind} {dist.low:g}..{dist.high:g}"


def widest(dists: list[Any]) -> Any:
    """One distribution covering `dists` (all of one parameter): a range from the lowest low to
    the highest high (bounds that depend on other choices vary), or the first's choices."""
    first = dists[0]
    if not hasattr(first, "low"):
        return first
    kwargs: dict[str, Any] = {"log": first.log}
    if getattr(first, "step", None) is not None and not first.log:
        kwargs["step"] = first.step
    return type(first)(low=min(d.low for d in dists), high=max(d.high for d in dists), **kwargs)


def space_distributions(
    space: SearchSpace, input_size: int = 32, samples: int = 200
) -> dict[str, tuple[Any, bool]]:
    """{parameter: (its widest distribution, conditional)} of a define-by-run space, found by
    sampling it `samples` times in an in-memory study (no training). Conditional: absent from
    some samples."""
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
    return {name: (widest(dists), len(dists) < samples) for name, dists in seen.items()}


def describe_space(space: SearchSpace, input_size: int = 32, samples: int = 200) -> list[ParamInfo]:
    """Parameters of a define-by-run space, found by sampling it (in memory, no training).

    Define-by-run spaces have no static description, so this asks an in-memory Optuna study for
    `samples` random trials and records each parameter's distribution and whether it is
    conditional. Integer bounds that depend on other choices show their widest range.
    """
    return [
        ParamInfo(name, describe_distribution(dist), conditional)
        for name, (dist, conditional) in space_distributions(space, input_size, samples).items()
    ]
