"""The stages of the papers' pipeline, each a function of a :class:`TrainConfig`.

Every stage builds (method, loss, sampler, parameter groups) and calls the one loop through
:func:`promptmix.training.runs.run_method`:

``source``         prompt tuning per source task (or ONE prompt on their mixture, SPoT-g);
                   the best dev prompt goes into the library with its dev metrics.
``prior``          ATTEMPT on the source tasks (one prompt per source task, shared G):
                   the attention prior; target runs load its G (library.attention_prior).
``attempt``        ATTEMPT on one target or several (ATTEMPT-m: shared G, mixed batches);
                   variants and ablations via the method section.
``mpt-source``     MPT distillation of the library's teacher prompts into P* and task vectors.
``mpt-target``     MPT adaptation (MPT-m for several targets), task vectors = source mean.
``prompt-tuning``  prompt tuning baseline; SPoT-generic (library.init_from = an entry) and
                   SPoT-targeted (library.init_from = "auto": a probe prompt-tuning run,
                   5 epochs or 20 below 10k examples unless library.probe_steps, then the
                   most cosine-similar source prompt).
``finetune``       full fine-tuning, BitFit or LoRA (baseline.kind).

Use :func:`run_stage`; the CLI is ``promptmix train STAGE --config ...``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from promptmix._provenance import provenance
from promptmix.backbone import Backbone, PromptedModel
from promptmix.prompts import MPT, Attempt, SoftPrompt, initial_prompt
from promptmix.prompts.checkpoint import load_method
from promptmix.prompts.library import PromptLibrary, resolve_library_root
from promptmix.rundirs.data import TaskData, load_tasks, source_lengths
from promptmix.rundirs.layout import METHOD, MODEL
from promptmix.rundirs.read import register_run_tasks
from promptmix.tasks import get_task
from promptmix.training import sharding
from promptmix.training.baselines import NoPrompt, ParamSaver, unfreeze
from promptmix.training.card import write_card
from promptmix.training.config import TrainConfig
from promptmix.training.data import best_constant_score, constant_score, majority_score  # noqa: F401 - re-exported
from promptmix.training.distill import DistillLoss, distills
from promptmix.training.loop import SMALL_DATASET
from promptmix.training.rundir import StageResult, absolute_paths, check_fresh, open_run_dir, run_lock, write_result
from promptmix.training.runs import Context, load_backbone_for, make_accelerator, run_method


def run_stage(
    config: TrainConfig, *, resume: bool = False, backbone: Backbone | None = None, accelerator: Any = None
) -> StageResult:
    """Run ``config.stage``; ``backbone`` / ``accelerator`` may be shared between stages."""
    from accelerate.utils import set_seed  # only where a run trains: it is slow to import

    config = absolute_paths(config)  # the run records paths that mean the same from any directory
    check_fresh(Path(config.run.dir), resume)  # before the backbone loads: a mistake is told at once
    with run_lock(config.run.dir):  # one process trains into a run directory at a time
        if resume:  # the task files a run keeps: resuming needs no --tasks-dir
            register_run_tasks(config.run.dir)
        check_task_names(config)
        accelerator = accelerator or make_accelerator(config)
        set_seed(config.run.seed)
        backbone = backbone or load_backbone_for(config)
        ctx = Context(config, accelerator, backbone, resume)
        return RUNNERS[config.stage](ctx)


def check_task_names(config: TrainConfig) -> None:
    """Raise UnknownTaskError (with the closest names) for a data.tasks entry that names no
    registered task, before the backbone loads rather than after."""
    for name in config.data.tasks:
        get_task(name)


def _ids(names: list[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names)}


def _library(ctx: Context) -> PromptLibrary:
    return PromptLibrary(ctx.config.library.root)


def _source_prompts(ctx: Context) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The library's source prompts {entry: [m, d]} and each entry's task."""
    lib = _library(ctx)
    prompts = {name: lib.load(name, ctx.backbone) for name in ctx.config.library.sources}
    return prompts, {name: lib.get(name).task for name in prompts}


def _source_task_names(ctx: Context, entry_tasks: dict[str, str]) -> list[str]:
    """The tasks of the source entries; data.tasks, when given, must be the same ones."""
    tasks = list(dict.fromkeys(entry_tasks.values()))
    given = ctx.config.data.tasks
    if given and sorted(given) != sorted(tasks):
        raise ValueError(f"data.tasks {given} differ from the tasks of library.sources {tasks}; leave data.tasks empty")
    return tasks


def task_seed(run_seed: int, task: str) -> int:
    """The seed of ``task``'s new prompt: a function of the run seed and the task's NAME, so the
    prompts of different tasks start apart even when each is trained in its own run (where a
    position in a task list would be 0 for all), and a rerun or resume draws the same one."""
    digest = hashlib.sha256(f"{run_seed}:{task}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def _soft_prompt(ctx: Context, tasks: list[str], inits: dict[str, torch.Tensor] | None = None) -> SoftPrompt:
    """Prompt tuning over ``tasks`` (method.prompt_tuning); each starts from ``inits[task]``
    (which then sets the prompt length) or a fresh prompt as the config's ``init`` says."""
    inits, config = inits or {}, ctx.config.method.prompt_tuning
    if inits:
        config = dataclasses.replace(config, prompt_length=next(iter(inits.values())).shape[0])
    method = SoftPrompt(config, ctx.backbone.hidden_size, tasks)
    for task in tasks:
        if task in inits:
            method.set_prompt(task, inits[task])
        else:
            gen = torch.Generator().manual_seed(task_seed(ctx.config.run.seed, task))
            words = get_task(task).label_words if config.init == "class-label" else None
            method.initialize(task, ctx.backbone.embeddings, ctx.backbone.tokenizer, gen, label_words=words)
    return method


def _with(config: TrainConfig, **sections: dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with some section fields replaced."""
    return dataclasses.replace(
        config, **{name: dataclasses.replace(getattr(config, name), **values) for name, values in sections.items()}
    )


# -- one run per task ------------------------------------------------------------------------------
def per_task(single: Callable[[Context], StageResult]) -> Callable[[Context], StageResult]:
    """A stage that, given several data.tasks without data.multi_task, trains one independent
    run per task in ``<run>/<task>`` (a single-task experiment over a benchmark) and reports
    them together; otherwise one run on all of them."""

    def stage(ctx: Context) -> StageResult:
        cfg = ctx.config
        if cfg.data.multi_task or len(cfg.data.tasks) <= 1:
            return single(ctx)
        run_dir, children = Path(cfg.run.dir), []
        for task in cfg.data.tasks:
            child = _with(cfg, data={"tasks": [task]}, run={"dir": str(run_dir / task)})
            children.append(single(dataclasses.replace(ctx, config=child)))
        return _combine(ctx, children, run_dir)

    return stage


def _combine(ctx: Context, children: list[StageResult], run_dir: Path) -> StageResult:
    """One result over per-task runs: each task's metrics and their mean "score"."""

    def merged(split: str) -> dict[str, Any]:
        out = {c.tasks[0]: getattr(c, split)[c.tasks[0]] for c in children if c.tasks[0] in getattr(c, split)}
        scores = [m["score"] for m in out.values() if "score" in m]
        return {**out, "score": sum(scores) / len(scores)} if scores else out

    done = all(c.completed for c in children)
    result = StageResult(
        ctx.config.stage,
        str(run_dir),
        [c.tasks[0] for c in children],
        done,
        sum(c.steps for c in children),
        dev=merged("dev"),
        test=merged("test"),
        trainable_parameters=sum(c.trainable_parameters for c in children),
        seconds=sum(c.seconds for c in children),
        extra={"runs": [c.run_dir for c in children]},
    )
    if done:
        open_run_dir(ctx.config, run_dir, True, ctx.accelerator, trains=False)
        write_result(result, ctx.accelerator)
        write_card(run_dir, ctx.config, result, ctx.backbone, {}, ctx.accelerator)
    return result


# -- 1. source prompts ---------------------------------------------------------------------------
def train_source(ctx: Context) -> StageResult:
    cfg = ctx.config
    if cfg.library.mixture_prompt:  # SPoT-generic: one prompt on the mixture of the source tasks
        name = cfg.library.mixture_prompt
        data = load_tasks(cfg.data, cfg.data.tasks)
        result = run_method(
            ctx, _soft_prompt(ctx, [name]), data, {t: 0 for t in data}, Path(cfg.run.dir), extra={"mixture": True}
        )
        _add_to_library(ctx, result, name, name, "+".join(data), {"score": result.dev.get("score", 0.0)})
        return result
    return per_task(_source_prompt)(ctx)


def _source_prompt(ctx: Context) -> StageResult:
    """Prompt tuning on one source task; the best prompt becomes library entry prefix + task."""
    cfg = ctx.config
    data = load_tasks(cfg.data, cfg.data.tasks)
    (task,) = data
    result = run_method(ctx, _soft_prompt(ctx, [task]), data, {task: 0}, Path(cfg.run.dir))
    _add_to_library(
        ctx,
        result,
        cfg.library.save_prefix + task,
        task,
        task,
        result.dev.get(task, {}),
        card=source_card(ctx.config, result, data[task]),
    )
    return result


def source_card(config: TrainConfig, result: StageResult, data: TaskData) -> dict[str, Any]:
    """A source prompt's card (see :func:`promptmix.prompts.library.card_markdown`)."""
    task = data.task
    names = list(task.score_metrics or task.metric_names)
    metric = (
        (names[0] if len(names) == 1 else "mean of " + " and ".join(names))
        if task.main_metric == "score"
        else task.main_metric
    )
    dev = result.dev.get(task.name, {})
    settings = {
        "prompt_length": config.method.prompt_tuning.prompt_length,
        "init": config.method.prompt_tuning.init,
        "lr": config.optim.lr,
        "batch_size": config.optim.batch_size,
        "max_source_length": source_lengths({task.name: task}, config.data.max_source_length)[task.name],
        "max_steps": config.optim.max_steps,
        "warmup_steps": config.optim.warmup_steps,
        "warmup_ratio": config.optim.warmup_ratio,
        "eval_every": config.eval.every,
        "patience": config.eval.patience,
        "scoring": config.eval.scoring,
        "dev_examples": len(data.dev),
        "train_examples": len(data.train),
    }
    best = best_constant_score(data, "dev")
    return {
        "metric": metric,
        "dev_score": dev.get(task.main_metric),
        "majority_dev_score": majority_score(data, "dev"),
        "best_constant_dev_score": best[1] if best else None,
        "best_constant_answer": best[0] if best else None,
        "best_step": result.best_step,
        "steps": result.steps,
        "examples_seen": (result.best_step or 0) * config.optim.batch_size,
        "seconds": round(result.seconds, 1),
        "early_stopped": bool(result.extra.get("early_stopped")),
        "seed": config.run.seed,
        "settings": settings,
        **provenance(),
    }


def _add_to_library(
    ctx: Context,
    result: StageResult,
    entry: str,
    prompt_task: str,
    task: str,
    metrics: dict[str, Any],
    card: dict[str, Any] | None = None,
) -> None:
    if result.completed and ctx.accelerator.is_main_process:
        method = load_method(Path(result.run_dir) / METHOD, ctx.backbone)
        assert isinstance(method, SoftPrompt)  # source stages train prompt tuning (_soft_prompt)
        # A source stage may be the one that makes a shipped library's prompts (configs/smollm2).
        library = PromptLibrary(ctx.config.library.root, update_shipped=True)
        library.add(
            entry,
            method.task_prompt(prompt_task),
            task=task,
            method="prompt-tuning",
            backbone=ctx.backbone,
            metrics={k: float(v) for k, v in metrics.items()},
            card=card,
            overwrite=True,
        )
    ctx.accelerator.wait_for_everyone()  # every process sees the entry from here on


# -- 2./3. ATTEMPT ------------------------------------------------------------------------------
def _attempt(ctx: Context, targets: list[str], init_from: Any) -> Attempt:
    prompts, _ = _source_prompts(ctx)
    # The source prompts fix m, whatever method.attempt.prompt_length holds (as its help says).
    length = next(iter(prompts.values())).shape[0]
    config = dataclasses.replace(ctx.config.method.attempt, prompt_length=length)
    method = Attempt.from_prompts(prompts, targets, init_from=init_from if config.use_target else None, config=config)
    prior = ctx.config.library.attention_prior
    if prior is not None:
        prior_method = load_method(Path(prior) / METHOD, ctx.backbone)
        if not isinstance(prior_method, Attempt):
            raise ValueError(
                f"library.attention_prior {prior} holds a {prior_method.config.method} method, not ATTEMPT"
            )
        method.load_attention_prior(prior_method.attention_state())
    return method


def train_prior(ctx: Context) -> StageResult:
    _, entry_tasks = _source_prompts(ctx)
    tasks = _source_task_names(ctx, entry_tasks)
    init = {task: entry for entry, task in entry_tasks.items()}  # each source task starts from its own prompt
    data = load_tasks(ctx.config.data, tasks)
    return run_method(
        ctx,
        _attempt(ctx, list(data), {task: init[task] for task in data}),
        data,
        _ids(list(data)),
        Path(ctx.config.run.dir),
    )


@per_task
def train_attempt(ctx: Context) -> StageResult:
    data = load_tasks(ctx.config.data, ctx.config.data.tasks)
    method = _attempt(ctx, list(data), ctx.config.library.init_from)
    return run_method(ctx, method, data, _ids(list(data)), Path(ctx.config.run.dir))


# -- 4./5. MPT ----------------------------------------------------------------------------------
def mpt_student(ctx: Context, teachers: dict[str, torch.Tensor]) -> MPT:
    """The MPT student before distillation: P* per ``method.mpt.init`` ('vocab', the paper's
    sampled vocabulary embeddings, seeded by the run seed; or 'teacher-mean'), u_k v_k = 1."""
    # The teachers fix l, as the source prompts fix ATTEMPT's m.
    config = dataclasses.replace(ctx.config.method.mpt, prompt_length=next(iter(teachers.values())).shape[0])
    shared: torch.Tensor | str = "teacher-mean"
    if config.init == "vocab":
        gen = torch.Generator().manual_seed(task_seed(ctx.config.run.seed, "mpt-shared-prompt"))
        shared = initial_prompt(
            ctx.backbone.embeddings,
            next(iter(teachers.values())).shape[0],
            "vocab",
            tokenizer=ctx.backbone.tokenizer,
            generator=gen,
        )
    return MPT.from_teachers(teachers, shared, config=config)


def train_mpt_source(ctx: Context) -> StageResult:
    prompts, entry_tasks = _source_prompts(ctx)
    tasks = _source_task_names(ctx, entry_tasks)
    data = load_tasks(ctx.config.data, tasks)
    teachers = {task: prompts[entry] for entry, task in entry_tasks.items()}
    teachers = {name: teachers[name] for name in data}  # task-id order = data order
    student = mpt_student(ctx, teachers)
    teacher = None
    if distills(ctx.config.distill):  # λ = 0 (decomposition only): no teacher is built or run
        if sharding.is_sharded(ctx.accelerator):
            raise sharding.ShardingError(
                "MPT distillation runs its teacher on the backbone outside the student, which FSDP "
                "cannot gather for; run mpt-source with configs/accelerate/ddp.yaml"
            )
        teacher_method = _soft_prompt(ctx, list(teachers), teachers).to(ctx.accelerator.device).requires_grad_(False)
        teacher = PromptedModel(ctx.backbone, teacher_method).eval()
    return run_method(
        ctx, student, data, _ids(list(data)), Path(ctx.config.run.dir), loss_fn=DistillLoss(teacher, ctx.config.distill)
    )


@per_task
def train_mpt_target(ctx: Context) -> StageResult:
    assert ctx.config.library.mpt_source is not None  # TrainConfig requires it for this stage
    source = load_method(resolve_library_root(ctx.config.library.mpt_source) / METHOD, ctx.backbone)
    if not isinstance(source, MPT):
        raise ValueError(
            f"library.mpt_source {ctx.config.library.mpt_source} holds a {source.config.method} method, not MPT"
        )
    data = load_tasks(ctx.config.data, ctx.config.data.tasks)
    method = MPT.for_targets(source, list(data))
    return run_method(ctx, method, data, _ids(list(data)), Path(ctx.config.run.dir))


# -- 6. baselines -------------------------------------------------------------------------------
@per_task
def train_prompt_tuning(ctx: Context) -> StageResult:
    cfg, lib = ctx.config, _library(ctx)
    data = load_tasks(cfg.data, cfg.data.tasks)
    extra: dict[str, Any] = {}
    if cfg.library.init_from == "auto":
        inits, extra["spot_targeted"] = _spot_targeted(ctx, data)
    elif cfg.library.init_from is not None:
        prompt = lib.load(cfg.library.init_from, ctx.backbone)
        inits = {task: prompt for task in data}
    else:
        inits = {}
    return run_method(ctx, _soft_prompt(ctx, list(data), inits), data, _ids(list(data)), Path(cfg.run.dir), extra=extra)


SPOT_PROBE_EPOCHS, SPOT_PROBE_EPOCHS_SMALL = 5, 20  # ATTEMPT App. C.6, below SMALL_DATASET training examples


def _spot_targeted(ctx: Context, data: dict[str, TaskData]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """SPoT-t: train fresh target prompts (``<run>/probe``; the paper's 5 or 20 epochs unless
    ``library.probe_steps``), then start each target from the source prompt whose mean-pooled
    prompt has the highest cosine similarity to it."""
    cfg = ctx.config
    probe_optim: dict[str, Any] = {"max_steps": cfg.library.probe_steps}
    if cfg.library.probe_steps is None:  # the paper: 5 epochs, 20 for small datasets
        examples = sum(len(d.train) for d in data.values())
        probe_optim["epochs"] = float(SPOT_PROBE_EPOCHS_SMALL if examples < SMALL_DATASET else SPOT_PROBE_EPOCHS)
    probe_cfg = _with(cfg, optim=probe_optim, eval={"test": False}, run={"dir": str(Path(cfg.run.dir) / "probe")})
    probe_ctx = dataclasses.replace(ctx, config=probe_cfg)
    probe = run_method(probe_ctx, _soft_prompt(ctx, list(data)), data, _ids(list(data)), Path(probe_cfg.run.dir))
    trained = load_method(Path(probe.run_dir) / METHOD, ctx.backbone)
    assert isinstance(trained, SoftPrompt)  # the probe is prompt tuning (_soft_prompt)
    sources, _ = _source_prompts(ctx)
    inits, report = {}, {}
    for task in data:
        target = trained.task_prompt(task).float().mean(0)
        sims = {
            name: float(F.cosine_similarity(target, p.float().mean(0).to(target), dim=0)) for name, p in sources.items()
        }
        best = max(sims, key=sims.__getitem__)
        inits[task], report[task] = sources[best], {"chosen": best, "cosine": sims}
    return inits, report


@per_task
def train_finetune(ctx: Context) -> StageResult:
    cfg = ctx.config
    backbone = copy.deepcopy(ctx.backbone)  # never train a backbone other stages share
    params = unfreeze(backbone, cfg.baseline)
    data = load_tasks(cfg.data, cfg.data.tasks)
    run_dir = Path(cfg.run.dir)
    extra = {
        "stage": "finetune",
        "kind": cfg.baseline.kind,
        "tasks": list(data),
        "baseline": dataclasses.asdict(cfg.baseline),
        "model": cfg.model.name,
    }
    method = NoPrompt(list(data), backbone.hidden_size, trainable=params)
    saver = ParamSaver(run_dir / MODEL, backbone, extra)
    return run_method(
        dataclasses.replace(ctx, backbone=backbone),
        method,
        data,
        _ids(list(data)),
        run_dir,
        saver=saver,
        extra=extra,
        frozen_backbone=False,
    )


# The function of each of promptmix.training.config.STAGES.
RUNNERS: dict[str, Callable[[Context], StageResult]] = {
    "source": train_source,
    "prior": train_prior,
    "attempt": train_attempt,
    "mpt-source": train_mpt_source,
    "mpt-target": train_mpt_target,
    "prompt-tuning": train_prompt_tuning,
    "finetune": train_finetune,
}
