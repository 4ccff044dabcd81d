"""--gpus-per-trial auto on the CPU: the shares it packs trials by, from the meta-device
estimate (tuner/driver/gpu_packing.py), and the options around it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tuner.config.search_config import SearchConfig
from tuner.driver.gpu_packing import (
    ALLOCATOR_MARGIN,
    CONTEXT_BYTES,
    TRIALS_PER_GPU,
    AutoGpuShares,
    gpu_share,
)
from tuner.errors import ConfigError

GIB = 2**30
H200 = 141 * GIB


def test_a_share_covers_the_need_with_its_margin_within_one_and_the_knee():
    assert gpu_share(1 * GIB, H200) == 1 / TRIALS_PER_GPU  # small: at most 4 a GPU
    need = 60 * GIB
    share = gpu_share(need, H200)
    assert share * H200 >= need * ALLOCATOR_MARGIN + CONTEXT_BYTES
    assert share - 0.01 < (need * ALLOCATOR_MARGIN + CONTEXT_BYTES) / H200  # rounded up, 1/100
    assert gpu_share(200 * GIB, H200) == 1.0  # more than one GPU: all of one
    assert gpu_share(1 * GIB, H200, trials_per_gpu=8) == 0.125


def _shares() -> AutoGpuShares:
    import functools

    from tuner.driver.tuner_setup import _estimated_peak_of_run

    estimate = functools.partial(_estimated_peak_of_run, input_shape=(3, 32, 32), num_classes=10,
                                 images=(45_000, 5_000))  # fmt: skip
    return AutoGpuShares(estimate, gpu_bytes=8 * GIB, cpus=2)  # a small GPU, so shares differ


SMALL = {"n_blocks": 2, "channels_b0": 16, "channels_b1": 32, "fc_layers": 0, "batch_size": 64,
         "optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "epochs": 10}  # fmt: skip
BIG = {**SMALL, "n_blocks": 3, "channels_b0": 256, "channels_b1": 512, "channels_b2": 1024,
       "batch_size": 1024}  # fmt: skip


def test_a_bigger_configuration_gets_a_bigger_share_and_each_share_is_kept():
    shares = _shares()
    small, big = shares(SMALL), shares(BIG)
    small_gpu = small.required_resources["GPU"]
    big_gpu = big.required_resources["GPU"]
    assert small.required_resources["CPU"] == 2
    assert small_gpu == 1 / TRIALS_PER_GPU
    assert big_gpu > small_gpu and big_gpu <= 1.0
    assert len(shares.shares) == 2
    need, share = shares.shares[AutoGpuShares.key(BIG)]
    assert share == gpu_share(need, 8 * GIB)
    # a confirm run of BIG (its config wrapped) asks for what BIG's trial had
    confirm = {"confirm": {"trial_index": 3, "seed": 1000, "config": BIG}}
    assert shares(confirm).required_resources["GPU"] == big_gpu
    # an unbuildable configuration fails in its trial; here it costs the smallest share
    assert shares({**SMALL, "n_blocks": -1}).required_resources["GPU"] == 1 / TRIALS_PER_GPU


def test_auto_is_an_option_value_and_gpu_memory_goes_with_it(tmp_path):
    assert SearchConfig(gpus_per_trial="auto", gpu_memory=80).gpus_per_trial == "auto"
    SearchConfig(gpus_per_trial="auto", gpu_memory=80).validate()
    with pytest.raises(ConfigError, match="only with --gpus-per-trial auto"):
        SearchConfig(gpus_per_trial=0.5, gpu_memory=80).validate()
    with pytest.raises(ConfigError, match="number or 'auto'"):
        SearchConfig(gpus_per_trial="most").validate()
    with pytest.raises(ConfigError, match="--compile must be one of"):
        SearchConfig(compile="fast").validate()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the driver sees a GPU here")
def test_auto_without_a_gpu_in_sight_is_one_line_and_exit_2(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tuner.cli", "search", "--gpus-per-trial", "auto",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--gpu-memory" in lines[0], out.stderr
    assert not any(tmp_path.iterdir())
