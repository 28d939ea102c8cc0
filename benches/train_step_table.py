#!/usr/bin/env python3
"""Markdown table of one attention layer's training step against the length (JSON lines from
benches/attention_train.sh): ms/step and peak RSS per implementation, mean over the rounds, and
the fused op's time over PyTorch SDPA's, per thread count.

    python3 benches/train_step_table.py benches/results/attention-train.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict

COLUMNS = [("attention", "fused"), ("attention", "decomposition"), ("pytorch", "sdpa"), ("pytorch", "explicit")]


def main(path):
    runs = defaultdict(list)
    for line in open(path):
        if line.startswith("{"):
            r = json.loads(line)
            runs[(str(r["threads"]), r["len"], r["program"], r["mode"])].append(r)
    for threads in sorted({k[0] for k in runs}):
        print(f"\n{threads} thread(s):\n")
        print("| tokens | ours, fused op | ours, decomposition | PyTorch SDPA | PyTorch explicit | fused ÷ SDPA |")
        print("|---|---|---|---|---|---|")
        for length in sorted({k[1] for k in runs if k[0] == threads}):
            cells, ms = [], {}
            for program, mode in COLUMNS:
                rs = runs.get((threads, length, program, mode), [])
                if not rs:
                    cells.append("–")
                    continue
                ms[mode] = statistics.mean(r["ms_per_step"] for r in rs)
                mib = max(r["peak_rss_mib"] for r in rs)
                cells.append(f"{ms[mode]:,.1f} ms, {mib:,.0f} MiB")
            ratio = f"{ms['fused'] / ms['sdpa']:.2f}×" if "fused" in ms and "sdpa" in ms else "–"
            print(f"| {length:,} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1])
