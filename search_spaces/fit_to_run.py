"""A space's start points fitted to the run: its size budget and how much data it trains on.

A start point is a known-good configuration written for one setting (resnet_cnn's RECIPE: 50,000
CIFAR-10 images, 20 epochs, no size bound). Tried as written elsewhere, it wastes the search's
first trial:

- Over `--max-params` / `--max-macs` it never trains: the searcher refuses it. Here it is
  narrowed instead, one axis at a time in the order the space gives (`SearchSpace.scalable`:
  resnet_cnn gives up width first, then convolutions per block, then blocks), each axis stepped
  down only as far as needed; an axis that had to go to its narrowest on the way is then
  widened again as far as the budget allows. The recipe's shape is kept as far as it fits.
- On a small dataset or a short search its batch makes too few optimizer steps to learn. Its
  batch is cut to the largest of the space's choices, no larger than the point's own, that
  makes at least MIN_STEPS steps over the trial's epochs. Measured with `tuner train` on 10,780
  CIFAR-10 training JPEGs, 5 epochs, RECIPE narrowed to width 0.25 (10.2M MACs), one seed each,
  scored on 10,000 held-out images (bench/recipe_fit.py): batch 512 (110 steps) 48.1 %; batch
  128 (425 steps) 60.2 %; batch 64 (845 steps) 61.2-63.5 % at lr 0.05-0.2. 800 steps is where
  the gain levels off. On 45,000 images and 12 epochs the rule keeps the recipe's 512.

The lab's baseline is left as the lab wrote it: it is the reference a search is compared with.
Over the size budget it cannot be that reference, and the search has none (`baseline_over`):
before, the searcher refused it and trial 0, a random configuration, was reported as the lab's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tuner.train.budget import Budget, Cost

if TYPE_CHECKING:
    from search_spaces import SearchSpace

MIN_STEPS = 800  # optimizer steps a start point makes over its epochs, at least (see above)

# configurations -> their costs (None: cannot be built); the driver prices in its torch helper
Prices = Callable[[list[dict[str, Any]]], "list[Cost | None]"]


def fit_batch(
    space: SearchSpace, point: dict[str, Any], input_size: int, train_images: int, epochs: int
) -> dict[str, Any]:
    """`point` with its batch cut so that it makes at least MIN_STEPS steps (see the module)."""
    if "batch_size" not in point:
        return point
    choices = sorted(
        int(c) for c in _allowed(space, point, "batch_size", input_size) if c <= point["batch_size"]
    )
    if not choices:
        return point
    samples = train_images * epochs
    enough = [c for c in choices if samples // c >= MIN_STEPS]
    return {**point, "batch_size": enough[-1] if enough else choices[0]}


def fit_budget(
    space: SearchSpace, point: dict[str, Any], input_size: int, budget: Budget, prices: Prices
) -> dict[str, Any] | None:
    """`point` narrowed along the space's `scalable` axes until it is within `budget` (see the
    module); the point itself when it fits; None when even the narrowest version is over."""
    from search_spaces import config_of

    def fits(candidates: list[dict[str, Any]]) -> list[bool]:
        costs = prices([config_of(space, c, input_size) for c in candidates])
        return [cost is not None and budget.reason(cost) is None for cost in costs]

    if not budget.active or fits([point])[0]:
        return point
    current = dict(point)
    given_up: list[str] = []
    for axis in space.scalable:
        if axis not in current:
            continue
        lower = _lower_values(space, current, axis, input_size)  # largest first
        if not lower:
            continue
        steps = [{**current, axis: v} for v in lower]
        for candidate, ok in zip(steps, fits(steps), strict=True):
            if ok:
                return _widen_back(space, input_size, candidate, given_up, point, fits)
        current = steps[-1]  # this axis at its narrowest; give up the next one too
        given_up.append(axis)
    return None


def _widen_back(
    space: SearchSpace,
    input_size: int,
    fitted: dict[str, Any],
    given_up: list[str],
    point: dict[str, Any],
    fits: Callable[[list[dict[str, Any]]], list[bool]],
) -> dict[str, Any]:
    """The axes set to their narrowest on the way, each widened again as far as the budget now
    allows, the last given up first, never past the point's own value. Under --max-params 20,000
    at 28x28 the recipe had to lose a block; with the block gone, its second convolution fits
    again (17,220 parameters instead of 5,604, on 4 classes)."""
    for axis in reversed(given_up):
        wider = [
            v for v in _allowed(space, fitted, axis, input_size) if fitted[axis] < v <= point[axis]
        ]
        steps = [{**fitted, axis: v} for v in sorted(wider, reverse=True)]
        for candidate, ok in zip(steps, fits(steps) if steps else [], strict=True):
            if ok:
                fitted = candidate
                break
    return fitted


def baseline_over(
    space: SearchSpace, input_size: int, budget: Budget, prices: Prices
) -> str | None:
    """Why the lab's baseline, as the space has it at `input_size`, is over `budget` (one
    line), or None: it fits, there is no budget, or the space has no baseline."""
    from search_spaces import config_of

    if not budget.active or not space.baseline:
        return None
    points, _ = space.fit_points(input_size)
    assert points  # the space has a baseline: it is points[0]
    cost = prices([config_of(space, points[0], input_size)])[0]
    if cost is None:
        return "it cannot be built at this image size"
    return budget.reason(cost)


def fit_start_points(
    space: SearchSpace,
    points: list[dict[str, Any]] | None,
    input_size: int,
    *,
    train_images: int,
    epochs: int,
    budget: Budget,
    prices: Prices,
) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """The points a search tries first, each start point (not the lab's baseline) fitted to the
    run; one line for each point that changed."""
    from search_spaces import fit_point

    if not points:
        return points, []
    out, notes = [], []
    first_start = 1 if space.baseline else 0
    for number, point in enumerate(points):
        if number < first_start:
            out.append(point)
            continue
        name = f"start point {number + 1 - first_start} of {space.name}"
        fitted = fit_budget(space, point, input_size, budget, prices)
        if fitted is None:
            notes.append(f"note: {name} is over the size budget even at its narrowest; left out")
            continue
        # what the narrowed shape no longer samples (a dropped block's channels) goes
        fitted, _ = fit_point(space, fitted, input_size)
        fitted = fit_batch(space, fitted, input_size, train_images, epochs)
        changes = [(k, point[k], v) for k, v in fitted.items() if point.get(k) != v]
        if changes:
            why = []
            if any(k != "batch_size" for k, _, _ in changes):
                why.append(f"narrowed to fit {' and '.join(_bounds(budget))}")
            if any(k == "batch_size" for k, _, _ in changes):
                why.append(f"{MIN_STEPS}+ steps on {train_images:,} images x {epochs} epochs")
            notes.append(
                f"note: {name}: "
                + ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in changes)
                + f" ({'; '.join(why)})"
            )
        out.append(fitted)
    return out or None, notes


def _bounds(budget: Budget) -> list[str]:
    return [
        f"--max-{name} {value:,}"
        for name, value in (("params", budget.max_params), ("macs", budget.max_macs))
        if value is not None
    ]


def _values(dist: Any) -> list[Any]:
    """Every value a distribution allows: a categorical's choices, an int range's integers;
    none for a float range (nothing to step through)."""
    if dist is None:
        return []
    if hasattr(dist, "choices"):
        return list(dist.choices)
    if isinstance(dist.low, int) and isinstance(dist.high, int):
        return list(range(dist.low, dist.high + 1, getattr(dist, "step", None) or 1))
    return []


def _allowed(space: SearchSpace, point: dict[str, Any], axis: str, input_size: int) -> list[float]:
    """The numeric values the space allows for `axis` where the other values are `point`'s."""
    from search_spaces import _replay

    trial, _ = _replay(space, point, input_size)
    return [
        v
        for v in _values(trial.distributions.get(axis))
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]


def _lower_values(
    space: SearchSpace, point: dict[str, Any], axis: str, input_size: int
) -> list[float]:
    """The values of `axis` the space allows below the point's, largest first."""
    value = point.get(axis)
    if value is None:
        return []
    return sorted((v for v in _allowed(space, point, axis, input_size) if v < value), reverse=True)
