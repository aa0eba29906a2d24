"""Learning on real data: SmolLM2-135M-Instruct on ../shared/data, every transfer method
against plain prompt tuning, several seeds, mean ± std per target task.

    python benchmarks/quality.py                        # the committed table (about 1.5 hours on 2 idle cores)
    python benchmarks/quality.py --seeds 42 43 --targets cb   # a subset
    python benchmarks/quality.py --smoke --out /tmp/q   # a tiny random T5, seconds (the test)

Resumable: every run lives in ``--out`` (default ``runs/quality``) and a rerun skips the runs
that finished and resumes the one that was interrupted (the training loop's ``--resume``), so
the script can be killed at any time and started again with the same arguments.

What runs (each a stage of ``promptmix train``, built from the ``configs/cpu`` presets, whose
short-run settings apply: prompts of 16 vectors, inputs cut at 96 tokens, batch 8,
rank-classification scoring):

1. source prompts, once (seed 42), for SST-2, QQP (the local subset), STS-B, RTE, MultiRC;
2. MPT distillation of those five into P* and task vectors, once;
3. per seed, on each target (CB, MRPC): prompt tuning; SPoT-targeted (a probe run, then the
   most cosine-similar source prompt as the init); ATTEMPT (target prompt from the RTE prompt,
   the NLI source standing in for the papers' MNLI); MPT; and on the targets together
   ATTEMPT-m (shared G) and MPT-m (shared P*), with twice the steps so each task sees as
   many examples as in its single-task run.

Scores are the task's main metric on its test split (CB: macro-F1/accuracy mean; MRPC: F1/
accuracy mean), each from the best-dev checkpoint. The table is printed last and written
to ``<out>/quality.md`` and ``<out>/quality.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import REPO, SHARED, load_backbone, machine_line  # noqa: E402

CPU_PRESETS = REPO / "configs" / "cpu"
SOURCES = ["sst2", "qqp", "stsb", "rte", "multirc"]
TARGETS = ["cb", "mrpc"]
SEEDS = [42, 43, 44]
INIT_FROM = "rte"  # ATTEMPT's target prompt: from the NLI source (the papers use MNLI)
# (row label, preset, overrides, multi-task); the order of the table
METHODS: list[tuple[str, str, dict[str, Any], bool]] = [
    ("prompt tuning", "prompt-tuning.yaml", {}, False),
    ("SPoT-targeted", "prompt-tuning.yaml", {"library.init_from": "auto", "library.sources": SOURCES}, False),
    ("ATTEMPT", "attempt.yaml", {"library.sources": SOURCES, "library.init_from": INIT_FROM}, False),
    ("ATTEMPT-m", "attempt.yaml", {"library.sources": SOURCES, "library.init_from": INIT_FROM}, True),
    ("MPT", "mpt-target.yaml", {}, False),
    ("MPT-m", "mpt-target.yaml", {}, True),
]
PAPER = {  # T5-base, full data (NOTES.md): CB and MRPC
    "prompt tuning": {"cb": 67.9, "mrpc": 68.1}, "SPoT-targeted": {"cb": 46.4, "mrpc": 79.7},
    "ATTEMPT": {"cb": 78.6, "mrpc": 85.7}, "ATTEMPT-m": {"cb": 82.1}, "MPT": {"cb": 79.8, "mrpc": 89.1},
    "MPT-m": {"cb": 89.3},
}


def stage_config(preset: str, overrides: dict[str, Any], common: dict[str, Any]):
    """A TrainConfig from a configs/cpu preset with dotted overrides."""
    from promptmix.training.config import TrainConfig
    from promptmix.training.yamlio import apply_overrides, read_yaml

    path = CPU_PRESETS / preset
    return TrainConfig.from_dict(apply_overrides(read_yaml(path), {**common, **overrides}), str(path))


def plan(args: argparse.Namespace) -> list[tuple[str, str, Any]]:
    """(label, seed or "", config) for every run, in the order they must happen."""
    out = Path(args.out)
    common = {"library.root": str(out / "prompts"), **args.common}
    eval_caps = {"data.max_dev_examples": args.max_dev, "data.max_test_examples": args.max_test}  # targets only
    runs = [("sources", "", stage_config("source.yaml", {
                "data.tasks": args.sources, "optim.max_steps": args.source_steps, "run.seed": 42,
                "run.dir": str(out / "sources")}, common)),
            ("mpt-source", "", stage_config("mpt-source.yaml", {
                "library.sources": args.sources, "optim.max_steps": args.distill_steps, "run.seed": 42,
                "run.dir": str(out / "mpt-source")}, common))]
    for seed in args.seeds:
        for label, preset, overrides, multi in METHODS:
            if label not in args.methods:
                continue
            overrides = {k: (args.sources if v is SOURCES else v) for k, v in overrides.items()}
            if INIT_FROM not in args.sources and overrides.get("library.init_from") == INIT_FROM:
                overrides["library.init_from"] = args.sources[0]
            steps = args.steps * (len(args.targets) if multi else 1)
            run_dir = out / f"seed{seed}" / label.lower().replace(" ", "-")
            config = stage_config(preset, {
                **overrides, **eval_caps, "data.tasks": args.targets, "data.multi_task": multi, "optim.max_steps": steps,
                "library.probe_steps": args.probe_steps, "library.mpt_source": str(out / "mpt-source"),
                "run.seed": seed, "run.dir": str(run_dir)}, common)
            runs.append((label, seed, config))
    return runs


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume, or skip) every planned run; return {label: {seed: test metrics}}."""
    from promptmix.training.runs import load_backbone_for, make_accelerator
    from promptmix.training.stages import run_stage

    runs = plan(args)
    first = runs[0][2]
    accelerator = make_accelerator(first)
    backbone = load_backbone("tiny") if args.smoke else load_backbone_for(first)
    scores: dict[str, dict[str, Any]] = {}
    sources: dict[str, Any] = {}
    for i, (label, seed, config) in enumerate(runs, 1):
        started = time.monotonic()
        print(f"[{i}/{len(runs)}] {label} {'seed ' + str(seed) if seed != '' else ''}: {config.run.dir}", flush=True)
        result = run_stage(config, resume=True, backbone=backbone, accelerator=accelerator)
        print(f"    {'done' if result.completed else 'STOPPED'} in {time.monotonic() - started:.0f} s "
              f"(training {result.seconds:.0f} s)", flush=True)
        if label == "sources":
            sources = {t: m.get("score") for t, m in result.dev.items() if isinstance(m, dict)}
        elif seed != "":
            scores.setdefault(label, {})[str(seed)] = {
                "test": {t: result.test[t] for t in args.targets if t in result.test},
                "trainable_parameters": result.trainable_parameters, "seconds": result.seconds}
    return {"sources_dev": sources, "runs": scores}


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def format_table(results: dict[str, Any], args: argparse.Namespace) -> str:
    targets = args.targets
    head = "| method | trainable params (all targets) | " + " | ".join(f"{t} test" for t in targets) + " | mean | paper (T5-base) |"
    lines = [head, "|---|---:|" + "---:|" * (len(targets) + 2)]
    for label, by_seed in results["runs"].items():
        per_task = {t: [r["test"][t]["score"] for r in by_seed.values() if t in r["test"]] for t in targets}
        means = [statistics.mean([r["test"][t]["score"] for t in targets]) for r in by_seed.values()
                 if all(t in r["test"] for t in targets)]
        params = sorted({r["trainable_parameters"] for r in by_seed.values()})
        paper = ", ".join(f"{t} {v}" for t, v in PAPER.get(label, {}).items() if t in targets) or "-"
        lines.append(f"| {label} | {', '.join(f'{p:,}' for p in params)} | "
                     + " | ".join(mean_std(per_task[t]) for t in targets) + f" | {mean_std(means)} | {paper} |")
    src = ", ".join(f"{t} {s:.1f}" for t, s in results["sources_dev"].items() if isinstance(s, (int, float)))
    lines.append(f"\nseeds {', '.join(map(str, args.seeds))} (mean ± sample std); source prompts' dev scores: {src}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "runs" / "quality"), help="runs, results and table (resumable)")
    p.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    p.add_argument("--targets", nargs="+", default=TARGETS)
    p.add_argument("--sources", nargs="+", default=SOURCES)
    p.add_argument("--methods", nargs="+", default=[m[0] for m in METHODS], metavar="LABEL",
                   help=f"rows to run, of: {', '.join(repr(m[0]) for m in METHODS)}")
    p.add_argument("--steps", type=int, default=30, help="training steps per target run (x tasks for the -m runs)")
    p.add_argument("--source-steps", type=int, default=30, help="training steps per source prompt")
    p.add_argument("--distill-steps", type=int, default=30, help="MPT distillation steps")
    p.add_argument("--probe-steps", type=int, default=10, help="SPoT-targeted probe steps")
    # With the presets' eval.every = 0 dev is scored once, at the end, so its size only sets what
    # the runs report on dev; test is what the table shows.
    p.add_argument("--max-dev", type=int, default=32, help="cap on the targets' dev examples (sources keep the presets' 48)")
    p.add_argument("--max-test", type=int, default=100, help="cap on the targets' test examples")
    p.add_argument("--model", default=None, help="model name or directory (default: the presets' smollm2-135m)")
    p.add_argument("--smoke", action="store_true", help="a tiny random T5 on 2 sources, 1 target, 1 seed, 2 steps")
    args = p.parse_args(argv)
    args.common = {}
    if args.model:
        args.common["model.name"] = args.model
    if args.smoke:  # the backbone is benchmarks/_common's random T5 "tiny", built in memory
        args.common.update({"data.max_source_length": 48,
                            "data.max_train_examples": 32, "method.prompt_length": 4, "method.attn_dim": 8,
                            "optim.batch_size": 4, "run.save_every": 1, "run.progress": False})
        args.sources, args.targets, args.seeds = ["sst2", "rte"], ["cb"], [42]
        args.steps = args.source_steps = args.distill_steps = args.probe_steps = 2
        args.max_dev = args.max_test = 8
    if (SHARED / "data").is_dir():  # the presets' ../shared/data is relative to the repository root
        args.common.setdefault("data.data_dir", str(SHARED / "data"))
    unknown = sorted(set(args.methods) - {m[0] for m in METHODS})
    if unknown:
        p.error(f"unknown --methods {unknown}; choose from {[m[0] for m in METHODS]}")

    print(machine_line(), flush=True)
    started = time.monotonic()
    results = run_all(args)
    table = format_table(results, args)
    settings = (f"SmolLM2-135M-Instruct, configs/cpu presets: prompt length 16, inputs cut at 96 tokens, batch 8, "
                f"{args.source_steps} steps per source, {args.distill_steps} distillation steps, {args.steps} steps per "
                f"target run, SPoT probe {args.probe_steps} steps, dev/test capped at {args.max_dev}/{args.max_test} examples"
                if not args.smoke else "smoke mode: tiny random T5")
    out = Path(args.out)
    from promptmix._io import atomic_write_text

    atomic_write_text(out / "quality.json", json.dumps({"settings": settings, **results}, indent=2) + "\n")
    atomic_write_text(out / "quality.md", f"{settings}\n\n{table}\n")
    print(f"\n{settings}; wall time of this invocation {(time.monotonic() - started) / 60:.1f} min\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
