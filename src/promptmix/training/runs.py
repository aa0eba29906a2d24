"""A run directory and what every stage does around the loop.

Run directory layout (``run.dir``)::

    config.yaml          the resolved TrainConfig (every field, defaults included)
    metrics.jsonl        one JSON object per line: {"step", "epoch", "loss", "lr/<group>", ...}
                         every run.log_every steps, {"step", "dev": {task: metrics, "score"},
                         "dev_seconds"} (dev_seconds: the evaluation's wall time), and at each
                         start {"step", "setup": {distributed, processes, fsdp_units, frozen
                         parameters in all and held per process, optimized_parameters}}
    tb/                  TensorBoard event files (same scalars)
    checkpoints/         resumable state (see promptmix.training.checkpoint); latest.json
    method/              the best-on-dev prompt method (the final one without dev data),
                         written with promptmix.prompts.checkpoint.save_method: method.json
                         (config incl. task names, backbone identity, extra = {stage, tasks,
                         step, dev}) + method.safetensors; load with load_method(dir, backbone)
    model/               baselines that tune the backbone (finetune stage) instead of method/
    results.json         {stage, tasks, completed, steps, best_step, dev, test,
                         trainable_parameters, seconds, ...}

``run_method`` is the common path of every prompt stage: it builds the :class:`TrainingJob`,
runs the loop, reloads the best method and scores it on test.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promptmix._io import atomic_directory, atomic_write_text, read_json, recover_directory
from promptmix.backbone import Backbone, PromptedModel
from promptmix.prompts import PromptMethod
from promptmix.prompts.checkpoint import load_method, save_method
from promptmix.training import sharding
from promptmix.training.config import TrainConfig
from promptmix.training.data import TaskData, TrainSet, build_batch_sampler
from promptmix.training.evaluate import evaluate
from promptmix.training.loop import TrainingJob, train
from promptmix.training.losses import LossFn, task_loss

RESULTS = "results.json"
CONFIG = "config.yaml"
RESUMABLE_KEYS = ("run.dir", "run.stop_after", "run.progress")  # may differ between invocations of one run


class RunExistsError(FileExistsError, ValueError):
    """A fresh run asked for a directory that already holds one (resume it or pick another)."""


@dataclass
class StageResult:
    """What a stage reports (also ``results.json``)."""

    stage: str
    run_dir: str
    tasks: list[str]
    completed: bool
    steps: int = 0
    best_step: int | None = None
    dev: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] = field(default_factory=dict)
    trainable_parameters: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Context:
    """Shared by the runs of one stage invocation."""

    config: TrainConfig
    accelerator: Any
    backbone: Backbone
    resume: bool = False


def make_accelerator(config: TrainConfig) -> Any:
    """An Accelerator for the config. Under a distributed launcher (LOCAL_RANK set) on a
    machine without CUDA it asks for CPU processes explicitly: Accelerate only picks its
    multi-CPU (gloo) mode when told the run is on CPU. An FSDP launch shards the frozen
    backbone there as well (:mod:`promptmix.training.sharding`)."""
    import os

    import torch
    from accelerate import Accelerator

    cpu_processes = os.environ.get("LOCAL_RANK") is not None and not torch.cuda.is_available()
    accelerator = Accelerator(gradient_accumulation_steps=config.optim.gradient_accumulation_steps,
                              mixed_precision=config.optim.mixed_precision, cpu=cpu_processes)
    sharding.configure(accelerator, cpu_processes)  # FSDP on CPU processes too; DeepSpeed refused without a GPU
    return accelerator


def load_backbone_for(config: TrainConfig) -> Backbone:
    """The frozen backbone as the model section asks (dtype, dropout, checkpointing)."""
    import torch

    from promptmix.loading import load_backbone

    model_cfg = config.model
    backbone = load_backbone(model_cfg.name, dtype=getattr(torch, model_cfg.dtype), dropout=model_cfg.backbone_dropout)
    if model_cfg.gradient_checkpointing:
        backbone.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return backbone


def open_run_dir(config: TrainConfig, run_dir: Path, resume: bool, accelerator: Any) -> Path:
    """Create ``run_dir`` and write config.yaml; refuse to mix a fresh run into an old one."""
    started = (run_dir / "checkpoints").exists() or (run_dir / RESULTS).exists()
    if started and not resume:
        raise RunExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose another run.dir")
    if resume and (run_dir / CONFIG).is_file():
        changed = _differences(yaml.safe_load((run_dir / CONFIG).read_text()), config.to_dict())
        if changed:
            raise ValueError(f"--resume with a config that differs from {run_dir / CONFIG} in {changed}; "
                             "resume with the run's own config")
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume:  # finish or roll back a replacement of the best method a crash interrupted
            for kept in ("method", "model"):
                recover_directory(run_dir / kept, clean=True)
        # run.stop_after belongs to one invocation: a later --resume from config.yaml runs to the end.
        saved = dataclasses.replace(config, run=dataclasses.replace(config.run, stop_after=None))
        atomic_write_text(run_dir / CONFIG, saved.to_yaml())
    accelerator.wait_for_everyone()
    return run_dir


def _differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (ignoring RESUMABLE_KEYS)."""
    keys = sorted(set(saved) | set(current))
    out = []
    for key in keys:
        a, b, name = saved.get(key), current.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{name}.")
        elif a != b and name not in RESUMABLE_KEYS:
            out.append(name)
    return out


def finished_result(run_dir: Path) -> StageResult | None:
    """The result of a run that already completed (resume skips it), else None."""
    path = run_dir / RESULTS
    if not path.is_file():
        return None
    result = StageResult(**read_json(path))
    return result if result.completed else None


def write_result(result: StageResult, accelerator: Any) -> StageResult:
    if accelerator.is_main_process:
        atomic_write_text(Path(result.run_dir) / RESULTS, json.dumps(result.to_dict(), indent=2) + "\n")
    return result


class MethodSaver:
    """Keeps the best prompt method in ``<run>/method`` (save_method inside an atomic directory)."""

    def __init__(self, directory: Path, backbone: Backbone, extra: dict[str, Any]) -> None:
        self.directory, self.backbone, self.extra = directory, backbone, extra

    def __call__(self, model: PromptedModel, step: int, metrics: dict[str, Any]) -> None:
        with atomic_directory(self.directory, overwrite=True) as tmp:
            save_method(model.method, tmp, self.backbone, extra={**self.extra, "step": step, "dev": metrics})

    def load_into(self, model: PromptedModel) -> None:
        best = load_method(self.directory, self.backbone)
        model.method.load_state_dict(best.state_dict())


def max_source_length(config: TrainConfig):
    return lambda data: data.max_source_length(config.data)


def run_method(ctx: Context, method: PromptMethod, tasks: dict[str, TaskData], task_ids: dict[str, int], run_dir: Path, *,
               loss_fn: LossFn = task_loss, saver: Any = None, extra: dict[str, Any] | None = None,
               frozen_backbone: bool = True) -> StageResult:
    """Train ``method`` on ``tasks`` in ``run_dir`` through the loop; score the best on test."""
    config, acc = ctx.config, ctx.accelerator
    open_run_dir(config, run_dir, ctx.resume, acc)
    done = finished_result(run_dir) if ctx.resume else None
    if done is not None:
        return done
    model = PromptedModel(ctx.backbone, method.to(acc.device))
    extra = {"stage": config.stage, "tasks": list(tasks), **(extra or {})}
    saver = saver or MethodSaver(run_dir / "method", ctx.backbone, extra)
    train_set = TrainSet(tasks, task_ids, ctx.backbone, config.data)
    has_dev = any(data.dev for data in tasks.values())
    show = config.run.progress
    dev = (lambda m: evaluate(m, tasks, "dev", task_ids, config.eval, max_source_length(config), acc, show)) if has_dev else None
    job = TrainingJob(
        name=f"{config.stage} {'+'.join(tasks)}", model=model, param_groups=method.param_groups(), train_set=train_set,
        batch_sampler=build_batch_sampler(config.data, train_set, config.optim.batch_size, config.run.seed),
        loss_fn=loss_fn, evaluate=dev, on_best=saver,
        frozen=[ctx.backbone.model] if frozen_backbone and config.model.backbone_eval_mode else [],
    )
    outcome = train(job, config, run_dir, acc, resume=ctx.resume)
    result = StageResult(config.stage, str(run_dir), list(tasks), outcome.completed, outcome.step, outcome.best_step,
                         outcome.best_metrics, {}, sum(p.numel() for ps in job.param_groups.values() for p in ps if p.requires_grad),
                         outcome.seconds, {**extra, "early_stopped": True} if outcome.early_stopped else extra)
    if not outcome.completed:
        return result  # stopped early (run.stop_after): no results.json, resume later
    saver.load_into(model)
    if config.eval.test and any(data.test for data in tasks.values()):
        result.test = evaluate(model, tasks, "test", task_ids, config.eval, max_source_length(config), acc, show)
    return write_result(result, acc)
