"""Several trained prompt methods behind one: a frozen model answering every task in one batch.

ATTEMPT's promise (Sec. 3.3: "load θ, all source prompts, all target prompts and G once; any
mix of tasks in one batch") extended across runs: a ``PromptRouter`` holds methods trained
separately (an ATTEMPT-m run for GLUE, an MPT run for SuperGLUE, a few library prompts)
and is itself a :class:`PromptMethod` over their union of tasks::

    global task id g  ->  (member j, local id)        each example goes to its own method
    prompts[b]        =   [0 … 0 ; P_j(x_b)]           left-padded to m_max, prompt_mask 0 on pads

The backbone packs every row pads-first, so a row padded from m_j to m_max sees exactly the
positions it would see under its own method: a routed batch equals its examples run member
by member (tests/inference/test_router.py checks losses and generations).

Nothing is trainable here beyond the members' own parameters; a router is saved as its
members (``promptmix.prompts.checkpoint.save_method`` on each), never as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, cast

import torch
from torch import Tensor, nn

from promptmix._validation import validated
from promptmix.prompts.base import MethodConfig, PromptMethod, PromptOutput


@dataclass
class RoutedPromptOutput(PromptOutput):
    """A :class:`PromptOutput` whose rows come from different methods.

    ``attention`` [B, k_max] (or [B, k_max, m_max] for token-level members): each row's own
    method's weights, zero-padded on the right; ``attention_lengths`` [B] says how many of a
    row's k_max entries are real (0 for rows whose method has no attention, e.g. prompt
    tuning or MPT). ``attention`` is None when no row has any.
    """

    attention_lengths: Tensor | None = None

    def attention_row(self, b: int) -> Tensor | None:
        """Row ``b``'s attention without padding ([k] or [k, m]), or None."""
        if self.attention is None or self.attention_lengths is None or int(self.attention_lengths[b]) == 0:
            return None
        return self.attention[b, : int(self.attention_lengths[b])]


@validated
class RouterConfig(MethodConfig):
    """Built by :class:`PromptRouter` from its members: ``prompt_length`` is the longest member prompt."""

    method: ClassVar[str] = "router"


class PromptRouter(PromptMethod):
    """Route each example to the method that holds its task.

    Args:
        members: ``{name: method}`` or ``[(name, method), ...]``; a name says where a
            method came from (its run directory, a library entry) in errors and listings.
            A member given as ``(name, method, tasks)`` answers only ``tasks`` (some of the
            tasks it holds; None: all of them): a per-task-selected run keeps the whole
            method at each target's best step, and each answers its own target. Every member
            must have the same hidden size; task names must be unique across members (a task
            answered twice raises a ValueError naming both holders).

    Shapes: ``forward`` takes inputs_embeds [B, n, d], attention_mask [B, n], global task_ids
    [B] and returns prompts [B, m_max, d], prompt_mask [B, m_max] (pads first) and the
    per-row attention described in :class:`RoutedPromptOutput`.

    Example::

        router = PromptRouter({"runs/glue": attempt_m, "runs/boolq": mpt})
        model = PromptedModel(backbone, router)
        model.generate(ids, mask, router.task_ids_for(["rte", "boolq"]))
    """

    config: RouterConfig
    owner: Tensor  # buffers (register_buffer in __init__): task id -> member index, its task id there
    local_id: Tensor

    def __init__(
        self,
        members: Mapping[str, PromptMethod]
        | Sequence[tuple[str, PromptMethod] | tuple[str, PromptMethod, Sequence[str] | None]],
    ) -> None:
        given = list(members.items()) if isinstance(members, Mapping) else list(members)
        pairs = [(item[0], item[1]) for item in given]
        answers = [_answered(*item) for item in given]
        if not pairs:
            raise ValueError("a PromptRouter needs at least one prompt method")
        widths = {name: m.hidden_size for name, m in pairs}
        if len(set(widths.values())) != 1:
            raise ValueError(f"prompt methods have different hidden sizes: {widths}")
        holder: dict[str, str] = {}
        owner, local = [], []
        for j, ((name, method), tasks) in enumerate(zip(pairs, answers)):
            for task in tasks:
                k = method.task_id(task)
                if task in holder:
                    raise ValueError(
                        f"task {task!r} is held by both {holder[task]!r} and {name!r}; load only one prompt per task"
                    )
                holder[task] = name
                owner.append(j)
                local.append(k)
        config = RouterConfig(prompt_length=max(m.prompt_length for _, m in pairs))
        super().__init__(config, next(iter(widths.values())), list(holder))
        self.member_names = [name for name, _ in pairs]  # run directories, library prompt names, in order
        self.members = nn.ModuleList(m for _, m in pairs)
        self.register_buffer("owner", torch.tensor(owner, dtype=torch.long), persistent=False)  # [T]
        self.register_buffer("local_id", torch.tensor(local, dtype=torch.long), persistent=False)  # [T]

    # -- where tasks live ----------------------------------------------------------------------
    def member_of(self, task: str) -> tuple[str, PromptMethod]:
        """The (name, method) holding ``task``."""
        j = int(self.owner[self.task_id(task)])
        # nn.ModuleList types its items as Module; every member is a PromptMethod (__init__).
        return self.member_names[j], cast(PromptMethod, self.members[j])

    def attention_names(self, task: str) -> list[str] | None:
        """What the k attention weights of a ``task`` example are over: its own method's."""
        return self.member_of(task)[1].attention_names(task)

    # -- the interface -------------------------------------------------------------------------
    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor, task_ids: Tensor) -> RoutedPromptOutput:
        self.check_task_ids(task_ids)
        B, m = inputs_embeds.shape[0], self.prompt_length
        prompts = inputs_embeds.new_zeros(B, m, self.hidden_size)
        prompt_mask = attention_mask.new_zeros(B, m)
        owner, local = self.owner[task_ids], self.local_id[task_ids]
        parts: list[tuple[Tensor, Tensor]] = []  # (rows, attention) of members that have some
        for j, method in enumerate(self.members):
            rows = (owner == j).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            out = method(inputs_embeds[rows], attention_mask[rows], local[rows])
            mj = out.prompts.shape[1]
            prompts[rows, m - mj :] = out.prompts.to(prompts.dtype)  # left-padded: pads come first
            prompt_mask[rows, m - mj :] = 1 if out.prompt_mask is None else out.prompt_mask.to(prompt_mask.dtype)
            if out.attention is not None:
                parts.append((rows, out.attention))
        attention, lengths = _pad_attention(parts, B, m, inputs_embeds.device)
        return RoutedPromptOutput(
            prompts=prompts, prompt_mask=prompt_mask, attention=attention, attention_lengths=lengths
        )

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Every member's groups, keyed ``"<member index>.<group>"`` (members keep their own
        learning-rate split if anyone fine-tunes through a router)."""
        return {
            f"{j}.{group}": params
            for j, method in enumerate(self.members)
            for group, params in cast(PromptMethod, method).param_groups().items()
        }

    def to_config(self) -> dict:
        raise NotImplementedError("a PromptRouter is not saved as a whole: save each member with save_method")


def _answered(name: str, method: PromptMethod, tasks: Sequence[str] | None = None) -> list[str]:
    """The tasks a router member answers: ``tasks`` (checked against what it holds), in the
    method's order, or every task it holds."""
    if tasks is None:
        return list(method.task_names)
    missing = [t for t in tasks if t not in method.task_names]
    if missing:
        raise ValueError(f"{name!r} holds no prompt for {', '.join(map(repr, missing))}; it holds {method.task_names}")
    return [t for t in method.task_names if t in tasks]


def _pad_attention(
    parts: list[tuple[Tensor, Tensor]], B: int, m: int, device: torch.device
) -> tuple[Tensor | None, Tensor]:
    """Scatter each member's attention [b, k_j] (or [b, k_j, m_j]) into one zero-padded
    [B, k_max] (or [B, k_max, m]) tensor; token-level weights are left-padded like the prompts."""
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    if not parts:
        return None, lengths
    ndims = {a.dim() for _, a in parts}
    if len(ndims) != 1:
        raise ValueError("cannot batch instance-level and token-level attention together; route them separately")
    k_max = max(a.shape[1] for _, a in parts)
    first = parts[0][1]
    shape = (B, k_max) if first.dim() == 2 else (B, k_max, m)
    out = first.new_zeros(shape)
    for rows, a in parts:
        k = a.shape[1]
        if a.dim() == 2:
            out[rows, :k] = a
        else:
            out[rows, :k, m - a.shape[2] :] = a
        lengths[rows] = k
    return out, lengths
