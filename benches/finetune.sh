#!/usr/bin/env bash
# Fine-tuning throughput (issue 21): `experiment train --config experiments/minilm-finetune.toml`
# (MiniLM-L6 through burn-train's learner) beside PyTorch + HF transformers fine-tuning the same
# checkpoint (`benches/pytorch_reference.py --encoder`, attention written out and through SDPA),
# alternating, at the same thread counts, batch 32 and batching.
#
#   benches/finetune.sh DATASET_DIR ENCODER_DIR [THREADS...]      # default threads: 1 2
#   ROUNDS=2 EXAMPLES=1280 BATCHING=bucket benches/finetune.sh ../shared/datasets/sst2 DATA/models/minilm-l6
#
# Both train on the first EXAMPLES texts of DATASET_DIR/train.tsv (default 1,280 = 40 batches)
# and are timed in the steady state, after as many untimed steps: burn two epochs, of which the
# learner's samples/s of the second counts (the first's is in "first_epoch_samples_per_s"),
# PyTorch the same number of steps after one untimed pass. WARMUP=5 times instead burn's first
# epoch (its first steps and the heap's growth included) against PyTorch after 5 untimed steps,
# as this script did before 2026-12-07 evening; each line says its "warmup". Prints one JSON line per run, also appended to
# $RESULTS (default benches/results/finetune.jsonl); `python3 benches/summarize.py FILE`
# tabulates them. Needs `pip install torch transformers`.
#
# A/B of two builds of ours: `EXPERIMENT=path/to/experiment LABEL=name PYTORCH=0 benches/finetune.sh …`
# times that binary (built at another commit; LABEL goes into its lines' "program") and skips
# PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${1:?usage: benches/finetune.sh DATASET_DIR ENCODER_DIR [THREADS...]}
encoder=${2:?usage: benches/finetune.sh DATASET_DIR ENCODER_DIR [THREADS...]}
shift 2
threads=("$@")
[[ $# -eq 0 ]] && threads=(1 2)
rounds=${ROUNDS:-2}
examples=${EXAMPLES:-1280}
batching=${BATCHING:-bucket}
results=${RESULTS:-benches/results/finetune.jsonl}
label=${LABEL:-}
pytorch=${PYTORCH:-1}
mkdir -p "$(dirname "$results")"

source benches/common.sh
exe=$(experiment_exe)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/data"
head -n "$examples" "$data/train.tsv" > "$tmp/data/train.tsv"
# Validation is not timed; a few texts keep the run short.
head -n 64 "$data/validation.tsv" > "$tmp/data/validation.tsv"
steps=$(( examples / 32 ))
warmup=${WARMUP:-$steps}
# Burn's untimed steps are a whole epoch, the first of two; with any other WARMUP it is timed
# from its first step (its lines say "warmup": 0).
if [ "$warmup" = "$steps" ]; then epochs=2 ours_warmup=$steps; else epochs=1 ours_warmup=0; fi

for t in "${threads[@]}"; do
    for round in $(seq "$rounds"); do
        out=$tmp/run-$t-$round
        RAYON_NUM_THREADS=$t "$exe" train --no-tui --config experiments/minilm-finetune.toml \
            --encoder "$encoder" --dataset "$tmp/data" --batching "$batching" --epochs "$epochs" \
            --out "$out" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
        python3 - "$out/summary.json" "$t" "$batching" "$label" "$ours_warmup" <<'PY' | tee -a "$results"
import json, sys
s = json.load(open(sys.argv[1]))
program = "burn-learner-minilm" + (f"-{sys.argv[4]}" if sys.argv[4] else "")
per_epoch = s["epoch_samples_per_s"]
print(json.dumps({
    "program": program, "backend": s["backend"], "threads": sys.argv[2],
    "batching": sys.argv[3], "warmup": int(sys.argv[5]), "samples_per_s": per_epoch[-1],
    "first_epoch_samples_per_s": per_epoch[0], "seconds": s["seconds"],
}))
PY
        [ "$pytorch" = 1 ] || continue
        for sdpa in "" --sdpa; do
            python3 benches/pytorch_reference.py --dataset "$tmp/data" --encoder "$encoder" \
                --threads "$t" --steps "$steps" --warmup "$warmup" --batch-size 32 --batching "$batching" \
                $sdpa 2>/dev/null | tee -a "$results"
        done
    done
done
