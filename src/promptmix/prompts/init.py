"""Initial values for a new soft prompt (Lester et al., 2021, Sec. 3; ATTEMPT C.2).

``vocab``: embeddings of m token ids sampled without replacement from the first 5,000
non-special vocabulary entries. SentencePiece (T5) and BPE (Llama, GPT-2) vocabularies are
ordered roughly by frequency, so "the 5,000 most frequent entries" are the lowest ids after
the special tokens, as in the prompt-tuning paper and the official ATTEMPT code.
``class-label``: Lester et al.'s class-label init: vector i is the embedding of the task's i-th
label word (averaged over its tokens when a word is several tokens, tokenised as the answer
follows the input, with a leading space on byte-level BPE vocabularies), and the vectors past
the last label come from the ``vocab`` draw ("we fall back to our sampled vocab strategy").
``text``: embeddings of a text's tokens, repeated or cut to m. ``random``: N(0, σ²) with σ
the embedding matrix's own standard deviation, so the prompt's scale matches real tokens.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
from torch import Tensor

Init = Literal["vocab", "class-label", "text", "random"]
INIT_CHOICES = get_args(Init)
VOCAB_TOP_K = 5000


def special_ids(tokenizer: Any) -> set[int]:
    return set(getattr(tokenizer, "all_special_ids", []) or []) if tokenizer is not None else set()


def label_token_ids(tokenizer: Any, word: str) -> list[int]:
    """The token ids of a label word as it stands in a target: with the leading space a
    decoder-only answer has (``Backbone.encode`` writes ``" " + target``) where the vocabulary
    marks word starts (byte-level BPE), as SentencePiece marks them itself."""
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    ids = [i for i in ids if i not in special_ids(tokenizer)]
    if not ids:
        raise ValueError(f"label word {word!r} tokenizes to nothing")
    return ids


def initial_prompt(
    embeddings: Tensor,
    prompt_length: int,
    init: str = "vocab",
    *,
    tokenizer: Any = None,
    text: str | None = None,
    generator: torch.Generator | None = None,
    label_words: list[str] | None = None,
) -> Tensor:
    """Return a new [prompt_length, d] prompt (a detached fp32 copy) from ``embeddings`` [V, d]."""
    weight = embeddings.detach().float()
    if init == "class-label":
        if not label_words or tokenizer is None:
            raise ValueError(
                "init='class-label' needs the task's label words and a tokenizer "
                "(a task without label words: use init='vocab')"
            )
        prompt = initial_prompt(embeddings, prompt_length, "vocab", tokenizer=tokenizer, generator=generator)
        for i, word in enumerate(label_words[:prompt_length]):
            prompt[i] = weight[torch.tensor(label_token_ids(tokenizer, word))].mean(0)
        return prompt
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
