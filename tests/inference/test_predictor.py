"""Predictor: mixed-task batches equal items answered alone, scores computed as documented,
memory-bounded batching, and errors that name the problem."""

from __future__ import annotations

import pytest
import torch
from predictor_factory import ITEMS, same_predictions, tiny_predictor

from promptmix.backbone import PromptedModel
from promptmix.inference.predictor import InputError
from promptmix.prompts import METHODS


@pytest.fixture(params=sorted(METHODS))
def predictor(request, tiny_backbone):
    return tiny_predictor(tiny_backbone, request.param)


def test_mixed_task_batch_equals_items_alone(predictor):
    mixed = predictor.predict(ITEMS)
    assert [p.task for p in mixed] == [item["task"] for item in ITEMS]
    same_predictions(mixed, [predictor.predict([item])[0] for item in ITEMS])


def test_rank_classification_score_is_softmax_of_summed_log_likelihoods(tiny_backbone):
    predictor = tiny_predictor(tiny_backbone)
    [pred] = predictor.predict([ITEMS[1]])  # cb: three label words
    source = predictor.tasks["cb"].format(ITEMS[1]["record"]).source
    method = predictor.method.member_of("cb")[1]
    model = PromptedModel(tiny_backbone, method)
    lls = []
    for word in ["entailment", "contradiction", "neutral"]:
        enc = tiny_backbone.encode(source, word)
        out = model(
            torch.tensor([enc["input_ids"]]),
            torch.ones(1, len(enc["input_ids"]), dtype=torch.long),
            torch.tensor([enc["labels"]]),
            method.task_ids_for(["cb"]),
        )
        lls.append(-out.per_example_nll.item())
    probs = torch.softmax(torch.tensor(lls), 0)
    best = int(probs.argmax())
    assert pred.prediction == pred.text == ["entailment", "contradiction", "neutral"][best]
    assert pred.score == pytest.approx(probs[best].item(), abs=1e-5)
    assert list(pred.label_scores.values()) == pytest.approx(probs.tolist(), abs=1e-5)


def test_generation_tasks_parse_their_answers(tiny_backbone):
    [pred] = tiny_predictor(tiny_backbone).predict([ITEMS[3]])
    task = tiny_predictor(tiny_backbone).tasks["stsb"]
    assert pred.label_scores is None and 0 < pred.score <= 1
    assert pred.prediction == task.parse_prediction(pred.text)


def test_small_token_budget_gives_the_same_answers(tiny_backbone):
    big = tiny_predictor(tiny_backbone)
    small = tiny_predictor(tiny_backbone, token_budget=1, max_batch_size=2)
    assert all(len(b) == 1 for b in small._batches(range(len(ITEMS)), small.prepare(ITEMS)))
    same_predictions(big.predict(ITEMS), small.predict(ITEMS))


def test_out_of_memory_halves_the_budget_and_retries(tiny_backbone, monkeypatch):
    predictor = tiny_predictor(tiny_backbone)
    expected = predictor.predict(ITEMS)
    run_batch, sizes = predictor._run_batch, []

    def fails_when_big(batch):
        sizes.append(len(batch))
        if len(batch) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return run_batch(batch)

    monkeypatch.setattr(predictor, "_run_batch", fails_when_big)
    same_predictions(predictor.predict(ITEMS), expected)
    assert predictor.token_budget < 16384 and sizes[-1] == 1


def test_task_names_resolve_through_aliases(tiny_backbone):
    predictor = tiny_predictor(tiny_backbone)
    assert predictor.predict([{"task": "SST-2", "record": {"sentence": "fine"}}])[0].task == "sst2"


@pytest.mark.parametrize(
    "item, kind, words",
    [
        (
            {"task": "rtee", "record": {}},
            "unknown_task",
            ["'rtee'", "Did you mean 'rte'", "Loaded: rte, sst2, cb, stsb"],
        ),
        ({"task": "mnli", "text": "x"}, "unknown_task", ["no prompt is loaded for task 'mnli'"]),
        ({"task": "rte", "record": {"sentence1": "only one"}}, "invalid", ["field 'sentence2'", "missing"]),
        ({"task": "rte", "record": {"sentence1": "a", "sentence2": "b"}, "text": "c"}, "invalid", ["exactly one of"]),
        ({"task": "rte"}, "invalid", ["exactly one of"]),
        ({"task": "rte", "text": "word " * 400}, "too_long", ["tokens, over the limit of 256 for task 'rte'"]),
        ("rte sentence1: a", "invalid", ["expected an object"]),
    ],
)
def test_bad_inputs_raise_errors_naming_the_problem(tiny_backbone, item, kind, words):
    predictor = tiny_predictor(tiny_backbone)
    with pytest.raises(InputError) as caught:
        predictor.prepare([ITEMS[0], item], truncate=False)
    assert caught.value.kind == kind and caught.value.index == 1
    for word in words:
        assert word in str(caught.value)


def test_prepared_inputs_carry_the_generation_length_asked_for(tiny_backbone):
    predictor = tiny_predictor(tiny_backbone)
    assert [p.max_new_tokens for p in predictor.prepare(ITEMS)] == [None] * len(ITEMS)  # the predictor's own
    assert [p.max_new_tokens for p in predictor.prepare(ITEMS, max_new_tokens=3)] == [3] * len(ITEMS)


def test_long_inputs_are_truncated_when_allowed(tiny_backbone):
    predictor = tiny_predictor(tiny_backbone)
    [prepared] = predictor.prepare([{"task": "rte", "text": "word " * 400}])
    assert len(prepared.input_ids) == 256


@pytest.mark.parametrize(
    "item",
    [{"task": "sst2", "text": "a \ud800 b"}, {"task": "rte", "record": {"sentence1": "x\udfff", "sentence2": "y"}}],
)
def test_text_the_tokenizer_cannot_take_is_an_input_error(tiny_backbone, item):
    predictor = tiny_predictor(tiny_backbone)
    with pytest.raises(InputError) as info:
        predictor.predict([ITEMS[0], item])
    assert info.value.kind == "invalid" and info.value.index == 1 and "lone surrogate" in info.value.reason


def test_an_input_too_long_in_characters_is_refused_before_tokenising(tiny_backbone, monkeypatch):
    predictor = tiny_predictor(tiny_backbone)
    limit, per_token = predictor.tasks["sst2"].max_source_length, predictor.max_token_chars
    assert per_token == max(len(t) for t in tiny_backbone.tokenizer.get_vocab())  # 16 for the t5-small vocabulary
    calls = []
    encode = tiny_backbone.encode
    monkeypatch.setattr(tiny_backbone, "encode", lambda *a, **k: calls.append(a) or encode(*a, **k))
    huge = "x" * (limit * per_token + 1)  # one character more than the limit's tokens could hold
    with pytest.raises(InputError) as info:
        predictor.prepare([{"task": "sst2", "text": huge}], truncate=False)
    assert info.value.kind == "too_long" and calls == []
    assert f"input is {len(huge)} characters" in info.value.reason
    long_words = "word " * 400  # 2,000 characters: under the bound, over the limit in tokens
    with pytest.raises(InputError, match="tokens, over the limit of 256"):
        predictor.prepare([{"task": "sst2", "text": long_words}], truncate=False)
    assert len(calls) == 1
    [truncated] = predictor.prepare([{"task": "sst2", "text": huge}])  # truncation still takes any length
    assert len(truncated.input_ids) == limit


def test_an_unknown_task_error_does_not_echo_a_huge_name(tiny_backbone):
    with pytest.raises(InputError) as info:
        tiny_predictor(tiny_backbone).predict([{"task": "rte" + "e" * 100_000, "text": "x"}])
    assert info.value.kind == "unknown_task" and len(str(info.value)) < 300
    assert "'rteeee" in str(info.value) and "(100005 characters)" in str(info.value)


def test_a_generated_answer_that_is_no_number_is_none(tiny_backbone):
    """The random tiny model's STS-B generation is words, not a score: prediction None (the
    API's null), never a made-up -1.0."""
    [pred] = tiny_predictor(tiny_backbone).predict([ITEMS[3]])
    assert pred.task == "stsb" and pred.text and pred.prediction is None
    with pytest.raises(ValueError):
        float(pred.text)


@pytest.mark.parametrize("option", ["max_new_tokens", "max_batch_size", "token_budget"])
def test_limits_below_one_are_refused(tiny_backbone, option):
    with pytest.raises(ValueError, match=f"{option} must be an integer >= 1, got 0"):
        tiny_predictor(tiny_backbone, **{option: 0})
