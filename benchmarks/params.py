"""Trainable parameters per task for every method at the widths of T5 small to 11B.

    python benchmarks/params.py            # m = r = 100, 8 tasks for the -m variants
    python benchmarks/params.py --smoke    # the same table (it takes well under a second)

Counts come from :func:`promptmix.params.count_parameters`; at T5-base width each one is also
checked against ``num_trainable_parameters()`` of the module actually built, and printed
beside the papers' figures (ATTEMPT Table 1, MPT Tables 1-2).
"""

from __future__ import annotations

import argparse
import sys

import torch

from promptmix.params import count_parameters, format_count
from promptmix.prompts import SoftPrompt, SoftPromptConfig
from promptmix.prompts.attempt import Attempt
from promptmix.prompts.mpt import MPT

WIDTHS = {"t5-small": 512, "t5-base": 768, "t5-large": 1024, "t5-3b": 1024, "t5-11b": 1024}
# (label, method, kwargs for count_parameters beyond d and m, paper figure at T5-base)
ROWS = [
    ("prompt tuning", "prompt-tuning", {}, "76.8K"),
    ("ATTEMPT", "attempt", {"num_tasks": 1}, "232K"),
    ("ATTEMPT-m (8 tasks)", "attempt", {"num_tasks": 8}, "96K"),
    ("MPT", "mpt", {"num_tasks": 1}, "77.6K"),
    ("MPT-m (8 tasks)", "mpt", {"num_tasks": 8}, "10.5K"),
]


def build(method: str, d: int, m: int, r: int, num_tasks: int = 1):
    """The real module at these sizes, to check the formula against."""
    tasks = [f"t{i}" for i in range(num_tasks)]
    if method == "prompt-tuning":
        return SoftPrompt(SoftPromptConfig(prompt_length=m), d, tasks)
    if method == "attempt":
        sources = {f"s{i}": torch.zeros(m, d) for i in range(6)}
        return Attempt.from_prompts(sources, tasks, init_from="s0", attn_dim=r)
    return MPT.from_teachers({t: torch.zeros(m, d) for t in tasks}, torch.zeros(m, d))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="accepted for symmetry with the other scripts")
    p.add_argument("--prompt-length", type=int, default=100)
    p.add_argument("--attn-dim", type=int, default=100)
    args = p.parse_args(argv)
    m, r = args.prompt_length, args.attn_dim
    print(f"trainable parameters per task (total / tasks), m = l = {m}, ATTEMPT r = {r}, MPT rank 1")
    print(
        f"{'method':<22}"
        + "".join(f"{f'{k} d={d}':>18}" for k, d in WIDTHS.items())
        + f"{'paper (base)':>14}{'built = formula':>17}"
    )
    for label, method, kwargs, paper in ROWS:
        counts = [count_parameters(method, d, m, attn_dim=r, **kwargs) for d in WIDTHS.values()]
        built = build(method, WIDTHS["t5-base"], m, r, kwargs.get("num_tasks", 1)).num_trainable_parameters()
        check = "yes" if built == counts[1].total else f"NO ({built:,})"
        print(f"{label:<22}" + "".join(f"{format_count(c.per_task):>18}" for c in counts) + f"{paper:>14}{check:>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
