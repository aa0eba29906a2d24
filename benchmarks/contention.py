"""A training step on a shared machine: idle, and beside a process that keeps one core busy,
with promptmix's default passive OpenMP wait and with the runtime's own default (spin, then
sleep), each in a fresh process, at torch's default threads. promptmix's target: the step beside
the burner at most 2x the idle step.

    python benchmarks/contention.py            # SmolLM2 prompt tuning, batch 8 x (16 + ~70) tokens
    python benchmarks/contention.py --smoke    # a tiny random model, seconds (the test)

Each measurement is a child process (``--child``) that builds the model, runs ``--steps``
forward + backward steps and prints the median of all but the first. "promptmix default"
imports promptmix first (which sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set); "OpenMP
default" imports torch first, so the OpenMP runtime starts before promptmix could say anything.
Variants alternate (A idle, B idle, A busy, B busy), so drift in the machine's load falls on both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {"promptmix default (passive wait)": "promptmix", "OpenMP default (torch imported first)": "torch"}


def child(args: argparse.Namespace) -> None:
    if args.first == "torch":
        import torch  # noqa: F401 - the OpenMP runtime starts with the environment as it is
    else:
        import promptmix  # noqa: F401 - first, as the CLI imports it: its wait policy reaches the runtime
    import statistics

    sys.path.insert(0, str(Path(__file__).parent))
    import torch
    from _common import load_backbone

    from promptmix.backbone import PromptedModel
    from promptmix.prompts import SoftPrompt, SoftPromptConfig

    backbone = load_backbone("tiny-llama" if args.smoke else "smollm2-135m")
    method = SoftPrompt(SoftPromptConfig(prompt_length=16), backbone.hidden_size, ["sst2"])
    method.initialize("sst2", backbone.embeddings, backbone.tokenizer, torch.Generator().manual_seed(0))
    model = PromptedModel(backbone, method)
    text = "sst2 sentence: " + "a fine, warm and funny film about friends " * 6
    batch = backbone.pad([backbone.encode(text, "positive", max_source_length=70) for _ in range(8)])
    task_ids = torch.zeros(8, dtype=torch.long)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        model(batch["input_ids"], batch["attention_mask"], batch["labels"], task_ids=task_ids).loss.backward()
        times.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "seconds": statistics.median(times[1:]),
                "threads": torch.get_num_threads(),
                "wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            }
        )
    )


def measure(args: argparse.Namespace, first: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["HF_HUB_OFFLINE"] = "1"
    command = [sys.executable, __file__, "--child", "--first", first, "--steps", str(args.steps)] + (
        ["--smoke"] if args.smoke else []
    )
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6, help="steps per measurement (the first is not counted)")
    p.add_argument("--smoke", action="store_true", help="a tiny random model")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--first", default="promptmix", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.smoke:
        args.steps = 3
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import machine_line

    print(machine_line())
    results: dict[str, dict[str, dict]] = {name: {} for name in VARIANTS}
    for load in ("idle", "beside a one-core burner"):
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "idle" else None
        try:
            for name, first in VARIANTS.items():
                results[name][load] = measure(args, first)
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
    print(f"\n{'variant':40s} {'threads':>7s} {'idle s':>8s} {'busy s':>8s} {'busy/idle':>9s}  target <= 2x")
    for name, by_load in results.items():
        idle, busy = by_load["idle"], by_load["beside a one-core burner"]
        ratio = busy["seconds"] / idle["seconds"]
        print(
            f"{name:40s} {idle['threads']:7d} {idle['seconds']:8.3f} {busy['seconds']:8.3f} {ratio:8.2f}x  "
            f"{'yes' if ratio <= 2.0 else 'no'}"
        )
    base = results["OpenMP default (torch imported first)"]["idle"]["seconds"]
    print(
        f"\npromptmix default idle step / OpenMP default idle step: "
        f"{results['promptmix default (passive wait)']['idle']['seconds'] / base:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
