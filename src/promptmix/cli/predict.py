"""``promptmix predict``: answer a JSONL file of inputs with any number of runs' prompts.

    promptmix predict --run runs/glue --run runs/boolq --task rte --input rte.jsonl --output out.jsonl
    cat mixed.jsonl | promptmix predict --run runs/glue --run runs/boolq --input - --output -

With ``--task`` every line is a raw record (a JSON object of the dataset's fields) or
formatted input text (a JSON string); without it every line is ``{"task": ..., "record":
{...}}`` or ``{"task": ..., "text": ...}``, and lines of different tasks share batches. Each
output line is the prediction for the input line at the same position.

The input is read and answered a chunk of lines at a time. An output file is written under a
temporary name beside it and renamed to ``--output`` only once every line is answered: on any
error no partial output is left, and an existing file of that name is kept. (Standard output
gets each chunk as it is answered.) ``--output`` must not name the input file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from promptmix.cli import HELP, add_tasks_dir_argument, int_in
from promptmix.inference.loader import load_predictor
from promptmix.inference.predictor import (
    DEFAULT_MAX_CHOICE_TOKENS,
    DEFAULT_MAX_CHOICES,
    MAX_NEW_TOKENS,
    InputError,
    as_items,
)

CHUNK = 1024  # input lines answered (and written) at a time: memory stays bounded on big files


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--run / --prompt / --library / --backbone and the batching limits (predict and serve)."""
    group = parser.add_argument_group("what to load (one backbone, any number of prompts)")
    group.add_argument(
        "--run",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="training run directory (or save_method directory); repeatable",
    )
    group.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="NAME",
        help="library prompt to serve as prompt tuning for its task; repeatable",
    )
    group.add_argument(
        "--library", type=Path, default=None, help="prompt library directory (default: $PROMPTMIX_LIBRARY)"
    )
    group.add_argument("--backbone", default=None, help="backbone to load (default: the one the first run recorded)")
    add_tasks_dir_argument(parser)  # a run's own task files load with it; these are for library prompts
    limits = parser.add_argument_group("batching")
    limits.add_argument("--token-budget", type=int_in(1), default=16384, help="most rows x padded tokens per forward")
    limits.add_argument("--batch-size", type=int_in(1), default=64, help="most examples per forward")
    limits.add_argument(
        "--max-new-tokens",
        type=int_in(1, MAX_NEW_TOKENS),
        default=32,
        help=f"generation length (non-classification tasks), at most {MAX_NEW_TOKENS} (default: %(default)s)",
    )
    limits.add_argument(
        "--max-choices",
        type=int_in(1),
        default=DEFAULT_MAX_CHOICES,
        help="most candidate answers of one multiple-choice input; more are refused (default: %(default)s)",
    )
    limits.add_argument(
        "--max-choice-tokens",
        type=int_in(1),
        default=DEFAULT_MAX_CHOICE_TOKENS,
        help="most tokens of one candidate answer; longer ones are refused (default: %(default)s)",
    )


def predictor_from_args(args: argparse.Namespace):
    if not args.run and not args.prompt:
        raise ValueError("nothing to load: give at least one --run DIR or --prompt NAME")
    # Each task's inputs are truncated as its run trained (load_predictor reads the limits with the runs).
    return load_predictor(
        args.run,
        library=args.library,
        prompts=args.prompt,
        backbone=args.backbone,
        token_budget=args.token_budget,
        max_batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        max_choices=args.max_choices,
        max_choice_tokens=args.max_choice_tokens,
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help=HELP["predict"], description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    add_model_arguments(parser)
    parser.add_argument("--task", default=None, help="task of every input line (else each line names its own)")
    parser.add_argument("--input", required=True, metavar="FILE.jsonl", help="input lines ('-': stdin)")
    parser.add_argument(
        "--output",
        required=True,
        metavar="FILE.jsonl",
        help="one prediction per line ('-': stdout); written only once every line is answered, "
        "and never the input file",
    )
    parser.add_argument(
        "--no-truncate",
        action="store_true",
        help="refuse inputs longer than the task's max_source_length instead of truncating them",
    )
    parser.set_defaults(func=run)


def read_lines(handle: IO[Any], name: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) of every non-blank line; a bad line (not UTF-8, not JSON)
    names file and line. A binary handle's lines are decoded one by one, so the line number
    of a decoding error is exact."""
    for number, raw in enumerate(handle, 1):
        try:
            line = raw if isinstance(raw, str) else raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{name}, line {number}: not valid UTF-8 (byte {raw[err.start]:#04x} at byte "
                f"{err.start + 1} of the line)"
            ) from None
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{name}, line {number}: not valid JSON ({err.msg})") from None


@contextmanager
def _input(path: str) -> Iterator[IO[Any]]:
    """The input as bytes (see :func:`read_lines`); "-" is stdin."""
    if path == "-":
        yield getattr(sys.stdin, "buffer", sys.stdin)
    else:
        with open(path, "rb") as handle:
            yield handle


@contextmanager
def _output(path: str) -> Iterator[IO[str]]:
    """UTF-8 text to ``path`` ("-": stdout), through a temporary file in the same directory
    that replaces ``path`` only when the block ends without an error (on one it is deleted,
    and whatever ``path`` held before is kept)."""
    if path == "-":
        yield sys.stdout
        return
    target = Path(path)
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=target.parent or ".", prefix=f".{target.name}.", suffix=".partial", delete=False
    )
    try:
        with handle:
            yield handle
        # mkstemp makes the file private (0600); give it the mode a plainly created file would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~umask)
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def check_paths(input_path: str, output_path: str) -> None:
    """Refuse an output that is the input file (by path, or by link to the same file), a
    directory given as either, and an output in a directory that does not exist."""
    if input_path != "-" and Path(input_path).is_dir():
        raise ValueError(f"--input {input_path} is a directory; give a JSONL file")
    if output_path != "-" and Path(output_path).is_dir():
        raise ValueError(f"--output {output_path} is a directory; give a file name")
    if input_path == "-" or output_path == "-":
        return
    source, sink = Path(input_path), Path(output_path)
    same = sink.exists() and source.exists() and os.path.samefile(source, sink)
    if same or source.resolve() == sink.resolve():
        raise ValueError(
            f"--output {output_path} is the input file {input_path}: its predictions would replace "
            "the inputs; give another output file"
        )
    if not sink.parent.is_dir():
        raise ValueError(f"--output {output_path}: directory {sink.parent} does not exist")


def run(args: argparse.Namespace) -> int:
    check_paths(args.input, args.output)  # before the model loads
    predictor = predictor_from_args(args)
    name = "<stdin>" if args.input == "-" else args.input
    with _input(args.input) as source, _output(args.output) as sink:
        lines = read_lines(source, name)
        while chunk := list(itertools.islice(lines, CHUNK)):  # streamed: a chunk of lines in memory at a time
            try:
                items = as_items([value for _, value in chunk], args.task)
                predictions = predictor.predict(items, truncate=not args.no_truncate)
            except InputError as err:
                raise ValueError(f"{name}, line {chunk[err.index][0]}: {err.reason}") from None
            for p in predictions:
                sink.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
    return 0
