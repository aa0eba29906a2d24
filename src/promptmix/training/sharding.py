"""Sharded training: the frozen backbone split across processes with FSDP2, the prompt method
whole on every process.

A prompt method trains < 1M parameters on a backbone of up to billions, so what outgrows one
device is the frozen backbone. Under ``accelerate launch --config_file
configs/accelerate/fsdp.yaml`` the backbone's weights are sharded with PyTorch's FSDP2
(``fully_shard`` through Accelerate: every transformer layer its own unit, gathered for its
forward and freed after), while the prompt method is left out of sharding (Accelerate's
``ignored_modules``): each process holds the whole method, its gradient is averaged across
processes after backward (as DDP would), and checkpoints, ``save_method`` and ``--resume``
work on it unchanged. Only the method's parameters are in the optimizer.

- On CPU processes (gloo) Accelerate never selects FSDP (it picks its multi-CPU DDP mode),
  although torch's FSDP2 runs there; :func:`configure` switches the Accelerator to FSDP with
  the launcher's plugin settings, so a CPU run of the documented command really shards.
- Evaluation runs the prompted model's other entry points (``generate``, rank scoring):
  they are registered as FSDP forward methods so the root unit's weights are gathered
  around them, and every process scores every example (sharded layers need every process
  in each forward).
- Not supported, with a clear error: FSDP1 configs, stages that train backbone weights
  (``finetune``), MPT distillation (its teacher runs the backbone outside the student), and
  DeepSpeed without a GPU (Accelerate drops DeepSpeed for CPU processes and would run DDP).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from promptmix.inference.evaluate import is_sharded  # noqa: F401  (evaluation asks it too; training reads it here)

METHOD_MODULE = "method"  # PromptedModel's attribute holding the prompt method: never sharded
FORWARD_METHODS = ("generate", "score_label_rows", "score_continuations")


class ShardingError(ValueError):
    """A distributed set-up promptmix cannot run, with what to do instead."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() == "true"


def configure(accelerator: Any, cpu_processes: bool) -> None:
    """Make the launcher's FSDP / DeepSpeed request real (or refuse it) on a new Accelerator."""
    if _env_flag("ACCELERATE_USE_DEEPSPEED") and cpu_processes:
        raise ShardingError(
            "the DeepSpeed config needs CUDA GPUs: on CPU processes Accelerate does not use DeepSpeed (the run would "
            "silently be plain DDP). On CPU use configs/accelerate/fsdp.yaml (shards the frozen backbone) or ddp.yaml"
        )
    if not _env_flag("ACCELERATE_USE_FSDP"):
        return
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if cpu_processes:
        # Accelerate chose multi-CPU DDP (its gloo process group stays); torch's FSDP2 runs on CPU
        # over gloo. Every AcceleratorState() copies the process-level state, so set it there too.
        accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin()
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        accelerator.state.distributed_type = DistributedType.FSDP
    plugin = accelerator.state.fsdp_plugin
    if plugin.fsdp_version != 2:
        raise ShardingError(
            f"promptmix shards with FSDP2; the accelerate config asks for fsdp_version {plugin.fsdp_version}: "
            "set fsdp_version: 2 (see configs/accelerate/fsdp.yaml)"
        )
    plugin.ignored_modules = METHOD_MODULE


def check_trainable(model: nn.Module, trainable: list[nn.Parameter]) -> None:
    """Sharded runs train the prompt method only: its parameters are the ones never sharded."""
    method = getattr(model, METHOD_MODULE, None)
    own = {id(p) for p in method.parameters()} if method is not None else set()
    if any(id(p) not in own for p in trainable):
        raise ShardingError(
            "sharded training (FSDP) trains prompt methods over a frozen backbone; this stage trains "
            "backbone weights (finetune, BitFit, LoRA): use configs/accelerate/ddp.yaml"
        )


def register_forward_methods(model: nn.Module) -> None:
    """Let ``generate`` and rank scoring gather the root unit's weights like ``forward`` does."""
    from torch.distributed.fsdp import FSDPModule, register_fsdp_forward_method

    if isinstance(model, FSDPModule):
        for name in FORWARD_METHODS:
            if hasattr(model, name):
                register_fsdp_forward_method(model, name)


def average_gradients(params: list[nn.Parameter], world: int) -> None:
    """Average the replicated method's gradients across processes (DDP's all-reduce), in one
    collective over the flattened gradients."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)  # SUM: gloo has no AVG
    flat /= world
    for g, chunk in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(chunk.view_as(g))


def layout(model: nn.Module, optimizer: torch.optim.Optimizer, accelerator: Any) -> dict[str, Any]:
    """What each process holds: the FSDP units (gathered one at a time), frozen parameters
    locally (sharded or whole) and in all, and the parameters the optimizer updates.
    Collective: every process must call it."""
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    frozen = [p for p in model.parameters() if not p.requires_grad]
    local = sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in frozen)
    per_process = [local]
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        per_process = gather_object(per_process)
    return {
        "distributed": str(accelerator.distributed_type).split(".")[-1],
        "processes": accelerator.num_processes,
        "fsdp_units": sum(isinstance(m, FSDPModule) for m in model.modules()),
        "frozen_parameters": sum(p.numel() for p in frozen),
        "frozen_parameters_per_process": per_process,
        "optimized_parameters": sum(p.numel() for g in optimizer.param_groups for p in g["params"]),
    }
