"""The transfer study: SmolLM2-135M-Instruct on ../shared/data, every transfer method against
prompt tuning on target tasks never used as sources, with full training data and few-shot
(k = 4, 16, 32 per class), three seeds, learning curves, ATTEMPT's attention and MPT's
distillation losses.

    python benchmarks/quality.py --workers 2             # the study (resumable; hours on 2 cores)
    python benchmarks/quality.py --report                # tables and figures from the results so far
    python benchmarks/quality.py --smoke --out /tmp/q    # a tiny random T5, seconds (the test)

Sources are SST-2, QQP, RTE and MultiRC prompts trained with ``promptmix train source --config
configs/smollm2/sources.yaml``, kept in ``benchmarks/results/transfer/library`` (the shipped
``promptmix:smollm2-135m`` has all but MultiRC, which did not beat its best constant answer;
``--library`` runs the study on another library). Every run is a stage of
``promptmix train`` built from the ``configs/smollm2`` presets plus the overrides below, so a
row of the table is something a user can rerun. All methods get the same number of target
steps; -m methods train all targets together with that many steps per target.

Resumable across machines: a finished run's summary goes to ``--results`` (committed, by
default ``benchmarks/results/transfer``) and is never rerun; an interrupted run resumes from
its run directory under ``--out``. ``--workers N`` runs N single-threaded worker processes
that take runs in priority order (a claim is an ``flock`` on a file under ``--out``, so two
workers never take the same run and a dead worker's run is free again at once): MPT
distillation first, then the k = 16 few-shot and full-data comparisons of prompt tuning,
ATTEMPT and MPT, then the other shot counts, SPoT-targeted, MPT from the teacher-mean start
and the -m variants.

``--methods LoRA fine-tuning`` adds two references that are not prompt methods and run only
when named: LoRA (PEFT, rank 8 on q and v) and full fine-tuning of the backbone, on the same
data, batch, steps and scoring (presets ``configs/smollm2/lora.yaml`` and ``finetune.yaml``).
They show whether a target can be learned at all at the study's budget, with 50x to 15,000x
the trainable parameters of a prompt.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import REPO, SHARED, load_backbone, machine_line  # noqa: E402

PRESETS = REPO / "configs" / "smollm2"
# The source library the study ran on: the shipped promptmix:smollm2-135m as it was then, MultiRC
# included; it left the shipped library afterwards (its dev score is below the constant answer
# "True"; docs/transfer-study-1.md 4.1), so the study keeps its own copy and reruns on the same sources.
LIBRARY = REPO / "benchmarks" / "results" / "transfer" / "library"
SOURCES = ["sst2", "qqp", "rte", "multirc"]
TARGETS = ["mrpc", "cb", "wic", "cola"]
SEEDS = [42, 43, 44]
REGIMES = {"k4": 4, "k16": 16, "k32": 32, "full": None}  # few-shot k per class; None: all training data
STEPS = {"few": 60, "full": 100}  # target steps per task, the same for every method
EVAL_EVERY = {"few": 20, "full": 25}
INIT_FROM = "rte"  # ATTEMPT's target prompt: the NLI source (the papers' MNLI is not in ../shared/data)
PROBE_STEPS = 30  # SPoT-targeted's probe run on the target (the paper's 5-20 epochs would exceed the budget)
# label -> (preset, overrides, multi-task); "{sources}" and "{mpt:<init>}" are filled in by the plan
METHODS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "prompt tuning": ("prompt-tuning.yaml", {}, False),
    "SPoT-targeted": (
        "prompt-tuning.yaml",
        {"library.init_from": "auto", "library.sources": "{sources}", "library.probe_steps": PROBE_STEPS},
        False,
    ),
    "ATTEMPT": ("attempt.yaml", {"library.sources": "{sources}", "library.init_from": INIT_FROM}, False),
    "ATTEMPT-m": ("attempt.yaml", {"library.sources": "{sources}", "library.init_from": INIT_FROM}, True),
    "MPT": ("mpt-target.yaml", {"library.mpt_source": "{mpt:vocab}"}, False),
    "MPT (teacher-mean)": ("mpt-target.yaml", {"library.mpt_source": "{mpt:teacher-mean}"}, False),
    "MPT-m": ("mpt-target.yaml", {"library.mpt_source": "{mpt:vocab}"}, True),
}
# Not prompt methods: the backbone itself trains (LoRA's ~460K or all 135M parameters) on the same
# data, batch, steps and scoring, to show what these targets allow at this budget. Opt-in only.
REFERENCES: dict[str, tuple[str, dict[str, Any], bool]] = {
    "LoRA": ("lora.yaml", {}, False),
    "fine-tuning": ("finetune.yaml", {}, False),
}
ALL_METHODS = {**METHODS, **REFERENCES}  # what --methods may name
# The recipe this study ran with, before the calibration moved the presets to lr 0.1 with 10 %
# warm-up (docs/results.md 4.1): pinned per preset so that rerunning a cell reruns what was
# measured. LoRA and fine-tuning keep their presets' own rates; every run had 20 warm-up steps.
FIRST_RECIPE: dict[str, dict[str, Any]] = {
    "prompt-tuning.yaml": {"optim.lr": 0.3},
    "attempt.yaml": {"optim.lr": 0.3, "optim.group_lr": {"attention": 0.3}},
    "mpt-source.yaml": {"optim.lr": 0.3},
    "mpt-target.yaml": {"optim.lr": 0.3, "optim.group_lr": {"task_vectors": 0.4}},
}
FIRST_WARMUP = {"optim.warmup_steps": 20, "optim.warmup_ratio": None}
CORE = ("prompt tuning", "ATTEMPT", "MPT")
MPT_INITS = ("vocab", "teacher-mean")


@dataclass
class Item:
    """One run of the study."""

    id: str
    priority: int
    preset: str
    overrides: dict[str, Any]
    info: dict[str, Any]
    needs: list[str] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return self.id.replace("/", "__")


def slug(label: str) -> str:
    return label.lower().replace(" ", "-").replace("(", "").replace(")", "")


def _priority(regime: str, method: str) -> int:
    if method in CORE:
        return {"k16": 1, "full": 2}.get(regime, 3)
    if method in ("SPoT-targeted", "MPT (teacher-mean)") and regime in ("k16", "full"):
        return 4
    if method.endswith("-m") and regime in ("k16", "full"):
        return 5
    return 6


def plan(args: argparse.Namespace) -> list[Item]:
    """Every run of the study in the order workers take them."""
    out = Path(args.out)
    # only the distillations that the chosen methods start from, less one given by --mpt-source
    given = {"vocab": args.mpt_source} if args.mpt_source else {}
    inits = [
        i
        for i in MPT_INITS
        if i not in given and any(f"{{mpt:{i}}}" in ALL_METHODS[m][1].values() for m in args.methods)
    ]
    items = [
        Item(
            f"mpt-source/{init}",
            0,
            "mpt-source.yaml",
            {
                "library.sources": args.sources,
                "method.mpt.init": init,
                "optim.max_steps": args.distill_steps,
                "run.dir": str(out / "runs" / f"mpt-source-{init}"),
            },
            {"kind": "mpt-source", "init": init},
        )
        for init in inits
    ]
    fill = {
        "{sources}": args.sources,
        **{f"{{mpt:{i}}}": given.get(i) or str(out / "runs" / f"mpt-source-{i}") for i in MPT_INITS},
    }
    for regime in args.regimes:
        k, phase = REGIMES[regime], "few" if REGIMES[regime] else "full"
        for seed in args.seeds:
            for label in args.methods:
                preset, overrides, multi = ALL_METHODS[label]
                groups = [args.targets] if multi else [[t] for t in args.targets]
                for tasks in groups:
                    steps = args.steps[phase] * len(tasks)
                    item_id = f"{regime}/{tasks[0] if len(tasks) == 1 else 'all'}/{slug(label)}/seed{seed}"
                    values = {key: fill.get(v, v) if isinstance(v, str) else v for key, v in overrides.items()}
                    needs = [
                        f"mpt-source/{v[5:-1]}"
                        for v in overrides.values()
                        if isinstance(v, str) and v.startswith("{mpt:") and v[5:-1] not in given
                    ]
                    values.update(
                        {
                            "data.tasks": tasks,
                            "data.multi_task": multi,
                            "data.few_shot_k": k,
                            "data.few_shot_seed": seed,
                            "optim.max_steps": steps,
                            "eval.every": args.eval_every[phase] * len(tasks),
                            "run.seed": seed,
                            "run.dir": str(out / "runs" / item_id.replace("/", "__")),
                        }
                    )
                    items.append(
                        Item(
                            item_id,
                            _priority(regime, label),
                            preset,
                            values,
                            {
                                "kind": "target",
                                "regime": regime,
                                "k": k,
                                "tasks": tasks,
                                "method": label,
                                "seed": seed,
                                "steps_per_task": args.steps[phase],
                            },
                            needs,
                        )
                    )
    return sorted(items, key=lambda item: (item.priority, item.info.get("seed", 0), item.id))


def full_data_majority(args: argparse.Namespace) -> dict[str, float | None]:
    """Each target's test score when always answering the most frequent label of its full
    training data: the majority-class row of every regime's table (results written before this
    floor was stored hold the k-shot sample's tie-broken label instead)."""
    config = item_config(next(i for i in plan(args) if i.info["kind"] == "target"), args)
    return majority_floor(config.data, args.targets)


def majority_floor(data_config: Any, tasks: list[str]) -> dict[str, float | None]:
    """The test score of always answering the most frequent label of the *full* training data
    (a k-shot sample is balanced, so its own most frequent label is a tie); the test split
    does not depend on the few-shot draw."""
    from promptmix.rundirs.data import load_tasks
    from promptmix.training.stages import majority_score

    data = load_tasks(dataclasses.replace(data_config, few_shot_k=None), tasks)
    return {t: majority_score(d, "test") for t, d in data.items()}


def item_config(item: Item, args: argparse.Namespace):
    from promptmix.configio import apply_overrides, read_yaml
    from promptmix.training.config import TrainConfig

    path = PRESETS / item.preset
    pinned = {**FIRST_WARMUP, **FIRST_RECIPE.get(item.preset, {})} if getattr(args, "first_recipe", False) else {}
    overrides = {**pinned, **args.common, **item.overrides, **args.set, "run.progress": False}
    return TrainConfig.from_dict(apply_overrides(read_yaml(path), overrides), str(path))


# -- results --------------------------------------------------------------------------------------
def result_path(args: argparse.Namespace, item: Item) -> Path:
    return Path(args.results) / f"{item.slug}.json"


def done(args: argparse.Namespace, item: Item) -> bool:
    return result_path(args, item).is_file()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []


def dev_curves(records: list[dict[str, Any]], tasks: list[str], main: dict[str, str]) -> dict[str, list[list[float]]]:
    """{task: [[step, dev main metric], ...]} from a run's metrics.jsonl."""
    curves: dict[str, list[list[float]]] = {t: [] for t in tasks}
    for rec in records:
        for task in tasks:
            value = rec.get("dev", {}).get(task, {}).get(main[task])
            if value is not None:
                curves[task].append([rec["step"], value])
    return curves


def summarize(args: argparse.Namespace, item: Item, config: Any, result: Any, backbone: Any) -> dict[str, Any]:
    """What the report needs of one finished run (small, committed)."""
    from promptmix.rundirs.data import load_tasks

    run_dir = Path(config.run.dir)
    records = read_metrics(run_dir)
    tasks = list(result.tasks)
    data = load_tasks(config.data, tasks) if item.info["kind"] == "target" else {}
    main = {t: data[t].task.main_metric for t in data} if data else {t: "score" for t in tasks}
    summary = {
        "id": item.id,
        **item.info,
        "completed": result.completed,
        "steps": result.steps,
        "best_step": result.best_step,
        "seconds": round(result.seconds, 1),
        "scoring": config.eval.scoring,
        "library": str(config.library.root),
        "trainable_parameters": result.trainable_parameters,
        "dev": result.dev,
        "test": result.test,
        "train_examples": {t: len(d.train) for t, d in data.items()},
        "main_metric": main,
        "majority_test": majority_floor(config.data, tasks) if data else {},
        "curves": dev_curves(records, tasks, main),
        "extra": _jsonable(result.extra),
    }
    if args.set:
        summary["set"] = args.set  # the run is not the study's preset: say how
    if item.info["kind"] == "mpt-source":
        keys = ("loss", "ce", "kl", "hidden")
        summary["losses"] = [[r["step"], *(r.get(k) for k in keys)] for r in records if "loss" in r]
        summary["dev_curve"] = [[r["step"], r["dev"].get("score")] for r in records if "dev" in r]
    if item.info.get("method", "").startswith("ATTEMPT"):
        summary["attention"] = attention_summary(config, data, backbone)
    return summary


def attention_summary(config: Any, data: dict[str, Any], backbone: Any) -> dict[str, Any]:
    """ATTEMPT's mean attention per target over its dev inputs, with the checkpoint the target's
    test score comes from: its own best (``<run>/best-per-task/<target>``) where the run kept
    one (``eval.select: per-task``), else the best on dev (``<run>/method``)."""
    from promptmix.inference.attention_map import mean_attention
    from promptmix.prompts.checkpoint import load_method
    from promptmix.rundirs.layout import METHOD, PER_TASK

    run_dir = Path(config.run.dir)
    methods: dict[Path, Any] = {}  # one load per checkpoint: every target of a mean-selected run shares one
    columns: list[str] = []
    rows: dict[str, list[float]] = {}
    for task, task_data in data.items():
        own = run_dir / PER_TASK / task
        directory = own if own.is_dir() else run_dir / METHOD
        if directory not in methods:
            methods[directory] = load_method(directory, backbone)
        inputs = {task: [ex.source for ex in (task_data.dev or task_data.train)]}
        table = mean_attention(
            methods[directory], backbone, inputs, max_source_length=config.data.max_source_length or 256
        )
        columns, rows[task] = table.columns, table.weights.tolist()[0]
    return {"columns": columns, "rows": rows}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# -- workers --------------------------------------------------------------------------------------
_HELD: dict[str, int] = {}  # slug -> the open, locked claim file of each run this worker holds


def _claim_path(args: argparse.Namespace, item: Item) -> Path:
    return Path(args.out) / "claims" / f"{item.slug}.lock"


def claim(args: argparse.Namespace, item: Item) -> bool:
    """Take ``item`` for this process: an exclusive ``flock`` on its claim file.

    The kernel drops the lock when its process dies, so a dead worker's run is free again at
    once, and two workers can never both take it (a pid file checked and then overwritten
    could: two workers restarted together each saw the dead pid and took the same run).
    """
    path = _claim_path(args, item)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _HELD[item.slug] = fd
    return True


def release(args: argparse.Namespace, item: Item) -> None:
    # The file stays: unlinking it could let a worker that just opened it lock a dead inode.
    os.close(_HELD.pop(item.slug))


def held_elsewhere(args: argparse.Namespace, item: Item) -> bool:
    """Whether another live process holds ``item``'s claim."""
    path = _claim_path(args, item)
    if item.slug in _HELD or not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if this probe took it


def next_item(args: argparse.Namespace, items: list[Item]) -> Item | None:
    finished = {item.id for item in items if done(args, item)}
    for item in items:
        if item.id not in finished and all(n in finished for n in item.needs) and claim(args, item):
            if done(args, item):  # another worker finished it since `finished` was read
                release(args, item)
                continue
            return item
    return None


def waits_on_elsewhere(args: argparse.Namespace, items: list[Item]) -> bool:
    """Whether an unfinished item that no one holds needs, directly or through other unfinished
    items, one that another live worker is running: then this worker waits for it; otherwise
    what is left is the other workers' and this one can stop (and free its core)."""
    pending = [item for item in items if not done(args, item)]
    running = {item.id for item in pending if held_elsewhere(args, item)}
    blocked, grew = set(running), True
    while grew:
        grew = False
        for item in pending:
            if item.id not in blocked and set(item.needs) & blocked:
                blocked.add(item.id)
                grew = True
    return bool(blocked - running)


def work(
    args: argparse.Namespace, items: list[Item] | None = None, run: Any = None, *, backbone: Any = None
) -> list[str]:
    """Run items (the study's :func:`plan`, or another script's) until none is left that this
    worker can take; return the ids that failed. ``run(args, item, config, backbone,
    accelerator)`` runs one (default :func:`run_item`).

    A run that raises (e.g. a k-shot draw the task's training split cannot give) is reported
    and skipped, with everything that needs it, so one bad cell does not stop the plan."""
    from promptmix.training.runs import load_backbone_for, make_accelerator

    items = plan(args) if items is None else items
    run = run or run_item
    accelerator = make_accelerator(item_config(items[0], args))
    if backbone is None and args.smoke:
        backbone = load_backbone("tiny")
    failed: list[str] = []
    while True:
        left = [item for item in items if item.id not in failed and not set(item.needs) & set(failed)]
        item = next_item(args, left)
        if item is None:
            if waits_on_elsewhere(args, left):
                time.sleep(20)
                continue
            return failed
        try:
            config = item_config(item, args)
            backbone = backbone or load_backbone_for(config)
            run(args, item, config, backbone, accelerator)
        except Exception as exc:  # noqa: BLE001 - reported, then the plan goes on
            print(f"[{os.getpid()}] {item.id}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed.append(item.id)
        finally:
            release(args, item)


def run_item(
    args: argparse.Namespace, item: Item, config: Any, backbone: Any, accelerator: Any, *, summary_of: Any = None
) -> None:
    """Run one item to the end (resuming its run directory) and write its summary."""
    from promptmix._io import atomic_write_text
    from promptmix.training.stages import run_stage

    started = time.monotonic()
    print(f"[{os.getpid()}] {item.id}: {config.run.dir}", flush=True)
    result = run_stage(config, resume=True, backbone=backbone, accelerator=accelerator)
    if result.completed:
        summary = (summary_of or summarize)(args, item, config, result, backbone)
        atomic_write_text(result_path(args, item), json.dumps(summary, indent=1) + "\n")
    print(
        f"[{os.getpid()}] {item.id}: {'done' if result.completed else 'STOPPED'} in {time.monotonic() - started:.0f} s",
        flush=True,
    )


def spawn_workers(args: argparse.Namespace, argv: list[str], script: str = __file__) -> int:
    """Run ``--workers`` worker processes of ``script`` to the end; the number that reported a failed run."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    procs = [subprocess.Popen([sys.executable, script, *argv, "--worker"], env=env) for _ in range(args.workers)]
    return sum(proc.wait() != 0 for proc in procs)


# -- command line ---------------------------------------------------------------------------------
def add_worker_arguments(p: argparse.ArgumentParser, *, report: str, smoke: str) -> None:
    """The options every study script shares: --workers/--threads (the worker pool of
    :func:`spawn_workers`), --report, --smoke and the hidden --worker a spawned worker runs with."""
    p.add_argument("--workers", type=int, default=0, help="worker processes (0: run in this process)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--report", action="store_true", help=report)
    p.add_argument("--smoke", action="store_true", help=smoke)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "runs" / "transfer"), help="run directories and claims (resumable)")
    p.add_argument(
        "--results",
        default=None,
        help="one JSON per finished run (default: benchmarks/results/transfer; with --smoke: <out>/results)",
    )
    p.add_argument("--figures", default=None, help="where the report's PNGs go (default: docs/figures/transfer)")
    p.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    p.add_argument("--targets", nargs="+", default=TARGETS)
    p.add_argument("--sources", nargs="+", default=SOURCES, help="library entries used as sources")
    p.add_argument(
        "--library",
        default=str(LIBRARY),
        metavar="ROOT",
        help="prompt library the sources come from (default: the study's own, benchmarks/results/transfer/"
        "library); run IDs do not name it, so give another library its own --out and --results",
    )
    p.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        metavar="LABEL",
        help=f"of: {', '.join(METHODS)} (default: all of these); and the references that train the backbone, "
        f"only when named: {', '.join(REFERENCES)}",
    )
    p.add_argument("--few-steps", type=int, default=STEPS["few"], help="target steps per task, few-shot")
    p.add_argument("--full-steps", type=int, default=STEPS["full"], help="target steps per task, full data")
    p.add_argument(
        "--eval-at-start",
        action="store_true",
        help="also score dev before the first target step (each method's head start, measured)",
    )
    p.add_argument("--distill-steps", type=int, default=300, help="MPT distillation steps")
    p.add_argument(
        "--mpt-source",
        default=None,
        metavar="DIR",
        help="adapt MPT and MPT-m from this finished distillation of --sources (vocabulary start) instead "
        "of distilling one into --out, e.g. promptmix:smollm2-135m/mpt-source (checked against --sources)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field of every run, applied last, e.g. --set optim.lr=0.03 (repeatable; "
        "run IDs do not name it, so give such a study its own --out and --results)",
    )
    add_worker_arguments(
        p,
        report="only build the tables and figures from --results",
        smoke="a tiny random T5, 2 sources, 1 target, k = 4, 1 seed, 2 steps",
    )
    p.add_argument(
        "--baseline",
        default=None,
        metavar="DIR",
        help="with --report: prompt tuning's results (it reads no source library) from DIR where --results "
        "lacks them, e.g. the main study's for a study on another --library",
    )
    args = p.parse_args(argv)
    unknown = sorted(set(args.methods) - set(ALL_METHODS))
    if unknown:
        p.error(f"unknown --methods {unknown}; choose from {list(ALL_METHODS)}")
    from promptmix.configio import parse_override

    try:
        args.set = dict(parse_override(item) for item in args.overrides)
    except ValueError as err:
        p.error(str(err))
    args.common = {}
    args.first_recipe = True  # this study's own runs (FIRST_RECIPE); the scripts that share item_config do not
    if (SHARED / "data").is_dir():  # the presets' ../shared/data is relative to the repository root
        args.common["data.data_dir"] = str(SHARED / "data")
    if args.eval_at_start:
        args.common["eval.at_start"] = True
    args.common["library.root"] = args.library  # --smoke replaces it with its own tiny-T5 library
    if args.smoke:
        args.common.update(
            {
                "model.name": "tiny",
                "data.max_source_length": 48,
                "data.max_train_examples": 32,
                "data.max_dev_examples": 8,
                "data.max_test_examples": 8,
                "method.prompt_tuning.prompt_length": 4,
                "method.attempt.attn_dim": 8,
                "optim.batch_size": 4,
                "run.save_every": 1,
                "run.log_every": 1,
                "library.root": str(Path(args.out) / "prompts"),
            }
        )
        args.sources, args.targets, args.seeds, args.regimes = ["sst2", "rte"], ["cb"], [42], ["k4"]
        args.few_steps = args.full_steps = args.distill_steps = 2
    args.steps = {"few": args.few_steps, "full": args.full_steps}
    args.eval_every = {phase: max(1, min(EVAL_EVERY[phase], args.steps[phase] // 2)) for phase in EVAL_EVERY}
    args.results = args.results or str(
        Path(args.out) / "results" if args.smoke else REPO / "benchmarks" / "results" / "transfer"
    )
    args.figures = args.figures or str(
        Path(args.out) / "figures" if args.smoke else REPO / "docs" / "figures" / "transfer"
    )
    return args


def smoke_sources(args: argparse.Namespace) -> None:
    """The smoke run's tiny-T5 source prompts (the real study uses its own copy of the SmolLM2 sources)."""
    from promptmix.training.runs import make_accelerator
    from promptmix.training.stages import run_stage

    config = item_config(
        Item(
            "sources",
            0,
            "sources.yaml",
            {
                "data.tasks": args.sources,
                "optim.max_steps": 2,
                "eval.every": 1,
                "run.dir": str(Path(args.out) / "sources"),
            },
            {},
        ),
        args,
    )
    run_stage(config, resume=True, backbone=load_backbone("tiny"), accelerator=make_accelerator(config))


def check_sources(args: argparse.Namespace) -> None:
    from promptmix.prompts.library import PromptLibrary

    root = args.common["library.root"]
    missing = [s for s in args.sources if s not in PromptLibrary(root)]
    if missing:
        raise SystemExit(
            f"source prompt(s) {missing} are not in {root}; train them first with "
            "`promptmix train source --config configs/smollm2/sources.yaml`, or pass --sources"
        )


def check_mpt_source(args: argparse.Namespace) -> None:
    """A distillation given by ``--mpt-source`` must be MPT of exactly ``--sources`` (the target
    stage starts from the mean of their task vectors) from the vocabulary start it stands in for."""
    from promptmix.prompts.checkpoint import RECORD_FILE, read_method_record
    from promptmix.prompts.library import resolve_library_root
    from promptmix.rundirs.layout import METHOD

    if not args.mpt_source:
        return
    directory = resolve_library_root(args.mpt_source) / METHOD
    path = directory / RECORD_FILE
    try:
        config = read_method_record(directory).config
    except FileNotFoundError:
        raise SystemExit(
            f"--mpt-source {args.mpt_source}: no {path}; give an mpt-source run directory or a library's "
            "mpt-source folder, e.g. promptmix:smollm2-135m/mpt-source"
        ) from None
    found = {"method": config.get("method"), "tasks": sorted(config.get("tasks") or []), "init": config.get("init")}
    wanted = {"method": "mpt", "tasks": sorted(args.sources), "init": "vocab"}
    wrong = {key: found[key] for key in wanted if found[key] != wanted[key]}
    if wrong:
        raise SystemExit(
            f"--mpt-source {args.mpt_source}: {path} has {wrong}, the study needs "
            f"{ {key: wanted[key] for key in wrong} } (--sources {' '.join(args.sources)})"
        )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    from quality_report import write_report

    if args.worker:
        return 1 if work(args) else 0
    print(machine_line(), flush=True)
    failed = 0
    if not args.report:
        if args.smoke:
            smoke_sources(args)
        check_sources(args)
        check_mpt_source(args)
        failed = spawn_workers(args, argv) if args.workers else len(work(args))
    if not args.smoke:
        args.majority = full_data_majority(args)
    print(write_report(args, plan(args)))
    if failed:
        print("some runs FAILED (see above); the table leaves them out", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
