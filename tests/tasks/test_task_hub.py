"""The hub path (``datasets.load_dataset``) with the call replaced by tiny in-memory datasets."""

from __future__ import annotations

import datasets
import pytest

from promptmix.tasks import MissingDataError, get_task


@pytest.fixture
def fake_hub(monkeypatch):
    """Replace ``datasets.load_dataset``; record the calls it gets."""
    calls, tables = [], {}

    def load_dataset(path, name=None, *, split):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict(tables[(path, name, split)])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return tables, calls


def test_glue_hub_rows_format_like_local_rows(fake_hub):
    tables, calls = fake_hub
    rows = {
        "sentence1": ["A dog runs.", "It rains.", "Birds fly.", "Fish swim."],
        "sentence2": ["An animal moves.", "It is dry.", "Birds move.", "Fish walk."],
        "label": [0, 1, 0, 1],
        "idx": [0, 1, 2, 3],
    }
    for split in ("train", "validation"):
        tables[("nyu-mll/glue", "rte", split)] = rows
    splits = get_task("rte").load_splits(seed=42, hub=True)
    assert calls == [("nyu-mll/glue", "rte", "train"), ("nyu-mll/glue", "rte", "validation")]
    assert [len(splits[s]) for s in ("train", "dev", "test")] == [4, 2, 2]
    first = splits["train"][0]
    assert (first.source, first.target, first.idx) == (
        "rte sentence1: A dog runs. sentence2: An animal moves.",
        "entailment",
        0,
    )
    assert splits["train"][1].target == "not_entailment"


def test_mnli_uses_the_matched_validation_split(fake_hub):
    tables, calls = fake_hub
    rows = {"premise": ["p"] * 2, "hypothesis": ["h"] * 2, "label": [2, 1], "idx": [0, 1]}
    tables[("nyu-mll/glue", "mnli", "train")] = rows
    tables[("nyu-mll/glue", "mnli", "validation_matched")] = rows
    splits = get_task("mnli").load_splits(hub=True)
    assert calls[1] == ("nyu-mll/glue", "mnli", "validation_matched")
    assert [ex.target for ex in splits["train"]] == ["contradiction", "neutral"]


def test_mrqa_keeps_only_its_subset(fake_hub):
    tables, _ = fake_hub
    rows = {
        "subset": ["SQuAD", "NewsQA", "NewsQA"],
        "context": ["c0", "c1", "c2"],
        "qid": ["a", "b", "c"],
        "question": ["q0", "q1", "q2"],
        "answers": [["x"], ["y"], ["z", "zz"]],
    }
    for split in ("train", "validation"):
        tables[("mrqa-workshop/mrqa", None, split)] = rows
    splits = get_task("newsqa").load_splits(hub=True)
    train = splits["train"]
    assert [(ex.source, ex.target, ex.label, ex.idx) for ex in train] == [
        ("newsqa question: q1 context: c1", "y", ["y"], "b"),
        ("newsqa question: q2 context: c2", "z", ["z", "zz"], "c"),
    ]


def test_multirc_hub_rows_are_grouped_by_question(fake_hub):
    tables, _ = fake_hub
    idx = [{"paragraph": 0, "question": q, "answer": a} for q, a in ((0, 0), (0, 1), (1, 0), (1, 1))]
    rows = {
        "paragraph": ["<b>Sent 1: </b>P.<br>"] * 4,
        "question": ["q0", "q0", "q1", "q1"],
        "answer": ["a", "b", "c", "d"],
        "idx": idx,
        "label": [1, 0, 0, 1],
    }
    for split in ("train", "validation"):
        tables[("aps/super_glue", "multirc", split)] = rows
    splits = get_task("multirc").load_splits(hub=True)
    assert [ex.group for ex in splits["train"]] == ["0-0", "0-0", "0-1", "0-1"]
    assert splits["train"][0].source == "multirc question: q0 answer: a paragraph: Sent 1: P."
    assert {ex.group for ex in splits["dev"]} != {ex.group for ex in splits["test"]}
    assert len(splits["dev"]) == len(splits["test"]) == 2


def test_failed_hub_is_reported_with_the_files_to_put_in_place(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(MissingDataError) as info:
        get_task("boolq").load_splits(tmp_path)
    message = str(info.value)
    assert f"train      {tmp_path / 'superglue/BoolQ/train.jsonl'}  (MISSING)" in message
    assert message.endswith(
        "Hub: datasets.load_dataset('aps/super_glue', 'boolq') loading it failed: ConnectionError: no route to host"
    )
    with pytest.raises(ConnectionError):  # hub=True asks for the hub: its error is not hidden
        get_task("boolq").load_splits(tmp_path, hub=True)
