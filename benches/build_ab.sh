#!/usr/bin/env bash
# Two builds of the `experiment` binary side by side, alternating, for a change of build settings
# that must not cost run-time speed (issue 19): flex training samples/s on a dataset folder
# (default SST-2), and wgpu's first epoch (kernel compilation and autotuning included) on the
# embedded synthetic data, whose wall time is what a user waits for on a new machine.
#
#   benches/build_ab.sh OLD_EXE NEW_EXE [DATASET_DIR] [ROUNDS]
#   benches/build_ab.sh /tmp/base/target/debug/experiment target/debug/experiment ../shared/datasets/sst2 3
#
# One JSON line per run (appended to $RESULTS, default benches/results/build-ab.jsonl), then the
# means. BACKENDS="flex wgpu" by default; "flex ndarray wgpu" adds ndarray on the dataset.
# ARGS adds flags to every run (issue 20's long texts: ARGS="--max-len 1024 --batch-size 16");
# each line also holds the process's peak resident memory (GNU time's %M).
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: benches/build_ab.sh OLD_EXE NEW_EXE [DATASET_DIR] [ROUNDS]}
new=${2:?usage: benches/build_ab.sh OLD_EXE NEW_EXE [DATASET_DIR] [ROUNDS]}
data=${3:-../shared/datasets/sst2}
rounds=${4:-3}
backends=${BACKENDS:-flex wgpu}
read -r -a args <<<"${ARGS:-}"
results=${RESULTS:-benches/results/build-ab.jsonl}
mkdir -p "$(dirname "$results")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { # label exe backend
    local label=$1 exe=$2 backend=$3 out="$tmp/$1-$3-$round" dataset
    # wgpu: one epoch of the default experiment, as a newcomer's first `--backend wgpu` run.
    if [ "$backend" = wgpu ]; then dataset=synthetic; else dataset=$data; fi
    local start end
    start=$(python3 -c 'import time; print(time.time())')
    /usr/bin/time -f %M -o "$tmp/rss" "$exe" --dataset "$dataset" --backend "$backend" --epochs 1 \
        --patience 0 --no-tui --out "$out" "${args[@]}" >/dev/null
    end=$(python3 -c 'import time; print(time.time())')
    python3 - "$out/summary.json" "$label" "$backend" "$dataset" "$start" "$end" "$(cat "$tmp/rss")" "${ARGS:-}" <<'PY' | tee -a "$results" >>"$tmp/all"
import json, sys
s = json.load(open(sys.argv[1]))
print(json.dumps({"build": sys.argv[2], "backend": sys.argv[3], "dataset": sys.argv[4],
                  "args": sys.argv[8], "train_samples_per_s": round(s["train_samples_per_s"], 1),
                  "process_seconds": round(float(sys.argv[6]) - float(sys.argv[5]), 2),
                  "peak_rss_mib": round(int(sys.argv[7]) / 1024, 1)}))
PY
}

for round in $(seq "$rounds"); do
    for backend in $backends; do
        # Alternate which build goes first, so drift favours neither.
        if [ $((round % 2)) -eq 1 ]; then
            run old "$old" "$backend"; run new "$new" "$backend"
        else
            run new "$new" "$backend"; run old "$old" "$backend"
        fi
    done
done
python3 - "$tmp/all" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| backend | dataset | old samples/s | new samples/s | new ÷ old | old s/process | new s/process | old peak RSS MiB | new peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|")
for backend in dict.fromkeys(r["backend"] for r in rows):
    pick = lambda b, k: [r[k] for r in rows if r["backend"] == backend and r["build"] == b]
    o, n = statistics.mean(pick("old", "train_samples_per_s")), statistics.mean(pick("new", "train_samples_per_s"))
    po, pn = statistics.mean(pick("old", "process_seconds")), statistics.mean(pick("new", "process_seconds"))
    ro, rn = max(pick("old", "peak_rss_mib")), max(pick("new", "peak_rss_mib"))
    ds = next(r["dataset"] for r in rows if r["backend"] == backend)
    print(f"| {backend} | {ds} | {o:.0f} ({min(pick('old','train_samples_per_s')):.0f}–{max(pick('old','train_samples_per_s')):.0f}) "
          f"| {n:.0f} ({min(pick('new','train_samples_per_s')):.0f}–{max(pick('new','train_samples_per_s')):.0f}) | {n / o:.3f} | {po:.1f} | {pn:.1f} | {ro:,.0f} | {rn:,.0f} |")
PY
