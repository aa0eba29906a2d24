"""What every stage does around the loop, in its run directory (:mod:`promptmix.training.rundir`).

``run_method`` is the common path of every prompt stage: it builds the :class:`TrainingJob`,
runs the loop, reloads the best method and scores it on test. With ``eval.select: per-task``
a multi-task run also keeps each target's best method (``<run>/best-per-task/<task>``) and
scores each target on test with its own; a target that never had a dev value is scored with
``<run>/method`` instead, and results.json's ``extra.test_with_method`` names it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from promptmix.backbone import Backbone, PromptedModel
from promptmix.inference.evaluate import evaluate
from promptmix.loading import load_backbone
from promptmix.prompts import PromptMethod
from promptmix.rundirs.data import TaskData, source_lengths
from promptmix.rundirs.layout import METHOD, PER_TASK
from promptmix.training import sharding
from promptmix.training.card import write_card
from promptmix.training.config import TrainConfig
from promptmix.training.data import TrainSet, build_batch_sampler
from promptmix.training.loop import TrainingJob, train
from promptmix.training.losses import LossFn, task_loss
from promptmix.training.rundir import (
    MethodSaver,
    StageResult,
    finished_result,
    open_run_dir,
    save_task_definitions,
    write_result,
)


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
    from accelerate import Accelerator  # only where a run trains: it is slow to import

    cpu_processes = os.environ.get("LOCAL_RANK") is not None and not torch.cuda.is_available()
    accelerator = Accelerator(
        gradient_accumulation_steps=config.optim.gradient_accumulation_steps,
        mixed_precision=config.optim.mixed_precision,
        cpu=cpu_processes,
    )
    sharding.configure(accelerator, cpu_processes)  # FSDP on CPU processes too; DeepSpeed refused without a GPU
    return accelerator


def load_backbone_for(config: TrainConfig) -> Backbone:
    """The frozen backbone as the model section asks (dtype, dropout, checkpointing)."""
    model_cfg = config.model
    backbone = load_backbone(model_cfg.name, dtype=getattr(torch, model_cfg.dtype), dropout=model_cfg.backbone_dropout)
    if model_cfg.gradient_checkpointing:
        backbone.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return backbone


TEST_PREDICTIONS = "test_predictions"  # <run>/test_predictions/<task>.jsonl: the scored checkpoint's answers


def run_method(
    ctx: Context,
    method: PromptMethod,
    tasks: dict[str, TaskData],
    task_ids: dict[str, int],
    run_dir: Path,
    *,
    loss_fn: LossFn = task_loss,
    saver: Any = None,
    extra: dict[str, Any] | None = None,
    frozen_backbone: bool = True,
) -> StageResult:
    """Train ``method`` on ``tasks`` in ``run_dir`` through the loop; score the best on test."""
    config, acc = ctx.config, ctx.accelerator
    open_run_dir(config, run_dir, ctx.resume, acc)
    save_task_definitions(run_dir, tasks, acc)
    done = finished_result(run_dir, config.optim.max_steps) if ctx.resume else None
    if done is not None:
        write_card(run_dir, config, done, ctx.backbone, tasks, acc)
        return done
    model = PromptedModel(ctx.backbone, method.to(acc.device))
    # The input limits go with the saved method, so inference truncates as training did.
    limits = source_lengths({name: data.task for name, data in tasks.items()}, config.data.max_source_length)
    extra = {"stage": config.stage, "tasks": list(tasks), "max_source_length": limits, **(extra or {})}
    per_task = config.eval.select == "per-task" and len(tasks) > 1
    if per_task and saver is not None:
        raise ValueError("eval.select per-task keeps a prompt method per target; the finetune stage tunes one backbone")
    saver = saver or MethodSaver(run_dir / METHOD, ctx.backbone, extra)
    task_savers = (
        {name: MethodSaver(run_dir / PER_TASK / name, ctx.backbone, {**extra, "selected_for": name}) for name in tasks}
        if per_task
        else {}
    )
    train_set = TrainSet(tasks, task_ids, ctx.backbone, config.data)
    has_dev = any(data.dev for data in tasks.values())
    show = config.run.progress
    dev = (lambda m: evaluate(m, tasks, "dev", task_ids, config.eval, limits, acc, show)) if has_dev else None
    job = TrainingJob(
        name=f"{config.stage} {'+'.join(tasks)}",
        model=model,
        param_groups=method.param_groups(),
        train_set=train_set,
        batch_sampler=build_batch_sampler(config.data, train_set, config.optim.batch_size, config.run.seed),
        loss_fn=loss_fn,
        evaluate=dev,
        on_best=saver,
        frozen=[ctx.backbone.model] if frozen_backbone and config.model.backbone_eval_mode else [],
        # The loop hands back the model it trained (typed nn.Module there): this PromptedModel.
        on_task_best=(
            (lambda m, task, step, metrics: task_savers[task](cast(PromptedModel, m), step, {task: metrics}))
            if per_task
            else None
        ),
        main_metrics={name: data.task.main_metric for name, data in tasks.items()} if per_task else {},
    )
    outcome = train(job, config, run_dir, acc, resume=ctx.resume)
    result = StageResult(
        config.stage,
        str(run_dir),
        list(tasks),
        outcome.completed,
        outcome.step,
        outcome.best_step,
        outcome.best_metrics,
        {},
        sum(p.numel() for ps in job.param_groups.values() for p in ps if p.requires_grad),
        outcome.seconds,
        {**extra, "early_stopped": True} if outcome.early_stopped else extra,
    )
    if not outcome.completed:
        write_card(run_dir, config, result, ctx.backbone, tasks, acc, outcome.total_steps)
        return result  # stopped early (run.stop_after): no results.json, resume later
    predictions = run_dir / TEST_PREDICTIONS
    if per_task and outcome.task_best:
        result.dev = _mean({task: best["metrics"] for task, best in outcome.task_best.items()}, tasks)
        result.extra = {
            **result.extra,
            "select": "per-task",
            "best_step_per_task": {task: best["step"] for task, best in outcome.task_best.items()},
        }
        if config.eval.test and any(data.test for data in tasks.values()):
            scored: dict[str, Any] = {}

            def score(names: list[str]) -> None:
                """Test scores of ``names`` with the method now loaded (no mean: they mix checkpoints)."""
                scored.update(
                    evaluate(
                        model,
                        {name: tasks[name] for name in names},
                        "test",
                        task_ids,
                        config.eval,
                        limits,
                        acc,
                        show,
                        predictions_dir=predictions,
                    )
                )
                scored.pop("score", None)

            for name in outcome.task_best:  # each target with the method saved at its own best step
                task_savers[name].load_into(model)
                score([name])
            others = [name for name in tasks if name not in outcome.task_best and tasks[name].test]
            if others:  # no dev value ever selected them: scored with the mean's best (<run>/method)
                saver.load_into(model)
                score(others)
                result.extra = {**result.extra, "test_with_method": others}
            result.test = _mean(scored, tasks)
        saver.load_into(model)
    else:
        saver.load_into(model)
        if config.eval.test and any(data.test for data in tasks.values()):
            result.test = evaluate(
                model,
                tasks,
                "test",
                task_ids,
                config.eval,
                limits,
                acc,
                show,
                predictions_dir=predictions,
            )
    write_result(result, acc)
    write_card(run_dir, config, result, ctx.backbone, tasks, acc, outcome.total_steps)
    return result


def _mean(per_task: dict[str, dict[str, Any]], tasks: dict[str, TaskData]) -> dict[str, Any]:
    """``{task: metrics, ..., "score": mean of the tasks' main metrics}``, as :func:`evaluate` reports."""
    if not per_task:
        return {}
    score = sum(metrics[tasks[name].task.main_metric] for name, metrics in per_task.items()) / len(per_task)
    return {**per_task, "score": score}
