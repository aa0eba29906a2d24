#!/usr/bin/env bash
# The GPU measurements of issue 14 in one run of a few minutes (prepared; NOT yet run on a GPU):
#   train_speed.py on T5-base and T5-large at the papers' shape, batch 32 x (100 prompt + 256
#   input) tokens, target 3, random weights at the real shapes (benchmarks/_common.py, over the
#   shipped t5-small tokenizer/config): promptmix vs PEFT vs the bare limit, fp32 and bf16
#   autocast, SDPA vs eager attention, torch.compile; TFLOP/s and share of the bf16 peak;
#   then serving.py's offline mixed-task vs single-task vs reload throughput on T5-base.
#
#   bash benchmarks/gpu.sh                 # on a CUDA machine; outputs under $OUT (or benchmarks/results/gpu-DATE)
#   bash benchmarks/gpu.sh --cpu-check     # every command at tiny shapes on CPU (seconds): the script runs
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
if [[ "${1:-}" == "--cpu-check" ]]; then
  out=${OUT:-$(mktemp -d)}
  shape=(--device cpu --batch 2 --prompt-length 4 --input-length 8 --warmup 0 --repeats 1 --no-memory)
  backbones=(tiny)
  serving=(--smoke)
else
  out=${OUT:-benchmarks/results/gpu-$(date -u +%F)}
  shape=(--device cuda --batch 32 --prompt-length 100 --input-length 256 --warmup 3 --repeats 10 --no-memory)
  backbones=(t5-base t5-large)
  serving=(--backbone t5-base --device cuda --examples 64 --max-batch-size 64 --concurrency 1,16 --requests 64)
fi
mkdir -p "$out"
run() {  # run NAME ARGS...: one train_speed.py run, printed and kept in $out/NAME.txt
  local name=$1; shift
  echo "== $name: train_speed.py $*"
  $PY benchmarks/train_speed.py "$@" 2>&1 | grep -v -i "warn" | tee "$out/$name.txt"
}
all=limit,pm-pt,peft-pt,pm-attempt,pm-attempt-m,pm-mpt-m,peft-mpt-m
for bb in "${backbones[@]}"; do
  run "$bb-bf16-sdpa" --backbone "$bb" "${shape[@]}" --precision bf16 --variants "$all"
  run "$bb-fp32-sdpa" --backbone "$bb" "${shape[@]}" --precision fp32 --variants limit,pm-pt,peft-pt
  run "$bb-bf16-eager" --backbone "$bb" "${shape[@]}" --precision bf16 --attn eager --variants limit,pm-pt
  run "$bb-bf16-sdpa-compile" --backbone "$bb" "${shape[@]}" --precision bf16 --compile --variants limit,pm-pt,peft-pt
done
echo "== serving.py ${serving[*]}"
$PY benchmarks/serving.py "${serving[@]}" 2>&1 | grep -v -i "warn" | tee "$out/serving.txt"
echo "outputs in $out"
