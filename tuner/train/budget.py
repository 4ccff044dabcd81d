"""A configuration's size (`Cost`: parameters, MACs) and the bounds it must meet (`Budget`).

No torch: the driver checks suggestions against the budget, and the driver never imports torch
(tuner/stages/torch_work.py); what prices a network is tuner/train/cost.py, in the helper.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cost:
    params: int  # trainable parameters
    macs: int  # multiply-accumulates for one image, forward pass


@dataclass(frozen=True)
class Budget:
    """Upper bounds a configuration must meet to be trained; None = no bound."""

    max_params: int | None = None
    max_macs: int | None = None

    @property
    def active(self) -> bool:
        return self.max_params is not None or self.max_macs is not None

    @property
    def names(self) -> list[str]:
        """The bounds in force, in the order of `violations`."""
        return [n for n, v in (("params", self.max_params), ("macs", self.max_macs)) if v]

    def violations(self, cost: Cost) -> list[float]:
        """One value per bound: <= 0 within it, > 0 the fraction it is over (Optuna's
        constraints convention)."""
        out = []
        if self.max_params is not None:
            out.append(cost.params / self.max_params - 1.0)
        if self.max_macs is not None:
            out.append(cost.macs / self.max_macs - 1.0)
        return out

    def reason(self, cost: Cost) -> str | None:
        """Why `cost` is over budget (one line), or None when it fits."""
        over = []
        if self.max_params is not None and cost.params > self.max_params:
            over.append(f"{cost.params:,} params > --max-params {self.max_params:,}")
        if self.max_macs is not None and cost.macs > self.max_macs:
            over.append(f"{cost.macs:,} MACs > --max-macs {self.max_macs:,}")
        return "; ".join(over) or None
