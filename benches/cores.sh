#!/usr/bin/env bash
# Using N cores: one `experiment train` epoch at one thread, then the same with `--devices N` at
# N threads (data-parallel workers, the way one run uses N cores), then N independent
# one-thread runs at once (no shared work: the most this machine gives N processes). Prints one
# JSON line per round with each one's training samples/s ÷ the one-thread run's, also appended
# to $RESULTS (default benches/results/cores.jsonl).
#
#   ROUNDS=3 PROCS=2 benches/cores.sh ../shared/datasets/sst2     # or: benches/cores.sh synthetic
set -euo pipefail
cd "$(dirname "$0")/.."

data=${1:?usage: benches/cores.sh DATASET}
rounds=${ROUNDS:-3}
procs=${PROCS:-2}
epochs=${EPOCHS:-1}
results=${RESULTS:-benches/results/cores.jsonl}
mkdir -p "$(dirname "$results")"

source benches/common.sh
exe=$(experiment_exe)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

train() { # OUT THREADS DEVICES
    RAYON_NUM_THREADS=$2 "$exe" train --no-tui --dataset "$data" --devices "$3" \
        --epochs "$epochs" --patience 0 --out "$1" >"$1.log" 2>&1 || { cat "$1.log" >&2; exit 1; }
}
rate() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["train_samples_per_s"])' "$1/summary.json"; }

for round in $(seq "$rounds"); do
    train "$tmp/alone-$round" 1 1
    train "$tmp/parallel-$round" "$procs" "$procs"
    for p in $(seq "$procs"); do train "$tmp/together-$round-$p" 1 1 & done
    wait
    together=()
    for p in $(seq "$procs"); do together+=("$(rate "$tmp/together-$round-$p")"); done
    python3 - "$data" "$(rate "$tmp/alone-$round")" "$(rate "$tmp/parallel-$round")" "${together[@]}" <<'PY' | tee -a "$results"
import json, sys
data, alone, parallel = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
together = [float(x) for x in sys.argv[4:]]
print(json.dumps({
    "program": "burn-learner", "dataset": data.rstrip("/").split("/")[-1], "cores": len(together),
    "one_thread_samples_per_s": round(alone),
    "devices_samples_per_s": round(parallel), "devices_scaling": round(parallel / alone, 3),
    "processes_samples_per_s": [round(x) for x in together],
    "processes_scaling": round(sum(together) / alone, 3),
}))
PY
done
