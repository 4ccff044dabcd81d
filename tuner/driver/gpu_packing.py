"""`--gpus-per-trial auto`: each trial gets the share of a GPU its configuration needs.

Before a trial starts, its configuration's peak device memory is estimated on the meta device
(tuner/train/memory.py, ~20-60 ms, the same order as pricing it for --max-params). The share is
that estimate with a margin for the caching allocator (it reserves more than it allocates) and
the CUDA context, as a fraction of the GPU's memory, rounded up to a 1/100 step; it is never
less than 1/TRIALS_PER_GPU (past that many trials a GPU gives no more images a second, so a
smaller share would only queue kernels) and never more than one GPU. Ray packs the fractional
requests onto the GPUs, and each trial caps its allocator at its share
(torch.cuda.set_per_process_memory_fraction), so a wrong estimate fails one trial, not its
neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

# Trials one GPU runs at once before its total images/s stops growing. bench/gpu_pooling.py
# measures it (1, 2, 4 and 8 trials sharing a GPU); 4 is the knee it is expected at for the
# built-in spaces on an H200, and is what `bench/gpu.sh` checks (not yet measured: no GPU was
# lent to the sessions that built this).
TRIALS_PER_GPU = 4
# The caching allocator reserves up to ~1.5x what it allocates (fragmentation across batch
# sizes); the CUDA context and cuDNN's handles take ~0.5 GiB outside the allocator.
ALLOCATOR_MARGIN = 1.5
CONTEXT_BYTES = 512 * 2**20
STEP = 0.01  # shares are rounded up to this


def gpu_share(need_bytes: int, gpu_bytes: int, trials_per_gpu: int = TRIALS_PER_GPU) -> float:
    """The fraction of one GPU of `gpu_bytes` that a trial needing `need_bytes` gets."""
    if gpu_bytes <= 0:
        raise ValueError("gpu_bytes must be positive")
    wanted = (need_bytes * ALLOCATOR_MARGIN + CONTEXT_BYTES) / gpu_bytes
    share = max(1.0 / trials_per_gpu, math.ceil(wanted / STEP - 1e-9) * STEP)
    return round(min(1.0, share), 6)


class AutoGpuShares:
    """Tune's per-trial resource request under --gpus-per-trial auto: {"cpu", "gpu"} for a
    trial's config, from its estimated peak memory. Each share is kept by config, so a config
    asked about again (a restored or retried trial) is not estimated again. Tune calls its own
    unpickled copy of this object: a trial's share reaches the trial through Tune's context."""

    def __init__(
        self,
        estimate: Callable[[dict[str, Any]], int],
        gpu_bytes: int,
        cpus: float,
        trials_per_gpu: int = TRIALS_PER_GPU,
    ) -> None:
        self._estimate, self._gpu_bytes, self._cpus = estimate, gpu_bytes, cpus
        self._trials_per_gpu = trials_per_gpu
        self.shares: dict[str, tuple[int, float]] = {}  # config key -> (estimate, share)

    @staticmethod
    def key(config: dict[str, Any]) -> str:
        return repr(sorted((k, repr(v)) for k, v in config.items()))

    def share(self, config: dict[str, Any]) -> float:
        key = self.key(config)
        if key not in self.shares:
            try:
                need = self._estimate(config)
            except Exception:
                # A configuration that cannot be built fails in its trial, with its own error;
                # until then it costs the smallest share.
                need = 0
            self.shares[key] = (need, gpu_share(need, self._gpu_bytes, self._trials_per_gpu))
        return self.shares[key][1]

    def __call__(self, config: dict[str, Any]) -> Any:
        from ray.tune import PlacementGroupFactory

        return PlacementGroupFactory([{"CPU": self._cpus, "GPU": self.share(config)}])
