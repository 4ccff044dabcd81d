"""The search space bench/overhead.py measures Tune's overhead with (`--space
bench/overhead_space.py:uniform`): one fixed small CNN, only the learning rate and momentum
vary, so every trial costs about the same. With trials of very different sizes (a random
seed_cnn search on digits runs trials from 0.2 s to 24 s) the figure would mostly measure how
well unequal trials pack onto the cores, not what Tune adds to each trial.
"""


def uniform(trial, input_size):
    trial.suggest_float("lr", 0.01, 0.1, log=True)
    trial.suggest_float("momentum", 0.8, 0.95)
    return {
        "n_blocks": 2, "channels_b0": 32, "channels_b1": 64, "kernel_size": 3,
        "batch_norm": True, "fc_layers": 1, "fc_width_0": 128, "dropout_rate": 0.0,
        "batch_size": 64,
    }  # fmt: skip
