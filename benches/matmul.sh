#!/usr/bin/env bash
# The matrix products of a MiniLM-L6 fine-tuning step (crates/attention/benches/matmul.rs:
# burn-flex's matmul and gemm direct) beside PyTorch's (benches/matmul_torch.py), alternating,
# ROUNDS rounds per thread count; JSON lines appended to $RESULTS (default
# benches/results/matmul.jsonl), then a table of the medians over rounds.
#
#   benches/matmul.sh [THREADS...]      # default: 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
threads=("$@")
[[ $# -eq 0 ]] && threads=(1 2)
rounds=${ROUNDS:-2}
results=${RESULTS:-benches/results/matmul.jsonl}
mkdir -p "$(dirname "$results")"
source benches/common.sh
exe=$(bench_exe matmul)
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.rust"' EXIT
for t in "${threads[@]}"; do
    for round in $(seq "$rounds"); do
        # mimalloc keeps freed memory, as the experiment binary has it.
        MIMALLOC_PURGE_DELAY=${MIMALLOC_PURGE_DELAY:--1} RAYON_NUM_THREADS=$t "$exe" | tee "$tmp.rust"
        python3 benches/matmul_torch.py --threads "$t" --products "$tmp.rust" | tee -a "$tmp"
        cat "$tmp.rust" >> "$tmp"
    done
done
cat "$tmp" >> "$results"
python3 - "$tmp" <<'PY'
import collections, json, statistics, sys
rates = collections.defaultdict(list)
programs, products = [], []
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = (r["m"], r["k"], r["n"], r["layout"])
    rates[(r["program"], r["threads"], key)].append(r["gflops"])
    programs += [p for p in [(r["program"], r["threads"])] if p not in programs]
    products += [key] if key not in products else []
print("| m × k × n | layout | " + " | ".join(f"{p}, {t} thr." for p, t in programs) + " |")
print("|---|---|" + "---|" * len(programs))
for key in products:
    cells = [f"{statistics.median(rates[(p, t, key)]):.0f}" for p, t in programs]
    print(f"| {key[0]} × {key[1]} × {key[2]} | {key[3]} | " + " | ".join(cells) + " |")
PY
