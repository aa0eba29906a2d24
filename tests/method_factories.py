"""Build each registered prompt method at tiny size with non-trivial random values, so tests
can run every method through the same checks."""

from __future__ import annotations

import torch

from promptmix.prompts import PromptMethod, SoftPrompt, SoftPromptConfig


def make_method(name: str, tasks: list[str], hidden_size: int, prompt_length: int = 4, seed: int = 0) -> PromptMethod:
    gen = torch.Generator().manual_seed(seed)
    if name == "prompt-tuning":
        method = SoftPrompt(SoftPromptConfig(prompt_length=prompt_length, tasks=list(tasks)), hidden_size)
        with torch.no_grad():
            method.prompts.copy_(torch.randn(method.prompts.shape, generator=gen))
        return method
    raise KeyError(f"no test factory for prompt method {name!r}; add one in tests/method_factories.py")
