"""``promptmix tasks``: list registered tasks with their data source, split sizes and metrics."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from promptmix.cli import HELP, add_tasks_dir_argument
from promptmix.tasks import DataError, MissingDataError, Task, get_task, list_tasks
from promptmix.tasks.sources import alternate_layout, local_paths


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tasks",
        help=HELP["tasks"],
        description="List every registered task: where its data comes from, the train/dev/test "
        "sizes under the papers' protocol when its files are in --data-dir, and its "
        "metrics (the task's score is their mean).",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=("list",),
        default="list",
        help="list (the only action, as in `promptmix prompts list`; the same without it)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="directory with datasets in their original release layouts "
        "(e.g. ../shared/data); without it no sizes are shown",
    )
    parser.add_argument(
        "--benchmark", default=None, help="only the tasks of one group: sources, glue, superglue, mrqa, others, nlg"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the dev/test partition")
    add_tasks_dir_argument(parser)
    parser.set_defaults(func=run)


def split_sizes(task: Task, data_dir: Path | None, seed: int) -> str:
    """``"train/dev/test"`` sizes from local files, or why there are none."""
    if data_dir is None:
        return "-"
    missing = [split for split, path in local_paths(task, data_dir).items() if not path.exists()]
    if missing and alternate_layout(task, data_dir) is None:
        return f"missing {', '.join(missing)}"
    try:
        splits = task.load_splits(data_dir, seed, hub=False)
    except (DataError, MissingDataError) as err:
        return f"error: {str(err).splitlines()[0]}"
    return "/".join(str(len(splits[s])) for s in ("train", "dev", "test"))


def brace(paths: list[str]) -> str:
    """Paths folded into one pattern: ``glue/RTE/{train,dev}.tsv``."""
    if len(paths) < 2:
        return paths[0] if paths else "-"
    head = re.sub(r"[A-Za-z0-9]+$", "", os.path.commonprefix(paths))  # cut at a separator
    tail = os.path.commonprefix([p[len(head) :][::-1] for p in paths])[::-1]
    tail = re.sub(r"^[A-Za-z0-9]+", "", tail)
    middles = [p[len(head) : len(p) - len(tail)] for p in paths]
    return f"{head}{{{','.join(middles)}}}{tail}"


def source_of(task: Task, data_dir: Path | None = None) -> str:
    """Local files and hub dataset, e.g. ``glue/RTE/{train,dev}.tsv | nyu-mll/glue/rte``; the
    alternate layout's files where the release files are absent from ``data_dir`` and it is there."""
    layout = None
    if data_dir is not None and not all(p.exists() for p in local_paths(task, data_dir).values()):
        layout = alternate_layout(task, data_dir)
    local = brace(list((layout.files if layout is not None else task.files).values()))
    source = task.source
    if source is None or source.hub_id is None:
        return local
    subset = f"[{source.hub_filter[0]}={source.hub_filter[1]}]" if source.hub_filter else ""
    return f"{local} | {source.hub_name()}{subset}"


def run(args: argparse.Namespace) -> int:
    if args.data_dir is not None and not args.data_dir.is_dir():
        # Every task would otherwise show "missing ...", as if the data were gone rather than the path wrong.
        print(
            f"promptmix tasks: warning: --data-dir {args.data_dir} ({args.data_dir.resolve()}) is not a directory; "
            "listing tasks without split sizes",
            file=sys.stderr,
        )
        args.data_dir = None
    names = list_tasks(args.benchmark)
    rows = [("TASK", "BENCHMARK", "SOURCE (local | hub)", "TRAIN/DEV/TEST", "METRICS")]
    for name in names:
        task = get_task(name)
        rows.append(
            (
                name,
                task.benchmark,
                source_of(task, args.data_dir),
                split_sizes(task, args.data_dir, args.seed),
                ", ".join(task.metric_names),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0
