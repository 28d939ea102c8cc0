#!/usr/bin/env python3
"""Markdown table of throughput results (JSON lines from benches/throughput.sh or benches/gpu.sh):
mean training samples/s per program, backend and thread count over the rounds, peak memory, and
each burn row's ratio to PyTorch on the same device kind and threads.

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
        runs[(r["program"], r["backend"], threads)].append(r)
    device = lambda backend: "gpu" if backend in ("cuda", "wgpu") else "cpu"
    torch = {
        (device(b), t): statistics.mean(x["samples_per_s"] for x in rs)
        for (p, b, t), rs in runs.items()
        if p == "pytorch"
    }
    print("| program | backend | threads | runs | samples/s (mean, min–max) | peak RSS MiB | ÷ PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for (p, b, t), rs in sorted(runs.items(), key=lambda kv: (device(kv[0][1]), kv[0][2], kv[0][0], kv[0][1])):
        speeds = [x["samples_per_s"] for x in rs]
        mean = statistics.mean(speeds)
        # PyTorch's CUDA runs report torch's thread count; a GPU row compares with the GPU row.
        ref = torch.get((device(b), t)) or (torch.get((device(b), next((tt for (d, tt) in torch if d == device(b)), None))) if device(b) == "gpu" else None)
        ratio = f"{mean / ref:.2f}×" if ref and p != "pytorch" else ""
        rss = statistics.mean(x["peak_rss_mib"] for x in rs if x.get("peak_rss_mib"))
        print(f"| {p} | {b} | {t} | {len(rs)} | {mean:,.0f} ({min(speeds):,.0f}–{max(speeds):,.0f}) | {rss:,.0f} | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1])
