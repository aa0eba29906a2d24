#!/usr/bin/env bash
# Copy the unfinished runs into benchmarks/results/inflight (no tb/, no lock files).
set -e
cd "$(dirname "$0")/../../.."  # the repository root
dest=benchmarks/results/inflight
git rm -rq --ignore-unmatch $dest/sources-v2
rm -rf $dest/sources-v2 $dest/mpt-source-v2-1000 $dest/transfer2
copy() {  # $1 run dir, $2 destination
  mkdir -p "$2"
  tar -C "$1" --exclude=tb --exclude='.promptmix-run.*' --exclude='*.lock' -cf - . | tar -C "$2" -xf -
}
if [ ! -f runs/smollm2/mpt-source-v2-1000/results.json ]; then copy runs/smollm2/mpt-source-v2-1000 $dest/mpt-source-v2-1000; fi
for run in runs/transfer2/runs/*; do
  id=$(basename $run)
  [ -f benchmarks/results/transfer2/$id.json ] && continue
  copy $run $dest/transfer2/$id
done
du -sh $dest/* 
