"""The card of a run: ``README.md`` in its directory, and ``training_curves.png`` beside it.

Written at the end of every invocation of a run (so a resumed run updates it, and a run
stopped with ``run.stop_after`` says where it stopped): the method, the backbone and its
embedding fingerprint (for the ``smollm2-135m`` alias, what those weights are), the tasks and
where each is defined, dev and test results, steps and wall time, the config, and where the
result came from (command, git revision, library versions: :mod:`promptmix._provenance`). The
curves are the training loss, the dev score and the learning rates over steps, read back from
``metrics.jsonl``; the best dev step is marked on each panel, and the dev panel draws the score
of the best constant answer (the majority-class floor a prompt must clear), averaged over the
tasks as the dev score is. Step ticks are whole numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from promptmix._io import atomic_file, atomic_write_text
from promptmix._provenance import provenance
from promptmix.backbone import Backbone
from promptmix.loading import SMOLLM2_ALIAS, base_model_reference
from promptmix.rundirs.data import TaskData
from promptmix.tasks.declared import task_origin
from promptmix.training.config import TrainConfig
from promptmix.training.data import best_constant_score
from promptmix.training.rundir import StageResult

CARD = "README.md"
CURVES = "training_curves.png"


def curves(metrics_path: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """``(training loss, dev score)``, each a list of (step, value), from a metrics.jsonl."""
    loss: list[tuple[int, float]] = []
    dev: list[tuple[int, float]] = []
    if not metrics_path.is_file():
        return loss, dev
    for line in metrics_path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else {}
        if isinstance(record.get("loss"), (int, float)):
            loss.append((record["step"], float(record["loss"])))
        if isinstance(record.get("dev"), dict) and isinstance(record["dev"].get("score"), (int, float)):
            dev.append((record["step"], float(record["dev"]["score"])))
    return loss, dev


def learning_rates(metrics_path: Path) -> dict[str, list[tuple[int, float]]]:
    """``{parameter group: [(step, learning rate), ...]}`` from a metrics.jsonl's ``lr/<group>``."""
    rates: dict[str, list[tuple[int, float]]] = {}
    if not metrics_path.is_file():
        return rates
    for line in metrics_path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else {}
        for key, value in record.items():
            if key.startswith("lr/") and isinstance(value, (int, float)) and "dev" not in record:
                rates.setdefault(key[3:], []).append((record["step"], float(value)))
    return rates


def constant_floor(tasks: dict[str, TaskData]) -> float | None:
    """The dev score of answering each task's best constant answer (its majority class on
    accuracy), averaged over the tasks as the dev score is; None where a task has none."""

    scores = [best_constant_score(data, "dev") for data in tasks.values()]
    found = [s for s in scores if s is not None]
    if not scores or len(found) < len(scores):
        return None
    return sum(s[1] for s in found) / len(found)


def draw_curves(
    loss: list[tuple[int, float]],
    dev: list[tuple[int, float]],
    title: str,
    *,
    best_step: int | None = None,
    floor: float | None = None,
    rates: dict[str, list[tuple[int, float]]] | None = None,
) -> Any:
    """The figure of :func:`plot_curves` (a matplotlib Figure; the caller closes it)."""
    import matplotlib  # noqa: PLC0415 - plotting only where a card is drawn: slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(9, 3.2))
    for axes, points, label in ((left, loss, "training loss"), (middle, dev, "dev score")):
        if points:
            axes.plot(*zip(*points), marker="o" if len(points) < 30 else None, markersize=3, label=label)
        axes.set_title(label)
    if floor is not None:
        middle.axhline(floor, color="grey", linestyle="--", linewidth=1, label=f"best constant answer {floor:.1f}")
    if best_step is not None:
        for axes in (left, middle, right):
            axes.axvline(best_step, color="tab:red", linestyle=":", linewidth=1, label=f"best dev step {best_step}")
        best = [value for step, value in dev if step == best_step]
        if best:
            middle.plot([best_step], best, marker="*", markersize=10, color="tab:red", linestyle="none")
    for group, points in sorted((rates or {}).items()):
        right.plot(*zip(*points), label=group)
    right.set_title("learning rate")
    right.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    for axes in (left, middle, right):
        axes.set_xlabel("step")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0] and axes is not left:
            axes.legend(fontsize=6, loc="best")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_curves(
    loss: list[tuple[int, float]],
    dev: list[tuple[int, float]],
    out: Path,
    title: str,
    *,
    best_step: int | None = None,
    floor: float | None = None,
    rates: dict[str, list[tuple[int, float]]] | None = None,
) -> bool:
    """Draw the training loss, the dev score (with the constant-answer floor) and the learning
    rates side by side into ``out`` (PNG), the best step marked; False when there is nothing to draw."""
    if not loss and not dev:
        return False
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure = draw_curves(loss, dev, title, best_step=best_step, floor=floor, rates=rates)
    with atomic_file(out) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return True


def _backbone_line(backbone: Backbone) -> str:
    line = f"`{backbone.name}`, hidden size {backbone.hidden_size}, embedding fingerprint `{backbone.fingerprint()}`"
    if backbone.name == SMOLLM2_ALIAS:  # no hub checkpoint: say what the weights are
        line += f": {base_model_reference(backbone.name).what}"
    return line


def _results_table(result: StageResult) -> list[str]:
    rows = []
    for split in ("dev", "test"):
        metrics = getattr(result, split)
        for task, values in metrics.items():
            if isinstance(values, dict):
                shown = ", ".join(f"{k} {v:.2f}" for k, v in values.items() if isinstance(v, (int, float)))
                rows.append(f"| {split} | {task} | {shown} |")
        if "score" in metrics:
            rows.append(f"| {split} | **mean of the tasks' main metrics** | **{metrics['score']:.2f}** |")
    if not rows:
        return ["No dev or test results yet."]
    return ["| split | task | metrics |", "|---|---|---|", *rows]


def card_text(
    config: TrainConfig,
    result: StageResult,
    backbone: Backbone,
    tasks: dict[str, TaskData],
    has_curves: bool,
    total_steps: int | None = None,
) -> str:
    """The README.md of a run (see the module docstring)."""
    tasks_done = ", ".join(result.tasks)
    if result.completed:
        status = f"completed: {result.steps} steps" + (
            ", stopped early (dev score flat)" if result.extra.get("early_stopped") else ""
        )
    else:
        status = (
            f"in progress: stopped at step {result.steps}"
            + (f" of {total_steps}" if total_steps else "")
            + f"; continue with `promptmix train {config.stage} --run-dir {config.run.dir} --resume`"
        )
    where = provenance()
    lines = [
        f"# {config.stage} on {tasks_done}",
        "",
        f"- status: {status}",
        f"- best dev step: {result.best_step}"
        if result.best_step is not None
        else "- best dev step: none (no dev evaluation)",
        f"- wall time in the training loop: {result.seconds:.1f} s",
        f"- trainable parameters: {result.trainable_parameters:,}",
        f"- backbone: {_backbone_line(backbone)}",
        "",
        "## Tasks",
        "",
        "| task | defined in | train / dev / test examples | metrics |",
        "|---|---|---|---|",
    ]
    for run in result.extra.get("runs", []):  # one run per task: each has its own card
        lines.append(f"| {Path(run).name} | see [{Path(run).name}/{CARD}]({Path(run).name}/{CARD}) | | |")
    for name, data in tasks.items():
        lines.append(
            f"| {name} | {task_origin(data.task)} | {len(data.train)} / {len(data.dev)} / {len(data.test)} | "
            f"{', '.join(data.task.metric_names)} |"
        )
    lines += ["", "## Results", "", *_results_table(result), ""]
    if has_curves:
        lines += [
            "## Training curves",
            "",
            f"![training loss and dev score over steps]({CURVES})",
            "",
            "Training loss, dev score (dashed: the best constant answer's score) and learning rates; "
            "the dotted line marks the best dev step.",
            "",
        ]
    lines += [
        "## Config",
        "",
        "```yaml",
        config.to_yaml().rstrip(),
        "```",
        "",
        "## Provenance",
        "",
        f"- command: `{where['command']}`",
        f"- git revision: `{where['git_revision']}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in where["versions"].items()),
        f"- machine: {where['machine']}",
        f"- written: {where['date']}",
        "",
    ]
    return "\n".join(lines)


def write_card(
    run_dir: Path,
    config: TrainConfig,
    result: StageResult,
    backbone: Backbone,
    tasks: dict[str, TaskData],
    accelerator: Any,
    total_steps: int | None = None,
) -> None:
    """Write ``README.md`` and ``training_curves.png`` into ``run_dir`` (main process only)."""
    if not accelerator.is_main_process:
        return
    loss, dev = curves(run_dir / "metrics.jsonl")
    drawn = plot_curves(
        loss,
        dev,
        run_dir / CURVES,
        f"{config.stage} on {', '.join(result.tasks)}",
        best_step=result.best_step,
        floor=constant_floor(tasks) if dev else None,
        rates=learning_rates(run_dir / "metrics.jsonl"),
    )
    atomic_write_text(run_dir / CARD, card_text(config, result, backbone, tasks, drawn, total_steps))
