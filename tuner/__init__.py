"""cnn-tuner: architecture and hyperparameter search for CNN image classifiers.

from tuner import SearchConfig, search
result = search(SearchConfig(dataset="digits", samples=12, epochs=8))
print(result.experiment_dir, result.best["val_acc"])
"""

from tuner.data import DataError
from tuner.driver.config import SearchConfig
from tuner.driver.run import SearchResult, resume, search
from tuner.train.config import ConfigError, TrainConfig

__all__ = [
    "ConfigError",
    "DataError",
    "SearchConfig",
    "SearchResult",
    "TrainConfig",
    "resume",
    "search",
]
