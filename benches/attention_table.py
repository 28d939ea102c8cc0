#!/usr/bin/env python3
"""Markdown table from `cargo bench -p attention --bench attention` output: the middle estimate
of each benchmark and the speed ratios against ours (burn's MHA time ÷ ours: above 1 means ours
is faster).

    cargo bench -p attention --bench attention 2>/dev/null | python3 benches/attention_table.py
"""
import re
import sys

UNITS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}


def main(stream):
    times, name = {}, None
    for line in stream:
        line = line.strip()
        head = re.match(r"^((?:forward|train)/\S+)", line)
        if head:
            name = head.group(1)
        est = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if est and name:
            times[name] = float(est.group(1)) * UNITS[est.group(2)]
            name = None
    cases = sorted({n.rsplit("/", 1)[0] for n in times}, key=lambda c: (c.split("/")[1], c.split("/")[0], int(c.split("-l")[1]), int(c.split("/h")[1].split("-")[0])))
    print("| mode | backend | shape | ours ms | fused ms | burn MHA ms | burn ÷ ours | fused ÷ ours |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        mode, backend, shape = case.split("/")
        t = {impl: times.get(f"{case}/{impl}") for impl in ("ours", "fused", "burn")}
        fmt = lambda v: f"{v:.2f}" if v is not None else "–"
        ratio = lambda a, b: f"{a / b:.2f}" if a and b else "–"
        print(f"| {mode} | {backend} | {shape} | {fmt(t['ours'])} | {fmt(t['fused'])} | {fmt(t['burn'])} | {ratio(t['burn'], t['ours'])} | {ratio(t['fused'], t['ours'])} |")


if __name__ == "__main__":
    main(open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin)
