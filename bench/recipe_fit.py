"""A space's start point and its variants, each trained once with `tuner train`.

The evidence behind search_spaces/fit_to_run.py and the start points: on a small dataset and a
short run, how much the start point's batch size, learning rate, schedule, augmentation and
shape matter. resnet_cnn (the default): RECIPE with a few keys changed; `--space seed_cnn`: the
lab's network at a quarter of its widths with batch norm (SEED_BASE), with a schedule and crops
tried (search_spaces/seed_cnn.py's START). Each variant is written as a config file and
trained by `tuner train CONFIG --dataset imagefolder --data-dir DIR --epochs E` (one seed,
scored on DIR's held-out test folder). A variant whose output is already under OUT is read
back, not trained again.

    python bench/cifar_split.py /tmp/cifar-jpg/train /tmp/cifar-11k --per-class 1100 \\
        --test-per-class 1000
    python bench/recipe_fit.py /tmp/cifar-11k --out /tmp/rc/out --epochs 5 \\
        --json bench/results/recipe-fit-cifar-11k.json
    python bench/recipe_fit.py /tmp/cifar-11k --space seed_cnn --out /tmp/sr/out --epochs 5 \\
        --json bench/results/seed-recipe-fit-cifar-11k-e5.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from search_spaces import config_of, get_space  # noqa: E402
from search_spaces.resnet_cnn import RECIPE  # noqa: E402
from search_spaces.seed_cnn import BASELINE  # noqa: E402

# name: the keys changed from RECIPE (width 0.25: 16/32/64 channels, 10.2M MACs at 32x32)
VARIANTS: dict[str, dict[str, Any]] = {
    "A_w025_b512": {"width_mult": 0.25},
    "B_w025_b128": {"width_mult": 0.25, "batch_size": 128, "lr": 0.1},
    "C_w05_c1_b128": {"width_mult": 0.5, "convs_per_block": 1, "batch_size": 128, "lr": 0.1},
    "D_w025_b64": {"width_mult": 0.25, "batch_size": 64, "lr": 0.05},
    "E_w025_b64_lr01": {"width_mult": 0.25, "batch_size": 64, "lr": 0.1},
    "H_E_cut0": {"width_mult": 0.25, "batch_size": 64, "lr": 0.1, "cutout": 0},
    "I_E_lr02": {"width_mult": 0.25, "batch_size": 64, "lr": 0.2},
    "F_w025_c3_b64": {"width_mult": 0.25, "batch_size": 64, "lr": 0.1, "convs_per_block": 3},
    "J_nb4_w025": {"width_mult": 0.25, "batch_size": 64, "lr": 0.1, "n_blocks": 4},
    "K_nb4_w05_c1": {
        "width_mult": 0.5, "batch_size": 64, "lr": 0.1, "n_blocks": 4, "convs_per_block": 1,
    },
}  # fmt: skip

# seed_cnn (`--space seed_cnn`): the lab's network with batch norm, at a quarter of its widths
# (16/32/64: 10.2M MACs, resnet_cnn's width-0.25 cost), and the training recipe's pieces the lab
# did not have: a schedule, random crops. crop_padding, which the space does not sample (crops
# lost 5 points here), is a training field of the config, set as it is.
SEED_BASE: dict[str, Any] = {
    "batch_norm": True, "channels_b0": 16, "channels_b1": 32, "channels_b2": 64,
}  # fmt: skip
SEED_VARIANTS: dict[str, dict[str, Any]] = {
    "S1_plain": {},
    "S2_onecycle": {"schedule": "onecycle", "lr": 0.05},
    "S3_onecycle_crop": {"schedule": "onecycle", "lr": 0.05, "crop_padding": 4},
    "S4_crop": {"crop_padding": 4},
    "S5_cosine_crop": {"schedule": "cosine", "lr": 0.05, "crop_padding": 4},
    "S6_onecycle_crop_w2": {
        "schedule": "onecycle", "lr": 0.05, "crop_padding": 4,
        "channels_b0": 32, "channels_b1": 64, "channels_b2": 128,
    },
}  # fmt: skip
SPACES = {"resnet_cnn": (RECIPE, VARIANTS), "seed_cnn": ({**BASELINE, **SEED_BASE}, SEED_VARIANTS)}


TUNER = str(Path(sys.executable).parent / "tuner")  # this environment's CLI


def config(space: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The whole flat config of the space's base point with `changes`, as the space builds it
    at 32x32; changed keys the space does not sample are kept as training fields."""
    base = SPACES[space][0]
    built = config_of(get_space(space), {**base, **changes}, 32)
    return {**built, **{k: v for k, v in changes.items() if k not in built}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", help="an ImageFolder root with train/ and test/")
    parser.add_argument("--out", required=True, help="where `tuner train` writes each variant")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--space", choices=sorted(SPACES), default="resnet_cnn")
    parser.add_argument("--only", nargs="*", help="these variants only")
    parser.add_argument("--json", help="write the table here")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, changes in SPACES[args.space][1].items():
        if args.only and name not in args.only:
            continue
        cfg = config(args.space, changes)
        record = out / name / "retrain.json"
        seconds = None
        if not record.exists():
            file = out / f"{name}.json"
            file.write_text(json.dumps(cfg))
            start = time.perf_counter()
            subprocess.run(
                [TUNER, "train", str(file), "--dataset", "imagefolder", "--data-dir",
                 args.data_dir, "--epochs", str(args.epochs), "--out", str(out), "--name", name],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            seconds = time.perf_counter() - start
        run = json.loads(record.read_text())["runs"][0]
        from tuner.train.cost import model_cost

        cost = model_cost(cfg, (3, 32, 32), 10)
        steps = None
        train_images = _train_images(out / name)
        if train_images:
            steps = -(-train_images // cfg["batch_size"]) * args.epochs
        rows.append({
            "variant": name, "changes": changes, "params": cost.params, "macs": cost.macs,
            "steps": steps, "val_acc": run["val_acc"], "test_acc": run["test_acc"],
            "seconds": seconds,
        })  # fmt: skip
        print(
            f"{name:18} {cost.macs / 1e6:5.1f}M MACs  batch {cfg['batch_size']:4}  lr "
            f"{cfg['lr']:<4}  steps {steps}  val {run['val_acc']:.4f}  test {run['test_acc']:.4f}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=1))


def _train_images(run_dir: Path) -> int | None:
    """The training images the run saw, from its provenance."""
    try:
        provenance = json.loads((run_dir / "provenance.json").read_text())
        return int(provenance["dataset"]["train"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


if __name__ == "__main__":
    main()
