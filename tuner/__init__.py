"""cnn-tuner: architecture and hyperparameter search for CNN image classifiers.

from tuner import SearchConfig, search
result = search(SearchConfig(dataset="digits", samples=12, epochs=8))
print(result.experiment_dir, result.best["val_acc"])

The package has three rooms, one per import context: tuner.data (numpy only), tuner.train
(torch, never Ray: what runs inside a trial) and tuner.driver (Ray and Optuna: the search).
tuner.experiment owns the experiment directory that the driver writes and `analysis` reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.errors import BudgetError, ConfigError, DataError

if TYPE_CHECKING:
    from tuner.driver.config import SearchConfig
    from tuner.driver.run import SearchResult, resume, search
    from tuner.train.config import TrainConfig


def __getattr__(name: str) -> Any:
    """The search's API, imported on first use: `import tuner.experiment` (what `analysis`
    reads the directory with) then loads neither the driver nor the trainer."""
    if name == "SearchConfig":
        from tuner.driver.config import SearchConfig as value
    elif name in ("SearchResult", "resume", "search"):
        from tuner.driver import run

        value = getattr(run, name)
    elif name == "TrainConfig":
        from tuner.train.config import TrainConfig as value
    else:
        raise AttributeError(f"module 'tuner' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = [
    "BudgetError",
    "ConfigError",
    "DataError",
    "SearchConfig",
    "SearchResult",
    "TrainConfig",
    "resume",
    "search",
]
