"""The driver: Ray and Optuna, imported lazily where start-up time matters; may import tuner.data,
tuner.train (only to price and score models), tuner.experiment and search_spaces."""
