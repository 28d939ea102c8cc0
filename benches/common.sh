# Sourced by the bench scripts. Both helpers build in the dev profile (the workspace's one
# optimised build, shared with `cargo test`; `cargo bench` would build burn again into
# target/release) and print the path of the executable.

# The `experiment` binary; EXPERIMENT=path times that one instead (one built at another commit,
# for an A/B).
experiment_exe() {
    if [ -n "${EXPERIMENT:-}" ]; then
        echo "$EXPERIMENT"
        return
    fi
    cargo build -p experiment --quiet
    echo target/debug/experiment
}

# A bench target's executable: bench_exe NAME. Built with `--workspace`: alone, `-p attention`
# resolves a few low-level crates (num-traits, memchr, …) with other features, and everything
# above them (all of burn) would build a second time.
bench_exe() {
    cargo build --workspace --bench "$1" --quiet
    cargo build --workspace --bench "$1" --message-format=json 2>/dev/null |
        NAME="$1" python3 -c 'import json,os,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == os.environ["NAME"] and m.get("executable"):
        print(m["executable"])'
}

# The throughput bench.
throughput_bench() {
    bench_exe throughput
}
