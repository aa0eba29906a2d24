"""Throughput of multi-task inference and serving, in one run.

    python benchmarks/serving.py --smoke                 # seconds: tiny model, a few examples
    python benchmarks/serving.py                         # t5-small shape (random weights), GLUE dev data
    python benchmarks/serving.py --backbone smollm2-135m --prompt-length 100

Prints examples/s for
  mixed    one Predictor holding every task's prompt, the examples in arrival (shuffled) order;
  single   the same Predictor fed one task at a time (every batch single-task);
  reload   one model per task, loaded from disk when its task comes up (what serving each
           task's prompt as its own model costs), loading time included;
then, for a server on loopback (uvicorn on a thread of this process, so client and server
share the cores), requests/s and p50/p99 latency at a few concurrency levels, one example
per request, tasks mixed, plus the mean batch size the server formed.

Prompts are random (prompt tuning, one method per task as if each came from its own run):
speed does not depend on their values. Inputs are the tasks' real dev examples when
``--data-dir`` holds them, else generated sentences.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import torch  # noqa: E402
from _common import SHARED, interleaved_times, load_backbone, machine_line  # noqa: E402

from promptmix.backbone import Backbone  # noqa: E402
from promptmix.inference.predictor import Predictor  # noqa: E402
from promptmix.prompts import SoftPrompt, SoftPromptConfig  # noqa: E402
from promptmix.prompts.router import PromptRouter  # noqa: E402
from promptmix.serving.app import ServeConfig, create_app  # noqa: E402
from promptmix.serving.batcher import BatcherConfig  # noqa: E402
from promptmix.serving.server import BackgroundServer, default_threads  # noqa: E402
from promptmix.tasks import get_task  # noqa: E402

TASKS = ["rte", "sst2", "cola", "mrpc", "stsb"]  # four classification tasks and one regression
SMOKE_TASKS = ["rte", "sst2", "stsb"]
WORDS = "the a cat dog film plot sat ran on under good bad long short movie story it was not very".split()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny model, few examples: finishes in seconds")
    p.add_argument(
        "--backbone",
        default=None,
        help="'tiny', 't5-small', 't5-base' (random weights, real shapes) "
        "or a name/path for promptmix.loading.load_backbone",
    )
    p.add_argument("--data-dir", default=str(SHARED / "data"))
    p.add_argument("--examples", type=int, default=None, help="examples per task")
    p.add_argument("--prompt-length", type=int, default=None)
    p.add_argument("--concurrency", default=None, help="comma-separated client concurrency levels")
    p.add_argument("--requests", type=int, default=None, help="requests per concurrency level")
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--tasks", default=None, help=f"comma-separated tasks (default: {','.join(TASKS)})")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: what `promptmix serve` uses, serving.server.default_threads(); "
        "--smoke: 1)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda: where the model runs")
    p.add_argument(
        "--repeats", type=int, default=None, help="offline timings: median of this many rounds (variants interleaved)"
    )
    args = p.parse_args(argv)
    smoke = args.smoke
    args.backbone = args.backbone or ("tiny" if smoke else "t5-small")
    args.threads = args.threads or (1 if smoke else default_threads())
    args.tasks = args.tasks.split(",") if args.tasks else (SMOKE_TASKS if smoke else TASKS)
    args.examples = args.examples or (4 if smoke else 24)
    args.prompt_length = args.prompt_length or (4 if smoke else 100)
    args.concurrency = [int(c) for c in (args.concurrency or ("1,4" if smoke else "1,4,16")).split(",")]
    args.requests = args.requests or (8 if smoke else 48)
    args.repeats = args.repeats or (1 if smoke else 2)
    return args


def task_inputs(args: argparse.Namespace) -> dict[str, list[str]]:
    """Formatted inputs per task: real dev examples if present, else generated sentences."""
    rng = random.Random(args.seed)
    out = {}
    for name in args.tasks:
        task = get_task(name)
        try:
            texts = [ex.source for ex in task.load_splits(args.data_dir, seed=args.seed, hub=False)["dev"]]
        except Exception:  # no local copy: generated records in the task's own fields
            texts = []
        if len(texts) < args.examples:
            texts += [
                task.format({f: " ".join(rng.choices(WORDS, k=rng.randint(4, 24))) for f in task.input_fields}).source
                for _ in range(args.examples - len(texts))
            ]
        out[name] = rng.sample(texts, args.examples)
    return out


def build_router(backbone: Backbone, tasks: list[str], prompt_length: int, seed: int) -> PromptRouter:
    """One prompt-tuning method per task, as if each came from its own run."""
    gen = torch.Generator().manual_seed(seed)
    members = {}
    for name in tasks:
        method = SoftPrompt(SoftPromptConfig(prompt_length=prompt_length), backbone.hidden_size, [name])
        with torch.no_grad():
            method.prompts.copy_(torch.randn(method.prompts.shape, generator=gen) * float(backbone.embeddings.std()))
        members[f"run-{name}"] = method
    return PromptRouter(members)


def offline(args: argparse.Namespace, backbone: Backbone, inputs: dict[str, list[str]]) -> dict[str, float]:
    router = build_router(backbone, args.tasks, args.prompt_length, args.seed)
    predictor = Predictor(backbone, router, max_batch_size=args.max_batch_size, max_new_tokens=4)
    items = [{"task": t, "text": x} for t, texts in inputs.items() for x in texts]
    random.Random(args.seed).shuffle(items)
    by_task = {t: [i for i in items if i["task"] == t] for t in args.tasks}
    predictor.predict(items[:2])  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        backbone.model.save_pretrained(tmp)
        backbone.tokenizer.save_pretrained(tmp)

        def reload_per_task() -> None:
            from transformers import AutoTokenizer

            for t in args.tasks:
                model = type(backbone.model).from_pretrained(tmp).to(backbone.model.device).eval()
                fresh = Backbone(model, AutoTokenizer.from_pretrained(tmp), backbone.name)
                Predictor(fresh, router.member_of(t)[1], max_batch_size=args.max_batch_size, max_new_tokens=4).predict(
                    by_task[t]
                )

        times = interleaved_times(
            {
                "mixed": lambda: predictor.predict(items),
                "single": lambda: [predictor.predict(by_task[t]) for t in args.tasks],
                "reload": reload_per_task,
            },
            warmup=0 if args.smoke else 1,
            repeats=args.repeats,
        )
    n = len(items)
    return {name: (n / statistics.median(ts), n / min(ts)) for name, ts in times.items()} | {"examples": n}


async def load_level(url: str, items: list[dict], concurrency: int, total: int) -> tuple[float, list[float]]:
    """``total`` one-example requests from ``concurrency`` clients; returns (seconds, latencies)."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            item = items[i % len(items)]
            start = time.perf_counter()
            r = await client.post("/v1/predict", json={"task": item["task"], "inputs": [item["text"]]})
            latencies.append(time.perf_counter() - start)
            if r.status_code != 200:
                raise RuntimeError(f"request failed: {r.status_code} {r.text[:200]}")

    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency)) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        return time.perf_counter() - start, latencies


def serving(args: argparse.Namespace, backbone: Backbone, inputs: dict[str, list[str]]) -> list[dict[str, float]]:
    router = build_router(backbone, args.tasks, args.prompt_length, args.seed)
    predictor = Predictor(backbone, router, max_batch_size=args.max_batch_size, max_new_tokens=4)
    items = [{"task": t, "text": x} for t, texts in inputs.items() for x in texts]
    random.Random(args.seed + 1).shuffle(items)
    config = ServeConfig(BatcherConfig(args.max_batch_size, args.max_wait_ms, max_queue=1024))
    rows = []
    with BackgroundServer(create_app(predictor, config), max_connections=2048) as server:
        asyncio.run(load_level(server.url, items, 1, 2))  # warm-up
        for c in args.concurrency:
            before = httpx.get(server.url + "/metrics.json").json()
            seconds, lat = asyncio.run(load_level(server.url, items, c, args.requests))
            after = httpx.get(server.url + "/metrics.json").json()
            batches = after["batches"] - before["batches"]
            lat_ms = sorted(1000 * x for x in lat)
            rows.append(
                {
                    "concurrency": c,
                    "rps": len(lat) / seconds,
                    "p50": statistics.median(lat_ms),
                    "p99": lat_ms[min(len(lat_ms) - 1, round(0.99 * (len(lat_ms) - 1)))],
                    "batch": (after["items"] - before["items"]) / max(1, batches),
                    "mixed": (after["mixed_task_batches"] - before["mixed_task_batches"]) / max(1, batches),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(args.threads or threads)
        with torch.no_grad():
            report(args)
    finally:
        torch.set_num_threads(threads)  # the smoke test runs in-process
    return 0


def report(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    backbone = load_backbone(args.backbone)
    backbone.model.to(args.device)
    inputs = task_inputs(args)
    print(machine_line())
    print(
        f"backbone {backbone.name} (d={backbone.hidden_size}), {len(args.tasks)} tasks {args.tasks}, "
        f"{args.examples} examples/task, prompt length {args.prompt_length}"
    )
    speed = offline(args, backbone, inputs)
    print(f"\noffline, {speed['examples']} examples, tasks interleaved (examples/s: median of {args.repeats}, fastest)")
    for key, label in (
        ("mixed", "mixed-task batches"),
        ("single", "single-task batches"),
        ("reload", "reload a model per task"),
    ):
        print(f"  {label:<24} {speed[key][0]:9.1f} {speed[key][1]:9.1f}")
    print(
        f"\nserver on loopback, {args.requests} one-example requests per level "
        f"(max batch {args.max_batch_size}, max wait {args.max_wait_ms:g} ms)"
    )
    print(
        f"  {'concurrency':>11} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'mean batch':>10} {'mixed-task batches':>18}"
    )
    for row in serving(args, backbone, inputs):
        print(
            f"  {row['concurrency']:>11} {row['rps']:>11.1f} {row['p50']:>8.1f} {row['p99']:>8.1f} "
            f"{row['batch']:>10.1f} {100 * row['mixed']:>17.0f}%"
        )
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
