"""Predictor: mixed-task batches equal items answered alone, scores computed as documented,
memory-bounded batching, and errors that name the problem."""

from __future__ import annotations

import pytest
import torch

from promptmix.backbone import PromptedModel
from promptmix.inference.predictor import InputError
from promptmix.prompts import METHODS

from predictor_factory import ITEMS, same_predictions, tiny_predictor


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
        out = model(torch.tensor([enc["input_ids"]]), torch.ones(1, len(enc["input_ids"]), dtype=torch.long),
                    torch.tensor([enc["labels"]]), method.task_ids_for(["cb"]))
        lls.append(-(out.per_example_loss * out.token_counts).item())
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


@pytest.mark.parametrize("item, kind, words", [
    ({"task": "rtee", "record": {}}, "unknown_task", ["'rtee'", "Did you mean 'rte'", "Loaded: rte, sst2, cb, stsb"]),
    ({"task": "mnli", "text": "x"}, "unknown_task", ["no prompt is loaded for task 'mnli'"]),
    ({"task": "rte", "record": {"sentence1": "only one"}}, "invalid", ["field 'sentence2'", "missing"]),
    ({"task": "rte", "record": {"sentence1": "a", "sentence2": "b"}, "text": "c"}, "invalid", ["exactly one of"]),
    ({"task": "rte"}, "invalid", ["exactly one of"]),
    ({"task": "rte", "text": "word " * 400}, "too_long", ["tokens, over the limit of 256 for task 'rte'"]),
    ("rte sentence1: a", "invalid", ["expected an object"]),
])
def test_bad_inputs_raise_errors_naming_the_problem(tiny_backbone, item, kind, words):
    predictor = tiny_predictor(tiny_backbone)
    with pytest.raises(InputError) as caught:
        predictor.prepare([ITEMS[0], item], truncate=False)
    assert caught.value.kind == kind and caught.value.index == 1
    for word in words:
        assert word in str(caught.value)


def test_long_inputs_are_truncated_when_allowed(tiny_backbone):
    predictor = tiny_predictor(tiny_backbone)
    [prepared] = predictor.prepare([{"task": "rte", "text": "word " * 400}])
    assert len(prepared.input_ids) == 256
