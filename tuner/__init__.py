"""cnn-tuner: architecture and hyperparameter search for CNN image classifiers.

from tuner import SearchConfig, search
result = search(SearchConfig(dataset="digits", samples=12, epochs=8))
print(result.experiment_dir, result.best["val_acc"])

The package has three rooms, one per import context: tuner.data (numpy only), tuner.train
(torch, never Ray: what runs inside a trial) and tuner.driver (Ray and Optuna: the search).
tuner.experiment owns the experiment directory that the driver writes and `analysis` reads.
"""

from tuner.driver.config import SearchConfig
from tuner.driver.run import SearchResult, resume, search
from tuner.errors import BudgetError, ConfigError, DataError
from tuner.train.config import TrainConfig

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
