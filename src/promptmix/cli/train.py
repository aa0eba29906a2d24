"""``promptmix train STAGE --config YAML [--set key=value ...] [--run-dir DIR] [--resume] [--print-config]``.

A thin layer over :func:`promptmix.training.stages.run_stage`. Several processes:

    accelerate launch --config_file configs/accelerate/ddp.yaml -m promptmix.cli train attempt --config ...
    accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 2 --mixed_precision no \\
        -m promptmix.cli train attempt --config ...       # no GPU: 2 CPU processes (gloo)
    accelerate launch --config_file configs/accelerate/fsdp.yaml -m promptmix.cli train attempt --config ...
                                                          # the frozen backbone sharded (FSDP2), GPUs or CPU
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

from promptmix.cli import HELP, add_tasks_dir_argument
from promptmix.configio import config_keys
from promptmix.training.config import STAGES, TrainConfig, load_config


def config_help(width: int = 100) -> str:
    """Every config key with its type, default and help: what a YAML preset or --set may name."""
    lines = ["config keys (a YAML preset's sections and keys; --set KEY=VALUE overrides one, the value read as YAML):"]
    for key in config_keys(TrainConfig):
        lines.append(f"  {key.key}: {key.type} = {json.dumps(key.default)}")
        lines += textwrap.wrap(
            key.help, width, initial_indent=" " * 6, subsequent_indent=" " * 6, break_on_hyphens=False
        )
    return "\n".join(lines)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help=HELP["train"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=config_help(),
        description=textwrap.fill(
            "Train one stage of the pipeline into a run directory (config.yaml, metrics.jsonl, "
            "tb/, checkpoints/, method/, results.json). Stages: " + ", ".join(STAGES) + ".",
            100,
        ),
    )
    parser.add_argument("stage", choices=STAGES, help="which stage")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML preset (configs/...); default: the run's own config.yaml with --resume",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set optim.lr=0.1 --set data.tasks=[rte,cb] (repeatable)",
    )
    parser.add_argument("--run-dir", type=Path, default=None, help="run directory (overrides run.dir)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run directory's latest checkpoint; --set optim.max_steps=N extends a run, "
        "even a finished one",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (preset, includes and --set applied) as YAML and exit without "
        "training: e.g. a preset's eval.every, optim.warmup_steps / warmup_ratio and optim.epochs",
    )
    add_tasks_dir_argument(parser)
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> TrainConfig:
    from promptmix.training.rundir import CONFIG, read_run_config  # the training stack: loaded once a stage runs

    overrides = list(args.overrides)
    if args.run_dir is not None:
        overrides.append(f"run.dir={args.run_dir}")
    path = args.config
    if path is None and args.resume and args.run_dir is not None:
        # The run's own config, refused when truncated or edited (never filled with defaults).
        return read_run_config(args.run_dir / CONFIG, overrides, stage=args.stage)
    if path is None:
        raise ValueError("give --config YAML (or --resume --run-dir DIR to continue a run with its own config)")
    return load_config(path, overrides, stage=args.stage)


def run(args: argparse.Namespace) -> int:
    if args.print_config:
        print(build_config(args).to_yaml(), end="")
        return 0
    from accelerate import PartialState

    from promptmix.training.stages import run_stage

    result = run_stage(build_config(args), resume=args.resume)
    if not PartialState().is_main_process:
        return 0 if result.completed else 3
    summary = {
        "run_dir": result.run_dir,
        "completed": result.completed,
        "steps": result.steps,
        "dev": result.dev.get("score"),
        "test": result.test.get("score"),
        "trainable_parameters": result.trainable_parameters,
    }
    print(json.dumps(summary))
    return 0 if result.completed else 3
