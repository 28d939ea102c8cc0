#!/usr/bin/env bash
# One attention layer's training step against the length: ours through the fused op
# (`forward_context`) and through the decomposition (`forward`), beside PyTorch's
# `F.scaled_dot_product_attention` and its explicit softmax, alternating case by case, one
# process per case (peak RSS is the case's own).
#
#   benches/attention_train.sh [LENS...]              # default 128 256 512 1024 2048
#   THREADS="1 2" ROUNDS=2 BACKEND=flex benches/attention_train.sh 128 512
#
# Layer and loop as `benches/torch_attn_train.py` (d_model 64, 4 heads, batch 16, padding
# mask, loss = mean(out²), 1 warm-up + STEPS=5 timed steps). Appends one JSON line per case to
# $RESULTS (default benches/results/attention-train.jsonl); `python3 benches/summarize.py FILE`
# tabulates them. Needs `pip install torch` for the PyTorch side (skipped without it).
set -euo pipefail
cd "$(dirname "$0")/.."

lens=("$@")
[[ $# -eq 0 ]] && lens=(128 256 512 1024 2048)
threads=(${THREADS:-1 2})
rounds=${ROUNDS:-1}
backend=${BACKEND:-flex}
steps=${STEPS:-5}
batch=${BATCH:-16}
results=${RESULTS:-benches/results/attention-train.jsonl}
mkdir -p "$(dirname "$results")"

source benches/common.sh
exe=$(bench_exe train_step)
torch=true
python3 -c 'import torch' 2>/dev/null || { echo "no torch: PyTorch cases skipped" >&2; torch=false; }

for t in "${threads[@]}"; do
    for round in $(seq "$rounds"); do
        for len in "${lens[@]}"; do
            run() { echo "$1" | tee -a "$results"; }
            run "$(RAYON_NUM_THREADS=$t "$exe" fused "$len" "$batch" "$steps" "$backend")"
            $torch && run "$(python3 -W ignore benches/torch_attn_train.py sdpa "$len" "$batch" "$t" "$steps")"
            run "$(RAYON_NUM_THREADS=$t "$exe" decomposition "$len" "$batch" "$steps" "$backend")"
            $torch && run "$(python3 -W ignore benches/torch_attn_train.py explicit "$len" "$batch" "$t" "$steps")"
        done
    done
done
