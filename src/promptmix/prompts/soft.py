"""Prompt tuning (Lester et al., 2021): one trainable soft prompt P_k (m × d) per task.

    instance prompt for an example of task k:  P_k            (the same for every input)

Trainable: P_k for every task held, N·m·d parameters for N tasks (76,800 per task at m = 100,
d = 768). With several tasks the prompts live in one [T, m, d] parameter and each example
gathers its own task's row, so a batch can mix tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from promptmix._validation import validated
from promptmix.prompts.base import MethodConfig, PromptMethod, PromptOutput
from promptmix.prompts.init import Init, initial_prompt


@validated
class SoftPromptConfig(MethodConfig):
    """Prompt tuning (also what trains the source prompts ATTEMPT and MPT start from)."""

    method: ClassVar[str] = "prompt-tuning"
    init: Init = field(
        default="vocab",
        metadata={
            "help": "how a new prompt starts (SoftPrompt.initialize): 'vocab' (m ids from the 5,000 most "
            "frequent vocabulary entries), 'class-label' (the task's label words first, then vocab; Lester et al.), "
            "'text' (the embeddings of init_text) or 'random'"
        },
    )
    init_text: str | None = field(
        default=None, metadata={"help": "text whose token embeddings start a prompt when init='text'"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init == "text" and not self.init_text:
            raise ValueError("init='text' needs init_text")

    def parameter_counts(self, hidden_size: int, num_tasks: int) -> dict[str, int]:
        return {"prompts": num_tasks * self.prompt_length * hidden_size}


class SoftPrompt(PromptMethod):
    """Per-task soft prompts.

    Args:
        config: prompt length and init.
        hidden_size: d, the backbone's embedding width.
        tasks: the tasks holding a prompt, in task-id order.

    Shapes: ``prompts`` parameter [T, m, d]; ``forward`` returns prompts [B, m, d].

    Example::

        method = SoftPrompt(SoftPromptConfig(prompt_length=100), hidden_size=768, tasks=["rte"])
        method.initialize("rte", backbone.embeddings, backbone.tokenizer)
        out = method(embeds, mask, torch.zeros(len(embeds), dtype=torch.long))
    """

    config_class = SoftPromptConfig
    config: SoftPromptConfig

    def __init__(self, config: SoftPromptConfig, hidden_size: int, tasks: Sequence[str] = ()) -> None:
        super().__init__(config, hidden_size, tasks)
        self.prompts = nn.Parameter(torch.zeros(len(self.task_names), config.prompt_length, hidden_size))

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

    def initialize(
        self,
        task: str,
        embeddings: Tensor,
        tokenizer: Any = None,
        generator: torch.Generator | None = None,
        label_words: list[str] | None = None,
    ) -> None:
        """Fill ``task``'s prompt as ``config.init`` says, from the embedding matrix [V, d]
        (see :func:`promptmix.prompts.init.initial_prompt`; ``label_words`` for 'class-label')."""
        self.set_prompt(
            task,
            initial_prompt(
                embeddings,
                self.prompt_length,
                self.config.init,
                tokenizer=tokenizer,
                text=self.config.init_text,
                generator=generator,
                label_words=label_words,
            ),
        )

    def add_task(self, task: str, value: Tensor) -> None:
        """Append a task with initial prompt ``value`` [m, d]."""
        if task in self.task_names:
            raise ValueError(f"task {task!r} already has a prompt")
        grown = torch.cat([self.prompts.detach(), value.detach().to(self.prompts).unsqueeze(0)])
        self.prompts = nn.Parameter(grown, requires_grad=self.prompts.requires_grad)
        self._new_task(task)

    def task_prompt(self, task: str) -> Tensor:
        """Task ``task``'s prompt as a plain [m, d] tensor (detached)."""
        return self.prompts[self.task_id(task)].detach().clone()
