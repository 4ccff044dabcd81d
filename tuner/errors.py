"""The errors a user sees as one line and exit 2 (tuner/cli.py). No imports beyond the standard
library: every room raises them."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad options or a configuration that cannot be trained; the message names what to fix."""


class DataError(Exception):
    """Bad or missing data; message is one line meant for the user (CLI prints it, exit 2)."""


class BudgetError(RuntimeError):
    """The space keeps proposing configurations over the size budget."""
