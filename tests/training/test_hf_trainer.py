"""A ``PromptedModel`` trained by a plain HuggingFace ``Trainer``: ``PromptedOutput`` is a
transformers ``ModelOutput``, so the Trainer reads its loss, and the backbone stays frozen."""

from __future__ import annotations

import torch
from transformers import Trainer, TrainingArguments
from transformers.utils import ModelOutput

from promptmix.backbone import PromptedModel, PromptedOutput
from promptmix.prompts import SoftPrompt, SoftPromptConfig

EXAMPLES = [("rte sentence1: A cat sat. sentence2: A cat sits.", "entailment", 0),
            ("sst2 sentence: a dull film", "negative", 1),
            ("rte sentence1: It rains. sentence2: It is dry.", "not_entailment", 0),
            ("sst2 sentence: a fine film", "positive", 1)]


def test_prompted_output_is_a_model_output_with_its_loss_as_first_key(tiny_backbone):
    method = SoftPrompt(SoftPromptConfig(prompt_length=3), tiny_backbone.hidden_size, ["rte"])
    batch = tiny_backbone.pad([tiny_backbone.encode("rte sentence1: a sentence2: b", "entailment")])
    out = PromptedModel(tiny_backbone, method)(batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert isinstance(out, ModelOutput) and isinstance(out, PromptedOutput)
    assert out["loss"] is out.loss and out[0] is out.loss and list(out.keys())[:3] == ["loss", "per_example_nll", "token_counts"]
    assert "hidden_states" not in out  # unset fields are no keys, as in every ModelOutput


def test_hf_trainer_trains_two_steps_and_changes_only_the_prompts(tiny_backbone, tmp_path):
    torch.manual_seed(0)
    method = SoftPrompt(SoftPromptConfig(prompt_length=3), tiny_backbone.hidden_size, ["rte", "sst2"])
    torch.nn.init.normal_(method.prompts, std=0.5)
    model = PromptedModel(tiny_backbone, method)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    features = [{**tiny_backbone.encode(src, tgt), "task_ids": task} for src, tgt, task in EXAMPLES]

    def collate(rows):
        batch = tiny_backbone.pad(rows)
        batch["task_ids"] = torch.tensor([r["task_ids"] for r in rows])
        return batch

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, learning_rate=0.3,
                             report_to=[], save_strategy="no", remove_unused_columns=False, use_cpu=True,
                             logging_steps=1, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=collate)
    result = trainer.train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    changed = {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}
    assert changed == {"method.prompts"}, changed  # every backbone weight is exactly as it was
    assert [name for name, p in model.named_parameters() if p.requires_grad] == ["method.prompts"]
