"""data.label_format: classification targets as label words (promptmix) or as label indices
("0", "1", "2": the official ATTEMPT code's targets), with scoring in the same format and the
metrics unchanged."""

from __future__ import annotations

import pytest
from trainhelpers import FIXTURES, config, model_dirs  # noqa: F401  (fixture)


def _cb(label_format: str):
    from promptmix.rundirs.data import load_tasks
    from promptmix.training.config import DataConfig

    return load_tasks(DataConfig(data_dir=str(FIXTURES), label_format=label_format), ["cb"])["cb"]


def test_index_format_trains_on_label_indices_and_scores_them_back_to_words():
    words, index = _cb("words"), _cb("index")
    assert [ex.label for ex in index.train] == [ex.label for ex in words.train]  # the gold labels stay words
    order = ["entailment", "contradiction", "neutral"]
    assert [ex.target for ex in index.train] == [str(order.index(ex.label)) for ex in words.train]
    assert {ex.target for ex in words.train} <= set(order)
    assert index.task.answer_candidates(index.dev[0]) == ["0", "1", "2"]
    assert words.task.answer_candidates(words.dev[0]) == order
    gold = [ex.target for ex in index.dev]
    assert index.task.compute_metrics(gold, index.dev) == words.task.compute_metrics(
        [ex.target for ex in words.dev], words.dev
    )
    assert (
        index.task.compute_metrics(["entailment"] * len(index.dev), index.dev)["accuracy"] == 0.0
    )  # words are invalid


def test_label_format_reaches_training_and_dev_scoring(model_dirs, tmp_path, monkeypatch):
    """A run with data.label_format: index encodes only "0"/"1"/"2" as targets, in training
    and in dev/test rank classification; an unknown format is refused."""
    import json

    from promptmix.backbone import Backbone
    from promptmix.training.config import load_config
    from promptmix.training.stages import run_stage

    targets = set()
    encode = Backbone.encode

    def spy(self, source, target=None, **kwargs):
        if target is not None:
            targets.add(target)
        return encode(self, source, target, **kwargs)

    monkeypatch.setattr(Backbone, "encode", spy)
    cfg = config(
        "prompt-tuning",
        model_dirs["t5"],
        tmp_path,
        data__tasks=["cb"],
        data__label_format="index",
        optim__max_steps=2,
        eval__every=0,
    )
    result = run_stage(cfg)
    assert result.completed and 0.0 <= result.dev["cb"]["accuracy"] <= 100.0
    assert targets == {"0", "1", "2"}
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["dev"]["cb"] == result.dev["cb"]
    # the kept test predictions are label words (the index answered is kept as text): their
    # accuracy is the test score
    rows = [json.loads(line) for line in (tmp_path / "run" / "test_predictions" / "cb.jsonl").read_text().splitlines()]
    assert {r["text"] for r in rows} <= {"0", "1", "2"} and {r["prediction"] for r in rows} <= {
        "entailment",
        "contradiction",
        "neutral",
    }
    accuracy = 100 * sum(r["prediction"] == r["label"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(results["test"]["cb"]["accuracy"])
    with pytest.raises(ValueError, match="data.label_format"):
        load_config(None, {"data.tasks": ["cb"], "data.label_format": "ids"})
