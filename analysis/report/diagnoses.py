"""'Diagnoses: why runs diverged or overfit': the rules, their counts and the plain summary."""

from __future__ import annotations

import pandas as pd

from analysis._diagnose import (
    IMPROVING_DROP,
    NOT_LEARNING_SHARE,
    OVERFIT_MIN_RISE,
    OVERFIT_RISE,
    summarize,
)
from analysis.report.html import esc
from tuner.experiment import EXPLODING_LOSS_FACTOR


def _diagnosis_section(diagnoses: pd.DataFrame, trials: pd.DataFrame, params: list[str]) -> str:
    if diagnoses.empty:
        return '<p class="muted">No trials to diagnose yet.</p>'
    merged = trials.merge(diagnoses, on="trial_index")
    lines = summarize(merged, params)
    rules = (
        "Rules, first match wins: <b>diverged</b> = a non-finite loss, or a loss above "
        f"{EXPLODING_LOSS_FACTOR:g} x ln(classes), or the trainer stopped it for that; "
        f"<b>overfitting</b> = the last validation loss is at least {OVERFIT_RISE:.0%} "
        f"(and {OVERFIT_MIN_RISE:g}) above its minimum at an earlier epoch while the train loss "
        "kept falling; <b>stopped early</b> = ended by ASHA or an error before its budget; "
        f"<b>not learning</b> = the lowest validation loss stayed above "
        f"{NOT_LEARNING_SHARE:.0%} of ln(classes), the loss of a uniform guess; "
        f"<b>still improving</b> = the last epoch lowered the validation loss at least "
        f"{IMPROVING_DROP:.0%} below every earlier epoch; otherwise <b>healthy</b>."
    )
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return f'<ul class="findings">{items}</ul><p class="muted">{rules}</p>'
