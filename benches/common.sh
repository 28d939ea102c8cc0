# Sourced by the bench scripts. Both helpers build in the dev profile (the workspace's one
# optimised build, shared with `cargo test`; `cargo bench` would build burn again into
# target/release) and print the path of the executable.

# The `experiment` binary.
experiment_exe() {
    cargo build -p experiment --quiet
    echo target/debug/experiment
}

# The throughput bench.
throughput_bench() {
    cargo build -p experiment --bench throughput --quiet
    cargo build -p experiment --bench throughput --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "throughput" and m.get("executable"):
        print(m["executable"])'
}
