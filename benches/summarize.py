#!/usr/bin/env python3
"""Markdown table of throughput results (JSON lines from benches/throughput.sh or benches/gpu.sh):
mean training samples/s per program, backend and thread count over the rounds, peak memory, and
each burn row's ratio to PyTorch on the same device kind and threads (the faster of PyTorch's
variants, attention written out or `--sdpa`, where both ran).

    python3 benches/summarize.py benches/results/throughput.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict


def main(path):
    runs = defaultdict(list)
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if "samples_per_s" not in r:
            continue
        threads = str(r.get("threads") or "-")
        # Results from before batching options were recorded in file order.
        batching = r.get("batching", "file")
        program = r["program"] + (f" ×{r['devices']} devices" if r.get("devices", 1) > 1 else "")
        # Runs timed after different numbers of untimed steps are not pooled.
        if "warmup" in r:
            program += f" ({r['warmup']} untimed steps)"
        runs[(program, r["backend"], threads, batching)].append(r)
    device = lambda backend: "gpu" if backend in ("cuda", "wgpu") else "cpu"
    torch = {}
    for (p, b, t, g), rs in runs.items():
        if p.startswith("pytorch"):
            mean = statistics.mean(x["samples_per_s"] for x in rs)
            torch[(device(b), t, g)] = max(mean, torch.get((device(b), t, g), 0.0))
    print("| program | backend | batching | threads | runs | samples/s (mean, min–max) | padded len | peak RSS MiB | ÷ PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (p, b, t, g), rs in sorted(runs.items(), key=lambda kv: (device(kv[0][1]), kv[0][3], kv[0][2], kv[0][0], kv[0][1])):
        speeds = [x["samples_per_s"] for x in rs]
        mean = statistics.mean(speeds)
        # PyTorch's CUDA runs report torch's thread count; a GPU row compares with the GPU row.
        ref = torch.get((device(b), t, g)) or (torch.get((device(b), next((tt for (d, tt, gg) in torch if d == device(b) and gg == g), None), g)) if device(b) == "gpu" else None)
        ratio = f"{mean / ref:.2f}×" if ref and not p.startswith("pytorch") else ""
        rss = [x["peak_rss_mib"] for x in rs if x.get("peak_rss_mib")]
        rss = f"{statistics.mean(rss):,.0f}" if rss else ""
        padded = [x["mean_padded_len"] for x in rs if x.get("mean_padded_len")]
        padded = f"{statistics.mean(padded):.1f}" if padded else ""
        print(f"| {p} | {b} | {g} | {t} | {len(rs)} | {mean:,.0f} ({min(speeds):,.0f}–{max(speeds):,.0f}) | {padded} | {rss} | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1])
