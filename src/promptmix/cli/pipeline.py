"""``promptmix pipeline [--config configs/cpu/pipeline.yaml] [--root DIR] [--set k=v] [--resume]``.

The README's main job: prompt tuning, ATTEMPT and MPT on a few-shot target from the source
prompts shipped with promptmix, and a printed table (``configs/cpu/pipeline-sources.yaml``
trains the sources first; see :mod:`promptmix.training.pipeline`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from promptmix.cli import HELP, add_tasks_dir_argument

# configs/ sits at the repository root (src/promptmix/cli/pipeline.py -> parents[3]).
REPO_PRESET = Path(__file__).resolve().parents[3] / "configs" / "cpu" / "pipeline.yaml"


def default_preset() -> Path:
    local = Path("configs/cpu/pipeline.yaml")
    return local if local.is_file() else REPO_PRESET


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help=HELP["pipeline"],
        description="Run a pipeline of training stages on one backbone and print a table of the target scores. "
        "Relative paths in the config (data, runs) are relative to the current directory.",
    )
    parser.add_argument("--config", type=Path, default=None, help=f"pipeline YAML (default: {default_preset()})")
    parser.add_argument("--root", default=None, help="directory of the stage runs (overrides the file's root)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of every stage, e.g. --set optim.max_steps=10 (repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="skip finished stages and resume the interrupted one")
    add_tasks_dir_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from promptmix.configio import parse_override
    from promptmix.training.pipeline import PipelineConfig, run_pipeline

    overrides = dict(parse_override(item) for item in args.overrides)
    config = PipelineConfig.load(args.config or default_preset(), overrides, root=args.root)
    results = run_pipeline(config, resume=args.resume)
    return 0 if all(result.completed for _, result in results) else 3
