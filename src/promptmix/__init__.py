"""promptmix: multi-task soft prompts (ATTEMPT, MPT, prompt tuning) on a frozen language model."""

import os

# OpenMP threads that finish a parallel region spin-wait for the next one unless told to sleep.
# On a shared machine (two training workers, a server beside a study) the spinning threads take
# the cores the others need: beside one busy process a SmolLM2 training step at torch's two
# threads took 1.45x its idle time with a passive wait against 2.58x with the runtime's default,
# at 1.10x the idle step (benchmarks/contention.py, 2026-12-07, docs/results.md section 1).
# The OpenMP runtime reads this when torch loads it, so it applies when promptmix is imported
# before torch (the CLI always is); a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
