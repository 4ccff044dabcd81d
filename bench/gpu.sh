#!/usr/bin/env bash
# The [gpu] figures of BENCHMARKS.md, for a machine with one CUDA GPU. Run from the repository
# root:
#
#   bash bench/gpu.sh CIFAR_TARBALL OUT_DIR            # e.g. cifar10-train-jpg.tar.gz /tmp/gpu-out
#   bash bench/gpu.sh CIFAR_TARBALL OUT_DIR --smoke    # tiny sizes on the CPU: checks the script
#   STEPS="a b c" bash bench/gpu.sh ...                # only those steps (default: all)
#
# CIFAR_TARBALL is the CIFAR-10 training split as JPEGs (train/<class>/*.jpg inside). The script
# makes the fixed 45,000 / 5,000 split (bench/cifar_split.py), then measures:
#   (a) bench/gpu_pipeline.py   the lab's network: our loader vs the lab's DataLoader + PIL
#   (b) bench/gpu_trainable.py  seconds for the lab's configuration to reach 83 % held-out
#                               (goal <= 20 s), as trials train it (bf16, channels_last)
#   (c) bench/gpu_trainable.py  the same through --compile reduce-overhead, then inductor:
#                               the first epoch's excess (compile) against the later epochs
#   (d) bench/gpu_pooling.py    total images/s with 1, 2, 4 and 8 trials sharing the GPU
#                               (goal: 4 trials >= 2x one; the knee of --gpus-per-trial auto)
#   (e) bench/gpu_memory.py     --gpus-per-trial auto's estimate against the measured peak,
#                               20 configurations of each built-in space (never below it)
#   (f) bench/epoch_overhead.py one epoch of a real Tune trial against a bare bf16 loop on the
#                               same GPU (goal <= 1.1x)
#   (g) tuner search            a real search over $SEARCH_SPACE (default resnet_cnn) with
#                               --gpus-per-trial auto and --time-budget $SEARCH_BUDGET (default
#                               4m, all of it counted): its best held-out accuracy (goal >= 94 %)
# Each step writes OUT_DIR/<step>.json and .log; a failed step does not stop the others. All
# steps take about 12 minutes on an H200; the device tool's limit is 10 minutes a command, so run
# them as two calls, e.g. STEPS="a b c d e f" and then STEPS=g.
#
# The device image has torch and Python 3.12 but no Ray, Optuna or plotly: bench/gpu_bundle.sh
# builds .devdata/ (the tarball and those packages, trimmed to fit the 64 MiB carry), and
#   mkdir -p /tmp/site && tar -xJf .devdata/devsite.tar.xz -C /tmp/site && \
#   PYTHONPATH=/tmp/site bash bench/gpu.sh .devdata/cifar10-train-jpg.tar.gz $OUT
set -uo pipefail

tarball=${1:?usage: bash bench/gpu.sh CIFAR_TARBALL OUT_DIR [--smoke]}
out=${2:?usage: bash bench/gpu.sh CIFAR_TARBALL OUT_DIR [--smoke]}
smoke=${3:-}
steps=" ${STEPS:-a b c d e f g} "
mkdir -p "$out"
out=$(cd "$out" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${GPU_BENCH_WORK:-/tmp/gpu-bench-work}
py=${PYTHON:-python3}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TUNER_DATA_DIR="$work/data" RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0

if [[ $smoke == --smoke ]]; then
    device=cpu per_class=60 search_budget=60s samples=4 epochs=2 gpus=0 compile_modes=aot_eager
    a_args=(--batches 16 64 --epochs 1 --lab-images 256 --lab-workers 2)
    b_args=(--max-epochs 2 --time-cap 30) d_args=(--trials 1 2 --seconds 3 --batch 16)
    e_args=(--samples 2) f_args=(--train 400 --val 100 --epochs 2 --rounds 1 --idle-wait 0)
    g_args=(--gpus-per-trial 0 --cpus-per-trial 1)
else
    device=cuda per_class= search_budget=${SEARCH_BUDGET:-4m} samples=200 epochs=20
    compile_modes="reduce-overhead inductor"
    a_args=() b_args=(--time-cap 60) d_args=(--seconds 8) e_args=(--samples 20)
    f_args=(--train 45000 --val 5000 --epochs 4 --rounds 2 --idle-wait 0 --channels 32 64 128
            --device cuda)
    g_args=(--gpus-per-trial auto --cpus-per-trial 2)
fi

step() {  # step NAME COMMAND...: run, log, time; keep going on failure
    local name=$1
    shift
    [[ $steps == *" ${name%%_*} "* ]] || return 0
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
for mode in $compile_modes; do
    step "c_compile_$mode" "$py" "$repo/bench/gpu_trainable.py" --data-dir "$split" \
        --device $device --compile "$mode" --json "$out/c_compile_$mode.json" "${b_args[@]}"
done
step d_pooling "$py" "$repo/bench/gpu_pooling.py" --data-dir "$split" --device $device \
    --json "$out/d_pooling.json" "${d_args[@]}"
step e_memory "$py" "$repo/bench/gpu_memory.py" --device $device --json "$out/e_memory.json" \
    "${e_args[@]}"
step f_epoch_vs_bare "$py" "$repo/bench/epoch_overhead.py" --data-dir "$split" \
    --json "$out/f_epoch_vs_bare.json" "${f_args[@]}"
rm -rf "$work/experiments/gpu-search"
step g_search "$py" -m tuner.cli search --space "${SEARCH_SPACE:-resnet_cnn}" \
    --dataset imagefolder --data-dir "$split" --samples $samples --epochs $epochs \
    --time-budget $search_budget "${g_args[@]}" --out "$work/experiments" --name gpu-search
if [[ $steps == *" g "* && -f $work/experiments/gpu-search/best.json ]]; then
    "$py" - "$work/experiments/gpu-search" "$out/g_search.json" <<'EOF'
import json, sys
from pathlib import Path
import pandas as pd
exp, dst = Path(sys.argv[1]), Path(sys.argv[2])
best = json.loads((exp / "best.json").read_text())
trials = pd.read_csv(exp / "trials.csv")
prov = json.loads((exp / "provenance.json").read_text())
keep = ("trial_index", "status", "val_acc", "best_epoch", "epochs_run", "params", "test_acc",
        "test_images", "selected_by")
figures = {
    "trials": len(trials), "by_status": trials["status"].value_counts().to_dict(),
    "epochs_run": int(trials["epochs_run"].sum()),
    "best": {k: best.get(k) for k in keep}, "best_config": best.get("config"),
    "confirm": (best.get("confirm") or {}).get("summary"),
    "timings": prov.get("timings"),
}
dst.write_text(json.dumps(figures, indent=2, default=str))
print(json.dumps(figures, indent=1, default=str))
EOF
    cp "$work/experiments/gpu-search/trials.csv" "$out/g_trials.csv" 2>/dev/null
fi
echo "== steps$steps: $((SECONDS - t_start)) s; figures in $out"
