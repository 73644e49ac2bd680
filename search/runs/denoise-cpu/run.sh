#!/bin/sh
# The exact commands of this record (run from the repository root). Rerunning them continues a
# killed run (--resume) and ends with the same logs. Controller first, then random search, same recipe.
set -e
DATA=${NASDIP_DATA:-../shared/data}
for algo in controller random; do
  python -m nasdip_zoo.cli search --recipe search/recipes/denoise-cpu.json --train-dir "$DATA/cbsd68" \
    --algorithm "$algo" --resume --no-progress
done
