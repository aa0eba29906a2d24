"""Dev/test prediction runs length-grouped batches (examples sorted by source length), gives
each example its own answer back in the examples' order, and scores every example as it would
be scored alone."""

from __future__ import annotations

import pytest
import torch
from method_factories import make_method

from promptmix.backbone import PromptedModel
from promptmix.inference import engine
from promptmix.inference import evaluate as evaluation
from promptmix.rundirs.data import TaskData
from promptmix.scoring import Generation, RankResult, rank_candidates
from promptmix.tasks import get_task
from promptmix.training.config import EvalConfig

PAIRS = [  # CB inputs of very different lengths, deliberately not sorted
    ("It is late in the evening and the shops have all closed for the night.", "It is early."),
    ("No.", "Yes."),
    ("The man who sold the world a bridge was, by all accounts, a very persuasive person.", "He sold a bridge."),
    ("Rain.", "It is dry."),
    ("A cat sat on a mat.", "A cat sits."),
]


def _setup(backbone):
    task = get_task("cb")
    examples = [task.format({"premise": p, "hypothesis": h, "label": 0}) for p, h in PAIRS]
    model = PromptedModel(backbone, make_method("attempt", ["cb"], backbone.hidden_size, prompt_length=4)).eval()
    return model, TaskData(task, [], examples, []), examples


@pytest.mark.parametrize("scoring_kind", ["rank", "generate"])
def test_batches_are_length_grouped_and_answers_come_back_in_order(tiny_backbone, scoring_kind, monkeypatch):
    """The scorers are replaced by ones whose answer is a function of the input's length, so
    each example's answer says whose it is."""
    model, data, examples = _setup(tiny_backbone)
    words, batches = data.task.label_words, []

    def fake_rank(model_, sources, answers, task_ids):
        batches.append([len(s) for s in sources])
        return [
            RankResult(len(s) % len(words), [0.0] * len(a), [1 / len(a)] * len(a)) for s, a in zip(sources, answers)
        ]

    def fake_generate(model_, input_ids, task_ids, **kwargs):
        batches.append([len(x) for x in input_ids])
        return [Generation(f"len {len(x)}", 1.0) for x in input_ids]

    monkeypatch.setattr(engine, "rank_candidates", fake_rank)
    monkeypatch.setattr(engine, "generate_scored", fake_generate)
    config = EvalConfig(scoring=scoring_kind, batch_size=2)
    grouped = evaluation.predict(model, data, examples, 0, config, max_source_length=64)
    lengths = [len(tiny_backbone.encode(ex.source)["input_ids"]) for ex in examples]
    assert lengths != sorted(lengths)  # the examples do not arrive sorted ...
    assert [w for batch in batches for w in batch] == sorted(w for batch in batches for w in batch)  # ... but run so
    assert len(batches) == 3
    assert grouped == [evaluation.predict(model, data, [ex], 0, config, max_source_length=64)[0] for ex in examples]
    assert len(set(grouped)) > 1


def test_grouped_rank_scores_equal_each_example_alone(tiny_backbone, monkeypatch):
    model, data, examples = _setup(tiny_backbone)
    scores = {}  # source ids -> log-likelihoods, from whichever batch scored it

    def spy(model_, sources, answers, task_ids):
        results = rank_candidates(model_, sources, answers, task_ids)
        for source, r in zip(sources, results):
            scores.setdefault(tuple(source), []).append(r.log_likelihoods)
        return results

    monkeypatch.setattr(engine, "rank_candidates", spy)
    config = EvalConfig(scoring="rank", batch_size=2)
    evaluation.predict(model, data, examples, 0, config, max_source_length=64)
    for ex in examples:
        evaluation.predict(model, data, [ex], 0, config, max_source_length=64)
    assert len(scores) == len(examples)
    for grouped, alone in scores.values():
        torch.testing.assert_close(torch.tensor(grouped), torch.tensor(alone), atol=1e-5, rtol=1e-6)
