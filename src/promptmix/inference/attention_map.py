"""ATTEMPT's attention, averaged per target task: the papers' Figure 6 heatmap.

For each target task, the mean over its examples of the attention weights a_j (Eq. 3) over
the source prompts and the task's own prompt. The softmax runs over the sources *and* the
target, so each row sums to 1; the target's own prompt additionally enters the instance
prompt with weight 1 (P_instance = P_target + Σ_j a_j P_j, Eq. 4), which the table does not
repeat: the ``target`` column is a_target alone.

Only the prompt method is run (G needs the input embeddings, not the language model), so a
whole dev split takes seconds; the batching is the inference engine's
(:meth:`promptmix.inference.engine.Engine.attention`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from promptmix._io import atomic_file, atomic_write_text
from promptmix.backbone import Backbone, PromptedModel
from promptmix.inference.engine import Engine, EngineInput
from promptmix.prompts.base import PromptMethod
from promptmix.prompts.router import PromptRouter


@dataclass
class AttentionTable:
    """``weights`` [T, k]: row i is target task ``targets[i]``'s mean attention over
    ``columns`` (the source prompts in order, then ``"target"``, its own prompt);
    ``counts[i]`` examples were averaged."""

    targets: list[str]
    columns: list[str]
    weights: torch.Tensor
    counts: list[int]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["task", *self.columns, "examples"])
        for task, row, n in zip(self.targets, self.weights.tolist(), self.counts):
            writer.writerow([task, *(f"{w:.6f}" for w in row), n])
        return out.getvalue()


@torch.no_grad()
def mean_attention(
    method: PromptMethod,
    backbone: Backbone,
    sources: Mapping[str, Sequence[str]],
    *,
    batch_size: int = 64,
    max_source_length: int | Mapping[str, int] = 256,
) -> AttentionTable:
    """Mean attention of each task in ``sources`` ({task: formatted inputs}) under ``method``;
    inputs are truncated to ``max_source_length`` tokens (one limit, or one per task).

    Raises ValueError for a method with no attention over prompts (prompt tuning, MPT) or
    for tasks whose attention is over different source prompts.
    """
    router = method if isinstance(method, PromptRouter) else PromptRouter({"method": method})
    router.to(backbone.embeddings.device)
    engine = Engine(PromptedModel(backbone, router), token_budget=None, max_batch_size=batch_size)
    columns, rows, counts = None, [], []
    for task, texts in sources.items():
        names = router.attention_names(task)
        if names is None:
            raise ValueError(
                f"task {task!r} is answered by a {router.member_of(task)[1].config.method} prompt, which has "
                "no attention over prompts; the heatmap needs an ATTEMPT run"
            )
        if columns is not None and names != columns:
            raise ValueError(f"task {task!r} attends over {names}, other tasks over {columns}")
        columns, total = names, torch.zeros(len(names), dtype=torch.float64)
        limit = max_source_length[task] if isinstance(max_source_length, Mapping) else max_source_length
        task_id = router.task_id(task)
        inputs = [EngineInput(task_id, backbone.encode(t, max_source_length=limit)["input_ids"]) for t in texts]
        for weights in engine.attention(inputs):
            assert weights is not None  # the task's method attends (attention_names above)
            weights = weights[: len(columns)]
            if weights.dim() == 2:  # token-level attention: average over prompt positions
                weights = weights.mean(dim=1)
            total += weights.double().cpu()
        rows.append(total / max(1, len(texts)))
        counts.append(len(texts))
    if columns is None:
        raise ValueError("no tasks given")
    return AttentionTable(list(sources), columns, torch.stack(rows).float(), counts)


def write_heatmap(table: AttentionTable, png: str | Path, *, title: str | None = None) -> Path:
    """Draw ``table`` as a heatmap PNG at ``png`` and write its numbers to the CSV beside it
    (same name, ``.csv``). Returns the CSV path."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    png = Path(png)
    values = table.weights.numpy()
    fig, ax = plt.subplots(figsize=(1.1 * len(table.columns) + 2.5, 0.6 * len(table.targets) + 1.8))
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=max(float(values.max()), 1e-6), aspect="auto")
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(table.targets)), table.targets)
    ax.set_xlabel("prompt attended to (sources, then the task's own)")
    ax.set_ylabel("target task")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(
                j,
                i,
                f"{values[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if values[i, j] > 0.6 * values.max() else "black",
                fontsize=8,
            )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title or "ATTEMPT: mean attention over prompts")
    fig.tight_layout()
    with atomic_file(png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    csv_path = png.with_suffix(".csv")
    atomic_write_text(csv_path, table.to_csv())
    return csv_path
