"""docs/options.md is generated from SearchConfig's fields: a committed copy that no longer
matches them (an option added, renamed or re-worded) fails here."""

from __future__ import annotations

import re
from pathlib import Path

from tuner.config.options import option_flags, options_markdown
from tuner.config.search_config import SearchConfig

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "options.md"


def test_the_committed_options_reference_is_current():
    assert REFERENCE.read_text() == options_markdown(SearchConfig.options()), (
        "docs/options.md is stale: run `python -m tuner.config.search_config > docs/options.md`"
    )


def test_the_reference_has_one_row_per_option_with_all_its_flags():
    rows = [line for line in REFERENCE.read_text().splitlines() if line.startswith("| `-")]
    listed = sorted(tuple(re.findall(r"`(-[^`]*)`", row.split(" | ")[0])) for row in rows)
    assert listed == sorted(option_flags(f) for f in SearchConfig.options())
