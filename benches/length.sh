#!/usr/bin/env bash
# Cost against sequence length, end to end: the reference model trained on `synthetic-long`
# (256-1,024 tokens) cut at 128, 256, 512 and 1,024 tokens, burn (flex) beside PyTorch at the
# same thread count, batches of 16 in file order (every batch padded to about the cut length).
#
#   benches/length.sh [THREADS (default 1)]      # STEPS=10 WARMUP=2 LENGTHS="128 256 512 1024"
#
# One JSON line per run (samples/s, peak RSS), also appended to $RESULTS (default
# benches/results/length.jsonl). Needs `pip install torch`.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-1}
steps=${STEPS:-10}
warmup=${WARMUP:-2}
lengths=${LENGTHS:-128 256 512 1024}
results=${RESULTS:-benches/results/length.jsonl}
mkdir -p "$(dirname "$results")"
source benches/common.sh
bench=$(throughput_bench)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target/debug/experiment datasets --dataset synthetic-long --export "$tmp/data" >/dev/null
for len in $lengths; do
    RAYON_NUM_THREADS=$threads "$bench" --backend flex --dataset "$tmp/data" --max-len "$len" \
        --batch-size 16 --batching file --steps "$steps" --warmup "$warmup" |
        python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r['max_len']=$len; print(json.dumps(r))" |
        tee -a "$results"
    python3 benches/pytorch_reference.py --dataset "$tmp/data" --threads "$threads" --max-len "$len" \
        --batch-size 16 --batching file --steps "$steps" --warmup "$warmup" 2>/dev/null |
        python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r['max_len']=$len; print(json.dumps(r))" |
        tee -a "$results"
done
