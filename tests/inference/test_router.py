"""PromptRouter: several methods behind one, a routed mixed batch equal to each method alone."""

from __future__ import annotations

import pytest
import torch
from method_factories import make_method
from transformers import DataCollatorForSeq2Seq

from promptmix.backbone import PromptedModel
from promptmix.prompts import METHODS
from promptmix.prompts.router import PromptRouter

EXAMPLES = [  # (source, target, task)
    ("rte sentence1: A cat sat on the mat. sentence2: A cat sits.", "entailment", "rte"),
    ("boolq question: is it dry passage: it rains all day long in the valley", "False", "boolq"),
    ("sst2 sentence: a good movie", "positive", "sst2"),
    ("cb premise: It is late. hypothesis: It is early.", "contradiction", "cb"),
    ("sst2 sentence: dull", "negative", "sst2"),
]


def _batch(backbone, items, task_ids, with_targets=True):
    feats = [backbone.encode(s, t if with_targets else None) for s, t, _ in items]
    batch = DataCollatorForSeq2Seq(backbone.tokenizer, padding=True)(feats)
    batch["task_ids"] = task_ids
    return batch


@pytest.fixture(params=sorted(METHODS))
def members(request, tiny_backbone):
    """Prompt tuning with m=3 for rte/sst2 beside any method with m=5 for boolq/cb."""
    d = tiny_backbone.hidden_size
    short = make_method("prompt-tuning", ["rte", "sst2"], d, prompt_length=3, seed=1)
    long = make_method(request.param, ["boolq", "cb"], d, prompt_length=5, seed=2)
    return {"runs/short": short, "runs/long": long}


def _alone(backbone, members, example, fn):
    for method in members.values():
        if example[2] in method.task_names:
            return fn(PromptedModel(backbone, method), method.task_ids_for([example[2]]))
    raise AssertionError(example)


def test_routed_losses_equal_each_method_alone(tiny_backbone, members):
    router = PromptRouter(members)
    assert router.prompt_length == 5 and router.task_names == ["rte", "sst2", "boolq", "cb"]
    batch = _batch(tiny_backbone, EXAMPLES, router.task_ids_for([e[2] for e in EXAMPLES]))
    routed = PromptedModel(tiny_backbone, router)(
        batch["input_ids"], batch["attention_mask"], batch["labels"], batch["task_ids"]
    )
    for i, ex in enumerate(EXAMPLES):

        def loss(model, ids, ex=ex):
            one = _batch(tiny_backbone, [ex], ids)
            return model(one["input_ids"], one["attention_mask"], one["labels"], ids)

        alone = _alone(tiny_backbone, members, ex, loss)
        torch.testing.assert_close(routed.per_example_loss[i : i + 1], alone.per_example_loss, atol=1e-5, rtol=1e-5)
        row = routed.prompt_output.attention_row(i) if routed.prompt_output.attention is not None else None
        if alone.prompt_output.attention is None:
            assert row is None
        else:
            torch.testing.assert_close(row, alone.prompt_output.attention[0], atol=1e-6, rtol=1e-6)


def test_routed_generation_equals_each_method_alone(tiny_backbone, members):
    router = PromptRouter(members)
    batch = _batch(tiny_backbone, EXAMPLES, router.task_ids_for([e[2] for e in EXAMPLES]), with_targets=False)
    routed = PromptedModel(tiny_backbone, router).generate(
        batch["input_ids"], batch["attention_mask"], batch["task_ids"], max_new_tokens=4
    )
    for i, ex in enumerate(EXAMPLES):

        def gen(model, ids, ex=ex):
            one = _batch(tiny_backbone, [ex], ids, with_targets=False)
            return model.generate(one["input_ids"], one["attention_mask"], ids, max_new_tokens=4)

        alone = _alone(tiny_backbone, members, ex, gen)
        assert routed[i, : alone.shape[1]].tolist() == alone[0].tolist()


def test_prompt_mask_pads_short_prompts_on_the_left(tiny_backbone, members):
    router = PromptRouter(members)
    embeds = torch.randn(2, 4, tiny_backbone.hidden_size)
    out = router(embeds, torch.ones(2, 4, dtype=torch.long), router.task_ids_for(["sst2", "cb"]))
    assert out.prompt_mask.tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    torch.testing.assert_close(out.prompts[0, 2:], members["runs/short"].prompts[1])
    assert out.prompts[0, :2].abs().sum() == 0


def test_a_task_held_twice_is_refused_naming_both_holders(tiny_backbone):
    d = tiny_backbone.hidden_size
    a = make_method("prompt-tuning", ["rte", "sst2"], d)
    b = make_method("prompt-tuning", ["cola", "rte"], d)
    with pytest.raises(ValueError, match=r"'rte' is held by both 'runs/a' and 'runs/b'"):
        PromptRouter({"runs/a": a, "runs/b": b})


def test_unknown_task_names_the_tasks_held(tiny_backbone):
    router = PromptRouter({"x": make_method("prompt-tuning", ["rte"], tiny_backbone.hidden_size)})
    with pytest.raises(KeyError, match="holds"):
        router.task_ids_for(["mnli"])


def test_members_restricted_to_some_of_their_tasks_answer_only_those(tiny_backbone):
    """A per-task-selected run: the whole method at each target's best step, each answering its own."""
    d = tiny_backbone.hidden_size
    early = make_method("prompt-tuning", ["rte", "sst2"], d, seed=1)
    late = make_method("prompt-tuning", ["rte", "sst2"], d, seed=2)
    router = PromptRouter([("best/sst2", early, ["sst2"]), ("best/rte", late, ["rte"])])
    assert router.task_names == ["sst2", "rte"]
    assert [router.member_of(t)[0] for t in ("rte", "sst2")] == ["best/rte", "best/sst2"]
    emb, mask = torch.randn(2, 4, d), torch.ones(2, 4, dtype=torch.long)
    routed = router(emb, mask, router.task_ids_for(["rte", "sst2"])).prompts
    assert torch.equal(routed[0], late(emb[:1], mask[:1], late.task_ids_for(["rte"])).prompts[0])
    assert torch.equal(routed[1], early(emb[1:], mask[1:], early.task_ids_for(["sst2"])).prompts[0])
    assert not torch.equal(routed[1], late(emb[1:], mask[1:], late.task_ids_for(["sst2"])).prompts[0])
    with pytest.raises(ValueError, match=r"'best/x' holds no prompt for 'cola'"):
        PromptRouter([("best/x", early, ["cola"])])
