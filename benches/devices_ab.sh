#!/usr/bin/env bash
# Two `experiment` binaries side by side, alternating, on one dataset: one epoch (EPOCHS) at one
# device and one thread, then `--devices 2` at two threads, per binary per round. Prints one
# line per run: binary label, devices, threads, training samples/s.
#
#   benches/devices_ab.sh OLD_EXE NEW_EXE DATASET [ROUNDS]
#
# BENCHMARKS.md's "shared global pool" vs "private pool per worker" rows: OLD_EXE built at commit
# a660d3c, NEW_EXE at 25d8b2a (e.g. `git worktree add /tmp/old a660d3c && cargo build -p
# experiment --manifest-path /tmp/old/Cargo.toml`), `benches/devices_ab.sh /tmp/old/target/debug/
# experiment target/debug/experiment ../shared/datasets/sst2 3`, and `EPOCHS=2 … synthetic 2`.
set -euo pipefail
old=${1:?usage: benches/devices_ab.sh OLD_EXE NEW_EXE DATASET [ROUNDS]}
new=${2:?usage: benches/devices_ab.sh OLD_EXE NEW_EXE DATASET [ROUNDS]}
data=${3:?usage: benches/devices_ab.sh OLD_EXE NEW_EXE DATASET [ROUNDS]}
rounds=${4:-3}
epochs=${EPOCHS:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for round in $(seq "$rounds"); do
    for label in old new; do
        exe=$old
        [[ $label == new ]] && exe=$new
        for setting in "1 1" "2 2"; do
            read -r devices threads <<<"$setting"
            rm -rf "$tmp/run"
            RAYON_NUM_THREADS=$threads "$exe" train --no-tui --dataset "$data" --devices "$devices" \
                --epochs "$epochs" --patience 0 --out "$tmp/run" >"$tmp/log" 2>&1 ||
                { cat "$tmp/log" >&2; exit 1; }
            rate=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["train_samples_per_s"]))' "$tmp/run/summary.json")
            echo "round=$round $label devices=$devices threads=$threads samples_per_s=$rate"
        done
    done
done
