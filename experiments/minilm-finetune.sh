#!/usr/bin/env bash
# Issue 21: all-MiniLM-L6-v2 fine-tuned on SST-2 (experiments/minilm-finetune.toml), and the same
# encoder frozen under a linear probe, one run per seed. Finished runs are reused and an
# interrupted one resumes from its last checkpoint, so the script can be stopped and started
# again across sessions.
#
#   experiments/minilm-finetune.sh DATA_ROOT [SEEDS]   # DATA_ROOT holds sst2/; SEEDS "1 2 3"
#
# Needs `experiment fetch minilm-l6` first. Writes experiments/results/sst2-minilm/{runs/,
# summaries.jsonl, table.md}, and per fine-tuned seed its head analysis (`experiment heads`:
# heads-finetune-sN.md, pruning-finetune-sN.png). EXPERIMENT=path runs that binary instead of building
# target/debug/experiment; ONLY=finetune or ONLY=probe runs one kind (a seed's fine-tuning and
# head analysis need about an hour here and must finish in one session: run folders are not
# committed; its accuracy is recorded as soon as it has trained).
set -euo pipefail
root=${1:?usage: experiments/minilm-finetune.sh DATA_ROOT [SEEDS]}
seeds=${2:-1 2 3}
cd "$(dirname "$0")/.."
bin=${EXPERIMENT:-target/debug/experiment}
[ -n "${EXPERIMENT:-}" ] || cargo build -p experiment --locked --quiet
out=experiments/results/sst2-minilm
mkdir -p "$out/runs"
run() { # NAME SEED FLAGS...
  local dir="$out/runs/$1-s$2" seed=$2
  shift 2
  if [ -f "$dir/summary.json" ] && grep -q '"interrupted": false' "$dir/summary.json"; then
    return
  fi
  if [ -f "$dir/config.toml" ]; then
    echo "resuming $dir"
    "$bin" train --resume "$dir" --no-tui >> "$dir.log" 2>&1
  else
    echo "training $dir"
    "$bin" train --config experiments/minilm-finetune.toml --dataset "$root/sst2" --seed "$seed" \
      --out "$dir" --overwrite --no-tui "$@" > "$dir.log" 2>&1
  fi
}
# summaries.jsonl and table.md from every finished run, written after each one: run folders
# are not committed, and a session may end before the last seed.
record() {
python3 - "$out" <<'PY'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
# Runs finished here, and those recorded earlier whose folders are not on this machine (runs/
# is not committed): summaries.jsonl is the record, a run folder only adds to it.
recorded = {}
if (out / "summaries.jsonl").exists():
    for line in (out / "summaries.jsonl").read_text().splitlines():
        s = json.loads(line)
        recorded[s["run"]] = s
for summary in sorted(out.glob("runs/*/summary.json")):
    s = json.loads(summary.read_text())
    if s.get("interrupted"):
        continue
    s["run"] = summary.parent.name
    recorded[s["run"]] = s
rows = {}
for name, s in sorted(recorded.items()):
    rows.setdefault(name.rsplit("-", 1)[0], []).append(s)
(out / "summaries.jsonl").write_text("".join(json.dumps(s) + "\n" for _, s in sorted(recorded.items())))
def cell(values):
    values = [100 * v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
table = ["| model | seeds | valid acc % | test acc % | train samples/s | epochs |", "|---|---|---|---|---|---|"]
for name, runs in sorted(rows.items()):
    table.append(
        f"| {name} | {len(runs)} | {cell([r['valid_acc'] for r in runs])} | {cell([r.get('test_acc') for r in runs])} "
        f"| {statistics.mean(r['train_samples_per_s'] for r in runs):.0f} | {runs[0]['epochs_run']} |"
    )
(out / "table.md").write_text("\n".join(table) + "\n")
print("\n".join(table))
PY
}
recorded() { grep -q "\"run\": \"$1\"" "$out/summaries.jsonl" 2>/dev/null; }
for seed in $seeds; do
  # A run recorded in summaries.jsonl whose folder is not on this machine is not trained again.
  dir="$out/runs/finetune-s$seed"
  if [ "${ONLY:-}" != probe ] && { [ -d "$dir" ] || ! recorded "finetune-s$seed" || [ ! -f "$out/heads-finetune-s$seed.md" ]; }; then
    run finetune "$seed"
    record > /dev/null
    # Which heads matter in the fine-tuned model (experiment heads), kept beside the table; run
    # before the probe so that a session that ends early has recorded what needs the folder.
    if [ ! -f "$dir/HEADS.md" ]; then
      echo "heads of $dir"
      "$bin" heads --run "$dir" --orders 3 > "$dir.heads.log" 2>&1
    fi
    cp "$dir/HEADS.md" "$out/heads-finetune-s$seed.md"
    cp "$dir/pruning.png" "$out/pruning-finetune-s$seed.png"
    record > /dev/null
  fi
  if [ "${ONLY:-}" != finetune ] && { [ -d "$out/runs/probe-s$seed" ] || ! recorded "probe-s$seed"; }; then
    run probe "$seed" --freeze-encoder --lr 1e-3
    record > /dev/null
  fi
done
record
