"""Build each registered prompt method at tiny size with non-trivial random values, so tests
can run every method through the same checks."""

from __future__ import annotations

import torch

from promptmix.prompts import PromptMethod, SoftPrompt, SoftPromptConfig
from promptmix.prompts.attempt import Attempt
from promptmix.prompts.mpt import MPT


def _randomize(method: PromptMethod, gen: torch.Generator) -> PromptMethod:
    """Give every trainable tensor random values, so no task's parameters equal another's."""
    with torch.no_grad():
        for group in method.param_groups().values():
            for p in group:
                p.copy_(torch.randn(p.shape, generator=gen))
    return method


def make_method(name: str, tasks: list[str], hidden_size: int, prompt_length: int = 4, seed: int = 0) -> PromptMethod:
    gen = torch.Generator().manual_seed(seed)
    if name == "prompt-tuning":
        method = SoftPrompt(SoftPromptConfig(prompt_length=prompt_length), hidden_size, list(tasks))
        return _randomize(method, gen)
    if name == "attempt":
        sources = {f"src{i}": torch.randn(prompt_length, hidden_size, generator=gen) for i in range(2)}
        method = Attempt.from_prompts(sources, tasks, init_from="src0", attn_dim=8, shared_attention=True)
        return _randomize(method, gen)
    if name == "mpt":
        teachers = {t: torch.randn(prompt_length, hidden_size, generator=gen) for t in tasks}
        method = MPT.from_teachers(teachers, torch.randn(prompt_length, hidden_size, generator=gen), rank=2)
        return _randomize(method, gen)
    raise KeyError(f"no test factory for prompt method {name!r}; add one in tests/method_factories.py")
