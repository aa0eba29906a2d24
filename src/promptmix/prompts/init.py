"""Initial values for a new soft prompt (Lester et al., 2021, Sec. 3; ATTEMPT C.2).

``vocab``: embeddings of m token ids sampled without replacement from the first 5,000
non-special vocabulary entries. SentencePiece (T5) and BPE (Llama, GPT-2) vocabularies are
ordered roughly by frequency, so "the 5,000 most frequent entries" are the lowest ids after
the special tokens, as in the prompt-tuning paper and the official ATTEMPT code.
``text``: embeddings of a text's tokens, repeated or cut to m. ``random``: N(0, σ²) with σ
the embedding matrix's own standard deviation, so the prompt's scale matches real tokens.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

INIT_CHOICES = ("vocab", "text", "random")
VOCAB_TOP_K = 5000


def special_ids(tokenizer: Any) -> set[int]:
    return set(getattr(tokenizer, "all_special_ids", []) or []) if tokenizer is not None else set()


def initial_prompt(
    embeddings: Tensor,
    prompt_length: int,
    init: str = "vocab",
    *,
    tokenizer: Any = None,
    text: str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Return a new [prompt_length, d] prompt (a detached fp32 copy) from ``embeddings`` [V, d]."""
    weight = embeddings.detach().float()
    if init == "vocab":
        skip = special_ids(tokenizer)
        pool = [i for i in range(weight.shape[0]) if i not in skip][:VOCAB_TOP_K]
        if len(pool) < prompt_length:
            raise ValueError(f"vocabulary has {len(pool)} usable ids, fewer than prompt_length={prompt_length}")
        order = torch.randperm(len(pool), generator=generator)[:prompt_length]
        ids = torch.tensor(pool)[order]
        return weight[ids].clone()
    if init == "text":
        if not text or tokenizer is None:
            raise ValueError("init='text' needs init_text and a tokenizer")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"init_text {text!r} tokenizes to nothing")
        reps = -(-prompt_length // len(ids))
        return weight[torch.tensor((ids * reps)[:prompt_length])].clone()
    if init == "random":
        std = float(weight.std())
        return torch.randn(prompt_length, weight.shape[1], generator=generator) * std
    raise ValueError(f"unknown prompt init {init!r}; choose one of {INIT_CHOICES} or pass a saved prompt")
