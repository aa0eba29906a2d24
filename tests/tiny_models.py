"""Tiny random backbones built in memory and paths to the shared data, for every test.

Import these from here, never from ``conftest`` (pytest may load another conftest.py under
that module name).
"""

from __future__ import annotations

from pathlib import Path

import torch

# The decoder-only builder is the package's (the benchmark smoke runs build it too); re-exported
# here so that every test keeps importing its tiny models from one place.
from promptmix.testing import TINY_D, tiny_llama  # noqa: F401 (re-exported)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA_DIR = SHARED / "data"
T5_TOKENIZER = SHARED / "models" / "t5-small-tokenizer"


def tiny_t5(seed: int = 0, dropout: float = 0.0, initializer_factor: float = 1.0):
    """``initializer_factor`` 3 gives varied greedy decodes (at 1 every step picks one token)."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=32128,
        d_model=TINY_D,
        d_ff=64,
        d_kv=8,
        num_heads=4,
        num_layers=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        dropout_rate=dropout,
        initializer_factor=initializer_factor,
    )
    return T5ForConditionalGeneration(config).eval()
