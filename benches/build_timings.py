#!/usr/bin/env python3
"""The slowest units of a cargo build, from the HTML report `cargo build --timings` writes.

    cargo build -p experiment --timings          # on an empty target/: the cold build
    python3 benches/build_timings.py target/cargo-timings/cargo-timing.html [N] [OTHER.html]

Reports may be gzipped (`benches/results/cargo-timing-*.html.gz` are the recorded ones).

Prints the build's wall time and the summed unit times (about the CPU time: each unit uses about
one core), then a Markdown table of the N slowest units (default 15) with their frontend and
codegen seconds. Given a second report (a build before a change), adds its seconds beside each.
"""
import gzip
import json
import re
import sys


def units(path):
    opener = gzip.open if path.endswith(".gz") else open
    html = opener(path, "rt", encoding="utf-8").read()
    data = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", html, re.S).group(1))
    total = float(re.search(r"<td>Total time:</td>\s*<td>([\d.]+)s", html).group(1))
    by_name = {}
    for u in data:
        if u["mode"] != "todo" or u["target"].strip():  # build scripts, binaries, tests
            continue
        sections = dict((name, s["end"] - s["start"]) for name, s in u.get("sections") or [])
        key = f"{u['name']} {u['version']}"
        # A crate built twice (a build dependency and a normal one) is summed.
        prev = by_name.get(key, (0.0, 0.0, 0.0))
        by_name[key] = (
            prev[0] + u["duration"],
            prev[1] + sections.get("frontend", 0.0),
            prev[2] + sections.get("codegen", 0.0),
        )
    return total, sum(u["duration"] for u in data), by_name


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    total, summed, by_name = units(path)
    other = units(sys.argv[3]) if len(sys.argv) > 3 else None
    print(f"wall {total / 60:.1f} min, units summed {summed / 60:.1f} min", end="")
    if other:
        print(f" (before: wall {other[0] / 60:.1f} min, summed {other[1] / 60:.1f} min)", end="")
    print()
    head = "| unit | seconds | frontend | codegen |" + (" before |" if other else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name, (secs, front, code) in sorted(by_name.items(), key=lambda kv: -kv[1][0])[:top]:
        row = f"| {name} | {secs:.0f} | {front:.0f} | {code:.0f} |"
        if other:
            before = other[2].get(name)
            row += f" {before[0]:.0f} |" if before else " – |"
        print(row)


if __name__ == "__main__":
    main()
