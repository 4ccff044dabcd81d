#!/usr/bin/env bash
# All GPU figures of BENCHMARKS.md in one run, for a machine with one CUDA GPU (under 8 minutes
# on an H200). Run from the repository root:
#
#   bash bench/gpu.sh CIFAR_TARBALL OUT_DIR            # e.g. cifar10-train-jpg.tar.gz /tmp/gpu-bench
#   bash bench/gpu.sh CIFAR_TARBALL OUT_DIR --smoke    # tiny sizes on the CPU: checks the script
#
# CIFAR_TARBALL is the CIFAR-10 training split as JPEGs (train/<class>/*.jpg inside). It makes
# the fixed 45,000 / 5,000 split (bench/cifar_split.py) and then measures:
#   (a) bench/gpu_pipeline.py  the lab's network: our loader vs the lab's DataLoader + PIL
#                              (5 workers), images/s at batch 64 and 512
#   (b) bench/gpu_trainable.py seconds for the lab's configuration to reach 83 % held-out
#   (c) bench/gpu_pooling.py   total images/s with 1, 2, 4 and 8 trials sharing the GPU
#   (d) tuner search           a real search of at most $SEARCH_BUDGET (default 120s) over
#                              $SEARCH_SPACE (default seed_cnn; resnet_cnn for the [spaces]
#                              93 % target), its best held-out accuracy
# Each step writes OUT_DIR/<step>.json (and .log); a failed step does not stop the others.
set -uo pipefail

tarball=${1:?usage: bash bench/gpu.sh CIFAR_TARBALL OUT_DIR [--smoke]}
out=${2:?usage: bash bench/gpu.sh CIFAR_TARBALL OUT_DIR [--smoke]}
smoke=${3:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${GPU_BENCH_WORK:-/tmp/gpu-bench-work}
py=${PYTHON:-python3}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TUNER_DATA_DIR="$work/data" RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0

if [[ $smoke == --smoke ]]; then
    device=cpu per_class=60 search_budget=60s samples=4 epochs=2 gpus=0
    a_args=(--batches 16 64 --epochs 1 --lab-images 256 --lab-workers 2)
    b_args=(--max-epochs 2 --time-cap 30) c_args=(--trials 1 2 --seconds 3 --batch 16)
else
    device=cuda per_class= search_budget=${SEARCH_BUDGET:-120s} samples=40 epochs=15 gpus=0.25
    a_args=() b_args=(--time-cap 60) c_args=(--seconds 8)
fi

step() {  # step NAME COMMAND...: run, log, time; keep going on failure
    local name=$1
    shift
    local t0=$SECONDS
    echo "== $name: $*"
    if "$@" 2>&1 | tee "$out/$name.log"; then
        echo "== $name done in $((SECONDS - t0)) s"
    else
        echo "== $name FAILED after $((SECONDS - t0)) s (see $out/$name.log)"
    fi
}

t_start=$SECONDS
mkdir -p "$work/jpg"
[[ -d $work/jpg/train ]] || tar -xzf "$tarball" -C "$work/jpg"
split="$work/cifar-45k5k${per_class:+-$per_class}"
"$py" "$repo/bench/cifar_split.py" "$work/jpg/train" "$split" ${per_class:+--per-class $per_class}
"$py" -c "from tuner.data import load_dataset as l; b = l('imagefolder', '$split', progress=print)"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"

step a_pipeline "$py" "$repo/bench/gpu_pipeline.py" --data-dir "$split" --device $device \
    --json "$out/a_pipeline.json" "${a_args[@]}"
step b_time_to_83 "$py" "$repo/bench/gpu_trainable.py" --data-dir "$split" --device $device \
    --json "$out/b_time_to_83.json" "${b_args[@]}"
step c_pooling "$py" "$repo/bench/gpu_pooling.py" --data-dir "$split" --device $device \
    --json "$out/c_pooling.json" "${c_args[@]}"
rm -rf "$work/experiments/gpu-search"
step d_search "$py" -m tuner.cli search --space "${SEARCH_SPACE:-seed_cnn}" \
    --dataset imagefolder --data-dir "$split" \
    --samples $samples --epochs $epochs --time-budget $search_budget --gpus-per-trial $gpus \
    --cpus-per-trial 2 --out "$work/experiments" --name gpu-search
if [[ -f $work/experiments/gpu-search/best.json ]]; then
    "$py" - "$work/experiments/gpu-search" "$out/d_search.json" <<'EOF'
import json, sys
from pathlib import Path
import pandas as pd
exp, dst = Path(sys.argv[1]), Path(sys.argv[2])
best = json.loads((exp / "best.json").read_text())
trials = pd.read_csv(exp / "trials.csv")
keep = ("trial_index", "status", "val_acc", "best_epoch", "epochs_run", "params", "test_acc",
        "test_images", "selected_by")
figures = {
    "trials": len(trials), "by_status": trials["status"].value_counts().to_dict(),
    "epochs_run": int(trials["epochs_run"].sum()),
    "best": {k: best.get(k) for k in keep}, "best_config": best.get("config"),
    "baseline": {k: (best.get("baseline") or {}).get(k) for k in keep},
}
dst.write_text(json.dumps(figures, indent=2, default=str))
print(json.dumps(figures, indent=1, default=str))
EOF
    cp "$work/experiments/gpu-search/trials.csv" "$out/d_trials.csv" 2>/dev/null
fi
echo "== all steps: $((SECONDS - t_start)) s; figures in $out"
