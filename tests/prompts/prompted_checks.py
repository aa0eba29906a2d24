"""One end-to-end check shared by the method tests: a method in front of a tiny frozen backbone
scores a mixed-task batch exactly as it scores the same examples task by task."""

from __future__ import annotations

import torch
from transformers import DataCollatorForSeq2Seq

from promptmix.backbone import PromptedModel
from promptmix.prompts import PromptMethod

ITEMS = [  # (source, target, task id)
    ("rte sentence1: It rains. sentence2: It is dry.", "no", 0),
    ("cb premise: a b c d e f g", "yes", 1),
    ("rte sentence1: A cat.", "yes", 0),
]


def assert_mixed_batch_equals_task_by_task(backbone, method: PromptMethod) -> None:
    model = PromptedModel(backbone, method)

    def losses(rows):
        batch = DataCollatorForSeq2Seq(backbone.tokenizer, padding=True)([backbone.encode(s, y) for s, y, _ in rows])
        ids = torch.tensor([k for *_, k in rows])
        return model(batch["input_ids"], batch["attention_mask"], batch["labels"], ids).per_example_loss

    mixed = losses(ITEMS)
    torch.testing.assert_close(mixed[[0, 2]], losses([ITEMS[0], ITEMS[2]]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[[1]], losses([ITEMS[1]]), atol=1e-5, rtol=1e-5)
    swapped = losses([(s, y, 1 - k) for s, y, k in ITEMS])  # the tasks' prompts really differ
    assert not torch.allclose(mixed, swapped, atol=1e-4)
