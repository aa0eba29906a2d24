"""The one interface every prompt method implements.

A prompt method turns a batch of input embeddings into instance prompts:

    method(inputs_embeds [B, n, d], attention_mask [B, n], task_ids [B]) -> PromptOutput
        .prompts      [B, m, d]   prepended to the input by the backbone
        .prompt_mask  [B, m]      1 for real prompt slots (None: all real)
        .attention    [B, k] or [B, k, m] or None   what there is to inspect (ATTEMPT's a_j)

``attention_mask`` marks the tokens a method may look at: the backbone passes the real
*source* tokens only (for decoder-only training the answer tokens are excluded, so ATTEMPT's
max-pool never sees the label). ``task_ids`` index ``method.task_names``; one batch may mix
any tasks, and every method computes each example from its own task's parameters only, so a
mixed batch equals the same examples run task by task.

Nothing outside a method asks which method it is: the backbone calls ``forward``, training
calls ``param_groups``, checkpointing calls ``to_config`` / ``state_dict`` and
:func:`promptmix.prompts.build_method` rebuilds one from its config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


@dataclass
class PromptOutput:
    """What a prompt method returns for a batch.

    Shapes: ``prompts`` [B, m, d]; ``prompt_mask`` [B, m] (None = every slot real);
    ``attention`` [B, k] (instance-level) or [B, k, m] (token-level) or None.
    """

    prompts: Tensor
    prompt_mask: Tensor | None = None
    attention: Tensor | None = None


@dataclass
class MethodConfig:
    """Fields shared by every method's config. Subclasses add their own and validate them."""

    method: ClassVar[str] = ""
    prompt_length: int = 100
    """m: number of prompt vectors prepended to every input."""
    tasks: list[str] = dataclasses.field(default_factory=list)
    """Names of the tasks this method holds prompts for; task id i is tasks[i]."""

    def __post_init__(self) -> None:
        if self.prompt_length < 1:
            raise ValueError(f"prompt_length must be >= 1, got {self.prompt_length}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"task names must be unique, got {self.tasks}")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}


class PromptMethod(nn.Module):
    """Base class: maps (inputs_embeds, attention_mask, task_ids) to instance prompts.

    Subclasses set ``config`` (a :class:`MethodConfig`) and implement ``forward``,
    ``param_groups`` and, where tasks can be added after construction, ``add_task``.
    """

    config: MethodConfig

    def __init__(self, config: MethodConfig, hidden_size: int) -> None:
        super().__init__()
        self.config = config
        self.hidden_size = hidden_size

    # -- the interface -------------------------------------------------------------------------
    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor, task_ids: Tensor) -> PromptOutput:
        raise NotImplementedError

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by group name, so training can give each group its own
        learning rate (e.g. ``{"prompts": [...], "attention": [...]}``)."""
        raise NotImplementedError

    # -- shared helpers ------------------------------------------------------------------------
    @property
    def task_names(self) -> list[str]:
        return list(self.config.tasks)

    @property
    def prompt_length(self) -> int:
        return self.config.prompt_length

    def task_id(self, name: str) -> int:
        try:
            return self.config.tasks.index(name)
        except ValueError:
            raise KeyError(f"task {name!r} has no prompt in this {self.config.method} model; it holds {self.config.tasks}") from None

    def task_ids_for(self, names: list[str], device: torch.device | None = None) -> Tensor:
        """Task-name list -> the [B] long tensor ``forward`` takes."""
        return torch.tensor([self.task_id(n) for n in names], dtype=torch.long, device=device)

    def check_task_ids(self, task_ids: Tensor) -> None:
        if task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= len(self.config.tasks)):
            raise IndexError(f"task ids must lie in [0, {len(self.config.tasks)}), got {task_ids.tolist()}")

    def check_prompt(self, what: str, value: Tensor) -> None:
        """Refuse a prompt that is not [prompt_length, hidden_size], naming ``what`` and both shapes."""
        m, d = self.prompt_length, self.hidden_size
        if value.dim() != 2 or value.shape[-1] != d:
            raise ValueError(f"{what} has shape {tuple(value.shape)}, expected [{m}, {d}]")
        if value.shape[0] != m:
            raise ValueError(f"{what} has length {value.shape[0]} but this {self.config.method} model's prompts have length {m}; "
                             "every prompt it holds must have the same length")

    def to_config(self) -> dict[str, Any]:
        """JSON-serialisable description from which :func:`build_method` rebuilds this module."""
        return {**self.config.to_dict(), "hidden_size": self.hidden_size}

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for group in self.param_groups().values() for p in group if p.requires_grad)


def masked_max_pool(x: Tensor, mask: Tensor | None) -> Tensor:
    """Max over the sequence axis of ``x`` [B, n, d], ignoring positions where ``mask`` is 0.

    Returns [B, d]. A row with no real token pools to zeros rather than -inf.
    """
    if mask is None:
        return x.max(dim=1).values
    keep = mask.bool().unsqueeze(-1)  # [B, n, 1]
    pooled = x.masked_fill(~keep, torch.finfo(x.dtype).min).max(dim=1).values
    return torch.where(keep.any(dim=1), pooled, torch.zeros_like(pooled))
