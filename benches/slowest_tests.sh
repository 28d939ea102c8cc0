#!/usr/bin/env bash
# How long the test suite takes, and where: builds the README's test command without running it,
# then runs every test binary as `cargo test` would (one after another, each with its own
# threads) with libtest's per-test times, and the doc tests. Prints a Markdown table of the
# slowest tests and of each binary's wall time; the raw JSON lines go to $RESULTS.
#
#   benches/slowest_tests.sh [N]        # N slowest tests, default 10
#
# libtest reports times only under `-Z unstable-options`; RUSTC_BOOTSTRAP=1 is set for the test
# binaries alone (set for cargo, it would change every fingerprint and rebuild the tree).
set -euo pipefail
cd "$(dirname "$0")/.."
top=${1:-10}
results=${RESULTS:-benches/results/slowest-tests.jsonl}
mkdir -p "$(dirname "$results")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cargo test --workspace --locked --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        kind = m["target"]["kind"][0]
        name = m["target"]["name"] + ("" if kind == "test" else f" ({kind})")
        print(m["manifest_path"].rsplit("/", 1)[0], name.replace(" ", "_"), m["executable"])' \
        >"$tmp/binaries"

: >"$tmp/times"
now() { python3 -c 'import time; print(time.time())'; }
while read -r dir target exe; do
    package=$(basename "$dir")
    start=$(now)
    # Each binary runs from its package's folder, as under cargo test.
    (cd "$dir" && RUSTC_BOOTSTRAP=1 "$exe" -Z unstable-options --format json --report-time 2>/dev/null ||
        true) | python3 -c "import json, sys
for line in sys.stdin:
    if not line.startswith('{'):
        continue
    m = json.loads(line)
    if m.get('type') == 'test' and 'exec_time' in m:
        print(json.dumps({'binary': '$package/$target', 'test': m['name'], 'event': m['event'], 'seconds': m['exec_time']}))" \
        >>"$tmp/times"
    echo "{\"binary\": \"$package/$target\", \"wall_seconds\": $(python3 -c "print(round($(now) - $start, 1))")}" >>"$tmp/times"
done <"$tmp/binaries"

start=$(now)
cargo test --workspace --locked --doc --quiet >/dev/null 2>&1
echo "{\"binary\": \"doc tests (compiled and run)\", \"wall_seconds\": $(python3 -c "print(round($(now) - $start, 1))")}" >>"$tmp/times"

cat "$tmp/times" >>"$results"
python3 - "$tmp/times" "$top" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tests = sorted((r for r in rows if "test" in r), key=lambda r: -r["seconds"])
walls = [r for r in rows if "wall_seconds" in r]
print(f"| test | binary | seconds |\n|---|---|---|")
for r in tests[: int(sys.argv[2])]:
    print(f"| `{r['test']}` | {r['binary']} | {r['seconds']:.1f} |")
print(f"\n| binary | tests | wall seconds |\n|---|---|---|")
for w in walls:
    n = sum(1 for r in tests if r["binary"] == w["binary"])
    print(f"| {w['binary']} | {n or '–'} | {w['wall_seconds']:.1f} |")
failed = [r["test"] for r in tests if r["event"] != "ok"]
print(f"\n{len(tests)} tests, {sum(w['wall_seconds'] for w in walls):.0f} s in all" + (f"; not ok: {failed}" if failed else ""))
EOF
