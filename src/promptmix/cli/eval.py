"""``promptmix eval --run DIR --split test``: score a run's best prompt method on its tasks.

The run's own config says which data, protocol (seed, caps, length limits) and scoring
(rank classification or generation) it was trained with (read by
:func:`promptmix.rundirs.read.load_run_with_data`); the scoring is
:func:`promptmix.inference.evaluate.evaluate`, the one training scores dev and test with, so
the numbers are the ones training reports. A multi-task run trained with ``eval.select:
per-task`` answers each target with its ``best-per-task/<task>`` method, as its test scores
were computed (the listing then names the method of each task).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from promptmix.backbone import PromptedModel
from promptmix.cli import HELP, add_tasks_dir_argument, split_name
from promptmix.inference.evaluate import evaluate
from promptmix.rundirs.read import load_run_with_data


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help=HELP["eval"], description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("--run", required=True, type=Path, metavar="DIR", help="training run directory")
    parser.add_argument(
        "--split",
        default="test",
        type=split_name,
        choices=("dev", "test", "train"),
        help="split to score; validation is dev's other name (lm-eval, datasets)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="datasets directory (default: the run's)")
    parser.add_argument("--backbone", default=None, help="backbone to load (default: the run's)")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    add_tasks_dir_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    loaded = load_run_with_data(args.run, data_dir=args.data_dir, backbone=args.backbone)
    model = PromptedModel(loaded.backbone, loaded.method).eval()
    results = evaluate(
        model,
        loaded.tasks,
        args.split,
        loaded.task_ids(),
        loaded.config.eval,
        loaded.source_lengths(),
    )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    if not results:
        print(f"no {args.split} examples for {', '.join(loaded.tasks)}")
        return 0
    several = len(set(loaded.sources.values())) > 1  # then say which method answered each task
    for task, metrics in results.items():
        if task != "score":
            n = len(getattr(loaded.tasks[task], args.split))
            source = f", method {loaded.sources[task]}" if several else ""
            print(
                f"{task} ({args.split}, {n} examples{source}): " + "  ".join(f"{k} {v:.2f}" for k, v in metrics.items())
            )
    print(f"score (mean of the tasks' main metrics): {results['score']:.2f}")
    return 0
