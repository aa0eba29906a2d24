"""The prompted backbone: prompts reach the model, mixed-task batches equal task-by-task runs,
and training touches nothing but the method's trainable parameters."""

from __future__ import annotations

import pytest
import torch
from method_factories import make_method
from transformers import DataCollatorForSeq2Seq

from promptmix.backbone import IGNORE_INDEX, PromptedModel
from promptmix.prompts import METHODS
from promptmix.prompts.base import PromptMethod

EXAMPLES = [
    ("rte sentence1: A cat sat on the mat. sentence2: A cat sits.", "entailment", 0),
    ("sst2 sentence: a good movie", "positive", 1),
    ("cola sentence: this sentence is a good deal longer than the other inputs in the batch", "acceptable", 2),
    ("sst2 sentence: dull", "negative", 1),
    ("rte sentence1: It rains. sentence2: It is dry.", "not_entailment", 0),
]
TASKS = ["rte", "sst2", "cola"]


def _batch(backbone, items, with_targets=True):
    feats = [backbone.encode(s, t if with_targets else None) for s, t, _ in items]
    batch = DataCollatorForSeq2Seq(backbone.tokenizer, padding=True)(feats)
    batch["task_ids"] = torch.tensor([k for _, _, k in items])
    return batch


def _loss(model, batch):
    return model(batch["input_ids"], batch["attention_mask"], batch["labels"], batch["task_ids"])


@pytest.fixture(params=sorted(METHODS))
def prompted(request, tiny_backbone) -> PromptedModel:
    method = make_method(request.param, TASKS, tiny_backbone.hidden_size, prompt_length=4)
    return PromptedModel(tiny_backbone, method)


def test_mixed_batch_loss_equals_task_by_task(prompted):
    mixed = _loss(prompted, _batch(prompted.backbone, EXAMPLES)).per_example_loss
    for task in range(len(TASKS)):
        idx = [i for i, ex in enumerate(EXAMPLES) if ex[2] == task]
        alone = _loss(prompted, _batch(prompted.backbone, [EXAMPLES[i] for i in idx])).per_example_loss
        torch.testing.assert_close(mixed[idx], alone, atol=1e-5, rtol=1e-5)


def test_prompts_change_the_output(prompted):
    """Guards the equality test above: the same input under another task's prompt scores differently."""
    batch = _batch(prompted.backbone, EXAMPLES[:1])
    losses = []
    for task in range(len(TASKS)):
        batch["task_ids"] = torch.tensor([task])
        losses.append(_loss(prompted, batch).per_example_loss.item())
    assert len({round(x, 6) for x in losses}) == len(TASKS)


def test_mixed_batch_generation_equals_task_by_task(prompted):
    batch = _batch(prompted.backbone, EXAMPLES, with_targets=False)
    mixed = prompted.generate(batch["input_ids"], batch["attention_mask"], batch["task_ids"], max_new_tokens=4)
    for i, ex in enumerate(EXAMPLES):
        one = _batch(prompted.backbone, [ex], with_targets=False)
        alone = prompted.generate(one["input_ids"], one["attention_mask"], one["task_ids"], max_new_tokens=4)
        assert mixed[i, : alone.shape[1]].tolist() == alone[0].tolist()


def test_loss_matches_hf_loss_without_prompt_machinery(tiny_backbone):
    """With the prompt positions accounted for, our per-token loss is the model's own loss."""
    method = make_method("prompt-tuning", ["t"], tiny_backbone.hidden_size, prompt_length=3)
    model = PromptedModel(tiny_backbone, method)
    batch = _batch(tiny_backbone, [EXAMPLES[0]])
    ours = _loss(model, batch).loss
    embeds = tiny_backbone.model.get_input_embeddings()(batch["input_ids"])
    embeds = torch.cat([method.prompts[:1], embeds], dim=1)
    mask = torch.cat([torch.ones(1, 3, dtype=torch.long), batch["attention_mask"]], dim=1)
    labels = batch["labels"]
    if not tiny_backbone.is_encoder_decoder:
        labels = torch.cat([torch.full((1, 3), IGNORE_INDEX), labels], dim=1)
    ref = tiny_backbone.model(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_decoder_only_method_never_sees_the_answer(t5_tokenizer):
    """ATTEMPT pools over the input: for decoder-only training the answer tokens are masked out
    of what the method sees, so training and generation give the method the same view."""
    from tiny_models import tiny_llama

    from promptmix.backbone import Backbone

    backbone = Backbone(tiny_llama(), t5_tokenizer, "tiny-llama")
    seen = []

    class Spy(PromptMethod):
        def forward(self, inputs_embeds, attention_mask, task_ids):
            seen.append(attention_mask.clone())
            return inner(inputs_embeds, attention_mask, task_ids)

    inner = make_method("prompt-tuning", ["t"], backbone.hidden_size, prompt_length=2)
    model = PromptedModel(backbone, Spy(inner.config, backbone.hidden_size))
    train = _batch(backbone, [("sst2 sentence: fine", "positive", 0)])
    _loss(model, train)
    gen = _batch(backbone, [("sst2 sentence: fine", "positive", 0)], with_targets=False)
    model.generate(gen["input_ids"], gen["attention_mask"], gen["task_ids"], max_new_tokens=1)
    assert seen[0].sum() == seen[1].sum() == gen["input_ids"].shape[1]


def test_optimizer_step_changes_only_trainable_parameters(prompted):
    model = prompted
    frozen_before = {k: v.clone() for k, v in model.backbone.model.state_dict().items()}
    method_before = {k: v.clone() for k, v in model.method.state_dict().items()}
    trainable = {id(p) for group in model.method.param_groups().values() for p in group}
    params = [p for group in model.method.param_groups().values() for p in group]
    opt = torch.optim.AdamW(params, lr=0.1, weight_decay=1e-5)
    _loss(model, _batch(model.backbone, EXAMPLES)).loss.backward()
    opt.step()
    for k, v in model.backbone.model.state_dict().items():
        assert torch.equal(v, frozen_before[k]), f"backbone parameter {k} changed"
    assert all(not p.requires_grad for p in model.backbone.model.parameters())
    names = dict(model.method.named_parameters())
    for k, v in model.method.state_dict().items():
        changed = not torch.equal(v, method_before[k])
        should = k in names and id(names[k]) in trainable
        assert changed == should, f"{k}: changed={changed}, trainable={should}"


def test_left_padded_inputs_are_repacked_to_the_same_result(prompted):
    """Right padding takes the no-copy path; left padding (padding inside the row, after the
    prompt) is repacked. Both must give the same per-example losses."""
    backbone = prompted.backbone
    right = _batch(backbone, EXAMPLES)
    left = {k: v.clone() for k, v in right.items()}
    for i, row in enumerate(right["attention_mask"]):
        n = int(row.sum())
        for key in ("input_ids", "attention_mask", "labels"):
            if key == "labels" and backbone.is_encoder_decoder:
                continue
            left[key][i] = torch.roll(right[key][i], shifts=len(row) - n)
    assert not torch.equal(left["attention_mask"], right["attention_mask"])
    torch.testing.assert_close(
        _loss(prompted, left).per_example_loss, _loss(prompted, right).per_example_loss, atol=1e-5, rtol=1e-5
    )


def test_label_rows_sharing_one_encoder_pass_score_like_full_rows(prompted):
    """Rank classification on encoder-decoder models runs the prompt method and the encoder
    once per example and the decoder once per label word: each label row's loss must equal
    forward() on that (source, label) row, for a mixed-task batch with 2 or 3 words each."""
    from promptmix.backbone import right_pad

    backbone = prompted.backbone
    words = {
        0: ["entailment", "not_entailment"],
        1: ["positive", "negative"],
        2: ["acceptable", "unacceptable", "maybe"],
    }
    rows = [(s, w, k) for s, _, k in EXAMPLES for w in words[k]]
    counts = torch.tensor([len(words[k]) for _, _, k in EXAMPLES])
    sources = _batch(backbone, EXAMPLES, with_targets=False)
    labels = right_pad([backbone.encode(s, w)["labels"] for s, w, _ in rows], IGNORE_INDEX)
    if not backbone.is_encoder_decoder:
        with pytest.raises(ValueError, match="decoder-only"):
            prompted.score_label_rows(
                sources["input_ids"], sources["attention_mask"], labels, sources["task_ids"], counts
            )
        return
    shared = prompted.score_label_rows(
        sources["input_ids"], sources["attention_mask"], labels, sources["task_ids"], counts
    )
    full = _loss(prompted, _batch(backbone, rows))
    assert shared.prompt_output.prompts.shape[0] == len(EXAMPLES)  # the method ran once per example
    assert torch.equal(shared.token_counts, full.token_counts)
    torch.testing.assert_close(shared.per_example_loss, full.per_example_loss, atol=1e-5, rtol=1e-5)


def test_continuations_sharing_one_prefix_score_like_full_rows(prompted):
    """Decoder-only rank classification runs prompt + input once per example, keeps its KV cache
    and feeds each candidate answer on top: every candidate's loss must equal forward() on the
    full (source, answer) row, for a mixed-task batch whose examples have 1 to 3 candidates of
    different token lengths (per-example answer lists, not only label words)."""
    from promptmix.backbone import right_pad

    backbone = prompted.backbone
    answers = [
        ["entailment", "not_entailment"],
        ["positive"],
        ["a rather long free-form answer", "no", "maybe so"],
        ["negative", "positive"],
        ["not_entailment", "entailment"],
    ]
    rows = [(s, a, k) for (s, _, k), options in zip(EXAMPLES, answers) for a in options]
    counts = torch.tensor([len(options) for options in answers])
    sources = _batch(backbone, EXAMPLES, with_targets=False)
    if backbone.is_encoder_decoder:
        with pytest.raises(ValueError, match="encoder-decoder"):
            prompted.score_continuations(
                sources["input_ids"], sources["attention_mask"], sources["input_ids"], sources["task_ids"], counts
            )
        return
    continuations = right_pad(
        [backbone.encode(s, a)["labels"][len(backbone.encode(s)["input_ids"]) :] for s, a, _ in rows], IGNORE_INDEX
    )
    shared = prompted.score_continuations(
        sources["input_ids"], sources["attention_mask"], continuations, sources["task_ids"], counts
    )
    full = _loss(prompted, _batch(backbone, rows))
    assert shared.prompt_output.prompts.shape[0] == len(EXAMPLES)  # the method ran once per example
    assert torch.equal(shared.token_counts, full.token_counts)
    torch.testing.assert_close(shared.per_example_loss, full.per_example_loss, atol=1e-5, rtol=1e-5)


def _greedy_without_cache(model, source, task_id, steps):
    """Greedy decoding of one example by full teacher-forced forwards (no KV cache): at each
    step the logits after the tokens chosen so far, read at a placeholder label's position; eos
    is barred, as generate's ``min_new_tokens`` does."""
    backbone, chosen = model.backbone, []
    for _ in range(steps):
        enc = backbone.encode(source)
        ids = enc["input_ids"] + chosen + [0] if not backbone.is_encoder_decoder else enc["input_ids"]
        labels = (
            [IGNORE_INDEX] * len(enc["input_ids"]) + chosen + [0] if not backbone.is_encoder_decoder else chosen + [0]
        )
        out = model(
            torch.tensor([ids]),
            torch.ones(1, len(ids), dtype=torch.long),
            torch.tensor([labels]),
            torch.tensor([task_id]),
            return_logits=True,
        )
        logits = out.label_logits[-1].clone()
        logits[backbone.tokenizer.eos_token_id] = float("-inf")
        chosen.append(int(logits.argmax()))
    return chosen


@pytest.mark.parametrize("kind", ["t5", "llama"])
@pytest.mark.parametrize("method_name", sorted(METHODS))
def test_cached_generation_equals_generation_without_cache(kind, method_name, t5_tokenizer):
    """generate() on a mixed-task batch decodes with the KV cache (after the first step every
    decoder call gets one new token) and gives exactly the tokens of cache-free greedy decoding
    of each example alone."""
    from tiny_models import tiny_llama, tiny_t5

    from promptmix.backbone import Backbone

    model = tiny_t5(initializer_factor=3.0) if kind == "t5" else tiny_llama()
    backbone = Backbone(model, t5_tokenizer, f"tiny-{kind}")
    prompted = PromptedModel(backbone, make_method(method_name, TASKS, backbone.hidden_size, prompt_length=4))
    fed = []
    hook = model.register_forward_pre_hook(
        lambda _, args, kwargs: fed.append(
            next(
                kwargs[k].shape[1]
                for k in ("decoder_input_ids", "input_ids", "inputs_embeds")
                if kwargs.get(k) is not None
            )
        ),
        with_kwargs=True,
    )
    batch = _batch(backbone, EXAMPLES, with_targets=False)
    steps = 5
    mixed = prompted.generate(
        batch["input_ids"], batch["attention_mask"], batch["task_ids"], max_new_tokens=steps, min_new_tokens=steps
    )
    hook.remove()
    assert len(fed) == steps and all(n == 1 for n in fed[1:]), fed
    alone = [_greedy_without_cache(prompted, s, k, steps) for s, _, k in EXAMPLES]
    assert mixed.tolist() == alone
    assert len({t for row in alone for t in row}) > steps  # varied decodes, so the equality means something
