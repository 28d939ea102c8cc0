#!/usr/bin/env bash
# What a user gets: `experiment train` (burn-train's learner, its loader, metrics and
# checkpoints) beside the PyTorch reference, alternating, at the same thread counts and with the
# same batching.
#
#   benches/learner.sh DATASET_DIR [THREADS...]                  # default threads: 1 2
#   ROUNDS=3 BATCHING=bucket BACKEND=flex DEVICES=1 benches/learner.sh ../shared/datasets/sst2 1 2
#
# Each burn run trains one epoch (`--epochs 1 --patience 0`; its samples/s is the learner's own
# count over the training split); each PyTorch run trains STEPS steps (default: about one
# epoch) after 30 untimed ones, twice: attention written out, and through PyTorch's fused
# `F.scaled_dot_product_attention` (`--sdpa`, what a PyTorch user writes today). Prints one JSON line per run, also appended to $RESULTS
# (default benches/results/learner.jsonl); `python3 benches/summarize.py FILE` tabulates them.
# Threads: RAYON_NUM_THREADS for burn; with DEVICES=N > 1, burn trains data-parallel on N CPU
# workers instead (`--devices N`). Needs `pip install torch`.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${1:?usage: benches/learner.sh DATASET_DIR [THREADS...]}
shift
threads=("$@")
[[ $# -eq 0 ]] && threads=(1 2)
rounds=${ROUNDS:-3}
batching=${BATCHING:-bucket}
backend=${BACKEND:-flex}
devices=${DEVICES:-1}
steps=${STEPS:-}
results=${RESULTS:-benches/results/learner.jsonl}
mkdir -p "$(dirname "$results")"

source benches/common.sh
exe=$(experiment_exe)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -z "$steps" ]]; then
    examples=$(grep -c . "$data/train.tsv")
    steps=$(( examples / 64 ))
fi

for t in "${threads[@]}"; do
    for round in $(seq "$rounds"); do
        out=$tmp/run-$t-$round
        RAYON_NUM_THREADS=$t "$exe" train --no-tui --dataset "$data" --backend "$backend" \
            --devices "$devices" --batching "$batching" --epochs 1 --patience 0 --out "$out" \
            >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
        python3 - "$out/summary.json" "$t" "$batching" "$devices" <<'PY' | tee -a "$results"
import json, sys
s = json.load(open(sys.argv[1]))
print(json.dumps({
    "program": "burn-learner", "backend": s["backend"], "threads": sys.argv[2],
    "batching": sys.argv[3], "devices": int(sys.argv[4]),
    "samples_per_s": s["train_samples_per_s"], "seconds": s["seconds"],
    "valid_acc": s["valid_acc"],
}))
PY
        for sdpa in "" --sdpa; do
            python3 benches/pytorch_reference.py --dataset "$data" --threads "$t" --steps "$steps" \
                --batching "$batching" $sdpa 2>/dev/null | tee -a "$results"
        done
    done
done
