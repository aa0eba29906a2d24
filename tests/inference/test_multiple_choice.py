"""Multiple-choice answers per example: dev/test evaluation and the predictor rank each
example's own candidates (COPA's alternatives, WinoGrande's options), each candidate scored as
its own full row would be, while the papers' tasks keep their label words."""

from __future__ import annotations

import pytest
import torch
from method_factories import make_method

from promptmix.backbone import PromptedModel
from promptmix.inference.evaluate import predict
from promptmix.inference.predictor import InputError, Predictor
from promptmix.rundirs.data import TaskData
from promptmix.scoring import sequence_log_likelihoods
from promptmix.tasks import DataError, get_task
from promptmix.training.config import EvalConfig

COPA = [  # records of different lengths and different candidates
    {
        "premise": "The man broke his toe.",
        "question": "cause",
        "choice1": "He dropped a hammer on his foot.",
        "choice2": "He got a hole in his sock.",
        "label": 0,
    },
    {
        "premise": "I tipped the bottle.",
        "question": "effect",
        "choice1": "The liquid in the bottle froze.",
        "choice2": "The liquid in the bottle poured out of it onto the kitchen table.",
        "label": 1,
    },
    {
        "premise": "It rained all day long without a single break.",
        "question": "effect",
        "choice1": "Puddles.",
        "choice2": "Sunburn and a dry lawn.",
        "label": 0,
    },
]


def best_by_full_rows(model, task_id, example):
    """The candidate with the highest summed log-likelihood, each scored as a full row."""
    rows = [model.backbone.encode(example.source, c) for c in example.choices]
    ll, _, _ = sequence_log_likelihoods(model, rows, torch.full((len(rows),), task_id))
    return example.choices[int(ll.argmax())], ll


@pytest.fixture
def model(tiny_backbone):
    method = make_method("prompt-tuning", ["copa-choices", "copa"], tiny_backbone.hidden_size, prompt_length=3, seed=4)
    return PromptedModel(tiny_backbone, method).eval()


def test_rank_evaluation_picks_among_each_examples_own_candidates(model):
    task = get_task("copa-choices")
    examples = [task.format(r) for r in COPA]
    answers = predict(
        model, TaskData(task, [], examples, []), examples, 0, EvalConfig(scoring="rank", batch_size=2), 256
    )
    assert answers == [best_by_full_rows(model, 0, ex)[0] for ex in examples]
    assert all(answer in ex.choices for answer, ex in zip(answers, examples))
    # The paper preset keeps its literal label words.
    paper = get_task("copa")
    paper_examples = [paper.format(r) for r in COPA]
    words = predict(model, TaskData(paper, [], paper_examples, []), paper_examples, 1, EvalConfig(scoring="rank"), 256)
    assert set(words) <= {"choice1", "choice2"}


def test_predictor_answers_with_the_inputs_own_choices(model):
    predictor = Predictor(model.backbone, model.method)
    task = get_task("copa-choices")
    items = [{"task": "copa-choices", "record": r} for r in COPA]
    text_item = {
        "task": "copa-choices",
        "text": task.format(COPA[1]).source,
        "choices": list(task.format(COPA[1]).choices),
    }
    answers = predictor.predict([*items, text_item, {"task": "copa", "record": COPA[0]}])
    for record, answer in zip(COPA, answers[:3]):
        example = task.format(record)
        best, ll = best_by_full_rows(model, 0, example)
        assert answer.text == answer.prediction == best
        assert list(answer.label_scores) == list(example.choices)
        torch.testing.assert_close(
            torch.tensor(list(answer.label_scores.values())), torch.softmax(ll, 0), atol=1e-5, rtol=0
        )
    assert answers[3].text == answers[1].text  # the same input as text with its choices
    assert answers[4].text in ("choice1", "choice2") and list(answers[4].label_scores) == ["choice1", "choice2"]


def test_choices_are_required_for_multiple_choice_text_and_refused_elsewhere(model):
    predictor = Predictor(model.backbone, model.method)
    with pytest.raises(InputError, match="answers from each input's own candidates: give 'choices'"):
        predictor.prepare([{"task": "copa-choices", "text": "copa-choices premise: x question: cause"}])
    with pytest.raises(InputError, match="'choices' are for multiple-choice tasks"):
        predictor.prepare([{"task": "copa", "text": "copa premise: x", "choices": ["a", "b"]}])


@pytest.mark.parametrize(
    "label, message",
    [
        (2, "label 2 is neither one of the 2 candidates' text nor an index 0..1"),
        ("a sock", "label 'a sock' is neither"),
    ],
)
def test_a_label_that_is_no_candidate_names_the_field(label, message):
    with pytest.raises(DataError, match="field 'label'") as err:
        get_task("copa-choices").format({**COPA[0], "label": label})
    assert message in str(err.value)
    assert (
        get_task("winogrande-choices")
        .format({"sentence": "_ won.", "option1": "Ann", "option2": "Bo", "answer": "2"})
        .target
        == "Bo"
    )  # counted from 1


TEXT = "copa-choices premise: The man broke his toe. question: cause"


def test_choices_beyond_the_limits_are_refused_before_anything_is_encoded(model, monkeypatch):
    predictor = Predictor(model.backbone, model.method, max_choices=3, max_choice_tokens=4)
    encoded = []
    monkeypatch.setattr(type(model.backbone), "encode", lambda self, *a, **k: encoded.append(a) or {"input_ids": [1]})
    with pytest.raises(InputError, match=r"20000 choices; at most 3 per input \(max_choices, --max-choices\)") as err:
        predictor.prepare([{"task": "copa-choices", "text": TEXT, "choices": ["a"] * 20_000}])
    assert err.value.kind == "too_many_choices" and encoded == []  # refused on the count alone
    with pytest.raises(InputError, match=r"choice 1 is \d+ characters, more than 4 tokens can hold") as err:
        predictor.prepare([{"task": "copa-choices", "text": TEXT, "choices": ["a", "word " * 1000]}])
    assert err.value.kind == "choice_too_long" and encoded == []
    monkeypatch.undo()
    with pytest.raises(
        InputError, match=r"choice 0 is \d+ tokens, over the limit of 4 \(max_choice_tokens, --max-choice-tokens\)"
    ) as err:
        predictor.prepare([{"task": "copa-choices", "text": TEXT, "choices": ["one two three four five six", "b"]}])
    assert err.value.kind == "choice_too_long"


def test_duplicate_and_whitespace_variant_choices_are_one_candidate_and_scores_sum_to_one(model):
    """Issue 36.15: ' He fell. ' and 'He fell.' once shared one label_scores key, so the two
    rows' probabilities were counted as one and the scores summed to less than 1."""
    predictor = Predictor(model.backbone, model.method)
    [answer] = predictor.predict(
        [{"task": "copa-choices", "text": TEXT, "choices": ["He fell.", " He fell. ", "He slipped.", "He fell."]}]
    )
    assert list(answer.label_scores) == ["He fell.", "He slipped."]
    assert abs(sum(answer.label_scores.values()) - 1) < 1e-5 and answer.score == max(answer.label_scores.values())


def test_blank_or_non_string_record_entities_are_refused(model):
    method = make_method("prompt-tuning", ["record-choices"], model.backbone.hidden_size, prompt_length=3, seed=4)
    predictor = Predictor(model.backbone, method)
    record = {"passage": "Ann met Bo.", "query": "@placeholder met Bo."}
    for entities in (["Ann", " "], ["Ann", 2], "Ann"):
        with pytest.raises(InputError, match="field 'entities'") as err:
            predictor.prepare([{"task": "record-choices", "record": {**record, "entities": entities}}])
        assert err.value.kind == "invalid"
