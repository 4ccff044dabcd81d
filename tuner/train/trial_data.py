"""What a trial is given of the dataset: `TrialData`, train and validation only.

The driver makes one per search (`TrialData.from_bundle`) and `tune.with_parameters` puts it in
Ray's object store once; every trial gets it from there, so no trial decodes image files. On a
cluster it carries only where the cached arrays are (`CacheRef`), and each trial opens them on
its own node (`opened`). The test split never reaches a trial, so nothing in the search can be
tuned on it.

numpy only at import: a trial unpickles this before it does any torch work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tuner.data import CacheRef, DatasetBundle, Split, open_cached
from tuner.data.channel_stats import channel_stats


@dataclass(frozen=True)
class TrialData:
    """The dataset as a trial sees it: its shape, classes and normalisation statistics, and
    either the train and validation arrays or the cache to open them from."""

    input_shape: tuple[int, int, int]  # (C, H, W) of every image
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of the train split, in [0, 1] units
    std: tuple[float, ...]
    train: Split | None = None  # None until opened, when only `cache` travelled
    val: Split | None = None
    cache: CacheRef | None = None  # set instead of the arrays: each trial opens them itself

    def __post_init__(self) -> None:
        if (self.train is None) != (self.val is None):
            raise ValueError("TrialData needs both the train and the validation split, or neither")
        if self.train is None and self.cache is None:
            raise ValueError("TrialData needs the arrays or the cache to open them from")

    @classmethod
    def from_bundle(cls, bundle: DatasetBundle, from_cache: bool = False) -> TrialData:
        """What every trial needs from `bundle`: train and validation only.

        from_cache: send only where the cached arrays are (`CacheRef`), and let each trial open
        them on its own node, instead of the arrays themselves. For clusters, whose nodes share
        the cache.
        """
        mean, std = channel_stats(bundle.train.x)
        if from_cache and bundle.cache is None:
            raise ValueError("the dataset was not cached, so trials cannot open it by path")
        return cls(
            input_shape=bundle.input_shape,
            classes=tuple(bundle.classes),
            mean=mean,
            std=std,
            train=None if from_cache else bundle.train,
            val=None if from_cache else bundle.val,
            cache=bundle.cache if from_cache else None,
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def opened(self) -> TrialData:
        """This with its arrays: opened from the shared cache if only its location came.
        numpy only (memory-mapped), no torch."""
        if self.train is not None:
            return self
        assert self.cache is not None  # __post_init__
        train, val = open_cached(self.cache)
        return dataclasses.replace(self, train=train, val=val, cache=None)

    def splits(self) -> tuple[Split, Split]:
        """(train, val); the arrays must be here (see `opened`)."""
        if self.train is None or self.val is None:
            raise ValueError("TrialData holds only the cache's location: call opened() first")
        return self.train, self.val
