"""Dev/test scoring during and after training: rank classification or generation.

Both feed strings to ``Task.compute_metrics``:

- ``rank`` (for tasks with label words, or with candidate answers per example): every
  candidate (a label word, or one of the example's own choices) is scored by its summed
  log-likelihood, all candidates of all examples of a batch together, each example's prompt
  and source run once (:func:`promptmix.scoring.rank_candidates`), and the best candidate
  is the prediction. It is fast (no decoding) and never produces an invalid answer. Tasks
  with neither fall back to generation.
- ``generate``: greedy decoding of at most ``max_new_tokens`` tokens; the text is parsed by
  the task, so an invalid answer scores as wrong.

Both run through :class:`promptmix.inference.engine.Engine`, the engine serving uses, with
batches of ``batch_size`` examples grouped by length and no token budget (the evaluation
batch size is the memory bound training configures). With several processes each scores
every ``world``-th example and the predictions are gathered, so every process returns the
same metrics (with a sharded backbone every process scores every example).

It lives in inference, not training: ``promptmix eval`` and a training run's dev and test
scoring are the same evaluation, and inference imports nothing of :mod:`promptmix.training`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from promptmix._io import atomic_write_text
from promptmix.backbone import PromptedModel
from promptmix.inference.engine import Engine, prepare_input
from promptmix.tasks import Example


def is_sharded(accelerator: Any) -> bool:
    """Whether ``accelerator`` shards the backbone (FSDP): then every process takes part in
    every forward."""
    from accelerate.utils import DistributedType  # accelerate loads slowly and only distributed runs have one

    return accelerator is not None and accelerator.distributed_type == DistributedType.FSDP


@torch.no_grad()
def predict(
    model: PromptedModel,
    data: Any,
    examples: Sequence[Example],
    task_id: int,
    config: Any,
    max_source_length: int,
    progress: Any = None,
) -> list[str]:
    """Predicted text for each example (the chosen candidate under rank scoring), in order.

    ``data``: the task's data (``data.task`` is used); ``config``: an evaluation config
    (``scoring``, ``batch_size``, ``max_new_tokens``); ``progress``: a tqdm bar to advance by
    examples (or None). Batches are length-grouped (the engine sorts inputs by width), so a
    batch pads its rows to similar lengths."""
    backbone = model.backbone
    candidates = [data.task.answer_candidates(ex) for ex in examples]
    rank = config.scoring == "rank" and all(candidates)
    inputs = [
        prepare_input(
            backbone,
            task_id,
            backbone.encode(ex.source, max_source_length=max_source_length)["input_ids"],
            answers if rank else None,
        )
        for ex, answers in zip(examples, candidates)
    ]
    engine = Engine(model, token_budget=None, max_batch_size=config.batch_size, max_new_tokens=config.max_new_tokens)
    return [answer.text for answer in engine.run(inputs, progress.update if progress is not None else None)]


def evaluate(
    model: PromptedModel,
    tasks: dict[str, Any],
    split: str,
    task_ids: dict[str, int],
    config: Any,
    max_source_lengths: Mapping[str, int],
    accelerator: Any = None,
    progress: bool = False,
    predictions_dir: Path | None = None,
) -> dict[str, Any]:
    """``{task: metrics, ..., "score": mean of the tasks' main metrics}`` on ``split``.

    ``tasks``: ``{name: TaskData}`` (a task and its splits); ``config``: the evaluation config.
    ``max_source_lengths``: ``{task: input token limit}``
    (:func:`promptmix.rundirs.data.source_lengths`);
    ``progress``: show a tqdm bar (on the main process); ``predictions_dir``: also write each
    task's predictions there, ``<task>.jsonl`` of ``{"idx", "prediction", "label"}`` in example
    order (what a paired bootstrap over examples needs; written by the main process).
    """
    # Each process scores every world-th example, unless the backbone is sharded: then every
    # process takes part in every forward, so each scores them all (and nothing is gathered).
    divide = accelerator is not None and not is_sharded(accelerator)
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
            # a bar only on a terminal: in a log file its \r redraws are noise (the training loop
            # prints each dev score as a plain line there)
            shown = progress and rank == 0 and sys.stderr.isatty()
            with tqdm(total=len(mine), desc=f"{split} {name}", leave=False, disable=not shown) as bar:
                texts = predict(
                    model, data, [examples[i] for i in mine], task_ids[name], config, max_source_lengths[name], bar
                )
            predictions = _gather(list(zip(mine, texts)), len(examples), world)
            results[name] = data.task.compute_metrics(predictions, examples)
            if predictions_dir is not None and (accelerator is None or accelerator.is_main_process):
                write_predictions(Path(predictions_dir) / f"{name}.jsonl", data.task, predictions, examples)
    finally:
        model.train(was_training)
    if results:
        results["score"] = sum(m[tasks[n].task.main_metric] for n, m in results.items()) / len(results)
    return results


def write_predictions(path: Path, task: Any, predictions: Sequence[str], examples: Sequence[Example]) -> None:
    """One JSON line per example, atomically: its id, the prediction as the task reads it (a label
    word whatever ``data.label_format`` the model answered in; generated text parsed; null where
    it parses to nothing), the raw text answered and the gold label, so ``prediction == label``
    is the example's accuracy."""
    lines = (
        json.dumps(
            {"idx": ex.idx, "prediction": task.parse_prediction(text), "text": text, "label": ex.label}, default=str
        )
        for text, ex in zip(predictions, examples)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def _gather(pairs: list[tuple[int, str]], total: int, world: int) -> list[str]:
    """Every process's ``(index, prediction)`` pairs, in example order."""
    if world > 1:
        from accelerate.utils import gather_object

        pairs = gather_object(pairs)
    ordered = dict(pairs)
    return [ordered[i] for i in range(total)]
