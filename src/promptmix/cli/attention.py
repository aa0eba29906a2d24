"""``promptmix attention --run DIR --out FIG.png``: ATTEMPT's mean attention per target task.

Draws the papers' Figure 6 heatmap (rows: the run's target tasks; columns: its source
prompts, then ``target``, the task's own prompt) from the examples of one split, and writes
the numbers to the CSV beside the PNG. Each row sums to 1 (Eq. 3's softmax runs over the
sources and the target).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from promptmix.cli import HELP, add_tasks_dir_argument, split_name
from promptmix.inference.attention_map import mean_attention, write_heatmap
from promptmix.rundirs.read import load_run_with_data


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "attention", help=HELP["attention"], description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    parser.add_argument("--run", required=True, type=Path, metavar="DIR", help="ATTEMPT training run directory")
    parser.add_argument(
        "--split",
        default="dev",
        type=split_name,
        choices=("dev", "test", "train"),
        help="which split (validation: the same as dev)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="FIG.png", help="the PNG; the CSV goes beside it")
    parser.add_argument("--data-dir", type=Path, default=None, help="datasets directory (default: the run's)")
    parser.add_argument("--max-examples", type=int, default=None, help="first N examples per task (default: all)")
    parser.add_argument("--backbone", default=None, help="backbone to load (default: the run's)")
    add_tasks_dir_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    loaded = load_run_with_data(args.run, data_dir=args.data_dir, backbone=args.backbone)
    sources = {
        name: [ex.source for ex in getattr(data, args.split)[: args.max_examples]]
        for name, data in loaded.tasks.items()
    }
    empty = [name for name, texts in sources.items() if not texts]
    if empty:
        raise ValueError(f"no {args.split} examples for task(s) {empty}")
    table = mean_attention(loaded.method, loaded.backbone, sources, max_source_length=loaded.source_lengths())
    csv_path = write_heatmap(table, args.out, title=f"{args.run.name}: mean attention ({args.split})")
    print(table.to_csv(), end="")
    print(f"wrote {args.out} and {csv_path}")
    return 0
