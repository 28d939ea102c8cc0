#!/usr/bin/env bash
# The GPU run: burn (wgpu on the NVIDIA Vulkan driver) beside PyTorch CUDA on one machine, then
# the CPU figures of the same machine. Prepared binaries, no Rust toolchain or network needed:
#
#   BIN=dir-with-throughput-scaling-attention-experiment DATA=dir-with-sst2-tsv OUT=results-dir benches/gpu.sh
#
# (BIN holds release builds of `cargo bench -p experiment --bench throughput`, `cargo bench -p
# attention --bench scaling|attention` and `target/release/experiment`.) Writes gpu.log,
# results.jsonl and the other results under OUT. The 2026-11-28 figures in BENCHMARKS.md came
# from two calls of these steps (throughput first, then criterion, scaling and the learner with
# the bench's per-case warm-up added), each within a 6-minute GPU lease; with NVIDIA's Vulkan
# driver: VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json.
set -uo pipefail
: "${BIN:?}" "${DATA:?}" "${OUT:?}"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
log=$OUT/gpu.log
results=$OUT/results.jsonl
exec > >(tee -a "$log") 2>&1

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc; python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'

# Peak GPU memory of one command: nvidia-smi sampled every 50 ms, minus what was in use before.
gpu_peak() {
    local before sampler
    before=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > "$OUT/mem.txt" &
    sampler=$!
    "$@"
    kill "$sampler"; wait "$sampler" 2>/dev/null
    echo "{\"peak_gpu_mib_sampled\": $(( $(sort -n "$OUT/mem.txt" | tail -1) - before )), \"command\": \"$*\"}" | tee -a "$results"
}

steps=${STEPS:-500}
echo "== training throughput, reference model on SST-2, GPU"
gpu_peak timeout 150 "$BIN/throughput" --backend wgpu --dataset "$DATA" --steps "$steps" --warmup 100 --json "$OUT/t.json"
cat "$OUT/t.json" >> "$results"
gpu_peak timeout 120 python3 benches/pytorch_reference.py --dataset "$DATA" --device cuda --steps "$steps" --warmup 100 --json "$OUT/t.json"
cat "$OUT/t.json" >> "$results"

echo "== training throughput, CPU, all threads"
for t in 16 1; do
    RAYON_NUM_THREADS=$t timeout 60 "$BIN/throughput" --backend flex --dataset "$DATA" --steps 300 | tee -a "$results"
    timeout 60 python3 benches/pytorch_reference.py --dataset "$DATA" --threads $t --steps 300 | tee -a "$results"
done

echo "== burn-train's learner (wgpu), 1 epoch and 3 epochs"
for epochs in 1 3; do
    timeout 150 "$BIN/experiment" train --backend wgpu --dataset "$DATA" --epochs $epochs --patience 0 \
        --out "$OUT/run" --overwrite | grep -v ' train .*%' \
        && cp "$OUT/run/summary.json" "$OUT/learner-$epochs-summary.json"
    rm -rf "$OUT/run"
done

echo "== attention scaling on wgpu (GPU)"
timeout 90 "$BIN/scaling" --backend wgpu --lens 64,256,1024 --json "$OUT/scaling-wgpu.json"

echo "== attention modules on wgpu (GPU), criterion"
ATTENTION_BENCH_BACKENDS=wgpu timeout 130 "$BIN/attention" --bench --warm-up-time 0.5 --measurement-time 1 2>/dev/null \
    | grep -E '^(forward|train)|time:' > "$OUT/criterion-wgpu.txt"
tail -4 "$OUT/criterion-wgpu.txt"
