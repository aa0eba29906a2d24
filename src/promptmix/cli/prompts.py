"""``promptmix prompts {list,show,add,import,remove}``: manage the on-disk prompt library.

A thin layer over :class:`promptmix.prompts.library.PromptLibrary`. ``add`` takes a task's
prompt from a training run (or a directory written by ``save_method``) and records the backbone
that run was trained on; ``import --from-peft`` takes a PEFT prompt-tuning adapter's prompt
(:mod:`promptmix.prompts.peft`), checked against the backbone it names.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from promptmix.cli import HELP
from promptmix.prompts.checkpoint import SavedMethod
from promptmix.prompts.library import (
    SHIPPED_PREFIX,
    PromptLibrary,
    card_markdown,
    default_library_root,
    fixed_task_prompt,
    shipped_libraries,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prompts",
        help=HELP["prompts"],
        description="Manage named soft prompts stored as safetensors + JSON, each tied to the "
        "backbone it was trained on. Library: --library (a directory, or promptmix:NAME for a "
        "library shipped with promptmix), else $PROMPTMIX_LIBRARY, else "
        f"{default_library_root()}; 'list' without --library also lists the shipped libraries.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--library", default=None, help="library directory or promptmix:NAME (see above)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    actions.add_parser("list", parents=[common], help="one line per prompt").set_defaults(func=run_list)
    show = actions.add_parser("show", parents=[common], help="a prompt's card (--json: its full record)")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print the whole JSON record instead of the card")
    show.set_defaults(func=run_show)
    remove = actions.add_parser("remove", parents=[common], help="delete a prompt")
    remove.add_argument("name")
    remove.set_defaults(func=run_remove)

    add = actions.add_parser(
        "add",
        parents=[common],
        help="store one task's prompt from a saved method",
        description="Store the prompt a saved method gives TASK (prompt tuning; MPT's "
        "P* ∘ u v). Input-dependent prompts (ATTEMPT) cannot be stored as one tensor.",
    )
    add.add_argument("name", help="entry name: letters, digits, '-', '_', '.'")
    add.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        metavar="RUN_DIR",
        help="a training run directory (its best method/, or the task's run under it when the run trained "
        "one run per task), as predict, eval and serve take, or a directory written by save_method",
    )
    add.add_argument("--task", required=True, help="which of the method's tasks to take the prompt of")
    add.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a dev metric to record, e.g. --metric accuracy=0.853 (repeatable)",
    )
    add.add_argument("--overwrite", action="store_true", help="replace an existing entry of that name")
    add.set_defaults(func=run_add)

    imp = actions.add_parser(
        "import",
        parents=[common],
        help="store a PEFT prompt-tuning adapter's prompt",
        description="Store the soft prompt of a PEFT prompt-tuning adapter (adapter_config.json + "
        "adapter_model.safetensors), e.g. as a source prompt for ATTEMPT. The backbone "
        "is the adapter's base_model_name_or_path unless --backbone says otherwise; an "
        "adapter made for another model or width is refused with the reason.",
    )
    imp.add_argument(
        "--from-peft", dest="adapter", type=Path, required=True, metavar="DIR", help="the PEFT adapter directory"
    )
    imp.add_argument("name", help="entry name: letters, digits, '-', '_', '.'")
    imp.add_argument(
        "--task", default=None, help="the task the prompt is for (default: the one promptmix recorded, if any)"
    )
    imp.add_argument(
        "--backbone", default=None, help="the model the adapter was trained on (default: its base_model_name_or_path)"
    )
    imp.add_argument("--overwrite", action="store_true", help="replace an existing entry of that name")
    imp.set_defaults(func=run_import)


def _library(args: argparse.Namespace) -> PromptLibrary:
    return PromptLibrary(args.library if args.library is not None else default_library_root())


def parse_metrics(items: list[str]) -> dict[str, float]:
    """``["accuracy=0.85", "f1=0.8"]`` -> ``{"accuracy": 0.85, "f1": 0.8}``."""
    metrics = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            metrics[key] = float(value)
        except ValueError:
            raise ValueError(f"--metric {item!r}: expected NAME=NUMBER, e.g. accuracy=0.853") from None
    return metrics


def run_list(args: argparse.Namespace) -> int:
    """The chosen library; without --library, the user library and then every shipped one.
    Exit 1 when a ``*.json`` in a library is no readable record (the rest are listed, the bad
    file named on stderr)."""
    if args.library is not None:
        libraries = [_library(args)]
        if not libraries[0].root.exists():  # a mistyped --library is an error, not an empty library
            raise FileNotFoundError(f"--library {args.library}: no such directory ({libraries[0].root.resolve()})")
    else:
        libraries = [PromptLibrary(default_library_root())] + [
            PromptLibrary(SHIPPED_PREFIX + n) for n in shipped_libraries()
        ]
    problems = []
    for i, library in enumerate(libraries):
        if i:
            print()
        problems += _print_library(library, args.library is None)
    for problem in problems:
        print(f"promptmix prompts: skipped {problem}", file=sys.stderr)
    return 1 if problems else 0


def _print_library(library: PromptLibrary, titled: bool) -> list[str]:
    """Print the library's entries; return one line per file that is no readable record."""
    records, problems = library.scan()
    shipped = {str(path): name for name, path in shipped_libraries().items()}
    where = (
        f"{SHIPPED_PREFIX}{shipped[str(library.root)]} (shipped, {library.root})"
        if str(library.root) in shipped
        else str(library.root)
    )
    if titled:
        print(f"# {where}")
    if not records:
        print(f"no prompts in {library.root}")
        return problems
    header = ("name", "task", "method", "backbone", "d", "m", "metrics", "created")
    rows = [
        (
            r.name,
            r.task,
            r.method,
            r.backbone,
            str(r.hidden_size),
            str(r.prompt_length),
            " ".join(f"{k}={v:.4g}" for k, v in r.metrics.items()) or "-",
            r.created,
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return problems


def run_show(args: argparse.Namespace) -> int:
    library = _library(args)
    record = library.get(args.name)
    if args.json:
        print(json.dumps({**record.to_dict(), "file": str(library.tensor_path(args.name))}, indent=2))
    else:
        print(card_markdown(record) + f"- file: {library.tensor_path(args.name)}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    record = _library(args).remove(args.name)
    print(f"removed {record.name} ({record.task}, {record.method}, backbone {record.backbone})")
    return 0


def saved_method_of(run: Path, task: str) -> SavedMethod:
    """The method ``run`` answers ``task`` with: a run directory is read as predict, eval and
    serve read it (:func:`promptmix.rundirs.read.find_methods`; a per-task-selected run's
    ``best-per-task/<task>`` for its own task)."""
    from promptmix.rundirs.read import find_methods  # loads the backbone stack: only when a run is read

    found = find_methods(run)
    holding = [saved for saved in found if task in saved.task_names()]
    if not holding:
        held = sorted({t for saved in found for t in saved.task_names()})
        raise ValueError(f"--task {task!r}: {run} holds no prompt for it; its tasks: {', '.join(held) or 'none'}")
    return holding[0]


def run_add(args: argparse.Namespace) -> int:
    metrics = parse_metrics(args.metric)
    saved = saved_method_of(args.source, args.task)
    method = saved.load()
    prompt = fixed_task_prompt(method, args.task)
    record = _library(args).add(
        args.name,
        prompt,
        task=args.task,
        method=method.config.method,
        backbone=saved.record.backbone,
        metrics=metrics,
        overwrite=args.overwrite,
    )
    print(
        f"added {record.name}: task {record.task}, {record.method}, [{record.prompt_length}, {record.hidden_size}] "
        f"for backbone {record.backbone} ({record.fingerprint})"
    )
    return 0


def names_same_model(base_model: str, backbone_name: str) -> bool:
    """Whether an adapter's ``base_model_name_or_path`` names the backbone loaded as ``backbone_name``
    (the alias's converted directory names the alias)."""
    from promptmix.loading import ModelNotFoundError, base_model_reference, resolve_model_name

    try:
        if resolve_model_name(base_model) == backbone_name:
            return True
    except (ModelNotFoundError, ValueError):
        return False
    return base_model_reference(backbone_name).name_or_path == str(base_model)


def run_import(args: argparse.Namespace) -> int:
    from promptmix.loading import load_backbone
    from promptmix.prompts.peft import check_adapter_fits, read_adapter

    adapter = read_adapter(args.adapter)
    model = args.backbone or (adapter.record.get("backbone") or {}).get("backbone") or adapter.base_model
    if model is None:
        raise ValueError(
            f"{args.adapter / 'adapter_config.json'}: field 'base_model_name_or_path' is empty; pass "
            "--backbone with the model the adapter was trained on"
        )
    task = args.task or adapter.record.get("task")
    if not task:
        raise ValueError(f"{args.adapter} does not say which task its prompt is for; pass --task")
    backbone = load_backbone(model)
    same = None if adapter.base_model is None else names_same_model(adapter.base_model, backbone.name)
    check_adapter_fits(adapter, backbone.identity(), same)
    card: dict[str, Any] = {
        "imported_from": str(args.adapter.resolve()),
        "base_model_name_or_path": adapter.base_model,
        "peft_task_type": adapter.task_type,
        **{k: adapter.record[k] for k in ("source", "method") if k in adapter.record},
    }
    record = _library(args).add(
        args.name,
        adapter.prompt,
        task=task,
        method=adapter.record.get("method", "prompt-tuning"),
        backbone=backbone,
        card=card,
        overwrite=args.overwrite,
    )
    print(
        f"imported {record.name}: task {record.task}, [{record.prompt_length}, {record.hidden_size}] for backbone "
        f"{record.backbone} ({record.fingerprint}) from {args.adapter}"
    )
    return 0
