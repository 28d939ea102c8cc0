#!/usr/bin/env bash
# Issue 21: the from-scratch grid (1 vs 4 heads, with and without positions, 3 seeds) with the
# embedding table started from GloVe 6B 50-d, on SST-2 and TREC, with the recipe of the recorded
# grids without vectors (experiments/recipes/average-long.toml, `sst2-average-long`,
# `trec-average-long`): the vectors trained with the rest, and frozen ("static").
#
#   experiments/glove-grid.sh DATA_ROOT      # DATA_ROOT holds sst2/ and trec/
#
# Needs `experiment fetch glove-6b-50d` first. Finished runs are reused (compare's own rule), so
# the script can be stopped and started again. EXPERIMENT=path runs that binary instead of
# building target/debug/experiment; JOBS=N trains N runs at once (default 1).
set -euo pipefail
root=${1:?usage: experiments/glove-grid.sh DATA_ROOT}
cd "$(dirname "$0")/.."
bin=${EXPERIMENT:-target/debug/experiment}
[ -n "${EXPERIMENT:-}" ] || cargo build -p experiment --locked --quiet
for dataset in sst2 trec; do
  for variant in glove glove-frozen; do
    frozen=()
    [ "$variant" = glove-frozen ] && frozen=(--freeze-embeddings)
    "$bin" compare --config experiments/recipes/average-long.toml --dataset "$root/$dataset" \
      --embeddings glove-6b-50d "${frozen[@]}" --seeds 3 --heads 1,4 --positions none,sinusoidal \
      --out "experiments/results/$dataset-$variant" --jobs "${JOBS:-1}"
  done
done
