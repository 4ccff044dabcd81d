"""Diagnoses: each trial labelled diverged, overfitting, stopped early, not learning, still
improving or healthy from its loss curves, and a plain-language account of the hyperparameters
that go with each label (the lab's question 2, "why did some runs diverge or overfit?",
answered from data).

The rules, applied in this order (the first that holds wins):

1. diverged: the trainer flagged it (status "diverged"), or a train or validation loss is not
   finite, or one exceeds EXPLODING_LOSS_FACTOR x ln(classes) (ln C is the loss of a uniform
   guess; the trainer stops a trial on the same rule, tuner.experiment.loss_exploded).
2. overfitting: the last validation loss is at least OVERFIT_RISE (10 %) and OVERFIT_MIN_RISE
   (0.01) above the minimum validation loss of an earlier epoch, while the training loss at the
   last epoch is below the training loss at that minimum (it kept falling).
3. stopped early: stopped by the scheduler or by an error before its budget, or no epoch.
4. not learning: the lowest validation loss stayed above NOT_LEARNING_SHARE (98 %) of ln(classes),
   the loss of a uniform guess (the lab's network on digits sits on that plateau; calling it
   "healthy" would mislead).
5. still improving: the last epoch lowered the validation loss at least IMPROVING_DROP (1 %)
   below every earlier epoch's (more epochs would likely have helped).
6. healthy: none of the above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from analysis._load import display_value
from tuner.experiment import CONFIG_PREFIX, EXPLODING_LOSS_FACTOR, loss_limit

OVERFIT_RISE = 0.10  # last val loss >= 1.10 x its earlier minimum ...
OVERFIT_MIN_RISE = 0.01  # ... and >= minimum + 0.01 (near-zero losses wobble by more than 10 %)
IMPROVING_DROP = 0.01  # last val loss <= 0.99 x the minimum of the earlier epochs
NOT_LEARNING_SHARE = 0.98  # lowest val loss >= 0.98 x ln(C): never clearly below a guess
MIN_FINDING_SCORE = 0.5  # share in the group minus share among the others, to be worth saying
MAX_FINDINGS = 2  # per label
MIN_GROUP = 2  # a label needs this many trials before its hyperparameters say anything
LIST_TRIALS = 5  # name the trials of a label this small

LABELS = ("diverged", "overfitting", "stopped early", "not learning", "still improving", "healthy")


class Diagnosis(NamedTuple):
    label: str  # one of LABELS
    reason: str  # the numbers behind it, in a sentence


class Finding(NamedTuple):
    label: str
    param: str
    condition: str  # e.g. "lr >= 0.05"
    in_group: int  # trials of the label that meet it
    group: int
    in_others: int  # other trials that meet it
    others: int

    @property
    def score(self) -> float:
        return self.in_group / self.group - (self.in_others / self.others if self.others else 0.0)

    def text(self) -> str:
        if self.group == 1:
            lead = "the 1"
        elif self.group == self.in_group == 2:
            lead = "both"
        elif self.in_group == self.group:
            lead = f"all {self.group}"
        else:
            lead = f"{self.in_group} of {self.group}"
        noun = "trial" if self.group == 1 else "trials"
        return (
            f"{lead} {self.label} {noun} had {self.condition} "
            f"(vs {self.in_others} of {self.others} other trials)"
        )


def diagnose(
    train_loss: Sequence[float],
    val_loss: Sequence[float],
    *,
    status: str = "completed",
    budget: int | None = None,
    num_classes: int | None = None,
) -> Diagnosis:
    """Label one trial from its per-epoch losses (epoch 1 first) and how it ended."""
    train = [float("nan") if v is None else float(v) for v in train_loss]
    val = [float("nan") if v is None else float(v) for v in val_loss]
    n = len(val)
    of_budget = f" of {budget}" if budget else ""

    # 1. diverged
    if status == "diverged":
        return Diagnosis("diverged", f"the trainer stopped it at epoch {n}: the loss blew up")
    for name, curve in (("train", train), ("validation", val)):
        for epoch, loss in enumerate(curve, 1):
            if not math.isfinite(loss):
                return Diagnosis("diverged", f"{name} loss is {loss} at epoch {epoch}")
    if num_classes and num_classes > 1:
        limit = loss_limit(num_classes)
        for name, curve in (("train", train), ("validation", val)):
            for epoch, loss in enumerate(curve, 1):
                if loss > limit:
                    return Diagnosis(
                        "diverged",
                        f"{name} loss {loss:.3g} at epoch {epoch} exceeds "
                        f"{EXPLODING_LOSS_FACTOR:g} x ln({num_classes}) = {limit:.3g}",
                    )

    # 2. overfitting
    if n >= 2 and len(train) == n:
        m = int(np.argmin(val))
        low, last = val[m], val[-1]
        rise = last - low
        if (
            m < n - 1
            and last >= low * (1 + OVERFIT_RISE)
            and rise >= OVERFIT_MIN_RISE
            and train[-1] < train[m]
        ):
            share = f"{rise / low:.0%}" if low > 0 else f"{rise:.3g}"
            return Diagnosis(
                "overfitting",
                f"validation loss rose {share} from its minimum {low:.3g} (epoch {m + 1}) to "
                f"{last:.3g} (epoch {n}) while train loss fell from {train[m]:.3g} to "
                f"{train[-1]:.3g}",
            )

    # 3. stopped early
    if n == 0:
        return Diagnosis("stopped early", "no epoch finished")
    if status == "stopped":
        return Diagnosis("stopped early", f"stopped at epoch {n}{of_budget}")
    if status == "error":
        return Diagnosis("stopped early", f"ended by an error after epoch {n}{of_budget}")

    running = " (still running)" if status == "running" else ""
    # 4. not learning
    if num_classes and num_classes > 1:
        chance = math.log(num_classes)
        if min(val) >= NOT_LEARNING_SHARE * chance:
            return Diagnosis(
                "not learning",
                f"validation loss never went below {min(val):.3g}, the loss of a uniform guess "
                f"is ln({num_classes}) = {chance:.3g}{running}",
            )

    # 5. still improving
    if n >= 2:
        earlier = min(val[:-1])
        if val[-1] <= earlier * (1 - IMPROVING_DROP):
            drop = (earlier - val[-1]) / earlier if earlier > 0 else 0.0
            return Diagnosis(
                "still improving",
                f"epoch {n} lowered validation loss to {val[-1]:.3g}, {drop:.0%} below the "
                f"best earlier epoch ({earlier:.3g}){running}",
            )

    # 6. healthy
    m = int(np.argmin(val))
    return Diagnosis(
        "healthy",
        f"validation loss settled: minimum {val[m]:.3g} at epoch {m + 1}, last {val[-1]:.3g}"
        f"{running}",
    )


def diagnose_trials(
    trials: pd.DataFrame, epochs: pd.DataFrame, num_classes: int | None = None
) -> pd.DataFrame:
    """One row per trial: trial_index, diagnosis, reason."""
    rows = []
    groups = {int(k): g for k, g in epochs.groupby("trial_index")} if not epochs.empty else {}
    budget_col = f"{CONFIG_PREFIX}epochs"
    for _, trial in trials.iterrows():
        curve = groups.get(int(trial["trial_index"]))
        train = [] if curve is None else curve["train_loss"].tolist()
        val = [] if curve is None else curve["val_loss"].tolist()
        budget = trial.get(budget_col)
        d = diagnose(
            train, val,
            status=str(trial["status"]),
            budget=int(budget) if budget is not None and not pd.isna(budget) else None,
            num_classes=num_classes,
        )  # fmt: skip
        rows.append({"trial_index": int(trial["trial_index"]), "diagnosis": d.label,
                     "reason": d.reason})  # fmt: skip
    return pd.DataFrame(rows, columns=["trial_index", "diagnosis", "reason"])


def _round_sig(x: float, down: bool) -> float:
    """x to 3 significant digits, rounded so that `>= result` (down) or `<= result` (up)
    still holds for x."""
    if x == 0 or not math.isfinite(x):
        return x
    exp = math.floor(math.log10(abs(x))) - 2
    mantissa = x / 10.0**exp
    k = math.floor(mantissa + 1e-9) if down else math.ceil(mantissa - 1e-9)
    result = float(f"{k}e{exp}")  # the double nearest the decimal, as a reader would type it
    if down and result > x:
        result = float(f"{k - 1}e{exp}")
    elif not down and result < x:
        result = float(f"{k + 1}e{exp}")
    return result


def _candidates(label: str, param: str, group: pd.Series, others: pd.Series) -> list[Finding]:
    n_group, n_others = len(group), len(others)
    present = group.dropna()
    if present.empty:
        return []
    numeric = pd.api.types.is_numeric_dtype(group.dtype) and not pd.api.types.is_bool_dtype(
        group.dtype
    )
    numeric = numeric and pd.api.types.is_numeric_dtype(others.dtype)
    found = []
    if numeric:
        lo, hi = _round_sig(float(present.min()), True), _round_sig(float(present.max()), False)
        for cond, mask_g, mask_o in (
            (f"{param} >= {display_value(lo)}", group >= lo, others >= lo),
            (f"{param} <= {display_value(hi)}", group <= hi, others <= hi),
        ):
            found.append(Finding(label, param, cond, int(mask_g.sum()), n_group,
                                 int(mask_o.sum()), n_others))  # fmt: skip
    else:
        g_text = group.map(display_value)
        o_text = others.map(display_value)
        for value in sorted(set(g_text[group.notna()])):
            found.append(Finding(label, param, f"{param} = {value}", int((g_text == value).sum()),
                                 n_group, int((o_text == value).sum()), n_others))  # fmt: skip
    return found


def findings(diagnosed: pd.DataFrame, params: Sequence[str]) -> list[Finding]:
    """For each label, the hyperparameter conditions that best set its trials apart.

    `diagnosed` is the trials table with a `diagnosis` column. A condition is a range every
    trial of the label meets (`lr >= min`, `lr <= max`) or a categorical value; it is scored by
    (share of the label's trials meeting it) - (share of the other trials meeting it), and the
    best MAX_FINDINGS per label scoring at least MIN_FINDING_SCORE are kept.
    """
    out = []
    for label in LABELS:
        in_label = diagnosed["diagnosis"] == label
        if in_label.sum() < MIN_GROUP or in_label.all():
            continue
        best_per_param = []
        for param in params:
            col = f"{CONFIG_PREFIX}{param}"
            if col not in diagnosed:
                continue
            cands = _candidates(label, param, diagnosed.loc[in_label, col],
                                diagnosed.loc[~in_label, col])  # fmt: skip
            if cands:
                best_per_param.append(max(cands, key=lambda f: (f.score, -f.in_others)))
        ranked = sorted(best_per_param, key=lambda f: (-f.score, f.in_others, f.param))
        out.extend([f for f in ranked if f.score >= MIN_FINDING_SCORE][:MAX_FINDINGS])
    return out


def summarize(diagnosed: pd.DataFrame, params: Sequence[str]) -> list[str]:
    """One plain-language sentence per label present, e.g. "Diverged (trials 3, 7, 9, 12): all
    4 diverged trials had lr >= 0.05 (vs 0 of 8 other trials)."; labels of at most LIST_TRIALS
    trials name them."""
    if diagnosed.empty:
        return []
    found = findings(diagnosed, params)
    counts = diagnosed["diagnosis"].value_counts()
    lines = []
    for label in LABELS:
        n = int(counts.get(label, 0))
        if not n:
            continue
        head = f"{label.capitalize()} ({n})"
        if n <= LIST_TRIALS:
            ids = sorted(int(i) for i in diagnosed.loc[diagnosed["diagnosis"] == label,
                                                       "trial_index"])  # fmt: skip
            head = f"{label.capitalize()} ({'trial' if n == 1 else 'trials'} "
            head += ", ".join(str(i) for i in ids) + ")"
        if n == len(diagnosed):
            lines.append(f"{head}: every trial.")
            continue
        if n < MIN_GROUP:
            lines.append(f"{head}: one trial, too few to tell which hyperparameters go with it.")
            continue
        mine = [f.text() for f in found if f.label == label]
        if mine:
            lines.append(f"{head}: " + "; ".join(mine) + ".")
        else:
            lines.append(f"{head}: no single hyperparameter range sets these trials apart.")
    return lines
