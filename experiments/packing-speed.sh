#!/usr/bin/env bash
# Training samples/s and padding of `--batching pack` against `bucket` on SST-2, side by side:
# the recipe of experiments/sst2-recipe.toml, 2 epochs per run, the two batchings alternating
# for ROUNDS rounds (this machine is shared and noisy: compare within a round). Prints each
# run's samples/s per epoch and its share of padding (summary.json).
#
#   experiments/packing-speed.sh [DATASET] [ROUNDS] [EXTRA FLAGS...]
#   experiments/packing-speed.sh ../shared/datasets/sst2 2 --heads 4 --positions sinusoidal
set -euo pipefail
dataset=${1:-sst2}
rounds=${2:-2}
shift $(( $# < 2 ? $# : 2 ))
bin=${EXPERIMENT:-target/debug/experiment}
[ -x "$bin" ] || cargo build -p experiment --locked
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for round in $(seq 1 "$rounds"); do
  for batching in bucket pack; do
    dir="$out/$batching-$round"
    "$bin" train --config experiments/sst2-recipe.toml --dataset "$dataset" --epochs 2 \
      --batching "$batching" --no-tui --out "$dir" "$@" > "$dir.log" 2>&1
    python3 - "$dir/summary.json" "$batching" "$round" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"round {sys.argv[3]} {sys.argv[2]:>6}: {s['train_samples_per_s']:7.0f} samples/s "
      f"(epochs {s['epoch_samples_per_s']}), padding {100 * s['train_padding']:.1f} %")
PY
  done
done
