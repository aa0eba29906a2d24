"""`promptmix demo`: load a backbone, build ATTEMPT over two source prompts and answer a
batch that mixes tasks, printing each example's answer and attention over the prompts.

Untrained prompts answer nonsense; the demo shows the machinery (one frozen model, one
forward pass, per-example task routing and attention), not accuracy: `promptmix pipeline`
trains.
"""

from __future__ import annotations

import argparse
import time

import torch

from promptmix.backbone import PromptedModel
from promptmix.cli import HELP
from promptmix.inference.engine import Engine, EngineInput
from promptmix.loading import SMOLLM2_ALIAS, load_backbone
from promptmix.prompts import initial_prompt
from promptmix.prompts.attempt import Attempt
from promptmix.tasks import get_task

DEFAULT_DATA = "../shared/data"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help=HELP["demo"], description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=SMOLLM2_ALIAS, help="hub id, local path or alias (default: %(default)s)")
    p.add_argument(
        "--data-dir", default=DEFAULT_DATA, help="GLUE/SuperGLUE files in their release layout (default: %(default)s)"
    )
    p.add_argument(
        "--tasks", default="rte,cb,sst2", help="comma-separated target tasks mixed in one batch (default: %(default)s)"
    )
    p.add_argument("--sources", default="mnli,sst2", help="names for the two source prompts (default: %(default)s)")
    p.add_argument("--prompt-length", type=int, default=10, help="m (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    backbone = load_backbone(args.model)
    print(f"loaded {backbone.name} (d={backbone.hidden_size}, frozen) in {time.perf_counter() - t0:.1f}s")
    gen = torch.Generator().manual_seed(args.seed)
    sources = {
        name: initial_prompt(
            backbone.embeddings, args.prompt_length, "vocab", tokenizer=backbone.tokenizer, generator=gen
        )
        for name in args.sources.split(",")
    }
    tasks = [get_task(name) for name in args.tasks.split(",")]
    method = Attempt.from_prompts(sources, [t.name for t in tasks], init_from=next(iter(sources)))
    model = PromptedModel(backbone, method).eval()
    examples = [t.load_splits(args.data_dir, seed=args.seed)["dev"][0] for t in tasks]
    inputs = [
        EngineInput(
            method.task_id(ex.task),
            backbone.encode(ex.source, max_source_length=min(t.max_source_length, 128))["input_ids"],
            task=ex.task,
        )
        for ex, t in zip(examples, tasks)
    ]
    engine = Engine(model, max_batch_size=len(inputs), max_new_tokens=8)
    t0 = time.perf_counter()
    answers = engine.run(inputs)
    print(f"one generate call, {len(examples)} examples of {len(tasks)} tasks: {time.perf_counter() - t0:.1f}s")
    for ex, answer in zip(examples, answers):
        weights = ", ".join(f"{n} {w:.3f}" for n, w in answer.attention.items())
        print(
            f"[{ex.task}] {ex.source[:70]}...\n"
            f"    gold: {ex.target!r}  generated: {answer.text!r}\n"
            f"    attention: {weights}"
        )
    return 0
