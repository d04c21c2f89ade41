#!/usr/bin/env bash
# The GPU figures of benchmarks/README.md in one run, for a machine with one CUDA GPU:
# the engine's tests (Triton kernels on the GPU), a profile and the engine-vs-snnTorch table
# of the seed recipe, then full `snn train` / `snn evaluate` runs.
#
# Usage (from the repository root; the project and snnTorch importable by $PYTHON):
#   DATA=../shared/data/mnist RESULTS=gpu-results bash benchmarks/gpu_suite.sh [part ...]
# Parts (default: all, in this order): tests profile bench seed fast best mlp
# Part `explore` (not in the default) trains csnn best-recipe variants side by side on the one
# GPU: EXPLORE="name1=--steps 16 --epochs 40;name2=--epochs 60" (each variant's options are
# added to `snn train -m csnn --recipe fast`); their accuracies are in $RESULTS/<name>.log.
# A part's command is cut after LIMIT seconds where a part sets one (tests: 240).
# Each part's output goes to $RESULTS/<part>.log; checkpoints to $RESULTS/checkpoints.
# BUDGET (seconds, default 3600) stops starting parts once it has run out, and cuts the
# part that is running at the deadline.
set -u -o pipefail
DATA=${DATA:-../shared/data/mnist}
RESULTS=${RESULTS:-gpu-results}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}  # cpu only to try this script out on a small data set
BUDGET=${BUDGET:-3600}
CKPT="$RESULTS/checkpoints"
mkdir -p "$RESULTS" "$CKPT"
export PYTHONUNBUFFERED=1 COLUMNS=120
deadline=$((SECONDS + BUDGET))

SNN=("$PYTHON" -m snncli)  # the `snn` command, without installing the project

run() {  # run NAME COMMAND...: log to $RESULTS/NAME.log, cut at the deadline
    local name=$1 left=$((deadline - SECONDS))
    shift
    if ((${LIMIT:-0} && LIMIT < left)); then left=$LIMIT; fi
    if ((left < 10)); then
        echo "== $name: skipped (budget spent)"
        return
    fi
    echo "== $name (up to ${left} s)"
    local start=$SECONDS
    timeout "$left" "$@" 2>&1 | tee "$RESULTS/$name.log"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
}

part_tests() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PYTHON" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
    LIMIT=240 run tests "$PYTHON" -m pytest -q -p no:cacheprovider tests
}

part_profile() {
    run profile "$PYTHON" benchmarks/profile_engine.py --data-dir "$DATA" --device "$DEVICE" \
        --recipe seed --precision bf16 --iters 20
}

part_bench() {
    run bench "$PYTHON" benchmarks/bench_engine.py --data-dir "$DATA" --device "$DEVICE" \
        --iters 20 --warmup 3 --subset 10000 --eval-batch 1000
}

part_seed() {
    run seed-train "${SNN[@]}" train -m csnn --recipe seed --device "$DEVICE" --precision bf16 \
        --data-dir "$DATA" --out "$CKPT/csnn-seed.pt"
    run seed-evaluate "${SNN[@]}" evaluate "$CKPT/csnn-seed.last.pt" --device "$DEVICE" --precision bf16 \
        --data-dir "$DATA" --steps-sweep 5,10,25,50,100
}

part_recipe() {  # part_recipe NAME SWEEP: train csnn recipe NAME, then evaluate it
    run "$1-train" "${SNN[@]}" train -m csnn --recipe "$1" --device "$DEVICE" --precision bf16 \
        --data-dir "$DATA" --out "$CKPT/csnn-$1.pt"
    run "$1-evaluate" "${SNN[@]}" evaluate "$CKPT/csnn-$1.last.pt" --device "$DEVICE" \
        --precision bf16 --data-dir "$DATA" --steps-sweep "$2"
}

part_fast() { part_recipe fast 4,8,16,25,50; }

part_best() { part_recipe best 8,16,25,50; }

part_mlp() {
    run mlp-train "${SNN[@]}" train -m mlp --recipe best --device "$DEVICE" --precision bf16 \
        --data-dir "$DATA" --out "$CKPT/mlp-best.pt"
}

part_explore() {
    local variant name pids=()
    IFS=';' read -ra variants <<<"${EXPLORE:-}"
    for variant in "${variants[@]}"; do
        name=${variant%%=*}
        # shellcheck disable=SC2086  # the variant's options are meant to split
        OMP_NUM_THREADS=2 run "$name" "${SNN[@]}" train -m csnn --recipe fast --device "$DEVICE" --precision bf16 \
            --data-dir "$DATA" --out "$CKPT/$name.pt" ${variant#*=} >/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
    for variant in "${variants[@]}"; do
        name=${variant%%=*}
        echo "== $name: ${variant#*=}"
        grep -E "test accuracy|training time" "$RESULTS/$name.log" | tail -4
    done
}

parts=("$@")
((${#parts[@]})) || parts=(tests profile bench seed fast best mlp)
for part in "${parts[@]}"; do
    "part_$part"
done
