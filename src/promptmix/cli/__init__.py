"""`promptmix` command line: one subcommand per module, each a thin layer over library calls.

Every subcommand module exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
]


def int_in(low: int, high: int | None = None):
    """An argparse ``type``: an int in [low, high], refused while the arguments are parsed
    (before anything is loaded) with the accepted range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {f'in {low}..{high}' if high is not None else f'>= {low}'}, got {value}")
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
            raise argparse.ArgumentTypeError(f"must be a finite number {'>=' if inclusive else '>'} {low:g}, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptmix",
        description="Soft prompts on a frozen language model: ATTEMPT, MPT and prompt tuning.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"promptmix.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        # Errors raised for bad user input carry their own explanation; a traceback adds nothing.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err  # KeyError quotes its text
        print(f"promptmix {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
