"""A search's Optuna study, opened the way a user would: optuna.journal in the experiment
directory, read with Optuna's public JournalStorage (not through the product's own opener, so
that a study written anywhere else fails the test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage


def journal_study(exp: Path, name: str) -> Any:
    """The study named `name` in `exp`/optuna.journal."""
    path = Path(exp) / "optuna.journal"
    assert path.is_file(), f"no optuna.journal in {exp}"
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))
