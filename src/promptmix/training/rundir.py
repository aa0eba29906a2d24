"""The run directory, the writing side: what a training run writes there, and what a resume checks.

The files are listed in :mod:`promptmix.rundirs.layout`. Written by :func:`open_run_dir`
(config.yaml), :func:`save_task_definitions` (tasks/), :class:`MethodSaver` (method/,
best-per-task/) and :func:`write_result` (results.json); the loop writes metrics.jsonl, tb/ and
checkpoints/. A run is held by one process at a time (:func:`run_lock`); a resume is checked
against the run's own config (:func:`read_run_config`) and skips a finished run
(:func:`finished_result`). Reading a run back (the methods it holds, its data) is
:mod:`promptmix.rundirs.read`, below training, so inference and serving read runs without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import filelock

from promptmix._io import atomic_directory, atomic_write_text, read_json, recover_directory
from promptmix.backbone import Backbone, PromptedModel
from promptmix.loading import ALIASES
from promptmix.prompts.checkpoint import load_method, save_method
from promptmix.rundirs.data import TaskData
from promptmix.rundirs.layout import CONFIG, METHOD, MODEL, PER_TASK, RESULTS, TASKS
from promptmix.tasks.declared import definition_text
from promptmix.training.checkpoint import latest_checkpoint
from promptmix.training.config import TrainConfig, load_config

# May differ between invocations of one run (where it is, how long this invocation runs, how it logs);
# optim.max_steps: a resume may extend the run.
RESUMABLE_KEYS = ("run.dir", "run.stop_after", "run.progress", "run.log_with", "run.tensorboard", "optim.max_steps")
LOCK = ".promptmix-run.lock"
LOCK_PID = ".promptmix-run.pid"
CONFIG_HEADER = re.compile(r"# promptmix run config, sha256 of the lines below: ([0-9a-f]{64})\n")


class RunExistsError(FileExistsError, ValueError):
    """A fresh run asked for a directory that already holds one (resume it or pick another)."""


class RunInUseError(ValueError):
    """Another process is training into the run directory."""


def check_fresh(run_dir: Path, resume: bool) -> None:
    """Refuse a fresh run into a directory that holds one (before anything slow is loaded)."""
    if not resume and ((run_dir / "checkpoints").exists() or (run_dir / RESULTS).exists()):
        raise RunExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose another run.dir")


def _main_rank() -> bool:
    """Whether this is the launch's first process (or the only one): it alone takes the lock."""
    return os.environ.get("RANK", "0") == "0"


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold ``run_dir``'s lock while a run trains there: a second process training into the same
    directory is refused at once, naming the holder's pid, instead of both writing one
    metrics.jsonl and checkpoint series. The lock is an OS file lock, so a killed holder frees it."""
    run_dir = Path(run_dir)
    if not _main_rank():
        yield
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run.dir {run_dir} is a file, not a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(run_dir / LOCK, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        try:
            holder = f"pid {(run_dir / LOCK_PID).read_text().strip()}"
        except OSError:
            holder = "a process that has not written its pid yet"
        raise RunInUseError(
            f"{run_dir} is in use by another promptmix run ({holder}); wait for it to finish, or "
            "train into another directory (--run-dir)"
        ) from None
    try:
        atomic_write_text(run_dir / LOCK_PID, f"{os.getpid()}\n")
        yield
    finally:
        (run_dir / LOCK_PID).unlink(missing_ok=True)
        lock.release()


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with its relative paths made absolute against the current directory (the
    meaning they had when given): model.name when it names a local directory, data.data_dir,
    library.root, library.mpt_source and run.dir. A run records them so, and ``promptmix eval
    --run DIR`` from another directory finds its backbone, data and prompts."""

    @overload
    def absolute(value: str, *, must_exist: bool = False) -> str: ...

    @overload
    def absolute(value: str | None, *, must_exist: bool = False) -> str | None: ...

    def absolute(value: str | None, *, must_exist: bool = False) -> str | None:
        if value is None or value.startswith("promptmix:") or Path(value).is_absolute():
            return value
        path = Path(value).expanduser()
        return str(path.resolve()) if path.exists() or not must_exist else value

    return dataclasses.replace(
        config,
        # An alias wins over a directory of that name, as load_backbone reads it.
        model=dataclasses.replace(
            config.model,
            name=config.model.name
            if config.model.name.lower() in ALIASES
            else absolute(config.model.name, must_exist=True),
        ),
        data=dataclasses.replace(config.data, data_dir=absolute(config.data.data_dir)),
        library=dataclasses.replace(
            config.library, root=absolute(config.library.root), mpt_source=absolute(config.library.mpt_source)
        ),
        run=dataclasses.replace(config.run, dir=absolute(config.run.dir)),
    )


def config_text(config: TrainConfig) -> str:
    """config.yaml's text: the YAML under a first line holding its sha256."""
    body = config.to_yaml()
    return f"# promptmix run config, sha256 of the lines below: {hashlib.sha256(body.encode()).hexdigest()}\n{body}"


def read_run_config(
    path: str | os.PathLike, overrides: list[str] | dict[str, Any] | None = None, stage: str | None = None
) -> TrainConfig:
    """A run's own config.yaml, refused (never filled with defaults) when it does not parse or
    is not the text the run wrote (the sha256 on its first line; files written before runs
    recorded one are read as they are)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing: the run directory holds no config to resume with; pass --config"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the run's config: {err}") from None
    header = CONFIG_HEADER.match(text)
    if header is not None and hashlib.sha256(text[header.end() :].encode()).hexdigest() != header[1]:
        raise ValueError(
            f"{path} is not the config the run wrote (its sha256 differs from the one on its first line): "
            "it was truncated or edited; restore it, or delete its first line to resume with it as it is"
        )
    return load_config(path, overrides, stage=stage)


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


# -- writing ----------------------------------------------------------------------------------
def open_run_dir(config: TrainConfig, run_dir: Path, resume: bool, accelerator: Any, *, trains: bool = True) -> Path:
    """Create ``run_dir`` and write config.yaml; refuse to mix a fresh run into an old one.

    A resume checks the config against the run's config.yaml (:func:`read_run_config`) and
    leaves that file as it is, unless the resume raised optim.max_steps (then the file records
    the new budget), and finishes or rolls back a replacement of method/, model/ or a
    best-per-task/<task>/ that a crash interrupted. In a directory the loop ``trains`` in (not
    the parent that only combines per-task runs), a resume that changes optim.max_steps of a
    finished run must be able to extend it (:func:`check_extension`). Temporary files a killed
    invocation left at the top level are removed (the caller holds the run's lock,
    :func:`run_lock`, so no writer is using them)."""
    check_fresh(run_dir, resume)
    saved_config = None
    if resume and (run_dir / CONFIG).is_file():
        # Through the parser, so a config.yaml written before a key existed compares equal.
        saved_config = read_run_config(run_dir / CONFIG)
        # A run written before paths were stored absolute: its relative paths meant the cwd's.
        changed = _differences(absolute_paths(saved_config).to_dict(), absolute_paths(config).to_dict())
        if changed:
            raise ValueError(
                f"--resume with a config that differs from {run_dir / CONFIG} in {changed}; "
                "resume with the run's own config (only optim.max_steps may change, to extend the run)"
            )
        if trains and saved_config.optim.max_steps != config.optim.max_steps:
            check_extension(run_dir, config.optim.max_steps)
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume:  # finish or roll back a replacement of the best method a crash interrupted
            for kept in (METHOD, MODEL):
                recover_directory(run_dir / kept, clean=True)
            for task_dir in _per_task_directories(run_dir):  # eval.select per-task: each target's best method
                recover_directory(task_dir, clean=True)
            for leftover in run_dir.glob(".*.tmp"):
                if leftover.is_file():  # e.g. .training_curves.png.k3j2.tmp from a killed run
                    leftover.unlink(missing_ok=True)
        if saved_config is None or saved_config.optim.max_steps != config.optim.max_steps:
            # run.stop_after belongs to one invocation: a later --resume from config.yaml runs to the end.
            saved = dataclasses.replace(config, run=dataclasses.replace(config.run, stop_after=None))
            atomic_write_text(run_dir / CONFIG, config_text(saved))
    accelerator.wait_for_everyone()
    return run_dir


def _per_task_directories(run_dir: Path) -> list[Path]:
    """``<run>/best-per-task/<task>`` of every task found there, as a directory or as the copies
    a replacement goes through (``.<task>.new.tmp``, ``.<task>.old.tmp``)."""
    parent = run_dir / PER_TASK
    if not parent.is_dir():
        return []
    names = set()
    for child in parent.iterdir():
        swap = re.fullmatch(r"\.(.+)\.(?:new|old)\.tmp", child.name)
        if swap:
            names.add(swap[1])
        elif not child.name.startswith(".") and child.is_dir():
            names.add(child.name)
    return [parent / name for name in sorted(names)]


def check_extension(run_dir: Path, max_steps: int | None) -> None:
    """Refuse a resume that raises a finished run's optim.max_steps to ``max_steps`` when the
    run cannot go on: it stopped early by eval.patience (the loop would stop again at once), or
    its checkpoints are gone (it would start over from a fresh prompt at step 0 and overwrite
    method/, metrics.jsonl and results.json)."""
    path = run_dir / RESULTS
    if max_steps is None or not path.is_file():
        return
    result = StageResult(**read_json(path))
    if not result.completed or max_steps <= result.steps:
        return
    if result.extra.get("early_stopped"):
        raise ValueError(
            f"--resume with optim.max_steps={max_steps}: the run in {run_dir} stopped early by eval.patience "
            f"after {result.steps} steps; raise eval.patience to extend it"
        )
    if latest_checkpoint(run_dir / "checkpoints") is None:
        raise ValueError(
            f"--resume with optim.max_steps={max_steps}: the finished run in {run_dir} has no checkpoint left "
            f"({run_dir / 'checkpoints'} is gone or empty), so it cannot be extended; train a new run instead"
        )


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


def save_task_definitions(run_dir: Path, tasks: dict[str, TaskData], accelerator: Any) -> None:
    """Copy the definition of every task declared in a task file into ``<run>/tasks/``."""
    if accelerator.is_main_process:
        for data in tasks.values():
            text = definition_text(data.task)
            if text is not None:
                atomic_write_text(run_dir / TASKS / f"{data.task.name}.yaml", text)


def finished_result(run_dir: Path, max_steps: int | None = None) -> StageResult | None:
    """The result of a run that already completed (resume skips it), else None; also None when
    ``max_steps`` (the resumed config's optim.max_steps) is beyond the steps it ran: the resume
    extends it."""
    path = run_dir / RESULTS
    if not path.is_file():
        return None
    result = StageResult(**read_json(path))
    if max_steps is not None and max_steps > result.steps and not result.extra.get("early_stopped"):
        return None
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
