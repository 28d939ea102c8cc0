#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) from a small seed corpus and prints libFuzzer's
# final statistics line per target. Needs `cargo install cargo-fuzz`; cargo-fuzz wants nightly
# for the sanitizer flags, RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
#
#   fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
seed() { mkdir -p "corpus/$1"; printf '%b' "$2" > "corpus/$1/seed-$3"; }
seed split_tsv '0\tdull , flat\n1\tit'"'"'s good\n' 1
seed split_tsv '1\ta\tb\r\n\n0\t  x \n' 2
seed split_csv 'label,text\n0,"dull, flat"\n1,good\n' 1
seed split_csv 'text,label,extra\n"a ""quoted"" text",1,x\n' 2
seed split_jsonl '{"label": 0, "text": "dull"}\n{"label": "positive", "text": "good"}\n' 1
seed labels '0\tnegative\n1\tpositive\n' 1
seed labels '2\tc\n0\ta\n1\tb\n' 2
seed vocabulary '{"format": "attention-lab vocabulary v1", "lowercase": true, "tokens": ["<pad>", "<unk>", "good"]}' 1
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for target in $(cargo fuzz list); do
    started=$(date +%s)
    cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=4096 \
        > "corpus/$target.log" 2>&1 || { echo "$target: FAILED, see fuzz/corpus/$target.log and fuzz/artifacts/$target"; tail -30 "corpus/$target.log"; exit 1; }
    echo "$target: $(( $(date +%s) - started )) s, $(grep -E '^Done|^#[0-9]+.*DONE' "corpus/$target.log" | tail -1)"
done
