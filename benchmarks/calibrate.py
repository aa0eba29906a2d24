"""Calibrate prompt tuning's recipe for SmolLM2-135M-Instruct before anything ships (transfer
study 2, step 2): learning rate × prompt init × seed on one easy task (SST-2) and one NLI task
(the MNLI training subset), at least 300 steps each with a warm-up and decay that fit short
runs, dev (200 examples) scored at step 0 and every 25 steps.

    python benchmarks/calibrate.py --workers 2      # the sweep (resumable; hours on 2 cores)
    python benchmarks/calibrate.py --report         # the table, the curves and the pick
    python benchmarks/calibrate.py --smoke --out /tmp/c   # a tiny random T5, seconds (the test)
    python benchmarks/calibrate.py --promote sst2/lr0.1/vocab/seed42 --library DIR   # a run as a source

Every run is ``promptmix train prompt-tuning`` from ``configs/smollm2/prompt-tuning.yaml`` plus
the overrides in :func:`plan`: 10 % linear warm-up then linear decay to 0 (``optim.warmup_ratio``),
16-vector prompts, batch 8. A finished run's summary (its dev curve, best dev score, the
prompt's row norm against the token embeddings', wall time) goes to ``--results`` (committed,
``benchmarks/results/calibration``) and is never rerun; ``--workers N`` runs N single-threaded
worker processes that take runs in order (seed 42 first, vocabulary init before class-label
init), with ``quality.py``'s claims, so a killed sweep resumes where it stopped.

The pick (``--report``): only a task on which some cell beats its best constant answer by
``LEARNED_MARGIN`` dev points informs it (a task left at chance by every cell cannot rank rates:
its differences are noise of 200 dev examples). Among the (init, lr) cells run on every
informative task, those within a point of each task's best cell (or nearest to it) are ranked
by their mean dev score over the whole curve, steps 0 to the end: the fastest learner, which is
what the 100-step few-shot targets need; the best dev score breaks a tie.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import quality  # noqa: E402 - the study's workers, claims and result files
from _common import REPO, SHARED, load_backbone, machine_line  # noqa: E402

TASKS = ["sst2", "mnli"]
# Coarse to fine: the decades first (0.3, 0.03, 0.003), so a stopped sweep has already spanned
# the range, then the rates between them.
LRS = [0.3, 0.03, 0.003, 0.1, 0.01]
INITS = ["vocab", "class-label"]
SEEDS = [42, 43]
STEPS = 300
EVAL_EVERY = 25
DEV_EXAMPLES = 200
WARMUP_RATIO = 0.1
# A task informs the pick only where some cell beats its best constant answer by this much (the
# margin the issue asks of a shipped source).
LEARNED_MARGIN = 10.0
PRESET = "prompt-tuning.yaml"


def run_id(task: str, lr: float, init: str, seed: int, steps: int = STEPS) -> str:
    """The grid's runs are named by their cell; a longer (or shorter) run says its length too."""
    return f"{task}/lr{lr:g}/{init}/seed{seed}" + ("" if steps == STEPS else f"/steps{steps}")


def plan(args: argparse.Namespace) -> list[quality.Item]:
    """Every run, in the order workers take them: a whole seed-42 vocabulary sweep first (the
    question a user asks first; rates coarse to fine), then class-label init, then the second seed."""
    out = Path(args.out)
    items = []
    for priority, (seed, init) in enumerate((s, i) for s in args.seeds for i in args.inits):
        for lr in args.lrs:
            for task in args.tasks:
                item_id = run_id(task, lr, init, seed, args.steps)
                overrides = {
                    "data.tasks": [task],
                    "data.max_dev_examples": args.dev_examples,
                    "optim.lr": lr,
                    "optim.max_steps": args.steps,
                    "optim.warmup_ratio": WARMUP_RATIO,
                    "method.prompt_tuning.init": init,
                    "eval.every": args.eval_every,
                    "eval.at_start": True,
                    "eval.test": False,
                    "run.seed": seed,
                    "run.save_every": args.eval_every,
                    "run.dir": str(out / "runs" / item_id.replace("/", "__")),
                }
                items.append(
                    quality.Item(
                        item_id,
                        priority,
                        PRESET,
                        overrides,
                        {
                            "kind": "calibration",
                            "task": task,
                            "lr": lr,
                            "init": init,
                            "seed": seed,
                            "planned_steps": args.steps,
                        },
                    )
                )
    return items


def summarize(args: argparse.Namespace, item: quality.Item, config: Any, result: Any, backbone: Any) -> dict[str, Any]:
    """What the report needs of one finished run: the dev curve, the best dev score beside the
    constant answers' and the prompt's scale."""
    from promptmix.prompts.checkpoint import load_method
    from promptmix.rundirs.data import load_tasks
    from promptmix.training.stages import best_constant_score, majority_score

    task = item.info["task"]
    run_dir = Path(config.run.dir)
    data = load_tasks(config.data, [task])[task]
    records = quality.read_metrics(run_dir)
    main = {task: data.task.main_metric}
    prompt = load_method(run_dir / "method", backbone).task_prompt(task)
    token_norm = backbone.embeddings.detach().float().norm(dim=-1).mean().item()
    best_constant = best_constant_score(data, "dev")
    return {
        "id": item.id,
        **item.info,
        "steps": result.steps,
        "best_step": result.best_step,
        "best_dev": result.dev.get(task, {}).get(data.task.main_metric) if result.dev else None,
        "majority_dev": majority_score(data, "dev"),
        "best_constant_dev": best_constant[1] if best_constant else None,
        "dev_examples": len(data.dev),
        "curve": quality.dev_curves(records, [task], main)[task],
        "loss": [[r["step"], r["loss"]] for r in records if "loss" in r],
        "prompt_row_norm": round(prompt.norm(dim=-1).mean().item(), 3),
        "token_row_norm": round(token_norm, 3),
        "seconds": round(result.seconds, 1),
        "config": {k: v for k, v in item.overrides.items() if k != "run.dir"},
    }


def run_item(args: argparse.Namespace, item: quality.Item, config: Any, backbone: Any, accelerator: Any) -> None:
    quality.run_item(args, item, config, backbone, accelerator, summary_of=summarize)


def promote(args: argparse.Namespace, run: str, library_root: str) -> None:
    """Store a finished run's best prompt in a source library, with the card a source run writes
    (``training.stages.source_card``) plus ``trained_by``: a cell trained with the picked recipe
    to a flat dev curve is a source already, and training it again would only repeat it."""
    from promptmix.configio import read_yaml
    from promptmix.prompts.checkpoint import load_method
    from promptmix.prompts.library import PromptLibrary
    from promptmix.rundirs.data import load_tasks
    from promptmix.training.config import TrainConfig
    from promptmix.training.rundir import StageResult
    from promptmix.training.stages import source_card

    run_dir = Path(args.out) / "runs" / run.replace("/", "__")
    config_path = run_dir / "config.yaml"
    config = TrainConfig.from_dict(read_yaml(config_path), str(config_path))
    result = StageResult(**json.loads((run_dir / "results.json").read_text()))
    if not result.completed or config.data.tasks != [result.tasks[0]] or len(result.tasks) != 1:
        raise SystemExit(f"{run_dir}: not a finished single-task run (completed {result.completed}, {result.tasks})")
    (task,) = result.tasks
    data = load_tasks(config.data, [task])[task]
    backbone = load_backbone(config.model.name)
    prompt = load_method(run_dir / "method", backbone).task_prompt(task)
    card = source_card(config, result, data)
    card["trained_by"] = f"benchmarks/calibrate.py, run {run} ({run_dir.name})"
    record = PromptLibrary(library_root, update_shipped=True).add(
        task,
        prompt,
        task=task,
        method="prompt-tuning",
        backbone=backbone,
        metrics={k: float(v) for k, v in result.dev.get(task, {}).items()},
        card=card,
        overwrite=True,
    )
    print(f"{record.name}: dev {card['dev_score']} (best constant {card['best_constant_dev_score']}) -> {library_root}")


# -- report ----------------------------------------------------------------------------------------
def load_results(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(Path(args.results).glob("*.json"))]


def cells(results: list[dict[str, Any]]) -> dict[tuple[str, str, float], list[dict[str, Any]]]:
    """{(task, init, lr): [result per seed]}."""
    out: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for r in results:
        out.setdefault((r["task"], r["init"], r["lr"]), []).append(r)
    return out


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _curve_mean(rs: list[dict[str, Any]]) -> float:
    """Mean dev score over a run's evaluations (steps 0 to the end), averaged over seeds."""
    return _mean([_mean([v for _, v in r["curve"]]) for r in rs if r["curve"]])


def pick(results: list[dict[str, Any]], tasks: list[str]) -> dict[str, Any] | None:
    """The recipe (see the module docstring): {init, lr, means (best dev per informative task),
    best (each task's best cell), curve (mean dev over the curve), uninformative (tasks no cell
    learned)}; None while no informative task has a cell."""
    by_cell = cells(results)
    best: dict[str, float] = {}
    uninformative = []
    for t in tasks:
        runs = [rs for (task, _, _), rs in by_cell.items() if task == t]
        if not runs:
            continue
        best[t] = max(_mean([r["best_dev"] for r in rs]) for rs in runs)
        if best[t] < runs[0][0]["best_constant_dev"] + LEARNED_MARGIN:
            uninformative.append(t)
    informative = [t for t in best if t not in uninformative]
    scored = []
    for init, lr in {(init, lr) for (_, init, lr) in by_cell}:
        if not informative or any((t, init, lr) not in by_cell for t in informative):
            continue
        means = {t: _mean([r["best_dev"] for r in by_cell[(t, init, lr)]]) for t in informative}
        gap = max(best[t] - v for t, v in means.items())
        curve = _mean([_curve_mean(by_cell[(t, init, lr)]) for t in informative])
        scored.append((max(gap, 1.0), -curve, -_mean(list(means.values())), init, lr, means))
    if not scored:
        return None
    _, neg_curve, _, init, lr, means = min(scored)
    return {"init": init, "lr": lr, "means": means, "best": best, "curve": -neg_curve, "uninformative": uninformative}


def report(args: argparse.Namespace) -> str:
    every = load_results(args)
    if not every:
        return f"no results in {args.results}"
    # The grid is the runs of --steps; runs of another length answer a follow-up question
    # (does a task the grid leaves at chance learn given longer?) and get their own table.
    results = [r for r in every if r.get("planned_steps", STEPS) == args.steps]
    longer = [r for r in every if r.get("planned_steps", STEPS) != args.steps]
    by_cell = cells(results)
    lines = [
        f"# Calibration: prompt tuning on SmolLM2-135M-Instruct ({len(results)} of {len(plan(args))} runs)",
        "",
        f"{args.steps} steps, batch 8, 16 vectors, {WARMUP_RATIO:.0%} warm-up then linear decay, dev "
        f"{args.dev_examples} examples every {args.eval_every} steps and at step 0; best dev score (mean over "
        "seeds, the seeds' values in brackets), and the best prompt's mean row norm.",
        "",
    ]
    for task in args.tasks:
        task_results = [r for r in results if r["task"] == task]
        if not task_results:
            continue
        first = task_results[0]
        lines += [
            f"## {task}: dev majority class {first['majority_dev']:.1f}, best constant answer "
            f"{first['best_constant_dev']:.1f} ({first['dev_examples']} dev examples; token row norm "
            f"{first['token_row_norm']:.2f})",
            "",
            "| init | lr | best dev | best step | final dev | prompt row norm | seeds |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for (t, init, lr), rs in sorted(by_cell.items(), key=lambda kv: (kv[0][1] != "vocab", kv[0][1], -kv[0][2])):
            if t != task:
                continue
            best = [r["best_dev"] for r in rs]
            final = [r["curve"][-1][1] for r in rs if r["curve"]]
            seeds = ", ".join(f"{b:.1f}" for b in best)
            lines.append(
                f"| {init} | {lr:g} | {_mean(best):.1f} ({seeds}) | {_mean([r['best_step'] for r in rs]):.0f} | "
                f"{_mean(final):.1f} | {_mean([r['prompt_row_norm'] for r in rs]):.1f} | {len(rs)} |"
            )
        lines.append("")
    chosen = pick(results, args.tasks)
    if chosen is None:
        lines += [f"**No pick yet**: no task has a cell {LEARNED_MARGIN:g} points above its best constant answer.", ""]
    else:
        per_task = ", ".join(f"{t} {v:.1f} (best cell {chosen['best'][t]:.1f})" for t, v in chosen["means"].items())
        per_task += f"; mean dev over the curve {chosen['curve']:.1f}"
        if chosen["uninformative"]:
            per_task += (
                f"; not informing it (no cell {LEARNED_MARGIN:g} points above the best constant answer): "
                + ", ".join(chosen["uninformative"])
            )
        final = len(results) == len(plan(args))
        label = (
            "Pick"
            if final
            else f"Pick so far ({len(results)} of {len(plan(args))} runs; not final until the grid is complete)"
        )
        lines += [f"**{label}: init {chosen['init']}, lr {chosen['lr']:g}** — {per_task}.", ""]
    lines += _longer_table(longer)
    figure = plot_curves(args, results, longer)
    if figure:
        lines += [f"![dev curves]({os.path.relpath(figure, Path(args.figures).parent)})", ""]
    return "\n".join(lines)


def _longer_table(longer: list[dict[str, Any]]) -> list[str]:
    if not longer:
        return []
    lines = [
        "## Longer runs",
        "",
        "| task | init | lr | seed | steps | best dev | best step | final dev | best constant | prompt row norm |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(longer, key=lambda r: (r["task"], r["init"], -r["lr"], r["seed"], r["planned_steps"])):
        final = r["curve"][-1][1] if r["curve"] else float("nan")
        lines.append(
            f"| {r['task']} | {r['init']} | {r['lr']:g} | {r['seed']} | {r['steps']} | {r['best_dev']:.1f} | "
            f"{r['best_step']} | {final:.1f} | {r['best_constant_dev']:.1f} | {r['prompt_row_norm']:.1f} |"
        )
    return [*lines, ""]


def plot_curves(
    args: argparse.Namespace, results: list[dict[str, Any]], longer: list[dict[str, Any]] = ()
) -> Path | None:
    """One panel per (task, init): the dev curve of every lr (mean over the seeds run); a longer
    run is drawn dashed in its task's panel."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [(t, i) for t in args.tasks for i in args.inits if any(r["task"] == t and r["init"] == i for r in results)]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (task, init) in zip(axes[0], panels):
        for lr in args.lrs:
            rs = [r for r in results if r["task"] == task and r["init"] == init and r["lr"] == lr and r["curve"]]
            if not rs:
                continue
            steps = [s for s, _ in rs[0]["curve"]]
            values = [_mean([r["curve"][i][1] for r in rs if len(r["curve"]) > i]) for i in range(len(steps))]
            ax.plot(steps, values, marker=".", label=f"lr {lr:g} ({len(rs)} seed{'s' if len(rs) > 1 else ''})")
        for r in (r for r in longer if r["task"] == task and r["init"] == init and r["curve"]):
            steps, values = zip(*r["curve"])
            ax.plot(steps, values, linestyle=":", label=f"lr {r['lr']:g}, {r['steps']} steps (seed {r['seed']})")
        ref = next(r for r in results if r["task"] == task)
        ax.axhline(ref["best_constant_dev"], color="grey", linestyle="--", linewidth=1, label="best constant answer")
        ax.set_title(f"{task}, {init} init")
        ax.set_xlabel("step")
        ax.set_ylabel("dev score")
        ax.legend(fontsize=7)
    figure.tight_layout()
    out = Path(args.figures) / "calibration-curves.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


# -- command line ---------------------------------------------------------------------------------
def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "runs" / "calibration"), help="run directories and claims (resumable)")
    p.add_argument(
        "--results", default=None, help="one JSON per finished run (default: benchmarks/results/calibration)"
    )
    p.add_argument("--figures", default=None, help="where the curves go (default: docs/figures/calibration)")
    p.add_argument("--tasks", nargs="+", default=TASKS)
    p.add_argument("--lrs", type=float, nargs="+", default=LRS)
    p.add_argument("--inits", nargs="+", default=INITS, choices=INITS)
    p.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--eval-every", type=int, default=EVAL_EVERY)
    p.add_argument("--dev-examples", type=int, default=DEV_EXAMPLES)
    p.add_argument("--promote", metavar="RUN", help="store this finished run's prompt in --library with its card")
    p.add_argument("--library", help="the source library --promote writes to")
    quality.add_worker_arguments(
        p,
        report="only print the table and draw the curves from --results",
        smoke="a tiny random T5, 2 learning rates, 1 seed, 4 steps",
    )
    args = p.parse_args(argv)
    args.set, args.common = {}, {}
    if (SHARED / "data").is_dir():
        args.common["data.data_dir"] = str(SHARED / "data")
    if args.smoke:
        args.common.update(
            {
                "model.name": "tiny",
                "data.max_source_length": 48,
                "data.max_train_examples": 32,
                "method.prompt_tuning.prompt_length": 4,
                "optim.batch_size": 4,
                "run.log_every": 1,
            }
        )
        args.tasks, args.lrs, args.seeds, args.steps, args.eval_every, args.dev_examples = (
            ["rte"],
            [0.3, 0.03],
            [42],
            4,
            2,
            8,
        )
    args.results = args.results or str(
        Path(args.out) / "results" if args.smoke else REPO / "benchmarks" / "results" / "calibration"
    )
    args.figures = args.figures or str(
        Path(args.out) / "figures" if args.smoke else REPO / "docs" / "figures" / "calibration"
    )
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.promote:
        if not args.library:
            raise SystemExit("--promote needs --library")
        promote(args, args.promote, args.library)
        return 0
    if args.worker or (not args.report and not args.workers):
        failed = quality.work(args, plan(args), run_item, backbone=load_backbone("tiny") if args.smoke else None)
        if args.worker:
            return 1 if failed else 0
    elif not args.report:
        print(machine_line(), flush=True)
        quality.spawn_workers(args, argv, script=__file__)
    print(report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
