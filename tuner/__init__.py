"""cnn-tuner: architecture and hyperparameter search for CNN image classifiers.

from tuner import SearchConfig, search
result = search(SearchConfig(dataset="digits", samples=12, epochs=8))
print(result.experiment_dir, result.best["val_acc"])
"""

from tuner.config import ConfigError, TrainConfig
from tuner.data import DataError
from tuner.search import SearchResult, resume, search
from tuner.search_config import SearchConfig

__all__ = [
    "ConfigError",
    "DataError",
    "SearchConfig",
    "SearchResult",
    "TrainConfig",
    "resume",
    "search",
]
