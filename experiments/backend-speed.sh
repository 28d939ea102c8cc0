#!/usr/bin/env bash
# Training throughput of the CPU backends, side by side in one run: one epoch of the default
# model (d_model 64, 4 heads, batch 64) per backend, alternating, REPEATS times.
# Usage: experiments/backend-speed.sh [DATASET (default: synthetic)] [REPEATS (default: 2)] [BACKENDS...]
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:-synthetic}
repeats=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
backends=("${@:-flex}")
[ $# -gt 0 ] || backends=(flex ndarray)
# The dev profile is the optimised one this workspace shares with `cargo test` (Cargo.toml).
cargo build -p experiment --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| run | backend | training samples/s |"
echo "|---|---|---|"
for rep in $(seq "$repeats"); do
  for backend in "${backends[@]}"; do
    target/debug/experiment --dataset "$dataset" --backend "$backend" --epochs 1 --patience 0 \
      --no-tui --out "$tmp/$backend-$rep" >/dev/null
    speed=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["train_samples_per_s"]))' "$tmp/$backend-$rep/summary.json")
    echo "| $rep | $backend | $speed |"
    echo "$backend $speed" >>"$tmp/speeds"
  done
done
python3 - "$tmp/speeds" "${backends[0]}" <<'PY'
import sys, collections
speeds = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, value = line.split()
    speeds[name].append(float(value))
base = sys.argv[2]
mean = {k: sum(v) / len(v) for k, v in speeds.items()}
print()
for name, m in mean.items():
    print(f"{name}: mean {m:.0f} samples/s, {m / mean[base]:.2f}x {base}")
PY
