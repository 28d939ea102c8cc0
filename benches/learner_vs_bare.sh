#!/usr/bin/env bash
# burn-train's learner (`experiment train`) against the bare training loop (the throughput
# bench) on one backend, alternating: does the learner path cost anything per batch?
#
#   benches/learner_vs_bare.sh SST2_DIR [BACKEND (default wgpu)] [ROUNDS (default 2)]
#
# Both train on the first TRAIN_LINES (default 8,000) training examples, with the experiment's
# default batching (length buckets; GPU backends pad to the ladder of lengths). The learner runs
# 3 epochs and reports each epoch's samples/s (the first carries kernel compilation and
# autotuning; later ones are the steady state); the bare loop runs 300 timed steps after 100
# untimed ones. Prints one JSON line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: benches/learner_vs_bare.sh SST2_DIR [BACKEND] [ROUNDS]}
backend=${2:-wgpu}
rounds=${3:-2}
lines=${TRAIN_LINES:-8000}
pad=longest
[[ $backend == wgpu || $backend == cuda ]] && pad=ladder
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

source benches/common.sh
bench=$(throughput_bench)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/data"
head -n "$lines" "$data/train.tsv" >"$tmp/data/train.tsv"
cp "$data/validation.tsv" "$tmp/data/"
[[ -f $data/labels.txt ]] && cp "$data/labels.txt" "$tmp/data/"

for r in $(seq "$rounds"); do
    target/debug/experiment train --no-tui --backend "$backend" --dataset "$tmp/data" --epochs 3 \
        --patience 0 --out "$tmp/run-$r" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
    python3 - "$tmp/run-$r/summary.json" "$r" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(json.dumps({"program": "burn-learner", "backend": s["backend"], "round": int(sys.argv[2]),
                  "epoch_samples_per_s": s["epoch_samples_per_s"],
                  "samples_per_s": s["train_samples_per_s"]}))
PY
    "$bench" --backend "$backend" --dataset "$tmp/data" --batching bucket --pad "$pad" \
        --steps 300 --warmup 100 2>/dev/null
done
