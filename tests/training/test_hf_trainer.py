"""A ``PromptedModel`` trained by a plain HuggingFace ``Trainer``: ``PromptedOutput`` is a
transformers ``ModelOutput``, so the Trainer reads its loss, and the backbone stays frozen."""

from __future__ import annotations

import pytest
import torch
from transformers import Trainer, TrainingArguments
from transformers.utils import ModelOutput

from promptmix.backbone import PromptedModel, PromptedOutput
from promptmix.prompts import SoftPrompt, SoftPromptConfig

EXAMPLES = [
    ("rte sentence1: A cat sat. sentence2: A cat sits.", "entailment", 0),
    ("sst2 sentence: a dull film", "negative", 1),
    ("rte sentence1: It rains. sentence2: It is dry.", "not_entailment", 0),
    ("sst2 sentence: a fine film", "positive", 1),
]


def test_prompted_output_is_a_model_output_with_its_loss_as_first_key(tiny_backbone):
    method = SoftPrompt(SoftPromptConfig(prompt_length=3), tiny_backbone.hidden_size, ["rte"])
    batch = tiny_backbone.pad([tiny_backbone.encode("rte sentence1: a sentence2: b", "entailment")])
    out = PromptedModel(tiny_backbone, method)(batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert isinstance(out, ModelOutput) and isinstance(out, PromptedOutput)
    assert (
        out["loss"] is out.loss
        and out[0] is out.loss
        and list(out.keys())[:3] == ["loss", "per_example_nll", "token_counts"]
    )
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

    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=0.3,
        report_to=[],
        save_strategy="no",
        remove_unused_columns=False,
        use_cpu=True,
        logging_steps=1,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=collate)
    result = trainer.train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    changed = {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}
    assert changed == {"method.prompts"}, changed  # every backbone weight is exactly as it was
    assert [name for name, p in model.named_parameters() if p.requires_grad] == ["method.prompts"]


def test_trainer_evaluates_with_eval_loss_saves_the_method_only_and_loads_it_back(tiny_backbone, tmp_path):
    """train -> evaluate -> save -> load under a plain Trainer with TaskCollator: evaluate() reports
    eval_loss (labels is the model's only label name), save_model and checkpoints hold method.*
    tensors only, and both the Trainer's file and save_pretrained's directory reload the prompts."""
    import safetensors.torch

    from promptmix.backbone import TaskCollator

    torch.manual_seed(0)
    method = SoftPrompt(SoftPromptConfig(prompt_length=3), tiny_backbone.hidden_size, ["rte", "sst2"])
    model = PromptedModel(tiny_backbone, method)
    features = [{**tiny_backbone.encode(src, tgt), "task_ids": task} for src, tgt, task in EXAMPLES]
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        per_device_eval_batch_size=2,
        learning_rate=0.3,
        report_to=[],
        save_strategy="steps",
        save_steps=2,
        remove_unused_columns=False,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=features, eval_dataset=features, data_collator=TaskCollator(tiny_backbone)
    )
    assert trainer.label_names == ["labels"]
    trainer.train()
    metrics = trainer.evaluate()
    batch = TaskCollator(tiny_backbone)(features)
    with torch.no_grad():
        direct = model(**batch)
        # two batches of two: the Trainer averages the batches' mean token losses
        halves = [model(**TaskCollator(tiny_backbone)(features[i : i + 2])).loss.item() for i in (0, 2)]
    assert metrics["eval_loss"] == pytest.approx(sum(halves) / 2, rel=1e-4) and direct.loss.item() > 0

    trainer.save_model(str(tmp_path / "saved"))
    saved = safetensors.torch.load_file(str(tmp_path / "saved" / "model.safetensors"))
    assert set(saved) == {"method.prompts"}
    checkpoint = safetensors.torch.load_file(str(tmp_path / "out" / "checkpoint-2" / "model.safetensors"))
    assert set(checkpoint) == {"method.prompts"}

    fresh = PromptedModel(
        tiny_backbone, SoftPrompt(SoftPromptConfig(prompt_length=3), tiny_backbone.hidden_size, ["rte", "sst2"])
    )
    fresh.load_state_dict(saved)  # strict: the backbone is not missing
    assert torch.equal(fresh.method.prompts, model.method.prompts)

    model.save_pretrained(str(tmp_path / "pretrained"))
    assert sorted(p.name for p in (tmp_path / "pretrained").iterdir()) == ["method.json", "method.safetensors"]
    again = PromptedModel.from_pretrained(str(tmp_path / "pretrained"), tiny_backbone)
    assert torch.equal(again.method.prompts, model.method.prompts)
    with torch.no_grad():
        assert torch.equal(again(**batch).loss, direct.loss)


def test_a_prompted_models_state_dict_leaves_the_backbone_out_but_keeps_it_a_submodule():
    """What the Trainer writes is what state_dict() holds; the backbone is still a submodule."""
    from tiny_models import T5_TOKENIZER, tiny_llama
    from transformers import AutoTokenizer

    from promptmix.backbone import Backbone

    backbone = Backbone(tiny_llama(), AutoTokenizer.from_pretrained(T5_TOKENIZER), "tiny-llama")
    model = PromptedModel(backbone, SoftPrompt(SoftPromptConfig(prompt_length=2), backbone.hidden_size, ["rte"]))
    assert list(model.state_dict()) == ["method.prompts"]
    assert any(name.startswith("model.") for name, _ in model.named_parameters())
    with pytest.raises(RuntimeError, match="method.prompts"):
        model.load_state_dict({})  # the method's own state is still required


def test_a_backbone_left_on_the_meta_device_is_reported_missing_not_forgiven():
    """A loader that empties the model and refills it from state_dict() (FSDP's RAM-efficient
    loading) must fail loudly on the backbone rather than run with empty weights."""
    from tiny_models import T5_TOKENIZER, tiny_llama
    from transformers import AutoTokenizer

    from promptmix.backbone import Backbone

    backbone = Backbone(tiny_llama(), AutoTokenizer.from_pretrained(T5_TOKENIZER), "tiny-llama")
    model = PromptedModel(backbone, SoftPrompt(SoftPromptConfig(prompt_length=2), backbone.hidden_size, ["rte"]))
    state = model.state_dict()
    model.load_state_dict(state)  # weights present: the backbone is not asked for
    model.model.to("meta")
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*model\."):
        model.load_state_dict(state, assign=True)


def test_compute_metrics_gets_each_examples_nll_and_token_count(tiny_backbone, tmp_path):
    """With compute_metrics the Trainer gathers the per-example outputs, not the prompt
    method's own (PromptOutput, which it cannot pad or gather)."""
    from promptmix.backbone import TaskCollator

    model = PromptedModel(
        tiny_backbone, SoftPrompt(SoftPromptConfig(prompt_length=3), tiny_backbone.hidden_size, ["rte", "sst2"])
    )
    features = [{**tiny_backbone.encode(src, tgt), "task_ids": task} for src, tgt, task in EXAMPLES]
    seen = {}

    def compute_metrics(prediction):
        nll, counts = prediction.predictions
        seen.update(nll=nll, counts=counts)
        return {"mean_nll": float((nll / counts).mean())}

    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=3,
        report_to=[],
        use_cpu=True,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    metrics = Trainer(
        model=model,
        args=args,
        eval_dataset=features,
        data_collator=TaskCollator(tiny_backbone),
        compute_metrics=compute_metrics,
    ).evaluate()
    with torch.no_grad():
        direct = model(**TaskCollator(tiny_backbone)(features))
    assert seen["nll"].shape == (4,) and seen["counts"].tolist() == direct.token_counts.tolist()
    assert seen["nll"] == pytest.approx(direct.per_example_nll.numpy(), rel=1e-4)
    assert "eval_loss" in metrics and "eval_mean_nll" in metrics
