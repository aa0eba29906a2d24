"""``promptmix export --to peft RUN_OR_PROMPT OUT_DIR``: prompts as PEFT prompt-tuning adapters.

RUN_OR_PROMPT is a training run directory (as predict, eval and serve take it) or the name of a
library prompt (``--library``). Every fixed prompt it holds (prompt tuning; each MPT task's
composed P* ∘ u v) becomes an adapter that ``peft.PeftModel.from_pretrained`` loads: in OUT_DIR
when there is one task (or ``--task`` picks one), else in OUT_DIR/<task>. An ATTEMPT target is
refused: its prompt depends on each input, and a PEFT prompt-tuning adapter holds one fixed
prompt. See :mod:`promptmix.prompts.peft` for the format.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from promptmix.cli import HELP

DESCRIPTION = (
    "Write prompts as PEFT prompt-tuning adapters. RUN_OR_PROMPT is a training run directory (as predict, eval and "
    "serve take it) or the name of a library prompt (--library). Every fixed prompt it holds (prompt tuning; each MPT "
    "task's composed P* ∘ u v) becomes an adapter that peft.PeftModel.from_pretrained loads: in OUT_DIR when there "
    "is one task (or --task picks one), else in OUT_DIR/<task>. An ATTEMPT target is refused: its prompt depends on "
    "each input, and a PEFT prompt-tuning adapter holds one fixed prompt."
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help=HELP["export"], description=DESCRIPTION)
    parser.add_argument("--to", required=True, choices=("peft",), help="the format: peft (a prompt-tuning adapter)")
    parser.add_argument("source", metavar="RUN_OR_PROMPT", help="training run directory, or a library prompt's name")
    parser.add_argument("out", type=Path, metavar="OUT_DIR", help="where the adapter(s) go")
    parser.add_argument("--task", default=None, help="export only this task's prompt (into OUT_DIR itself)")
    parser.add_argument("--library", default=None, help="prompt library of RUN_OR_PROMPT (default: $PROMPTMIX_LIBRARY)")
    parser.add_argument("--overwrite", action="store_true", help="replace adapter directories that exist")
    parser.set_defaults(func=run)


def fixed_prompts(source: str, task: str | None, library: str | None) -> list[dict[str, Any]]:
    """Every (task, fixed prompt, backbone identity, method, origin) that ``source`` holds."""
    from promptmix.prompts.library import PromptLibrary, default_library_root, fixed_task_prompt
    from promptmix.prompts.peft import INPUT_DEPENDENT
    from promptmix.rundirs.read import find_methods

    if not Path(source).exists():
        if os.sep in source or (os.altsep and os.altsep in source) or source.startswith("."):
            # A path, not a prompt name (names hold no separators): say the run is missing.
            raise FileNotFoundError(f"no such run: {source} does not exist ({Path(source).resolve()})")
        lib = PromptLibrary(library if library is not None else default_library_root())
        record = lib.get(source)
        if task not in (None, record.task):
            raise ValueError(f"--task {task!r}: library prompt {source!r} is for task {record.task!r}")
        return [
            {
                "task": record.task,
                "prompt": lib.load(source, record.identity),
                "identity": record.identity,
                "method": record.method,
                "source": f"library prompt {source} in {lib.root}",
            }
        ]
    out = []
    for saved in find_methods(source):
        method = saved.load()
        for name in [t for t in saved.task_names() if task in (None, t)]:
            try:
                prompt = fixed_task_prompt(method, name)
            except ValueError:
                raise ValueError(
                    INPUT_DEPENDENT.format(what=f"the {method.config.method} prompt for {name!r} in {saved.name}")
                ) from None
            out.append(
                {
                    "task": name,
                    "prompt": prompt,
                    "identity": saved.record.backbone,
                    "method": method.config.method,
                    "source": f"run {saved.name}",
                }
            )
    if not out:
        raise ValueError(f"--task {task!r}: {source} holds no prompt for it")
    return out


def run(args: argparse.Namespace) -> int:
    from promptmix.loading import BaseModelReference, base_model_reference
    from promptmix.prompts.peft import export_adapter

    prompts = fixed_prompts(args.source, args.task, args.library)
    outs = [args.out if len(prompts) == 1 else args.out / item["task"] for item in prompts]
    existing = [str(out) for out in outs if out.exists()]
    if existing and not args.overwrite:  # checked before any adapter is written
        raise ValueError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; pass --overwrite to replace "
            f"{'it' if len(existing) == 1 else 'them'}"
        )
    references: dict[str, BaseModelReference] = {}
    for item in prompts:
        name = item["identity"]["backbone"]
        reference = references.setdefault(name, base_model_reference(name))
        out = args.out if len(prompts) == 1 else args.out / item["task"]
        export_adapter(
            item["prompt"],
            out,
            base_model=reference.name_or_path,
            base_model_what=reference.what,
            is_encoder_decoder=reference.is_encoder_decoder,
            identity=item["identity"],
            task=item["task"],
            method=item["method"],
            source=item["source"],
            overwrite=args.overwrite,
        )
        print(
            f"wrote {out}: PEFT prompt tuning for task {item['task']} ({item['method']}), "
            f"[{item['prompt'].shape[0]}, {item['prompt'].shape[1]}], base model {reference.name_or_path}"
        )
    return 0
