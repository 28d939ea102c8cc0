#!/usr/bin/env bash
# Training throughput, burn and PyTorch side by side in one run, at the same thread counts.
#
#   benches/throughput.sh DATASET_DIR [THREADS...]        # default threads: 1 2
#   STEPS=300 ROUNDS=3 BACKENDS="flex ndarray" benches/throughput.sh ../shared/datasets/sst2 1
#   BATCHING=file PAD=longest benches/throughput.sh ...    # batches as before length bucketing
#
# Runs each program ROUNDS times, alternating, and prints one JSON line per run (also appended
# to $RESULTS, default benches/results/throughput.jsonl). Needs `pip install torch`.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${1:?usage: benches/throughput.sh DATASET_DIR [THREADS...]}
shift
threads=("${@:-1 2}")
[[ $# -eq 0 ]] && threads=(1 2)
steps=${STEPS:-300}
warmup=${WARMUP:-30}
rounds=${ROUNDS:-3}
backends=${BACKENDS:-flex ndarray}
batching=${BATCHING:-bucket}
pad=${PAD:-longest}
results=${RESULTS:-benches/results/throughput.jsonl}
mkdir -p "$(dirname "$results")"

source benches/common.sh
bench=$(throughput_bench)

for t in "${threads[@]}"; do
    for round in $(seq "$rounds"); do
        for b in $backends; do
            RAYON_NUM_THREADS=$t "$bench" --backend "$b" --dataset "$data" --steps "$steps" --warmup "$warmup" \
                --batching "$batching" --pad "$pad" |
                tee -a "$results"
        done
        python3 benches/pytorch_reference.py --dataset "$data" --threads "$t" --steps "$steps" \
            --warmup "$warmup" --batching "$batching" --pad "$pad" 2>/dev/null | tee -a "$results"
    done
done
