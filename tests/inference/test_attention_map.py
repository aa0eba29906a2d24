"""The attention heatmap: mean attention per target task, CSV rows summing to 1, a PNG."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import pytest
import torch
from method_factories import make_method
from torch import nn

from promptmix.inference.attention_map import mean_attention, write_heatmap
from promptmix.prompts.base import MethodConfig, PromptMethod, PromptOutput, masked_max_pool

TEXTS = {
    "rte": ["rte sentence1: A cat sat. sentence2: A cat sits.", "rte sentence1: It rains. sentence2: Dry."],
    "cb": ["cb premise: It is late. hypothesis: It is early.", "cb premise: No. hypothesis: Yes.", "cb premise: a b c"],
}


@dataclass
class ToyConfig(MethodConfig):
    method = "toy-attention"


class ToyAttention(PromptMethod):
    """a = softmax(first 3 dims of the max-pooled input + a per-task bias): an attention whose
    mean is easy to compute by hand."""

    def __init__(self, config, hidden_size, tasks):
        super().__init__(config, hidden_size, tasks)
        self.prompts = nn.Parameter(torch.randn(len(tasks), config.prompt_length, hidden_size))
        self.bias = nn.Parameter(torch.randn(len(tasks), 3))

    def attention_names(self, task):
        return ["mnli", "sst2", "target"]

    def forward(self, inputs_embeds, attention_mask, task_ids):
        a = torch.softmax(masked_max_pool(inputs_embeds, attention_mask)[:, :3] + self.bias[task_ids], dim=-1)
        return PromptOutput(self.prompts[task_ids], None, a)

    def param_groups(self):
        return {"prompts": [self.prompts], "attention": [self.bias]}


def test_mean_attention_rows_are_hand_computed_means_and_sum_to_one(tiny_backbone, tmp_path):
    method = ToyAttention(ToyConfig(prompt_length=2), tiny_backbone.hidden_size, ["rte", "cb"])
    table = mean_attention(method, tiny_backbone, TEXTS, batch_size=2)
    assert table.targets == ["rte", "cb"] and table.columns == ["mnli", "sst2", "target"] and table.counts == [2, 3]
    embed = tiny_backbone.model.get_input_embeddings()
    for i, (task, texts) in enumerate(TEXTS.items()):
        rows = []
        for text in texts:
            ids = torch.tensor([tiny_backbone.encode(text)["input_ids"]])
            rows.append(method(embed(ids), torch.ones_like(ids), method.task_ids_for([task])).attention[0])
        torch.testing.assert_close(table.weights[i], torch.stack(rows).mean(0), atol=1e-6, rtol=1e-6)

    csv_path = write_heatmap(table, tmp_path / "fig" / "attention.png")
    assert csv_path == tmp_path / "fig" / "attention.csv"
    assert (tmp_path / "fig" / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["task"] for r in rows] == ["rte", "cb"] and [r["examples"] for r in rows] == ["2", "3"]
    for r in rows:
        assert sum(float(r[c]) for c in ("mnli", "sst2", "target")) == pytest.approx(1.0, abs=1e-5)


def test_methods_without_attention_are_refused(tiny_backbone):
    method = make_method("prompt-tuning", ["rte"], tiny_backbone.hidden_size)
    with pytest.raises(ValueError, match="no attention over prompts; the heatmap needs an ATTEMPT run"):
        mean_attention(method, tiny_backbone, {"rte": TEXTS["rte"]})
