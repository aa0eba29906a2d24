"""Tables and figures of the transfer study (``benchmarks/quality.py``) from its per-run JSON.

- one table per regime (full data; k = 4, 16, 32 per class): test main metric per target and
  method, mean ± sample std over seeds, the mean over targets and its difference to prompt
  tuning, the majority-class score of each target's test split beside them;
- learning curves: dev main metric against target steps per task, mean over seeds, one line
  per method, one panel per target (-m runs: global steps / number of tasks);
- the head start, where runs scored dev before their first step (``--eval-at-start``): dev at
  step 0, at the first evaluation after it and at the best evaluation, per method and target;
- ATTEMPT's mean attention per target (the papers' Figure 6), averaged over seeds;
- MPT distillation: the loss terms over steps and the sources' mean dev score, per P* init.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

REGIME_TITLES = {
    "full": "full training data",
    "k4": "few-shot, k = 4 per class",
    "k16": "few-shot, k = 16 per class",
    "k32": "few-shot, k = 32 per class",
}


def load_results(args: Any, items: list[Any]) -> dict[str, dict[str, Any]]:
    """Each finished run's summary from ``args.results``; with ``args.baseline``, prompt tuning's
    runs missing there come from that folder (prompt tuning reads no source library, so a study
    on another library shares them)."""
    out = {}
    for item in items:
        folders = [Path(args.results)]
        if getattr(args, "baseline", None) and item.info.get("method") == "prompt tuning":
            folders.append(Path(args.baseline))
        for folder in folders:
            path = folder / f"{item.slug}.json"
            if path.is_file():
                out[item.id] = json.loads(path.read_text())
                break
    return out


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f} (1 seed)"
    text = f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"
    return text if len(values) >= 3 else f"{text} ({len(values)} seeds)"


def test_scores(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[int, float]]]:
    """{method: {target: {seed: test main metric}}} of the target runs given."""
    out: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in results:
        for task in r["tasks"]:
            if task in r["test"]:
                out[r["method"]][task][r["seed"]] = r["test"][task][r["main_metric"][task]]
    return out


def regime_table(args: Any, results: list[dict[str, Any]], methods: list[str]) -> str:
    scores = test_scores(results)
    targets = args.targets
    majority: dict[str, float] = {}
    for r in results:
        for task, value in r.get("majority_test", {}).items():
            if value is not None:
                majority[task] = value
    # the full training data's majority label (quality.full_data_majority) wins where computed
    majority.update({t: v for t, v in (getattr(args, "majority", None) or {}).items() if v is not None})
    head = "| method | " + " | ".join(targets) + " | mean | Δ vs prompt tuning |"
    lines = [head, "|---|" + "---:|" * (len(targets) + 2)]
    baseline = _seed_means(scores.get("prompt tuning", {}), targets)
    for method in methods:
        if method not in scores:
            continue
        per_seed = _seed_means(scores[method], targets)
        common = sorted(set(per_seed) & set(baseline))
        delta = mean_std([per_seed[s] - baseline[s] for s in common]) if method != "prompt tuning" and common else "-"
        cells = [mean_std(list(scores[method][t].values())) for t in targets]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {mean_std(list(per_seed.values()))} | {delta} |")
    lines.append(
        "| majority class (full train data) | "
        + " | ".join(f"{majority[t]:.1f}" if t in majority else "-" for t in targets)
        + " | "
        + (f"{statistics.mean(majority[t] for t in targets):.1f}" if all(t in majority for t in targets) else "-")
        + " | |"
    )
    return "\n".join(lines)


def _seed_means(by_target: dict[str, dict[int, float]], targets: list[str]) -> dict[int, float]:
    """Per seed, the mean over targets (only seeds that have every target)."""
    seeds = set.intersection(*(set(by_target.get(t, {})) for t in targets)) if targets else set()
    return {s: statistics.mean(by_target[t][s] for t in targets) for s in sorted(seeds)}


def head_start_table(args: Any, results: list[dict[str, Any]], methods: list[str]) -> str | None:
    """Dev at step 0, at the first evaluation after it and at the best one (mean over seeds);
    None when no run scored step 0."""
    cells: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    firsts = set()  # the first evaluated step after 0, per task (-m runs count global steps)
    for r in results:
        for task, points in r["curves"].items():
            if len(points) >= 2 and points[0][0] == 0:
                cells[(r["method"], task)].append((points[0][1], points[1][1], max(v for _, v in points)))
                firsts.add(points[1][0] / len(r["tasks"]))
    if not cells:
        return None
    first = f"step {firsts.pop():g}" if len(firsts) == 1 else "first evaluation"
    targets = [t for t in args.targets if any(task == t for _, task in cells)]
    lines = [
        "| method | " + " | ".join(f"{t}: step 0 → {first} → best" for t in targets) + " |",
        "|---|" + "---:|" * len(targets),
    ]
    for method in methods:
        if any((method, t) in cells for t in targets):
            row = []
            for t in targets:
                runs = cells.get((method, t))
                row.append(" → ".join(f"{statistics.mean(v[i] for v in runs):.1f}" for i in range(3)) if runs else "-")
            lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    return plt


def curves_figure(args: Any, regime: str, results: list[dict[str, Any]], methods: list[str], path: Path) -> bool:
    """Dev curves of one regime, one panel per target; False when there is nothing to draw."""
    lines: dict[tuple[str, str], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        scale = len(r["tasks"])
        for task, points in r["curves"].items():
            for step, value in points:
                lines[(r["method"], task)][step / scale].append(value)
    if not lines:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(args.targets), figsize=(4.2 * len(args.targets), 3.6), squeeze=False)
    for ax, task in zip(axes[0], args.targets):
        for method in methods:
            points = lines.get((method, task))
            if points:
                xs = sorted(points)
                ax.plot(xs, [statistics.mean(points[x]) for x in xs], marker="o", markersize=3, label=method)
        ax.set_title(task)
        ax.set_xlabel("target steps (per task)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("dev score (mean over seeds)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{REGIME_TITLES[regime]}: dev score during target training", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return True


def attention_figure(results: list[dict[str, Any]], regime: str, path: Path) -> bool:
    import torch

    from promptmix.inference.attention_map import AttentionTable, write_heatmap

    rows: dict[str, list[list[float]]] = defaultdict(list)
    columns = None
    for r in results:
        if r["method"] == "ATTEMPT" and "attention" in r:
            columns = r["attention"]["columns"]
            for task, weights in r["attention"]["rows"].items():
                rows[task].append(weights)
    if not rows:
        return False
    targets = sorted(rows)
    weights = torch.tensor([[statistics.mean(col) for col in zip(*rows[t])] for t in targets])
    table = AttentionTable(targets, columns, weights, [len(rows[t]) for t in targets])
    write_heatmap(table, path, title=f"ATTEMPT attention, {REGIME_TITLES[regime]} (mean over seeds)")
    return True


def distillation_figure(results: dict[str, dict[str, Any]], path: Path) -> bool:
    runs = {r["init"]: r for r in results.values() if r.get("kind") == "mpt-source"}
    if not runs:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for init, r in sorted(runs.items()):
        losses = r.get("losses", [])
        for i, name in enumerate(("loss", "ce", "kl", "hidden"), start=1):
            points = [(row[0], row[i]) for row in losses if row[i] is not None]
            if points:
                axes[0].plot(*zip(*points), label=f"{name} ({init})", linestyle="-" if init == "vocab" else "--")
        dev = [(s, v) for s, v in r.get("dev_curve", []) if v is not None]
        if dev:
            axes[1].plot(*zip(*dev), marker="o", markersize=3, label=f"P* from {init}")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("distillation step")
    axes[0].set_title("MPT distillation loss terms (per micro-batch)")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("distillation step")
    axes[1].set_title("sources' mean dev score, student P* ∘ u_k v_k")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return True


def _save(fig: Any, path: Path) -> None:
    from promptmix._io import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)


def write_report(args: Any, items: list[Any]) -> str:
    """Draw every figure the results allow and return the Markdown of tables and figures."""
    results = load_results(args, items)
    figures = Path(args.figures)
    methods = [m for m in args.methods]
    scorings = sorted({r.get("scoring") for r in results.values() if r.get("kind") == "target"} - {None})
    parts = [
        f"{len(results)} of {len(items)} runs finished (results in {args.results}); scores are the test "
        f"split's main metric from the best-dev checkpoint, scoring: {', '.join(scorings) or '-'} "
        "(rank = rank classification over the label words).",
        "",
    ]
    if distillation_figure(results, figures / "mpt-distillation.png"):
        parts += ["MPT distillation:", "", f"![MPT distillation]({figures / 'mpt-distillation.png'})", ""]
        for r in sorted((r for r in results.values() if r.get("kind") == "mpt-source"), key=lambda r: r["init"]):
            dev = [v for _, v in r.get("dev_curve", []) if v is not None]
            parts.append(
                f"- P* from {r['init']}: {r['steps']} steps, {r['seconds']:.0f} s; best sources' mean dev "
                f"{max(dev):.1f} at step {r['best_step']}"
                if dev
                else f"- P* from {r['init']}: no dev scores"
            )
        parts.append("")
    for regime in args.regimes:
        rows = [r for r in results.values() if r.get("regime") == regime]
        if not rows:
            continue
        parts += [f"### {REGIME_TITLES[regime]}", "", regime_table(args, rows, methods), ""]
        head_start = head_start_table(args, rows, methods)
        if head_start:
            parts += [
                "Dev score at the start, after the first evaluation interval and at the best (mean over seeds):",
                "",
                head_start,
                "",
            ]
        if curves_figure(args, regime, rows, methods, figures / f"curves-{regime}.png"):
            parts += [f"![dev curves, {regime}]({figures / f'curves-{regime}.png'})", ""]
        if attention_figure(rows, regime, figures / f"attention-{regime}.png"):
            parts += [f"![ATTEMPT attention, {regime}]({figures / f'attention-{regime}.png'})", ""]
    return "\n".join(parts)
