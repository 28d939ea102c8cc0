#!/usr/bin/env bash
# A recipe chosen on two datasets, not one: every candidate in experiments/recipes/ trains the
# 4-head model with sinusoidal positions on each dataset (seeds 1 and 2), and the table ranks the
# candidates by their mean validation accuracy over both datasets. Finished runs are reused.
#
#   experiments/recipe-search.sh DATA_ROOT [SEEDS]   # DATA_ROOT holds sst2/ and trec/
#
# Writes experiments/results/recipe-search/{runs/,table.md}. EXPERIMENT=path runs that binary
# instead of building target/debug/experiment (e.g. a copy, so that a build meanwhile does not
# swap the binary between runs).
set -euo pipefail
root=${1:?usage: experiments/recipe-search.sh DATA_ROOT [SEEDS]}
seeds=${2:-1 2}
cd "$(dirname "$0")/.."
bin=${EXPERIMENT:-target/debug/experiment}
[ -n "${EXPERIMENT:-}" ] || cargo build -p experiment --locked --quiet
out=experiments/results/recipe-search
mkdir -p "$out/runs"
for recipe in experiments/recipes/*.toml; do
  name=$(basename "$recipe" .toml)
  for dataset in sst2 trec; do
    for seed in $seeds; do
      dir="$out/runs/$name-$dataset-s$seed"
      if [ -f "$dir/summary.json" ] && grep -q '"interrupted": false' "$dir/summary.json"; then
        continue
      fi
      echo "$name on $dataset, seed $seed"
      "$bin" train --config "$recipe" --dataset "$root/$dataset" --heads 4 --positions sinusoidal \
        --seed "$seed" --out "$dir" --overwrite --no-tui > "$dir.log" 2>&1
    done
  done
done
python3 - "$out" <<'PY'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
rows = {}
for summary in sorted(out.glob("runs/*/summary.json")):
    recipe, dataset, _ = summary.parent.name.rsplit("-", 2)
    s = json.loads(summary.read_text())
    rows.setdefault(recipe, {}).setdefault(dataset, []).append(s)
mean = lambda runs, key: statistics.mean(r[key] for r in runs)
lines = ["| recipe | SST-2 valid acc | SST-2 valid loss | TREC valid acc | TREC valid loss | mean valid acc |",
         "|---|---|---|---|---|---|"]
ranked = sorted(rows.items(), key=lambda kv: -statistics.mean(mean(kv[1][d], "valid_acc") for d in ("sst2", "trec")))
for recipe, by in ranked:
    sst, trec = by["sst2"], by["trec"]
    both = statistics.mean([mean(sst, "valid_acc"), mean(trec, "valid_acc")])
    lines.append(f"| {recipe} | {100*mean(sst,'valid_acc'):.2f} | {mean(sst,'valid_loss'):.4f} | "
                 f"{100*mean(trec,'valid_acc'):.2f} | {mean(trec,'valid_loss'):.4f} | {100*both:.2f} |")
seeds = sorted({len(v) for by in rows.values() for v in by.values()})
table = "\n".join(lines) + f"\n\nMeans over {seeds} seed(s); 4 heads, sinusoidal positions. Chosen: `{ranked[0][0]}`.\n"
(out / "table.md").write_text(table)
print(table)
PY
