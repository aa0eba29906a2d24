"""`promptmix` command line: one subcommand per module, each a thin layer over library calls.

Every subcommand module exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code. Only the
module of the subcommand being run is imported, with the library it needs (torch,
transformers, ...): ``promptmix --help`` and ``promptmix --version`` import neither and
answer at once, listing the subcommands from :data:`HELP`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from promptmix import __version__

# Module names under promptmix.cli, in the order `promptmix --help` lists them.
SUBCOMMANDS = [
    "params",
    "prompts",
    "tasks",
    "train",
    "pipeline",
    "demo",
    "predict",
    "eval",
    "serve",
    "attention",
    "export",
]
# Each subcommand's line in `promptmix --help` (its module registers it with the same text).
HELP = {
    "params": "trainable parameters of a prompt method, per task and in total",
    "prompts": "list, show, add, import (from PEFT) and remove named prompts in the prompt library",
    "tasks": "list tasks, their data source, split sizes and metrics",
    "train": "train one stage: source prompts, attention prior, ATTEMPT, MPT, baselines",
    "pipeline": "the main job: prompt tuning, ATTEMPT and MPT on a target from the shipped sources -> table",
    "demo": "ATTEMPT over two source prompts answering a mixed-task batch (untrained)",
    "predict": "answer a JSONL file of inputs with trained prompts",
    "eval": "score a run's prompts on its dev or test split",
    "serve": "HTTP server answering any loaded task, batched across requests",
    "attention": "heatmap (PNG + CSV) of an ATTEMPT run's attention over prompts",
    "export": "write prompts as PEFT prompt-tuning adapters (PeftModel.from_pretrained loads them)",
}


def int_in(low: int, high: int | None = None):
    """An argparse ``type``: an int in [low, high], refused while the arguments are parsed
    (before anything is loaded) with the accepted range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"must be {f'in {low}..{high}' if high is not None else f'>= {low}'}, got {value}"
            )
        return value

    return parse


def float_from(low: float, *, inclusive: bool = True):
    """An argparse ``type``: a float >= low (> low with ``inclusive=False``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value >= low if inclusive else value > low) or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(
                f"must be a finite number {'>=' if inclusive else '>'} {low:g}, got {text}"
            )
        return value

    return parse


SPLIT_ALIASES = {"validation": "dev", "val": "dev"}  # the hub's and HF datasets' name for the dev split


def split_name(text: str) -> str:
    """An argparse ``type`` for ``--split``: ``validation`` (the hub's name) is ``dev``."""
    return SPLIT_ALIASES.get(text, text)


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in --help, except where there is nothing to show (None,
    False, an empty list) or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if (
            "%(default)" in help_text
            or "default:" in help_text
            or action.default in (None, False, [], argparse.SUPPRESS)
        ):
            return help_text
        return super()._get_help_string(action)


class RawDescriptionDefaultsFormatter(DefaultsFormatter, argparse.RawDescriptionHelpFormatter):
    """:class:`DefaultsFormatter` keeping the description's and epilog's own line breaks."""


class Parser(argparse.ArgumentParser):
    """Every subcommand's parser: --help shows defaults (:class:`DefaultsFormatter`)."""

    def __init__(self, *args, formatter_class=argparse.HelpFormatter, **kwargs) -> None:
        upgraded = {
            argparse.HelpFormatter: DefaultsFormatter,
            argparse.RawDescriptionHelpFormatter: RawDescriptionDefaultsFormatter,
        }.get(formatter_class, formatter_class)
        kwargs["formatter_class"] = upgraded
        super().__init__(*args, **kwargs)


def add_tasks_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--tasks-dir DIR`` (repeatable): task files to load before anything looks a task up."""
    parser.add_argument(
        "--tasks-dir",
        dest="tasks_dirs",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="directory of task files (YAML, see docs/tasks.md) to load first; repeatable; "
        "$PROMPTMIX_TASKS_DIR names more",
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with ``command``'s subparser built by its module; every other subcommand is
    only listed (parsing never reaches it: :func:`main` builds the parser for the command it runs)."""
    parser = argparse.ArgumentParser(
        prog="promptmix",
        description="Soft prompts on a frozen language model: ATTEMPT, MPT and prompt tuning.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for name in SUBCOMMANDS:
        if name == command:
            importlib.import_module(f"promptmix.cli.{name}").register(sub)
        else:
            sub.add_parser(name, help=HELP.get(name))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)  # the top level has no valued options
    args = build_parser(command).parse_args(argv)
    try:
        if getattr(args, "tasks_dirs", None):
            from promptmix.tasks import load_task_dir  # only for the commands that take --tasks-dir

            for directory in args.tasks_dirs:
                load_task_dir(directory)
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, TimeoutError) as err:
        # Errors raised for bad user input carry their own explanation; a traceback adds nothing.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err  # KeyError quotes its text
        print(f"promptmix {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Exception as err:
        # A full disk, wherever it struck (an atomic write says so itself; an append to metrics.jsonl
        # or a library's own writer raises a bare OSError or SafetensorError): one line, file and space.
        from promptmix._io import StorageFullError, is_disk_full, storage_full

        if isinstance(err, StorageFullError):
            message = err.strerror
        elif is_disk_full(err):
            message = storage_full(Path(getattr(err, "filename", None) or "."), err).strerror
        else:
            raise
        print(f"promptmix {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
