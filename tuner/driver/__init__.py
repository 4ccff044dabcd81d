"""The driver: everything that talks to Ray and Optuna (imported lazily where start-up time
matters). Every reach into their private parts is in internals.py, each with a check. It may
import tuner.config, tuner.stages, tuner.data, tuner.train (to price and score models),
tuner.experiment and search_spaces; nothing below it imports the driver."""
