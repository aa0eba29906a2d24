"""Real-data training throughput: length-grouped dynamic padding vs padding every input to 256.

    python benchmarks/data_speed.py --smoke        # seconds: tiny T5, a few RTE examples
    python benchmarks/data_speed.py                # t5-small shape (random weights), SST-2 and RTE
    python benchmarks/data_speed.py --backbone t5-base --batch 8 --batches 4

For each task the whole training split is tokenised (real T5 tokenizer, inputs truncated at
256 as the official ATTEMPT code does) and batched two ways:

  grouped   promptmix.tasks.mixtures.LengthGroupedBatchSampler, each batch padded to its own
            longest input;
  pad-256   shuffled batches, every input padded to 256 (the official ATTEMPT code).

Both run the same promptmix prompt-tuning training step (prompt length 100, forward +
backward + Adam, backbone in eval mode). A full SST-2 epoch is hours here, so ``--batches``
batches are drawn at random from each epoch (uniformly, so the estimate is unbiased for the
epoch) and stepped alternately; examples/s = examples stepped / seconds spent. The share of
real (non-pad) input tokens over the whole epoch is exact, from the lengths alone, and so is
the "token bound": the epoch's encoder tokens (prompt + padded input) under pad-256 over those
under the policy, the speed-up if step time were proportional to tokens (the 100 prompt tokens
every example carries cap it: at most (100 + 256) / (100 + mean length)).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, load_backbone, machine_line  # noqa: E402

from promptmix.backbone import IGNORE_INDEX, Backbone, PromptedModel  # noqa: E402
from promptmix.prompts import SoftPrompt, SoftPromptConfig  # noqa: E402
from promptmix.tasks import get_task  # noqa: E402
from promptmix.tasks.mixtures import LengthGroupedBatchSampler  # noqa: E402

MAX_LENGTH = 256


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny T5, few RTE examples: seconds")
    p.add_argument("--backbone", default=None, help="tiny, t5-small, t5-base (random weights) or smollm2-135m")
    p.add_argument("--tasks", default=None, help="comma-separated (default sst2,rte)")
    p.add_argument("--data-dir", default=str(SHARED / "data"))
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--batches", type=int, default=None, help="batches timed per task and policy")
    p.add_argument("--prompt-length", type=int, default=None)
    p.add_argument("--max-examples", type=int, default=None, help="use only this many training examples")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    smoke = args.smoke
    args.backbone = args.backbone or ("tiny" if smoke else "t5-small")
    args.tasks = (args.tasks or ("rte" if smoke else "sst2,rte")).split(",")
    args.batch = args.batch or (4 if smoke else 8)
    args.batches = args.batches or (2 if smoke else 6)
    args.prompt_length = args.prompt_length or (4 if smoke else 100)
    args.max_examples = args.max_examples or (64 if smoke else None)
    return args


def encode_split(backbone: Backbone, task: str, args: argparse.Namespace) -> list[dict[str, list[int]]]:
    train = get_task(task).load_splits(args.data_dir, seed=args.seed, hub=False)["train"]
    if args.max_examples:
        train = train[: args.max_examples]
    return [backbone.encode(ex.source, ex.target, max_source_length=MAX_LENGTH) for ex in train]


def collate(rows: list[dict[str, list[int]]], pad_id: int, pad_to: int | None) -> dict[str, torch.Tensor]:
    """Right-pad inputs to ``pad_to`` (None: the batch's longest) and labels to the longest."""
    n = pad_to or max(len(r["input_ids"]) for r in rows)
    t = max(len(r["labels"]) for r in rows)
    ids = torch.full((len(rows), n), pad_id)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    labels = torch.full((len(rows), t), IGNORE_INDEX)
    for i, r in enumerate(rows):
        ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
        mask[i, : len(r["input_ids"])] = 1
        labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def epoch_batches(lengths: np.ndarray, args: argparse.Namespace) -> dict[str, list[list[int]]]:
    grouped = list(LengthGroupedBatchSampler(lengths.tolist(), args.batch, seed=args.seed))
    order = np.random.default_rng(args.seed).permutation(len(lengths)).tolist()
    shuffled = [order[i : i + args.batch] for i in range(0, len(order), args.batch)]
    return {"grouped": grouped, "pad-256": shuffled}


def run_task(backbone: Backbone, task: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    rows = encode_split(backbone, task, args)
    lengths = np.array([len(r["input_ids"]) for r in rows])
    policies = epoch_batches(lengths, args)
    method = SoftPrompt(SoftPromptConfig(prompt_length=args.prompt_length), backbone.hidden_size, [task])
    model = PromptedModel(backbone, method)
    opt = torch.optim.Adam([method.prompts], lr=0.3)
    pad_id = backbone.tokenizer.pad_token_id
    rng = random.Random(args.seed)
    picks = {name: rng.sample(batches, min(args.batches, len(batches))) for name, batches in policies.items()}
    spent = {name: 0.0 for name in policies}
    done = {name: 0 for name in policies}

    def step(batch: dict[str, torch.Tensor]) -> None:
        opt.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        opt.step()

    step(collate([rows[i] for i in picks["grouped"][0]], pad_id, None))  # warm-up
    for i in range(args.batches):
        for name, batches in picks.items():
            if i >= len(batches):
                continue
            batch = collate([rows[j] for j in batches[i]], pad_id, MAX_LENGTH if name == "pad-256" else None)
            start = time.perf_counter()
            step(batch)
            spent[name] += time.perf_counter() - start
            done[name] += len(batches[i])
    out = {}
    for name, batches in policies.items():
        padded = sum(len(b) * (MAX_LENGTH if name == "pad-256" else int(lengths[b].max())) for b in batches)
        out[name] = {
            "eps": done[name] / spent[name],
            "real": float(lengths.sum()) / padded,
            "encoder_tokens": padded + len(lengths) * args.prompt_length,
        }
    out["_info"] = {"examples": len(rows), "mean_len": float(lengths.mean()), "max_len": int(lengths.max())}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    backbone = load_backbone(args.backbone)
    print(f"machine: {machine_line()}")
    print(
        f"backbone {backbone.name} (d={backbone.hidden_size}), promptmix prompt tuning m={args.prompt_length}, "
        f"batch {args.batch}, {args.batches} random batches of the epoch timed per policy, interleaved; eval mode"
    )
    results = {task: run_task(backbone, task, args) for task in args.tasks}
    print(
        f"\n{'task':<6}{'train ex':>9}{'mean len':>9}{'max len':>8}{'policy':>10}"
        f"{'real tokens':>12}{'examples/s':>11}{'speed-up':>9}{'token bound':>12}"
    )
    for task, res in results.items():
        info = res.pop("_info")
        for name, r in res.items():
            speed = r["eps"] / res["pad-256"]["eps"]
            bound = res["pad-256"]["encoder_tokens"] / r["encoder_tokens"]
            print(
                f"{task:<6}{info['examples']:>9}{info['mean_len']:>9.1f}{info['max_len']:>8}{name:>10}"
                f"{100 * r['real']:>11.1f}%{r['eps']:>11.2f}{speed:>8.2f}x{bound:>11.2f}x"
            )
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
