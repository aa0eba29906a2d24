#!/usr/bin/env bash
# Copy the unfinished runs into benchmarks/results/inflight (no tb/, no lock files).
set -e
cd "$(dirname "$0")/../../.."  # the repository root
dest=benchmarks/results/inflight
rm -rf $dest/transfer2
copy() {  # $1 run dir, $2 destination
  mkdir -p "$2"
  tar -C "$1" --exclude=tb --exclude='.promptmix-run.*' --exclude='*.lock' -cf - . | tar -C "$2" -xf -
}
for run in runs/transfer2/runs/*; do
  id=$(basename $run)
  [ -f benchmarks/results/transfer2/$id.json ] && continue
  copy $run $dest/transfer2/$id
done
du -sh $dest/* 
