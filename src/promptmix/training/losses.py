"""Losses that plug into the training loop: ``loss_fn(model, batch) -> (loss, logs)``.

A batch is one process's micro-batch of a global batch (see :mod:`promptmix.training.data`).
It carries ``num_label_tokens`` and ``num_examples`` of the GLOBAL batch, and each loss
returns this micro-batch's share of the global mean (its sum divided by the global count).
The loop undoes DDP's averaging over processes and Accelerate's division by the
accumulation steps, so the gradient is that of the global mean: one process, two processes
or accumulation give the same update for the same global batch.

``logs`` hold shares of the same kind (summed over micro-batches and processes they give
the global value).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

LossFn = Callable[[nn.Module, dict[str, Any]], tuple[Tensor, dict[str, Tensor]]]
MODEL_KEYS = ("input_ids", "attention_mask", "labels", "task_ids")


def model_inputs(batch: dict[str, Any]) -> dict[str, Tensor]:
    """The tensors ``PromptedModel.forward`` takes."""
    return {key: batch[key] for key in MODEL_KEYS}


def task_loss(model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
    """Token-mean cross-entropy over the global batch (HF's convention for one process)."""
    out = model(**model_inputs(batch))
    loss = out.per_example_nll.sum() / batch["num_label_tokens"]
    return loss, {"loss": loss.detach()}
