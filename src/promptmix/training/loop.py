"""THE training loop. Every stage (source prompts, attention prior, ATTEMPT, MPT distillation
and adaptation, the baselines) is a :class:`TrainingJob` handed to :func:`train`: a model, its
parameter groups, a batch sampler, a loss, a dev evaluation and what to do with a new best.

- HuggingFace Accelerate: one CPU or GPU, or several processes / nodes via
  ``accelerate launch`` (DDP, or FSDP2 sharding the frozen backbone:
  :mod:`promptmix.training.sharding`; configs in ``configs/accelerate``); mixed
  precision (``optim.mixed_precision``); gradient accumulation (``accelerator.accumulate``).
- AdamW (or Adam) with weight decay, one optimizer parameter group per method group, each
  with its own learning rate (ATTEMPT's and MPT's two-speed rates), and
  ``get_linear_schedule_with_warmup`` (warm-up in steps or as a fraction of the run). The
  scheduler is stepped once per optimizer step (not handed to ``accelerator.prepare``, which
  would step it once per process).
- Global batches: ``optim.batch_size`` examples per optimizer step over all processes and
  micro-steps; each process takes its share (:func:`promptmix.training.data.micro_batch`),
  so the data order and the update do not depend on the number of processes.
- Dev evaluation every ``eval.every`` steps or once per epoch (``eval.every: epoch``, the
  official code's cadence), and at the last step; the best dev score's method is kept.
- Checkpoints (:mod:`promptmix.training.checkpoint`) every ``run.save_every`` steps and at
  the end; ``resume=True`` restores parameters, optimizer, scheduler, RNG and data position.
- Logs: ``metrics.jsonl``; Accelerate's experiment trackers (``run.log_with``: TensorBoard
  under ``tb/`` by default, wandb, mlflow, ...; tags ``train/...`` and ``eval/...``); a tqdm bar
  with loss, rates and ETA on a terminal, plain lines when stderr is not one (a log file).
- Repeatable runs: with ``run.deterministic`` (the default) the loop runs under
  ``torch.use_deterministic_algorithms`` (:func:`deterministic_algorithms`), so a run repeats
  bit for bit on one seed at any thread count, not only at one thread.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from promptmix._io import atomic_write_text
from promptmix.rundirs.config import EPOCH
from promptmix.training import checkpoint as ckpt
from promptmix.training import sharding
from promptmix.training.config import OptimConfig, TrainConfig
from promptmix.training.data import BatchStream, Collator, StreamState, TrainSet, count_label_tokens, micro_batch
from promptmix.training.losses import LossFn


@dataclass
class TrainingJob:
    """What a stage plugs into the loop.

    ``evaluate(model) -> {task: metrics, ..., "score": float}`` scores dev (None: no dev
    evaluation); ``on_best(model, step, metrics)`` saves a new best (or, without dev evaluation,
    the final model); ``frozen`` modules stay in eval mode while the rest trains
    (backbone_eval_mode). With ``eval.select: per-task``, ``on_task_best(model, task, step,
    metrics)`` saves a target's new best, by ``metrics[task][main_metrics[task]]``.
    """

    name: str
    model: nn.Module
    param_groups: dict[str, list[nn.Parameter]]
    train_set: TrainSet
    batch_sampler: Any
    loss_fn: LossFn
    evaluate: Callable[[nn.Module], dict[str, Any]] | None = None
    on_best: Callable[[nn.Module, int, dict[str, Any]], None] | None = None
    frozen: list[nn.Module] = field(default_factory=list)
    on_task_best: Callable[[nn.Module, str, int, dict[str, Any]], None] | None = None
    main_metrics: dict[str, str] = field(default_factory=dict)


@dataclass
class LoopResult:
    step: int
    total_steps: int
    completed: bool
    best_score: float | None
    best_step: int | None
    best_metrics: dict[str, Any]
    seconds: float
    """Loop wall time over every invocation of the run (resumes included)."""
    early_stopped: bool = False
    """Stopped before total_steps because the dev score stopped improving (eval.patience)."""
    task_best: dict[str, dict[str, Any]] = field(default_factory=dict)
    """eval.select per-task: each target's best ``{"score", "step", "metrics"}``."""


def optimizer_groups(groups: dict[str, list[nn.Parameter]], config: OptimConfig) -> list[dict[str, Any]]:
    """torch param groups ``{"name", "params", "lr"}``: ``config.group_lr[name]`` or ``config.lr``."""
    unknown = sorted(set(config.group_lr) - set(groups))
    if unknown:
        raise ValueError(f"optim.group_lr names group(s) {unknown}, but this model's groups are {sorted(groups)}")
    out = []
    for name, params in groups.items():
        params = [p for p in params if p.requires_grad]
        if params:
            out.append({"name": name, "params": params, "lr": config.group_lr.get(name, config.lr)})
    if not out:
        raise ValueError("nothing to train: every parameter group is empty or frozen")
    return out


def build_optimizer(groups: list[dict[str, Any]], config: OptimConfig) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(groups, lr=config.lr, weight_decay=config.weight_decay, eps=config.adam_eps)


SMALL_DATASET = 10_000  # the papers train 20 epochs below this many examples, 10 above


def warmup_steps(config: OptimConfig, total: int) -> int:
    """Warm-up length: ``ceil(warmup_ratio × total)`` when a ratio is set, else ``warmup_steps``
    as given, never clamped to the run: the official ATTEMPT code hands its 500 steps to
    ``get_linear_schedule_with_warmup`` unchanged, so a 160-step CB run ends at 160/500 of the
    peak rate (a clamp would end it at the peak, on the step whose checkpoint is scored)."""
    if config.warmup_ratio is not None:
        return math.ceil(config.warmup_ratio * total)
    return config.warmup_steps


def total_steps(config: OptimConfig, batches_per_epoch: int, train_examples: int) -> int:
    if config.max_steps is not None:
        return config.max_steps
    epochs = config.epochs if config.epochs is not None else (20 if train_examples < SMALL_DATASET else 10)
    return max(1, math.ceil(epochs * batches_per_epoch))


class _Run:
    """One invocation of the loop: the prepared objects and the mutable progress."""

    def __init__(self, job: TrainingJob, config: TrainConfig, run_dir: Path, accelerator: Any) -> None:
        self.job, self.config, self.dir, self.acc = job, config, run_dir, accelerator
        self.optim = config.optim
        world = accelerator.num_processes * self.optim.gradient_accumulation_steps
        if self.optim.batch_size % world:
            raise ValueError(
                f"optim.batch_size {self.optim.batch_size} must be divisible by processes × "
                f"accumulation steps = {accelerator.num_processes} × {self.optim.gradient_accumulation_steps}"
            )
        groups = optimizer_groups(job.param_groups, self.optim)
        self.trainable = [p for g in groups for p in g["params"]]
        optimizer = build_optimizer(groups, self.optim)
        self.stream = BatchStream(job.batch_sampler)
        self.total = total_steps(self.optim, self.stream.batches_per_epoch, len(job.train_set))
        self.scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps(self.optim, self.total), self.total)
        self.sharded = sharding.is_sharded(accelerator)
        if self.sharded:
            sharding.check_trainable(job.model, self.trainable)
            job.train_set.backbone.fingerprint()  # saved prompts name the backbone: hash its embeddings while whole
        self.model, self.optimizer = accelerator.prepare(job.model, optimizer)
        if self.sharded:
            sharding.register_forward_methods(self.model)
        self.collate = Collator(job.train_set.backbone)
        self.step = 0
        self.best_score: float | None = None
        self.best_step: int | None = None
        self.best_metrics: dict[str, Any] = {}
        self.last_eval_step = -1
        self.task_best: dict[str, dict[str, Any]] = {}  # eval.select per-task: {task: {score, step, metrics}}
        self.evals_since_best = 0  # dev evaluations since the last new best (eval.patience)
        self.earlier_seconds = 0.0  # loop time of earlier invocations of this run (resume)
        self.started = time.monotonic()

    # -- state ---------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, Tensor]:
        named = self.acc.unwrap_model(self.model).named_parameters()
        return {name: p.detach() for name, p in named if p.requires_grad}

    def save(self) -> None:
        rng = [ckpt.rng_state()]
        if self.acc.num_processes > 1:
            from accelerate.utils import gather_object

            rng = gather_object(rng)  # every process's RNG, in rank order
        if not self.acc.is_main_process:
            return
        trainer = {
            "step": self.step,
            "total_steps": self.total,
            "epoch": self.stream.state.epoch,
            "position": self.stream.state.position,
            "best_score": self.best_score,
            "best_step": self.best_step,
            "best_metrics": self.best_metrics,
            "last_eval_step": self.last_eval_step,
            "evals_since_best": self.evals_since_best,
            "seconds": self.seconds,
            "task_best": self.task_best,
        }
        ckpt.save_checkpoint(
            self.dir / "checkpoints",
            trainable=self.trainable_state(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            rng=rng,
            trainer=trainer,
            keep=self.config.run.keep_checkpoints,
        )

    def restore(self) -> bool:
        path = ckpt.latest_checkpoint(self.dir / "checkpoints")
        if path is None:
            return False
        state = ckpt.load_checkpoint(path, self.acc.process_index)
        params = dict(self.acc.unwrap_model(self.model).named_parameters())
        missing = sorted(set(state["trainable"]) ^ set(self.trainable_state()))
        if missing:
            raise ValueError(f"{path} does not fit this model: trainable parameters differ ({missing[:5]})")
        with torch.no_grad():
            for name, value in state["trainable"].items():
                params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(*state["rng"])
        t = state["trainer"]
        self.step, self.stream.state = t["step"], StreamState(t["epoch"], t["position"])
        self.best_score, self.best_step, self.best_metrics = t["best_score"], t["best_step"], t["best_metrics"]
        self.last_eval_step = t["last_eval_step"]
        self.evals_since_best = t.get("evals_since_best", 0)  # absent in checkpoints written before eval.patience
        self.earlier_seconds = t.get("seconds", 0.0)
        self.task_best = t.get("task_best", {})
        return True

    @property
    def seconds(self) -> float:
        """Wall time spent in the loop over every invocation of this run (up to its last checkpoint
        for the earlier ones)."""
        return self.earlier_seconds + time.monotonic() - self.started

    @property
    def flattened(self) -> bool:
        """eval.patience evaluations in a row without a new best: the run is done."""
        patience = self.config.eval.patience
        return patience is not None and self.evals_since_best >= patience

    # -- one optimizer step --------------------------------------------------------------------
    def set_train_mode(self) -> None:
        self.model.train()
        for module in self.job.frozen:
            module.eval()

    def optimizer_step(self, indices: list[int]) -> dict[str, float]:
        acc, train_set = self.acc, self.job.train_set
        world, accumulation = acc.num_processes, self.optim.gradient_accumulation_steps
        features = [train_set.feature(i) for i in indices]
        totals = {"num_label_tokens": count_label_tokens(features), "num_examples": len(features)}
        logs: dict[str, Tensor] = {}
        for micro in range(accumulation):
            mine = micro_batch(range(len(features)), micro, acc.process_index, world, accumulation)
            batch = {k: v.to(acc.device) for k, v in self.collate([features[i] for i in mine]).items()}
            with acc.accumulate(self.model):
                loss, micro_logs = self.job.loss_fn(self.model, {**batch, **totals})
                acc.backward(loss * (world * accumulation))  # undo DDP's mean and Accelerate's 1/accumulation
                if acc.sync_gradients:
                    if self.sharded:  # the method is replicated, not sharded: average its gradients
                        sharding.average_gradients(self.trainable, world)
                    if self.optim.max_grad_norm is not None:
                        acc.clip_grad_norm_(self.trainable, self.optim.max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
            for key, value in micro_logs.items():
                logs[key] = logs.get(key, 0.0) + value.detach().float()
        self.scheduler.step()
        keys = sorted(logs)
        reduced = (
            acc.reduce(torch.stack([logs[k] for k in keys]).to(acc.device), "sum")
            if world > 1
            else torch.stack([logs[k] for k in keys])
        )
        return dict(zip(keys, reduced.tolist()))

    def task_improved(self, metrics: dict[str, Any]) -> bool:
        """eval.select per-task: record (and have ``on_task_best`` save) each target whose main
        metric beats its best so far (a non-finite value never does); whether any did."""
        improved = False
        for task, main in self.job.main_metrics.items():
            value = metrics.get(task, {}).get(main)
            best = self.task_best.get(task)
            if value is None or not math.isfinite(value) or (best is not None and value <= best["score"]):
                continue  # a NaN dev value compares False with everything: never a best, never replacing one
            self.task_best[task] = {"score": value, "step": self.step, "metrics": metrics[task]}
            improved = True
            if self.job.on_task_best is not None and self.acc.is_main_process:
                self.job.on_task_best(self.acc.unwrap_model(self.model), task, self.step, metrics[task])
        return improved

    def learning_rates(self) -> dict[str, float]:
        return {f"lr/{g['name']}": g["lr"] for g in self.optimizer.param_groups}

    # -- evaluation ----------------------------------------------------------------------------
    def eval_due(self) -> bool:
        """``eval.every`` says this step is scored: every N steps, or (``'epoch'``) the last
        step of each epoch (the sampler's batches per epoch)."""
        every = self.config.eval.every
        if every == EPOCH:
            return self.step % self.stream.batches_per_epoch == 0
        assert isinstance(every, int)  # EvalConfig: a step count, or EPOCH
        return bool(every) and self.step % every == 0

    def maybe_evaluate(self, force: bool = False) -> dict[str, Any] | None:
        due = force or self.eval_due()
        if self.job.evaluate is None or not due or self.last_eval_step == self.step:
            return None
        metrics = self.job.evaluate(self.acc.unwrap_model(self.model))
        self.set_train_mode()
        self.last_eval_step = self.step
        score = metrics.get("score")
        self.evals_since_best += 1
        # A NaN score (a plugin's or lm-eval metric on a degenerate split) never becomes the best:
        # nothing compares above NaN, so it would block every later checkpoint.
        if score is not None and math.isfinite(score) and (self.best_score is None or score > self.best_score):
            self.best_score, self.best_step, self.best_metrics = score, self.step, metrics
            self.evals_since_best = 0
            if self.job.on_best is not None and self.acc.is_main_process:
                self.job.on_best(self.acc.unwrap_model(self.model), self.step, metrics)
        if self.config.eval.select == "per-task" and self.task_improved(metrics):
            self.evals_since_best = 0  # patience: no target improved for that many evaluations
        self.acc.wait_for_everyone()
        return metrics


class _Logger:
    """metrics.jsonl + Accelerate's trackers + progress, on the main process only.

    Trackers are built from ``run.log_with`` with ``accelerate.tracking``'s classes (the ones
    ``Accelerator(log_with=...)`` uses, custom ones registered with ``register_tracker_class``
    included), with logging directory ``<run dir>`` (TensorBoard writes ``<run dir>/tb``).
    A training record goes to them as ``train/loss``, ``train/lr/<group>``, ...; a dev
    evaluation as ``eval/<metric>``. Progress is a tqdm bar when stderr is a terminal, and
    otherwise one plain line per logged step (no carriage returns or cursor codes in log files).
    """

    def __init__(self, run: _Run, resumed_at: int) -> None:
        self.run, self.main = run, run.acc.is_main_process
        self.path = run.dir / "metrics.jsonl"
        self.trackers: list[Any] = []
        self.plain = None
        self.bar = None
        if self.main:
            self._truncate(resumed_at)
            self.trackers = _trackers(run, resumed_at)
        show = self.main and run.config.run.progress
        if show and not _interactive():
            self.plain = _PlainProgress(run.job.name, run.total, resumed_at)
        else:
            self.bar = tqdm(
                total=run.total,
                initial=resumed_at,
                desc=run.job.name,
                dynamic_ncols=True,
                disable=not show,
                mininterval=1.0,
            )

    def _truncate(self, step: int) -> None:
        """Drop lines a killed invocation wrote after the checkpoint we resume from."""
        if not self.path.is_file():
            return
        # From step 0 (no checkpoint yet) the run is redone whole, its step-0 evaluation included.
        lines = self.path.read_text().splitlines() if step > 0 else []
        keep = [line for line in lines if line and json.loads(line).get("step", 0) <= step]
        atomic_write_text(self.path, "".join(f"{line}\n" for line in keep))

    def write(self, record: dict[str, Any]) -> None:
        if not self.main:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        values = _tracked(record)
        for tracker in self.trackers:
            if values:
                tracker.log(values, step=record["step"])
        if self.plain is not None and "loss" in record:
            self.plain.line(record)
        if self.plain is not None and isinstance(record.get("dev"), dict):
            self.plain.dev(record)

    def progress(self, logs: dict[str, float]) -> None:
        if self.bar is not None:
            shown = {k.replace("lr/", "lr_"): f"{v:.3g}" for k, v in logs.items() if k == "loss" or k.startswith("lr/")}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        for tracker in self.trackers:
            tracker.finish()


def _interactive() -> bool:
    """True when stderr (where progress goes) is a terminal."""
    import sys

    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _PlainProgress:
    """Progress for logs that are not a terminal: ``<job> step 20/400 (5%) loss 0.412 lr_x 0.3
    12.3 it/s ETA 0:00:31``, one line each time a training record is written, and
    ``<job> dev at step 20: score 61.20 (3.1 s)`` after each dev evaluation."""

    def __init__(self, name: str, total: int, start: int) -> None:
        self.name, self.total, self.start, self.began = name, total, start, time.monotonic()

    def line(self, record: dict[str, Any]) -> None:
        import datetime
        import sys

        step = record["step"]
        rate = (step - self.start) / max(time.monotonic() - self.began, 1e-9)
        eta = datetime.timedelta(seconds=round((self.total - step) / rate)) if rate > 0 else "?"
        shown = " ".join(
            f"{k.replace('lr/', 'lr_')} {v:.3g}"
            for k, v in record.items()
            if (k == "loss" or k.startswith("lr/")) and isinstance(v, (int, float))
        )
        print(
            f"{self.name} step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%) {shown} "
            f"{rate:.3g} it/s ETA {eta}",
            file=sys.stderr,
            flush=True,
        )

    def dev(self, record: dict[str, Any]) -> None:
        import sys

        score = record["dev"].get("score")
        shown = f"score {score:.2f}" if isinstance(score, (int, float)) else "done"
        print(
            f"{self.name} dev at step {record['step']}: {shown} ({record.get('dev_seconds', 0):.1f} s)",
            file=sys.stderr,
            flush=True,
        )


def _trackers(run: _Run, resumed_at: int) -> list[Any]:
    """Started Accelerate trackers for ``run.log_with`` (see :class:`_Logger`); a tracker whose
    package is not installed is an error naming it."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, filter_trackers, get_available_trackers

    cfg = run.config.run
    names = cfg.log_with if cfg.log_with is not None else (["tensorboard"] if cfg.tensorboard else [])
    names = [names] if isinstance(names, str) else list(names)
    available = {str(t) for t in get_available_trackers()}
    for name in names:
        if name in ("all",) or name not in LOGGER_TYPE_TO_CLASS:
            continue
        if (
            name in {"aim", "comet_ml", "mlflow", "tensorboard", "wandb", "clearml", "dvclive", "swanlab", "trackio"}
            and name not in available
        ):
            raise ValueError(f"run.log_with: {name!r} needs its package, which is not installed (pip install {name})")
    try:
        kinds = filter_trackers(list(names), run.dir)
    except ValueError as err:
        raise ValueError(f"run.log_with: {err}") from None
    trackers = []
    for kind in kinds:
        cls = LOGGER_TYPE_TO_CLASS[str(kind)]
        kwargs: dict[str, Any] = {}
        if str(kind) == "tensorboard" and resumed_at:
            kwargs["purge_step"] = resumed_at + 1  # drop events a killed invocation wrote after the checkpoint
        if str(kind) == "wandb":
            kwargs["name"] = f"{run.dir.name}/{run.job.name}"
        # The project (wandb) / experiment (mlflow, ...): the tracker's own setting where it has one.
        project = os.environ.get("WANDB_PROJECT", "promptmix") if str(kind) == "wandb" else "promptmix"
        if cls.requires_logging_directory:
            tracker = cls("tb" if str(kind) == "tensorboard" else project, str(run.dir), **kwargs)
        else:
            tracker = cls(project, **kwargs)
        tracker.start()
        if str(kind) != "tensorboard":  # the run directory keeps config.yaml; others get the config here
            tracker.store_init_configuration(_config_values(run.config))
        trackers.append(tracker)
    return trackers


def _config_values(config: TrainConfig) -> dict[str, Any]:
    """The config as flat ``section.key`` -> bool/int/float/str values (what trackers store)."""
    import dataclasses

    flat = _flatten(dataclasses.asdict(config))
    return {
        k.replace("/", "."): v if isinstance(v, (bool, int, float, str)) else json.dumps(v) for k, v in flat.items()
    }


def _tracked(record: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl record as tracker values: ``train/<key>`` for a training step's,
    ``eval/<metric>`` for a dev evaluation's; the setup record and non-numbers are left out."""
    if "dev" in record:
        values = {f"eval/{k}": v for k, v in _flatten(record["dev"]).items()}
        values["eval/seconds"] = record.get("dev_seconds")
    elif "loss" in record:
        values = {f"train/{k}": v for k, v in _flatten(record).items() if k != "step"}
    else:
        return {}
    return {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _evaluate(run: _Run, log: _Logger, force: bool) -> None:
    """A dev evaluation if one is due (or forced), logged with its wall time."""
    tick = time.monotonic()
    metrics = run.maybe_evaluate(force=force)
    if metrics is not None:
        log.write({"step": run.step, "dev": metrics, "dev_seconds": time.monotonic() - tick})


@contextmanager
def deterministic_algorithms(enabled: bool = True) -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` inside the block, the caller's
    setting restored after it. On CPU the op it matters for is the backward of the prompt
    gather ``prompts[task_ids]`` (an ``index_put_`` with ``accumulate=True``): with more than one
    thread torch adds the rows with parallel atomic adds, in an order the thread scheduling
    decides, unless deterministic algorithms are on. ``warn_only``: an op without a
    deterministic kernel (CUDA) warns rather than stops the run."""
    if not enabled:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def train(
    job: TrainingJob, config: TrainConfig, run_dir: str | Path, accelerator: Any, *, resume: bool = False
) -> LoopResult:
    """Run ``job`` to ``optim.max_steps`` (or ``optim.epochs``), until ``run.stop_after`` steps
    in this invocation, or until ``eval.patience`` dev evaluations in a row bring no new best
    (completed, ``early_stopped``); see the module docstring."""
    with deterministic_algorithms(config.run.deterministic):
        return _train(job, config, run_dir, accelerator, resume=resume)


def _train(job: TrainingJob, config: TrainConfig, run_dir: str | Path, accelerator: Any, *, resume: bool) -> LoopResult:
    if accelerator.is_main_process:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    run = _Run(job, config, Path(run_dir), accelerator)
    if resume:
        run.restore()
        if run.step > run.total:
            raise ValueError(
                f"{run_dir}: the run has trained {run.step} steps, more than the {run.total} it is now asked "
                "for (optim.max_steps); a resume may raise the step budget, not lower it below the steps done"
            )
    log = _Logger(run, run.step)
    log.write({"step": run.step, "setup": sharding.layout(run.model, run.optimizer, accelerator)})
    run.set_train_mode()
    if config.eval.at_start and run.step == 0:
        _evaluate(run, log, force=True)
    stop_at = run.total if config.run.stop_after is None else min(run.total, run.step + config.run.stop_after)
    batches = iter(run.stream)
    try:
        while run.step < stop_at and not run.flattened:
            tick = time.monotonic()
            logs = run.optimizer_step(next(batches))
            run.step += 1
            logs.update(run.learning_rates())
            log.progress(logs)
            if run.step % config.run.log_every == 0 or run.step == stop_at:
                log.write(
                    {"step": run.step, "epoch": run.stream.state.epoch, **logs, "step_seconds": time.monotonic() - tick}
                )
            _evaluate(run, log, force=run.step == run.total)
            every = config.run.save_every
            if (every and run.step % every == 0) or run.step == stop_at or run.flattened:
                run.save()
    finally:
        log.close()
    if run.step == run.total and job.evaluate is None and job.on_best is not None and accelerator.is_main_process:
        job.on_best(accelerator.unwrap_model(run.model), run.step, {})
    accelerator.wait_for_everyone()
    return LoopResult(
        run.step,
        run.total,
        run.step == run.total or run.flattened,
        run.best_score,
        run.best_step,
        run.best_metrics,
        run.seconds,
        early_stopped=run.flattened and run.step < run.total,
        task_best=run.task_best,
    )
