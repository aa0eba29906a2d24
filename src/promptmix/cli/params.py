"""``promptmix params``: exact trainable-parameter counts of a method at given sizes.

The papers compare methods per task (ATTEMPT 232K, ATTEMPT-m 96K, MPT 77.6K, prompt tuning
76.8K at T5-base sizes); this prints those numbers from :mod:`promptmix.params`, which the
tests check against the real modules.
"""

from __future__ import annotations

import argparse
import dataclasses

from promptmix.cli import HELP
from promptmix.params import PARAM_METHODS, count_parameters, format_count
from promptmix.prompts import AttemptConfig, MethodConfig, MPTConfig


def field_help(config_class: type, name: str) -> str:
    """The help text a method config's field carries."""
    return next(f.metadata["help"] for f in dataclasses.fields(config_class) if f.name == name)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "params",
        help=HELP["params"],
        description="Print the exact number of trainable parameters of a prompt method at the "
        "given sizes, per task and in total, with a breakdown by parameter group. "
        "Example (ATTEMPT-m on 8 GLUE tasks, T5-base): promptmix params --method attempt "
        "--d-model 768 --prompt-length 100 --num-tasks 8",
    )
    parser.add_argument("--method", required=True, choices=PARAM_METHODS)
    parser.add_argument("--d-model", type=int, required=True, help="backbone width d (768 for T5-base)")
    parser.add_argument("--prompt-length", type=int, required=True, help=field_help(MethodConfig, "prompt_length"))
    parser.add_argument("--num-tasks", type=int, default=1, help="number of target tasks N sharing the run (default 1)")
    parser.add_argument(
        "--attn-dim", type=int, default=100, help="ATTEMPT: " + field_help(AttemptConfig, "attn_dim") + " (default 100)"
    )
    parser.add_argument(
        "--per-task-attention",
        action="store_true",
        help="ATTEMPT: one attention module per task instead of one shared by all tasks",
    )
    parser.add_argument("--rank", type=int, default=1, help="MPT: " + field_help(MPTConfig, "rank") + " (default 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Every size flag goes to every method; each method's config takes the fields it has.
    sizes = {"attn_dim": args.attn_dim, "shared_attention": not args.per_task_attention, "rank": args.rank}
    count = count_parameters(args.method, args.d_model, args.prompt_length, num_tasks=args.num_tasks, **sizes)
    assert count.config is not None  # count_parameters names the config it counted
    used = {k: v for k, v in dataclasses.asdict(count.config).items() if k in sizes or k == "prompt_length"}
    shown = {"d_model": args.d_model, "num_tasks": args.num_tasks, **used}
    print(f"{args.method}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    print(f"per task: {format_count(count.per_task)}")
    print(f"total:    {format_count(count.total)}")
    width = max(map(len, count.breakdown))
    for group, n in count.breakdown.items():
        print(f"  {group:<{width}}  {format_count(n):>12}")
    return 0
