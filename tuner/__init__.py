"""cnn-tuner: architecture and hyperparameter search for CNN image classifiers.

from tuner import SearchConfig, search
result = search(SearchConfig(dataset="digits", samples=12, epochs=8))
print(result.experiment_dir, result.best["val_acc"])

The package has three rooms, one per import context: tuner.data (numpy only), tuner.train
(torch, never Ray: what runs inside a trial) and tuner.driver (Ray and Optuna: the search).
tuner.experiment owns the experiment directory that the driver writes and `analysis` reads.
tuner.deploy (torch, never Ray) uses the winner outside it: `load_model(path).predict(images)`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tuner.errors import BudgetError, ConfigError, DataError

if TYPE_CHECKING:
    from tuner.config.search_config import SearchConfig
    from tuner.deploy.classifier import load_model
    from tuner.driver.run import SearchResult, resume, search
    from tuner.train.config import TrainConfig


# name -> the module it is imported from on first use (the TYPE_CHECKING imports above say
# the same to the type checker)
_LAZY = {
    "SearchConfig": "tuner.config.search_config",
    "SearchResult": "tuner.driver.run",
    "resume": "tuner.driver.run",
    "search": "tuner.driver.run",
    "TrainConfig": "tuner.train.config",
    "load_model": "tuner.deploy.classifier",
}


def __getattr__(name: str) -> Any:
    """The search's API, imported on first use: `import tuner.experiment` (what `analysis`
    reads the directory with) then loads neither the driver nor the trainer."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tuner' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BudgetError",
    "ConfigError",
    "DataError",
    "SearchConfig",
    "SearchResult",
    "TrainConfig",
    "load_model",
    "resume",
    "search",
]
