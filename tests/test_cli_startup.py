"""``promptmix --help`` and ``promptmix --version`` answer without importing torch, transformers
or datasets: the parser lists the subcommands and imports a subcommand's module (and the
library behind it) only when that subcommand runs. Checked on ``sys.modules`` in a fresh
interpreter, which is deterministic where a timing is not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from promptmix import __version__, cli

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("torch", "transformers", "datasets")

SCRIPT = """
import contextlib, io, json, sys
from promptmix.cli import build_parser, main

def heavy():
    return sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "datasets"})

report = {}
build_parser()
report["parser"] = heavy()
for flag in ("--help", "--version"):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([flag])
        except SystemExit as stop:
            report[flag] = {"code": stop.code, "out": out.getvalue(), "heavy": heavy()}
build_parser("params")  # a subcommand that needs torch: the same check sees it
report["params"] = heavy()
print(json.dumps(report))
"""


def _fresh_interpreter() -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_and_version_import_no_heavy_library():
    report = _fresh_interpreter()
    assert report["parser"] == [] and report["--help"]["heavy"] == [] and report["--version"]["heavy"] == []
    assert report["--help"]["code"] == 0 and report["--version"]["code"] == 0
    assert report["--version"]["out"] == f"promptmix {__version__}\n"
    help_text = " ".join(report["--help"]["out"].split())
    for name in cli.SUBCOMMANDS:
        assert f"{name} {' '.join(cli.HELP[name].split())}" in help_text
    assert "torch" in report["params"]  # building a real subcommand does import it


def test_each_subcommand_registers_the_help_line_the_top_level_lists():
    assert list(cli.HELP) == cli.SUBCOMMANDS
    for name in cli.SUBCOMMANDS:
        [subparsers] = [a for a in cli.build_parser(name)._actions if a.dest == "command"]
        [shown] = [a.help for a in subparsers._choices_actions if a.dest == name]
        assert shown == cli.HELP[name]
        assert len(subparsers.choices[name]._actions) > 1, name  # the module's parser, not the bare listing


def test_help_shows_defaults_and_split_validation_is_dev():
    """Every subcommand's --help shows its defaults; --split takes the hub's name "validation"."""
    parser = cli.build_parser("eval")
    assert parser.parse_args(["eval", "--run", "r", "--split", "validation"]).split == "dev"
    assert parser.parse_args(["eval", "--run", "r"]).split == "test"
    eval_parser = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith("eval"))
    text = " ".join(eval_parser.format_help().split())
    assert "(default: test)" in text and "(default: None)" not in text


def test_python_dash_m_promptmix_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "promptmix", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=True,
    ).stdout
    assert out.strip() == f"promptmix {__version__}"
