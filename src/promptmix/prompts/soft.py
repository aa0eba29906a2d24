"""Prompt tuning (Lester et al., 2021): one trainable soft prompt P_k (m × d) per task.

    instance prompt for an example of task k:  P_k            (the same for every input)

Trainable: P_k for every task held. With several tasks the prompts live in one [T, m, d]
parameter and each example gathers its own task's row, so a batch can mix tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from promptmix.prompts.base import MethodConfig, PromptMethod, PromptOutput
from promptmix.prompts.init import INIT_CHOICES


@dataclass
class SoftPromptConfig(MethodConfig):
    """Prompt tuning. ``init`` says how ``SoftPrompt.initialize`` fills a new prompt."""

    method = "prompt-tuning"
    init: str = "vocab"
    """'vocab' (m ids from the 5,000 most frequent entries), 'text' or 'random'."""
    init_text: str | None = None
    """Text whose token embeddings initialise the prompt when init='text'."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init not in INIT_CHOICES:
            raise ValueError(f"init must be one of {INIT_CHOICES}, got {self.init!r}")
        if self.init == "text" and not self.init_text:
            raise ValueError("init='text' needs init_text")


class SoftPrompt(PromptMethod):
    """Per-task soft prompts.

    Args:
        config: prompt length, task names, init.
        hidden_size: d, the backbone's embedding width.

    Shapes: ``prompts`` parameter [T, m, d]; ``forward`` returns prompts [B, m, d].

    Example::

        method = SoftPrompt(SoftPromptConfig(prompt_length=100, tasks=["rte"]), hidden_size=768)
        out = method(embeds, mask, torch.zeros(len(embeds), dtype=torch.long))
    """

    config: SoftPromptConfig

    def __init__(self, config: SoftPromptConfig, hidden_size: int) -> None:
        super().__init__(config, hidden_size)
        self.prompts = nn.Parameter(torch.zeros(len(config.tasks), config.prompt_length, hidden_size))

    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor, task_ids: Tensor) -> PromptOutput:
        self.check_task_ids(task_ids)
        return PromptOutput(prompts=self.prompts[task_ids].to(inputs_embeds.dtype))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"prompts": [self.prompts]}

    def set_prompt(self, task: str, value: Tensor) -> None:
        """Overwrite one task's prompt (e.g. from the library or an init)."""
        self.check_prompt(f"prompt for {task!r}", value)
        with torch.no_grad():
            self.prompts[self.task_id(task)] = value.to(self.prompts)

    def add_task(self, task: str, value: Tensor) -> None:
        """Append a task with initial prompt ``value`` [m, d]."""
        if task in self.config.tasks:
            raise ValueError(f"task {task!r} already has a prompt")
        grown = torch.cat([self.prompts.detach(), value.detach().to(self.prompts).unsqueeze(0)])
        self.prompts = nn.Parameter(grown, requires_grad=self.prompts.requires_grad)
        self.config.tasks.append(task)

    def task_prompt(self, task: str) -> Tensor:
        """Task ``task``'s prompt as a plain [m, d] tensor (detached)."""
        return self.prompts[self.task_id(task)].detach().clone()
