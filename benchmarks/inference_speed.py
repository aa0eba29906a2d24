"""Inference speed: rank classification, greedy generation and dev evaluation inside training,
each against the path it replaced and against the frozen-model limit.

    python benchmarks/inference_speed.py --smoke              # seconds: tiny random Llama
    python benchmarks/inference_speed.py                      # SmolLM2, the configs/cpu settings
    python benchmarks/inference_speed.py --parts rank --tasks mrpc,cb,rte --examples 32

Defaults are the transfer study's settings (configs/cpu presets): SmolLM2-135M-Instruct, prompt
length 16, inputs cut at 96 tokens, training batch 8. Variants of a part are timed round-robin
in one process (warm-up rounds, then the median and the fastest of the timed rounds), so load
from other work falls on all alike. Prompts are random prompt tuning: speed does not depend on
their values. Inputs are the tasks' dev (and, for ``eval``, train) examples from --data-dir.

Parts:
  rank      examples/s of rank classification over each task's label words, --batch examples
            per batch:
              full-rows  every candidate scored as a full row (prompt + input + answer), batches
                         in arrival order: the path before prefix sharing;
              shared     ``rank_classify``: prompt method and prompt + input once per example (a
                         KV cache on decoder-only models, the encoder on encoder-decoder ones),
                         each answer as a continuation; length-grouped batches, as evaluation runs;
              limit      the bare frozen model, one forward per example over prompt + input + its
                         longest answer, LM head at the answer positions only, no prompt module;
                         the same length-grouped batches.
  generate  tokens/s of greedy decoding of --new-tokens tokens per example (eos barred, so every
            variant makes as many), one batch of --batch dev inputs:
              promptmix  ``PromptedModel.generate``, a mixed-task batch over two prompts;
              hf-plain   HF ``generate`` of the same model on the same inputs with no prompt
                         (the issue's yardstick; it also runs m fewer tokens per row);
              hf-embeds  HF ``generate`` on the same prompt + input embeddings with no prompt
                         module: the limit for a prompted model.
  eval      the share of a training run's wall time that dev evaluation takes at the study's
            settings (--steps optimizer steps, --dev-examples dev examples scored every
            --eval-every steps, eval batch --eval-batch): one training step (forward + backward +
            AdamW on batch --train-batch) and one dev pass, now (``evaluate.predict``) and the
            old way (full rows, arrival order), timed interleaved; shares computed from them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, interleaved_times, load_backbone, machine_line  # noqa: E402

from promptmix.backbone import IGNORE_INDEX, Backbone, PromptedModel  # noqa: E402
from promptmix.prompts import SoftPrompt, SoftPromptConfig  # noqa: E402
from promptmix.prompts.router import PromptRouter  # noqa: E402
from promptmix.scoring import rank_classify, sequence_log_likelihoods  # noqa: E402
from promptmix.tasks import Example, get_task  # noqa: E402

PARTS = ("rank", "generate", "eval")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny random Llama, few examples: seconds")
    p.add_argument(
        "--backbone", default=None, help="smollm2-135m (default), tiny-llama, tiny, t5-small, t5-base or a model name"
    )
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--tasks", default="mrpc,cb,rte", help="rank part: comma-separated tasks with label words")
    p.add_argument("--eval-task", default="mrpc", help="eval part: the task trained and scored")
    p.add_argument("--data-dir", default=str(SHARED / "data"))
    p.add_argument("--prompt-length", type=int, default=None)
    p.add_argument("--max-source-length", type=int, default=96)
    p.add_argument("--examples", type=int, default=None, help="rank part: dev examples per task")
    p.add_argument("--batch", type=int, default=8, help="rank and generate parts: examples per batch")
    p.add_argument("--new-tokens", type=int, default=None)
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--dev-examples", type=int, default=None)
    p.add_argument("--eval-batch", type=int, default=16)
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args(argv)
    smoke = args.smoke
    args.backbone = args.backbone or ("tiny-llama" if smoke else "smollm2-135m")
    args.parts = [x for x in args.parts.split(",") if x]
    if set(args.parts) - set(PARTS):
        p.error(f"unknown part(s) {sorted(set(args.parts) - set(PARTS))}; choose from {PARTS}")
    args.tasks = args.tasks.split(",")
    args.prompt_length = args.prompt_length or (4 if smoke else 16)
    args.examples = args.examples or (4 if smoke else 32)
    args.new_tokens = args.new_tokens or (4 if smoke else 16)
    args.dev_examples = args.dev_examples or (4 if smoke else 64)
    args.warmup = args.warmup if args.warmup is not None else (0 if smoke else 1)
    args.repeats = args.repeats or (1 if smoke else 3)
    return args


def random_prompts(backbone: Backbone, tasks: list[str], m: int) -> PromptRouter:
    """One prompt-tuning method per task (as if each came from its own run), random values."""
    gen, std = torch.Generator().manual_seed(0), float(backbone.embeddings.std())
    members = {}
    for name in tasks:
        method = SoftPrompt(SoftPromptConfig(prompt_length=m), backbone.hidden_size, [name])
        with torch.no_grad():
            method.prompts.copy_(torch.randn(method.prompts.shape, generator=gen) * std)
        members[f"run-{name}"] = method
    return PromptRouter(members)


def split(args: argparse.Namespace, task: str, name: str, count: int) -> list[Example]:
    return get_task(task).load_splits(args.data_dir, hub=False)[name][:count]


def timed(fns: dict[str, Callable[[], object]], args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """(median, fastest) seconds of each function, called round-robin."""
    times = interleaved_times(fns, args.warmup, args.repeats)
    return {name: (statistics.median(ts), min(ts)) for name, ts in times.items()}


# -- rank classification -----------------------------------------------------------------------
def limit_batches(model: PromptedModel, candidates: list[list[dict]], batches: list[list[int]]) -> Callable[[], None]:
    """The bare model over prompt + input + each example's longest answer, one row per example;
    embeddings precomputed (a fixed random prompt), LM head at the answer positions only."""
    backbone, m = model.backbone, model.method.prompt_length
    prompt = torch.randn(m, backbone.hidden_size) * float(backbone.embeddings.std())
    prepared = []
    with torch.no_grad():
        for batch in batches:
            rows = [max(candidates[i], key=lambda f: len(f["input_ids"]) + len(f["labels"])) for i in batch]
            data = backbone.pad(rows)
            embeds = backbone.model.get_input_embeddings()(data["input_ids"])
            embeds = torch.cat([prompt.expand(len(batch), m, -1), embeds], dim=1)
            mask = torch.cat([torch.ones(len(batch), m, dtype=torch.long), data["attention_mask"]], dim=1)
            labels = (
                data["labels"]
                if backbone.is_encoder_decoder
                else torch.cat([torch.full((len(batch), m), IGNORE_INDEX), data["labels"]], dim=1)
            )
            prepared.append((embeds, mask, labels))

    @torch.no_grad()
    def run() -> None:
        for embeds, mask, labels in prepared:
            if backbone.is_encoder_decoder:
                backbone.model(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False)
                continue
            hidden = backbone.model.base_model(
                inputs_embeds=embeds, attention_mask=mask, use_cache=False
            ).last_hidden_state
            backbone.model.get_output_embeddings()(hidden[:, :-1][labels[:, 1:] != IGNORE_INDEX])

    return run


def rank_variants(
    model: PromptedModel, task: str, examples: list[Example], args: argparse.Namespace
) -> dict[str, Callable[[], None]]:
    backbone, words = model.backbone, get_task(task).label_words
    task_id = model.method.task_id(task)
    candidates = [
        [backbone.encode(ex.source, w, max_source_length=args.max_source_length) for w in words] for ex in examples
    ]
    arrival = [list(range(s, min(s + args.batch, len(examples)))) for s in range(0, len(examples), args.batch)]
    order = sorted(range(len(examples)), key=lambda i: len(candidates[i][0]["input_ids"]))
    grouped = [order[s : s + args.batch] for s in range(0, len(order), args.batch)]

    @torch.no_grad()
    def full_rows() -> None:
        for batch in arrival:
            rows = [f for i in batch for f in candidates[i]]
            sequence_log_likelihoods(model, rows, torch.full((len(rows),), task_id))

    @torch.no_grad()
    def shared() -> None:
        for batch in grouped:
            rank_classify(model, [candidates[i] for i in batch], torch.full((len(batch),), task_id))

    return {"full-rows": full_rows, "shared": shared, "limit": limit_batches(model, candidates, grouped)}


def rank_part(backbone: Backbone, args: argparse.Namespace) -> None:
    model = PromptedModel(backbone, random_prompts(backbone, args.tasks, args.prompt_length)).eval()
    print(f"\nrank classification, examples/s (median / fastest of {args.repeats}), batch {args.batch}")
    print(
        f"{'task':<6}{'words':>6}{'examples':>9}{'full-rows':>16}{'shared':>16}{'limit':>16}"
        f"{'shared/full':>13}{'shared/limit':>14}"
    )
    for task in args.tasks:
        examples = split(args, task, "dev", args.examples)
        t = timed(rank_variants(model, task, examples, args), args)
        rate = {k: (len(examples) / v[0], len(examples) / v[1]) for k, v in t.items()}
        cells = "".join(f"{rate[k][0]:8.2f} /{rate[k][1]:6.2f}" for k in ("full-rows", "shared", "limit"))
        print(
            f"{task:<6}{len(get_task(task).label_words):>6}{len(examples):>9}{cells}"
            f"{rate['shared'][0] / rate['full-rows'][0]:>12.2f}x{rate['shared'][0] / rate['limit'][0]:>13.2f}x"
        )


# -- generation --------------------------------------------------------------------------------
def generate_part(backbone: Backbone, args: argparse.Namespace) -> None:
    router = random_prompts(backbone, ["task-a", "task-b"], args.prompt_length)
    model = PromptedModel(backbone, router).eval()
    sources = [ex.source for ex in split(args, args.tasks[0], "dev", args.batch)]
    ids = [backbone.encode(s, max_source_length=args.max_source_length)["input_ids"] for s in sources]
    right = backbone.pad([{"input_ids": x} for x in ids])
    task_ids = torch.arange(len(ids)) % 2  # both prompts in the batch
    with torch.no_grad():
        embeds, mask, _, _ = model._prompted_inputs(
            right["input_ids"], right["attention_mask"], task_ids, None, pads_first=not backbone.is_encoder_decoder
        )
    if backbone.is_encoder_decoder:
        plain = right
    else:  # HF decoder-only generation wants pads first
        width = right["input_ids"].shape[1]
        plain = {
            "input_ids": torch.stack(
                [torch.roll(r, width - int(m.sum())) for r, m in zip(right["input_ids"], right["attention_mask"])]
            ),
            "attention_mask": torch.stack([torch.roll(m, width - int(m.sum())) for m in right["attention_mask"]]),
        }
    k = args.new_tokens
    common = {
        "do_sample": False,
        "max_new_tokens": k,
        "min_new_tokens": k,
        "pad_token_id": backbone.tokenizer.pad_token_id,
    }
    fns = {
        "promptmix": lambda: model.generate(
            right["input_ids"], right["attention_mask"], task_ids, max_new_tokens=k, min_new_tokens=k
        ),
        "hf-plain": lambda: backbone.model.generate(**plain, **common),
        "hf-embeds": lambda: backbone.model.generate(inputs_embeds=embeds, attention_mask=mask, **common),
    }
    with torch.no_grad():
        t = timed(fns, args)
    tokens = len(ids) * k
    print(
        f"\ngreedy generation, batch {len(ids)} x {k} new tokens, prompt {args.prompt_length} "
        "(tokens/s, median / fastest)"
    )
    for name, (med, best) in t.items():
        print(
            f"  {name:<10}{tokens / med:9.1f} /{tokens / best:7.1f}   promptmix vs this: "
            f"{t[name][0] / t['promptmix'][0]:.2f}x (median), {t[name][1] / t['promptmix'][1]:.2f}x (fastest)"
        )


# -- evaluation inside training ----------------------------------------------------------------
def old_predict(model: PromptedModel, task, examples: list[Example], args: argparse.Namespace) -> list[str]:
    """Dev scoring as it ran before prefix sharing and length grouping: batches in arrival
    order, every label word of every example scored as a full row."""
    words, out = task.label_words, []
    for start in range(0, len(examples), args.eval_batch):
        chunk = examples[start : start + args.eval_batch]
        rows = [
            model.backbone.encode(ex.source, w, max_source_length=args.max_source_length) for ex in chunk for w in words
        ]
        ll, _, _ = sequence_log_likelihoods(model, rows, torch.zeros(len(rows), dtype=torch.long))
        out += [words[int(i)] for i in ll.view(len(chunk), len(words)).argmax(dim=1)]
    return out


def eval_part(backbone: Backbone, args: argparse.Namespace) -> None:
    from promptmix.inference import evaluate as evaluation
    from promptmix.rundirs.data import TaskData
    from promptmix.training.config import EvalConfig

    task = get_task(args.eval_task)
    model = PromptedModel(backbone, random_prompts(backbone, [task.name], args.prompt_length)).eval()
    train, dev = split(args, task.name, "train", args.train_batch), split(args, task.name, "dev", args.dev_examples)
    feats = [
        backbone.encode(ex.source, ex.target, max_source_length=args.max_source_length, max_target_length=8)
        for ex in train
    ]
    batch = backbone.pad(feats)
    optimizer = torch.optim.AdamW(model.method.parameters(), lr=0.3)

    def train_step() -> None:  # the loop's step: forward + backward + AdamW, frozen backbone in eval mode
        model(
            batch["input_ids"], batch["attention_mask"], batch["labels"], torch.zeros(len(train), dtype=torch.long)
        ).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    data, config = TaskData(task, train, dev, []), EvalConfig(scoring="rank", batch_size=args.eval_batch)
    t = timed(
        {
            "train step": train_step,
            "dev, old": torch.no_grad()(lambda: old_predict(model, task, dev, args)),
            "dev, now": lambda: evaluation.predict(model, data, dev, 0, config, args.max_source_length),
        },
        args,
    )
    evals = max(1, args.steps // args.eval_every)
    print(
        f"\nevaluation inside training: {task.name}, {args.steps} steps of batch {args.train_batch}, {len(dev)} dev "
        f"examples scored {evals} times (every {args.eval_every} steps), eval batch {args.eval_batch}"
    )
    for name, (med, best) in t.items():
        print(f"  {name:<11}{med:8.2f} s median {best:8.2f} s fastest")
    train_s = args.steps * t["train step"][0]
    for name in ("dev, old", "dev, now"):
        dev_s = evals * t[name][0]
        print(
            f"  run with {name[5:]:<4} scoring: {train_s + dev_s:8.0f} s, "
            f"evaluation {100 * dev_s / (train_s + dev_s):5.1f}% of it"
        )
    print(
        f"  dev pass now vs old: {t['dev, old'][0] / t['dev, now'][0]:.2f}x faster (median), "
        f"{t['dev, old'][1] / t['dev, now'][1]:.2f}x (fastest); whole run "
        f"{(train_s + evals * t['dev, old'][0]) / (train_s + evals * t['dev, now'][0]):.2f}x faster"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    backbone = load_backbone(args.backbone)
    print(f"machine: {machine_line()}")
    print(
        f"backbone {backbone.name} (d={backbone.hidden_size}), prompt length {args.prompt_length}, inputs cut at "
        f"{args.max_source_length} tokens; {args.warmup} warm-up + {args.repeats} timed rounds, variants interleaved"
    )
    parts = {"rank": rank_part, "generate": generate_part, "eval": eval_part}
    for name in args.parts:
        parts[name](backbone, args)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
