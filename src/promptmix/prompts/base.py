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
calls ``param_groups``, checkpointing calls ``to_config`` / ``state_dict``,
:func:`promptmix.prompts.build_method` rebuilds one from its config, inference asks
``attention_names`` and :mod:`promptmix.params` asks the config's ``parameter_counts``.

A method's config (a :class:`MethodConfig` subclass, :func:`promptmix._validation.validated`)
holds its hyperparameters, each field with its help text, choices and bounds declared; the same
dataclass is a section of the training YAML (``method.<name>``). The
tasks a module holds (and ATTEMPT's source prompts) are the module's own state, given when it is
built and grown by ``add_task``: building or growing a method never edits a config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from promptmix._validation import PositiveInt, validated


@dataclass
class PromptOutput:
    """What a prompt method returns for a batch.

    Shapes: ``prompts`` [B, m, d]; ``prompt_mask`` [B, m] (None = every slot real);
    ``attention`` [B, k] (instance-level) or [B, k, m] (token-level) or None.
    """

    prompts: Tensor
    prompt_mask: Tensor | None = None
    attention: Tensor | None = None


@validated
class MethodConfig:
    """Hyperparameters every method has; each method's config (also ``@validated``) adds its own,
    declaring their choices and bounds, and checks rules between them in ``__post_init__``."""

    method: ClassVar[str] = ""
    prompt_length: PositiveInt = field(
        default=100,
        metadata={
            "help": "m (l for MPT): prompt vectors prepended to every input; stages that start from "
            "library or source-run prompts take it from those"
        },
    )

    def __post_init__(self) -> None:
        """Rules between fields (a subclass's; none here)."""

    def parameter_counts(self, hidden_size: int, num_tasks: int) -> dict[str, int]:
        """Trainable parameters by group of a module with these settings holding ``num_tasks``
        tasks at width ``hidden_size`` (what :mod:`promptmix.params` reports)."""
        raise NotImplementedError(f"{type(self).__name__} does not count its parameters")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}


C = TypeVar("C", bound=MethodConfig)


def config_with_length(config: C | None, kind: type[C], length: int, fields: dict[str, Any], what: str) -> C:
    """``config`` (default ``kind(prompt_length=length)``) with ``fields`` replaced; a ValueError
    naming both lengths when it asks for another prompt length than ``what`` (a prompt) has."""
    config = (
        dataclasses.replace(config, **fields) if config is not None else kind(**{"prompt_length": length, **fields})
    )
    if config.prompt_length != length:
        raise ValueError(
            f"prompt_length {config.prompt_length} conflicts with {what}, which has length {length}; "
            f"the prompts fix the length (give {length}, or no prompt_length)"
        )
    return config


class PromptMethod(nn.Module):
    """Base class: maps (inputs_embeds, attention_mask, task_ids) to instance prompts.

    Args:
        config: the method's :class:`MethodConfig` (kept, never edited).
        hidden_size: d, the backbone's embedding width.
        tasks: names of the tasks held, in task-id order.

    Subclasses set ``config_class`` and implement ``forward``, ``param_groups`` and, where
    tasks can be added after construction, ``add_task``.
    """

    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    config: MethodConfig

    def __init__(self, config: MethodConfig, hidden_size: int, tasks: Sequence[str] = ()) -> None:
        super().__init__()
        tasks = list(tasks)
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"task names must be unique, got {tasks}")
        self.config = config
        self.hidden_size = hidden_size
        self._tasks = tasks

    # -- the interface -------------------------------------------------------------------------
    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor, task_ids: Tensor) -> PromptOutput:
        raise NotImplementedError

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by group name, so training can give each group its own
        learning rate (e.g. ``{"prompts": [...], "attention": [...]}``)."""
        raise NotImplementedError

    def attention_names(self, task: str) -> list[str] | None:
        """What the k weights of ``PromptOutput.attention`` are over for an example of ``task``,
        or None for a method without attention over prompts."""
        return None

    # -- shared helpers ------------------------------------------------------------------------
    @property
    def task_names(self) -> list[str]:
        return list(self._tasks)

    @property
    def prompt_length(self) -> int:
        return self.config.prompt_length

    def task_id(self, name: str) -> int:
        try:
            return self._tasks.index(name)
        except ValueError:
            raise KeyError(
                f"task {name!r} has no prompt in this {self.config.method} model; it holds {self._tasks}"
            ) from None

    def task_ids_for(self, names: list[str], device: torch.device | None = None) -> Tensor:
        """Task-name list -> the [B] long tensor ``forward`` takes."""
        return torch.tensor([self.task_id(n) for n in names], dtype=torch.long, device=device)

    def check_task_ids(self, task_ids: Tensor) -> None:
        if task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= len(self._tasks)):
            raise IndexError(f"task ids must lie in [0, {len(self._tasks)}), got {task_ids.tolist()}")

    def _new_task(self, task: str) -> None:
        """Append ``task`` to the tasks held (``add_task`` calls this once its tensors have grown)."""
        if task in self._tasks:
            raise ValueError(f"task {task!r} already has a prompt")
        self._tasks.append(task)

    def check_prompt(self, what: str, value: Tensor) -> None:
        """Refuse a prompt that is not [prompt_length, hidden_size], naming ``what`` and both shapes."""
        m, d = self.prompt_length, self.hidden_size
        if value.dim() != 2 or value.shape[-1] != d:
            raise ValueError(f"{what} has shape {tuple(value.shape)}, expected [{m}, {d}]")
        if value.shape[0] != m:
            raise ValueError(
                f"{what} has length {value.shape[0]} but this {self.config.method} model's prompts have length {m}; "
                "every prompt it holds must have the same length"
            )

    # -- config round trip ---------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """JSON-serialisable description from which :func:`build_method` rebuilds this module:
        the config's fields, ``tasks``, ``hidden_size`` (and what else the constructor takes)."""
        return {**self.config.to_dict(), "tasks": self.task_names, "hidden_size": self.hidden_size}

    @classmethod
    def from_config(cls, description: dict[str, Any]) -> PromptMethod:
        """The module :meth:`to_config` described, parameters at zero: the config's fields build
        ``config_class``, the other keys (``hidden_size``, ``tasks``, ...) go to the constructor."""
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        rest = {k: v for k, v in description.items() if k not in names and k != "method"}
        config = cls.config_class(**{k: v for k, v in description.items() if k in names})
        return cls(config, **rest)

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
