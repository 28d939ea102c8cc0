#!/usr/bin/env bash
# The fused attention op trains as the decomposition does: one attention layer trained with Adam
# (`train_step` with LR > 0: same seed, data and target) through `forward_context` (the fused
# op) and through `forward` (the recorded ops), step by step on one backend; prints both JSON
# lines (each with its losses and peak RSS; on lavapipe the GPU's memory is the process's) and
# the largest difference between the two loss curves.
#
#   benches/loss_curve.sh [BACKEND=wgpu] [LEN=128] [STEPS=50] [BATCH=16] [LR=0.01]
#   benches/loss_curve.sh wgpu 1024 3        # peak memory at 1,024 tokens
#
# Appends to $RESULTS (default benches/results/loss-curve.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."

backend=${1:-wgpu}
len=${2:-128}
steps=${3:-50}
batch=${4:-16}
lr=${5:-0.01}
results=${RESULTS:-benches/results/loss-curve.jsonl}
mkdir -p "$(dirname "$results")"

source benches/common.sh
exe=$(bench_exe train_step)
# A run that fails (the decomposition's `[b, h, l, l]` buffers past the device's limit) is
# reported as a line with its error.
case_line() {
    local out
    if out=$("$exe" "$1" "$len" "$batch" "$steps" "$backend" "$lr" 2>"$tmp"); then
        echo "$out"
    else
        python3 -c 'import json, sys
err = [l for l in open(sys.argv[5]).read().splitlines() if l.strip() and "XDG_RUNTIME_DIR" not in l]
cause = next((l.strip() for l in reversed(err) if "allocate" in l or "memory" in l.lower()), err[1] if len(err) > 1 else "")
print(json.dumps({"program": "attention", "mode": sys.argv[1], "backend": sys.argv[2],
                  "len": int(sys.argv[3]), "batch": int(sys.argv[4]), "error": cause}))' \
            "$1" "$backend" "$len" "$batch" "$tmp"
    fi
}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
fused=$(case_line fused)
decomposition=$(case_line decomposition)
echo "$fused" | tee -a "$results"
echo "$decomposition" | tee -a "$results"
python3 - "$fused" "$decomposition" <<'PY'
import json, sys
a, b = (json.loads(x) for x in sys.argv[1:])
failed = [r for r in (a, b) if "error" in r]
if failed:
    for r in failed:
        print(f"{r['backend']} {r['len']} tokens: {r['mode']} failed: {r['error']}")
    for r in (a, b):
        if "error" not in r:
            print(f"{r['mode']}: peak RSS {r['peak_rss_mib']:.0f} MiB, {r['ms_per_step']:.0f} ms/step")
    sys.exit(0)
diff = [abs(x - y) for x, y in zip(a["losses"], b["losses"])]
worst = max(range(len(diff)), key=diff.__getitem__)
print(f"{a['backend']} {a['len']} tokens, {len(diff)} steps: loss {a['losses'][0]:.6f} -> "
      f"{a['losses'][-1]:.6f} (fused), {b['losses'][-1]:.6f} (decomposition); largest "
      f"difference {diff[worst]:.2e} at step {worst}, last {diff[-1]:.2e}; peak RSS "
      f"{a['peak_rss_mib']:.0f} MiB fused, {b['peak_rss_mib']:.0f} MiB decomposition")
PY
