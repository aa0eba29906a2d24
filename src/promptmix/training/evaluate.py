"""Dev/test scoring during and after training: rank classification or generation.

Both feed strings to ``Task.compute_metrics``:

- ``rank`` (for tasks with label words, or with candidate answers per example): every
  candidate (a label word, or one of the example's own choices) is scored by its summed
  log-likelihood, all candidates of all examples of a batch together, each example's prompt
  and source run once (:func:`promptmix.scoring.rank_classify`), and the best candidate
  is the prediction. It is fast (no decoding) and never produces an invalid answer. Tasks
  with neither fall back to generation.
- ``generate``: greedy decoding of at most ``max_new_tokens`` tokens; the text is parsed by
  the task, so an invalid answer scores as wrong.

Both are :mod:`promptmix.scoring`'s functions, the ones serving uses. With several
processes each scores every ``world``-th example and the predictions are gathered, so every
process returns the same metrics (with a sharded backbone every process scores every example).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from promptmix._io import atomic_write_text
from promptmix.backbone import PromptedModel
from promptmix.scoring import greedy_generate, rank_classify
from promptmix.tasks import Example
from promptmix.training import sharding
from promptmix.training.config import EvalConfig
from promptmix.training.data import TaskData


@torch.no_grad()
def predict(model: PromptedModel, data: TaskData, examples: Sequence[Example], task_id: int,
            config: EvalConfig, max_source_length: int, progress: Any = None) -> list[str]:
    """Predicted text for each example (the chosen candidate under rank scoring), in order.
    Batches are length-grouped (examples sorted by tokenised source length), so a batch pads
    its rows to similar lengths. ``progress``: a tqdm bar to advance by examples (or None)."""
    backbone = model.backbone
    candidates = [data.task.answer_candidates(ex) for ex in examples]
    rank = config.scoring == "rank" and all(candidates)
    sources = [backbone.encode(ex.source, max_source_length=max_source_length)["input_ids"] for ex in examples]
    order = sorted(range(len(examples)), key=lambda i: len(sources[i]))
    out: list[str] = [""] * len(examples)
    device = next(model.model.parameters()).device  # the backbone's (a baseline's NoPrompt has no parameters)
    for start in range(0, len(order), config.batch_size):
        chunk = order[start:start + config.batch_size]
        task_ids = torch.full((len(chunk),), task_id, dtype=torch.long, device=device)
        if rank:
            rows = [[backbone.encode(examples[i].source, c, max_source_length=max_source_length) for c in candidates[i]]
                    for i in chunk]
            answers = [candidates[i][r.index] for i, r in zip(chunk, rank_classify(model, rows, task_ids))]
        else:
            answers = greedy_generate(model, [sources[i] for i in chunk], task_ids, max_new_tokens=config.max_new_tokens)[0]
        for i, answer in zip(chunk, answers):
            out[i] = answer
        if progress is not None:
            progress.update(len(chunk))
    return out


def evaluate(model: PromptedModel, tasks: dict[str, TaskData], split: str, task_ids: dict[str, int],
             config: EvalConfig, max_source_length: Any, accelerator: Any = None, progress: bool = False,
             predictions_dir: Path | None = None) -> dict[str, Any]:
    """``{task: metrics, ..., "score": mean of the tasks' main metrics}`` on ``split``.

    ``max_source_length``: a callable ``TaskData -> int`` (the config's or the task's limit);
    ``progress``: show a tqdm bar (on the main process); ``predictions_dir``: also write each
    task's predictions there, ``<task>.jsonl`` of ``{"idx", "prediction", "label"}`` in example
    order (what a paired bootstrap over examples needs; written by the main process).
    """
    # Each process scores every world-th example, unless the backbone is sharded: then every
    # process takes part in every forward, so each scores them all (and nothing is gathered).
    divide = accelerator is not None and not sharding.is_sharded(accelerator)
    rank, world = (accelerator.process_index, accelerator.num_processes) if divide else (0, 1)
    was_training = model.training
    model.eval()
    try:
        results: dict[str, Any] = {}
        for name, data in tasks.items():
            examples = getattr(data, split)
            if not examples:
                continue
            mine = list(range(rank, len(examples), world))
            with tqdm(total=len(mine), desc=f"{split} {name}", leave=False, disable=not (progress and rank == 0)) as bar:
                texts = predict(model, data, [examples[i] for i in mine], task_ids[name], config, max_source_length(data), bar)
            predictions = _gather(list(zip(mine, texts)), len(examples), world)
            results[name] = data.task.compute_metrics(predictions, examples)
            if predictions_dir is not None and (accelerator is None or accelerator.is_main_process):
                write_predictions(Path(predictions_dir) / f"{name}.jsonl", predictions, examples)
    finally:
        model.train(was_training)
    if results:
        results["score"] = sum(m[tasks[n].task.main_metric] for n, m in results.items()) / len(results)
    return results


def write_predictions(path: Path, predictions: Sequence[str], examples: Sequence[Example]) -> None:
    """One JSON line per example: its id, the prediction and the gold label (atomically)."""
    lines = (json.dumps({"idx": ex.idx, "prediction": text, "label": ex.label}, default=str) for text, ex in zip(predictions, examples))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def _gather(pairs: list[tuple[int, str]], total: int, world: int) -> list[str]:
    """Every process's ``(index, prediction)`` pairs, in example order."""
    if world > 1:
        from accelerate.utils import gather_object

        pairs = gather_object(pairs)
    ordered = dict(pairs)
    return [ordered[i] for i in range(total)]
