"""MPT, multitask prompt tuning (Wang et al., ICLR 2023, arXiv 2303.02861).

Prompt decomposition (Eq. 2), generalised from rank 1 to rank r:

    P̂_k = P* ∘ (u_k v_k)          P* [l, d] shared, u_k [l, r], v_k [r, d], ∘ = Hadamard

(rank 1: u_k v_k = u_k ⊗ v_kᵀ, the paper's form). Source training distils teacher prompts into
P* and the task vectors; target adaptation (Sec. 3.2) starts from the source P* with u_t, v_t
the average of the source task vectors, and trains P*, u_t, v_t with two learning rates.

Trainable: P* (group ``shared_prompt``) and every task's u_k, v_k (group ``task_vectors``,
stored as [T, l, r] and [T, r, d] and gathered per example, so a batch may mix tasks).
Trainable parameters: l·d + T·r·(l + d); 77,668 for one task at l = 100, d = 768, r = 1.

Initialisation of the task vectors (not specified by the paper; PEFT's N(0, 0.02) makes
every prompt ≈ 0 and the frozen model sees almost nothing): u_k v_k is exactly all ones,
so P̂_k = P* at the start. Component 0 is u[:, 0] = 1, v[0] = 1; components 1..r-1 have
u ~ N(0, 1) and v = 0, so they add nothing at init but get distinct gradients. (Equal
components such as u = 1, v = 1/r get identical gradients forever: rank r would stay 1.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from promptmix.prompts.base import MethodConfig, PromptMethod, PromptOutput

TASK_INIT_CHOICES = ("mean", "ones")  # a task added later: the mean of the others, or u v = 1
SHARED_INIT_CHOICES = ("vocab", "teacher-mean")  # P* before distillation


@dataclass
class MPTConfig(MethodConfig):
    """MPT: ``prompt_length`` is l; the rank of the task vectors and how P* starts."""

    method: ClassVar[str] = "mpt"
    rank: int = field(default=1, metadata={"help": "r: rank of the task-specific multiplier u_k v_k (the paper: 1)"})
    init: str = field(
        default="vocab",
        metadata={
            "help": "mpt-source: the student's P* at the start: 'vocab' (the paper: sampled vocabulary embeddings) "
            "or 'teacher-mean' (this project's extension: the mean of the teacher prompts)"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.init not in SHARED_INIT_CHOICES:
            raise ValueError(f"init must be one of {SHARED_INIT_CHOICES}, got {self.init!r}")

    def parameter_counts(self, hidden_size: int, num_tasks: int) -> dict[str, int]:
        """P* (l·d) once, u_k (l·r) and v_k (r·d) per task."""
        length, r = self.prompt_length, self.rank
        return {
            "shared_prompt": length * hidden_size,
            "task_u": num_tasks * r * length,
            "task_v": num_tasks * r * hidden_size,
        }


class MPT(PromptMethod):
    """A shared prompt P* modulated per task by a low-rank multiplier.

    Args:
        config: prompt length l, rank r.
        hidden_size: d, the backbone's embedding width.
        tasks: the tasks holding their own u_k, v_k, in task-id order.

    P* starts at zero (fill it with ``set_shared_prompt`` or load a state dict); the task
    vectors start so that u_k v_k = 1 (see the module docstring).

    Shapes: ``shared_prompt`` [l, d]; ``u`` [T, l, r]; ``v`` [T, r, d]; ``forward`` returns
    prompts [B, l, d] and no attention.

    Example::

        p_star = initial_prompt(embeddings, 100, "vocab")             # the paper's student init
        source = MPT.from_teachers({"mnli": p_mnli, "sst2": p_sst2}, p_star)   # distil into this
        target = MPT.for_targets(source, ["rte", "cb"])                # MPT-m on the targets
        out = target(embeds, mask, target.task_ids_for(["rte", "cb"]))
    """

    config_class = MPTConfig
    config: MPTConfig

    def __init__(self, config: MPTConfig, hidden_size: int, tasks: Sequence[str] = ()) -> None:
        super().__init__(config, hidden_size, tasks)
        self.shared_prompt = nn.Parameter(torch.zeros(config.prompt_length, hidden_size))
        u, v = self._fresh_vectors(len(self.task_names))
        self.u, self.v = nn.Parameter(u), nn.Parameter(v)

    def _fresh_vectors(self, n: int) -> tuple[Tensor, Tensor]:
        """n tasks' (u [n, l, r], v [n, r, d]) with u_k v_k = all ones."""
        length, r, d = self.config.prompt_length, self.config.rank, self.hidden_size
        u, v = torch.zeros(n, length, r), torch.zeros(n, r, d)
        u[:, :, 0], v[:, 0, :] = 1.0, 1.0
        u[:, :, 1:] = torch.randn(n, length, r - 1)  # v = 0 there: no effect until trained
        return u, v

    # -- the interface -------------------------------------------------------------------------
    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor, task_ids: Tensor) -> PromptOutput:
        self.check_task_ids(task_ids)
        return PromptOutput(prompts=self._task_prompts(task_ids).to(inputs_embeds.dtype))

    def _task_prompts(self, task_ids: Tensor) -> Tensor:
        """Eq. 2 for each example: P* ∘ (u_k v_k) -> [B, l, d]."""
        return self.shared_prompt * torch.bmm(self.u[task_ids], self.v[task_ids])

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"shared_prompt": [self.shared_prompt], "task_vectors": [self.u, self.v]}

    # -- prompts and task vectors --------------------------------------------------------------
    def set_shared_prompt(self, value: Tensor) -> None:
        """Overwrite P* with ``value`` [l, d]."""
        self.check_prompt("shared prompt", value)
        with torch.no_grad():
            self.shared_prompt.copy_(value)

    def set_task_vectors(self, task: str, u: Tensor, v: Tensor) -> None:
        """Overwrite task ``task``'s u [l, r] and v [r, d]."""
        k = self.task_id(task)
        if tuple(u.shape) != tuple(self.u.shape[1:]) or tuple(v.shape) != tuple(self.v.shape[1:]):
            raise ValueError(
                f"task vectors for {task!r} have shapes {tuple(u.shape)}, {tuple(v.shape)}; "
                f"expected {tuple(self.u.shape[1:])}, {tuple(self.v.shape[1:])}"
            )
        with torch.no_grad():
            self.u[k], self.v[k] = u.to(self.u), v.to(self.v)

    def task_vectors(self, task: str) -> tuple[Tensor, Tensor]:
        """Task ``task``'s (u [l, r], v [r, d]), detached copies."""
        k = self.task_id(task)
        return self.u[k].detach().clone(), self.v[k].detach().clone()

    def export_prompt(self, task: str) -> Tensor:
        """Task ``task``'s prompt P* ∘ (u_k v_k) as a plain [l, d] soft prompt (detached), e.g.
        for ``SoftPrompt.set_prompt`` or the prompt library."""
        ids = self.task_ids_for([task], device=self.u.device)
        return self._task_prompts(ids)[0].detach().clone()  # same arithmetic as forward

    def add_task(self, task: str, init: str = "mean") -> None:
        """Append a task. ``init='mean'``: u, v = the mean of the tasks already held (MPT's
        target adaptation from source tasks); ``'ones'``: fresh vectors, u v = 1."""
        if task in self.task_names:
            raise ValueError(f"task {task!r} already has task vectors")
        if init not in TASK_INIT_CHOICES:
            raise ValueError(f"init must be one of {TASK_INIT_CHOICES}, got {init!r}")
        if init == "mean":
            if not self.task_names:
                raise ValueError("init='mean' needs tasks to average; this MPT model holds none (use init='ones')")
            u, v = self.u.detach().mean(0, keepdim=True), self.v.detach().mean(0, keepdim=True)
        else:
            u, v = self._fresh_vectors(1)
        self.u = nn.Parameter(torch.cat([self.u.detach(), u.to(self.u)]), requires_grad=self.u.requires_grad)
        self.v = nn.Parameter(torch.cat([self.v.detach(), v.to(self.v)]), requires_grad=self.v.requires_grad)
        self._new_task(task)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_teachers(
        cls,
        teacher_prompts: Mapping[str, Tensor],
        shared_prompt: Tensor | str,
        config: MPTConfig | None = None,
        **fields: Any,
    ) -> MPT:
        """An MPT to distil ``teacher_prompts`` ({task: [l, d]}, plain prompt tuning) into: one
        task per teacher, u_k v_k = 1, so every task starts at P*.

        ``shared_prompt``: P*'s initial value [l, d]. The paper "randomly initialize[s] a
        corresponding student prompt" (Sec. 3.1) by "randomly sampling tokens from T5's
        vocabulary" (App. A): pass ``initial_prompt(embeddings, l, "vocab", ...)``. The string
        ``"teacher-mean"`` starts P* at the teachers' mean instead, an extension of this project
        (the student then starts close to every teacher; it is not the paper's method).
        ``config`` (default ``MPTConfig()``) with ``fields`` replaced; l and d come from the
        teachers."""
        names = list(teacher_prompts)
        if not names:
            raise ValueError("from_teachers needs at least one teacher prompt")
        first = teacher_prompts[names[0]]
        config = dataclasses.replace(config or MPTConfig(), **{"prompt_length": int(first.shape[0]), **fields})
        method = cls(config, int(first.shape[-1]), names)
        for name in names:
            method.check_prompt(f"teacher prompt {name!r}", teacher_prompts[name])
        if isinstance(shared_prompt, str):
            if shared_prompt != "teacher-mean":
                raise ValueError(f"shared_prompt must be a [l, d] tensor or 'teacher-mean', got {shared_prompt!r}")
            shared_prompt = torch.stack([teacher_prompts[n].detach().float() for n in names]).mean(0)
        method.set_shared_prompt(shared_prompt)
        return method

    @classmethod
    def for_targets(cls, source: MPT, targets: Sequence[str]) -> MPT:
        """Target adaptation (Sec. 3.2): a new MPT over ``targets`` whose P* is a copy of the
        trained ``source``'s P* and whose every task starts at the mean source task vectors.
        One target is MPT; several share P* (MPT-m). The config is the source's."""
        if not source.task_names:
            raise ValueError("the source MPT holds no tasks whose vectors could be averaged")
        method = cls(source.config, source.hidden_size, targets).to(
            device=source.shared_prompt.device, dtype=source.shared_prompt.dtype
        )
        with torch.no_grad():
            method.shared_prompt.copy_(source.shared_prompt)
            method.u.copy_(source.u.mean(0, keepdim=True).expand_as(method.u))
            method.v.copy_(source.v.mean(0, keepdim=True).expand_as(method.v))
        return method
