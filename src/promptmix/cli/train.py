"""``promptmix train STAGE --config YAML [--set key=value ...] [--run-dir DIR] [--resume]``.

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
from pathlib import Path

from promptmix.training.config import STAGES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train one stage: source prompts, attention prior, ATTEMPT, MPT, baselines",
        description="Train one stage of the pipeline into a run directory (config.yaml, metrics.jsonl, tb/, "
                    "checkpoints/, method/, results.json). Stages: " + ", ".join(STAGES) + ".")
    parser.add_argument("stage", choices=STAGES, help="which stage")
    parser.add_argument("--config", type=Path, default=None, help="YAML preset (configs/...); default: the run's own config.yaml with --resume")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set optim.lr=0.1 --set data.tasks=[rte,cb] (repeatable)")
    parser.add_argument("--run-dir", type=Path, default=None, help="run directory (overrides run.dir)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    from promptmix.training.config import load_config

    overrides = list(args.overrides)
    if args.run_dir is not None:
        overrides.append(f"run.dir={args.run_dir}")
    path = args.config
    if path is None and args.resume and args.run_dir is not None:
        path = args.run_dir / "config.yaml"
    if path is None:
        raise ValueError("give --config YAML (or --resume --run-dir DIR to continue a run with its own config)")
    return load_config(path, overrides, stage=args.stage)


def run(args: argparse.Namespace) -> int:
    from promptmix.training.stages import run_stage

    from accelerate import PartialState

    result = run_stage(build_config(args), resume=args.resume)
    if not PartialState().is_main_process:
        return 0 if result.completed else 3
    summary = {"run_dir": result.run_dir, "completed": result.completed, "steps": result.steps,
               "dev": result.dev.get("score"), "test": result.test.get("score"),
               "trainable_parameters": result.trainable_parameters}
    print(json.dumps(summary))
    return 0 if result.completed else 3
