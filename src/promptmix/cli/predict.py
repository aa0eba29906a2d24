"""``promptmix predict``: answer a JSONL file of inputs with any number of runs' prompts.

    promptmix predict --run runs/glue --run runs/boolq --task rte --input rte.jsonl --output out.jsonl
    cat mixed.jsonl | promptmix predict --run runs/glue --run runs/boolq --input - --output -

With ``--task`` every line is a raw record (a JSON object of the dataset's fields) or
formatted input text (a JSON string); without it every line is ``{"task": ..., "record":
{...}}`` or ``{"task": ..., "text": ...}``, and lines of different tasks share batches. Each
output line is the prediction for the input line at the same position.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from promptmix.cli import HELP, add_tasks_dir_argument, int_in
from promptmix.inference.predictor import InputError, as_items
from promptmix.inference.loader import load_predictor, recorded_source_lengths
from promptmix.training.rundir import configured_source_lengths, find_methods

CHUNK = 1024  # input lines answered (and written) at a time: memory stays bounded on big files


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--run / --prompt / --library / --backbone and the batching limits (predict and serve)."""
    group = parser.add_argument_group("what to load (one backbone, any number of prompts)")
    group.add_argument("--run", action="append", default=[], type=Path, metavar="DIR",
                       help="training run directory (or save_method directory); repeatable")
    group.add_argument("--prompt", action="append", default=[], metavar="NAME",
                       help="library prompt to serve as prompt tuning for its task; repeatable")
    group.add_argument("--library", type=Path, default=None, help="prompt library directory (default: $PROMPTMIX_LIBRARY)")
    group.add_argument("--backbone", default=None, help="backbone to load (default: the one the first run recorded)")
    add_tasks_dir_argument(parser)  # a run's own task files load with it; these are for library prompts
    limits = parser.add_argument_group("batching")
    limits.add_argument("--token-budget", type=int_in(1), default=16384, help="most rows x padded tokens per forward")
    limits.add_argument("--batch-size", type=int_in(1), default=64, help="most examples per forward")
    limits.add_argument("--max-new-tokens", type=int_in(1), default=32, help="generation length (non-classification tasks)")


def predictor_from_args(args: argparse.Namespace):
    if not args.run and not args.prompt:
        raise ValueError("nothing to load: give at least one --run DIR or --prompt NAME")
    methods = [saved for run in args.run for saved in find_methods(run)]  # each run walked once, each record read once
    # Truncate as each run trained: its method record says (runs saved before it did: their config).
    lengths = {task: n for saved in methods for task, n in configured_source_lengths(saved).items()}
    lengths.update(recorded_source_lengths(methods))
    return load_predictor(methods, library=args.library, prompts=args.prompt, backbone=args.backbone,
                          token_budget=args.token_budget, max_batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                          max_source_lengths=lengths)


def register(subparsers) -> None:
    parser = subparsers.add_parser("predict", help=HELP["predict"],
                                   description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    add_model_arguments(parser)
    parser.add_argument("--task", default=None, help="task of every input line (else each line names its own)")
    parser.add_argument("--input", required=True, metavar="FILE.jsonl", help="input lines ('-': stdin)")
    parser.add_argument("--output", required=True, metavar="FILE.jsonl", help="one prediction per line ('-': stdout)")
    parser.add_argument("--no-truncate", action="store_true",
                        help="refuse inputs longer than the task's max_source_length instead of truncating them")
    parser.set_defaults(func=run)


def read_lines(handle: IO[Any], name: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) of every non-blank line; a bad line (not UTF-8, not JSON)
    names file and line. A binary handle's lines are decoded one by one, so the line number
    of a decoding error is exact."""
    for number, raw in enumerate(handle, 1):
        try:
            line = raw if isinstance(raw, str) else raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{name}, line {number}: not valid UTF-8 (byte {raw[err.start]:#04x} at byte "
                             f"{err.start + 1} of the line)") from None
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{name}, line {number}: not valid JSON ({err.msg})") from None


@contextmanager
def _open(path: str, mode: str) -> Iterator[IO[Any]]:
    """Input ("r") opens as bytes (see :func:`read_lines`), output ("w") as UTF-8 text; "-" is stdin/stdout."""
    if path == "-":
        yield getattr(sys.stdin, "buffer", sys.stdin) if mode == "r" else sys.stdout
    else:
        with open(path, "rb") if mode == "r" else open(path, mode, encoding="utf-8") as handle:
            yield handle


def run(args: argparse.Namespace) -> int:
    predictor = predictor_from_args(args)
    name = "<stdin>" if args.input == "-" else args.input
    with _open(args.input, "r") as source, _open(args.output, "w") as sink:
        lines = list(read_lines(source, name))
        for start in range(0, len(lines), CHUNK):
            chunk = lines[start:start + CHUNK]
            try:
                items = as_items([value for _, value in chunk], args.task)
                predictions = predictor.predict(items, truncate=not args.no_truncate)
            except InputError as err:
                raise ValueError(f"{name}, line {chunk[err.index][0]}: {err.reason}") from None
            for p in predictions:
                sink.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
    return 0
