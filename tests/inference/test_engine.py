"""The inference engine: each source tokenised once, the task's own candidates ranked, and a
generated answer's score read from the generate call equal to teacher-forcing its tokens."""

from __future__ import annotations

import pytest
import torch
from method_factories import make_method
from predictor_factory import ITEMS, tiny_predictor

from promptmix.backbone import IGNORE_INDEX, Backbone, PromptedModel
from promptmix.inference.engine import Engine, EngineInput, prepare_input
from promptmix.scoring import generate_scored, sequence_log_likelihoods
from promptmix.tasks import get_task

SOURCES = ["stsb sentence1: A man plays a guitar. sentence2: A man plays music.", "stsb sentence1: No. sentence2: Yes."]


def test_each_source_is_tokenised_once_and_each_candidate_answer_once(tiny_backbone, monkeypatch):
    predictor = tiny_predictor(tiny_backbone)
    sources, answers = [], []
    encode, encode_answer = Backbone.encode, Backbone.encode_answer
    monkeypatch.setattr(
        Backbone, "encode", lambda self, source, *a, **k: sources.append(source) or encode(self, source, *a, **k)
    )
    monkeypatch.setattr(
        Backbone, "encode_answer", lambda self, t, **k: answers.append(t) or encode_answer(self, t, **k)
    )
    prepared = predictor.prepare(ITEMS)
    assert len(sources) == len(ITEMS) == len(set(sources))  # no source twice (none is over its limit here)
    assert answers == [a for p in prepared if p.answers for a in p.answers]
    predictor.run(prepared)  # scoring and generation tokenise nothing more
    assert len(sources) == len(ITEMS) and len(answers) == sum(len(p.answers or []) for p in prepared)


def test_the_candidates_ranked_are_the_tasks_answer_candidates(tiny_backbone):
    """A task trained on label indices is ranked over the indices, as evaluation ranks it."""
    tasks = {name: get_task(name) for name in ("rte", "sst2", "cb", "stsb")}
    tasks["cb"].label_format = "index"
    predictor = tiny_predictor(tiny_backbone, tasks=tasks)
    [pred] = predictor.predict([ITEMS[1]])
    assert (
        list(pred.label_scores)
        == ["0", "1", "2"]
        == tasks["cb"].answer_candidates(tasks["cb"].format(ITEMS[1]["record"]))
    )
    assert pred.prediction == tasks["cb"].label_words[int(pred.text)]


def _teacher_forced_score(model: PromptedModel, source: list[int], task_id: int, max_new_tokens: int) -> float:
    """exp(mean log-probability) of the greedy tokens up to the first eos, by one forward over them."""
    backbone = model.backbone
    tokens = model.generate(
        torch.tensor([source]),
        torch.ones(1, len(source), dtype=torch.long),
        torch.tensor([task_id]),
        max_new_tokens=max_new_tokens,
    )[0].tolist()
    eos = backbone.tokenizer.eos_token_id
    tokens = tokens[: tokens.index(eos) + 1] if eos in tokens else tokens
    if backbone.is_encoder_decoder:
        row = {"input_ids": source, "labels": tokens}
    else:
        row = {"input_ids": source + tokens, "labels": [IGNORE_INDEX] * len(source) + tokens}
    ll, counts, _ = sequence_log_likelihoods(model, [row], torch.tensor([task_id]))
    return float(torch.exp(ll / counts)[0])


def test_generation_score_is_the_teacher_forced_probability_of_the_generated_tokens(tiny_backbone):
    method = make_method("attempt", ["stsb"], tiny_backbone.hidden_size, prompt_length=4, seed=3)
    model = PromptedModel(tiny_backbone, method).eval()
    sources = [tiny_backbone.encode(s)["input_ids"] for s in SOURCES]
    generated = generate_scored(model, sources, torch.zeros(len(sources), dtype=torch.long), max_new_tokens=5)
    for source, g in zip(sources, generated):  # batched with a longer row, padded: the score is still its own
        assert 0 < g.score <= 1
        assert g.score == pytest.approx(_teacher_forced_score(model, source, 0, 5), rel=1e-4)


def test_batches_hold_the_token_budget_and_answers_come_back_in_order(tiny_backbone):
    method = make_method("prompt-tuning", ["stsb"], tiny_backbone.hidden_size, prompt_length=3, seed=1)
    model = PromptedModel(tiny_backbone, method).eval()
    inputs = [prepare_input(tiny_backbone, 0, tiny_backbone.encode(s)["input_ids"], ["yes", "no"]) for s in SOURCES * 2]
    inputs.insert(1, EngineInput(0, tiny_backbone.encode(SOURCES[0])["input_ids"], max_new_tokens=2))
    engine = Engine(model)
    engine.token_budget = 2 * max(engine.width(p) for p in inputs)  # two rows of the widest input: several batches
    batches = engine._batches(range(len(inputs)), inputs)
    assert sorted(i for b in batches for i in b) == list(range(len(inputs)))
    for batch in batches:
        assert (
            sum(inputs[i].rows for i in batch) * max(engine.width(inputs[i]) for i in batch) <= engine.token_budget
            or len(batch) == 1
        )
        assert len({bool(inputs[i].answer_ids) for i in batch}) == 1  # ranked and generated never share a forward
    answers = engine.run(inputs)
    alone = [Engine(model).run([p])[0] for p in inputs]
    assert [a.text for a in answers] == [a.text for a in alone]
    assert [a.score for a in answers] == pytest.approx([a.score for a in alone], abs=1e-4)
