"""Few-shot sampling: k per class for classification, k in total otherwise, seeded."""

from __future__ import annotations

from collections import Counter

import pytest

from promptmix.tasks import Example, get_task
from promptmix.tasks.fewshot import disjoint_few_shot, sample_few_shot


def cb_examples():
    counts = {"entailment": 10, "contradiction": 8, "neutral": 5}
    return [
        Example(f"cb premise: {label} {i}", label, "cb", label, idx=f"{label}-{i}")
        for label, n in counts.items()
        for i in range(n)
    ]


def test_k_per_class_for_classification():
    sample = sample_few_shot(cb_examples(), k=4, seed=0, task="cb")
    assert Counter(ex.label for ex in sample) == {"entailment": 4, "contradiction": 4, "neutral": 4}
    assert sample == sample_few_shot(cb_examples(), k=4, seed=0, task=get_task("cb"))
    assert sample != sample_few_shot(cb_examples(), k=4, seed=1)  # task from the examples
    assert [ex.label for ex in sample] != sorted(ex.label for ex in sample)  # classes interleaved


def test_k_in_total_for_regression_and_qa():
    stsb = [Example(f"stsb s: {i}", "1.0", "stsb", 1.0, idx=i) for i in range(50)]
    assert len(sample_few_shot(stsb, k=16, seed=0)) == 16
    squad = [Example(f"squad q: {i}", "a", "squad", ["a"], idx=i) for i in range(20)]
    assert len(sample_few_shot(squad, k=4, seed=2)) == 4


def test_runs_from_one_seed_are_disjoint():
    runs = disjoint_few_shot(cb_examples(), k=1, seed=0, task="cb", runs=5)
    ids = [ex.idx for run in runs for ex in run]
    assert len(ids) == len(set(ids)) == 15
    assert runs[0] == sample_few_shot(cb_examples(), k=1, seed=0, task="cb")


def test_too_few_examples_of_a_class_is_an_error():
    with pytest.raises(ValueError, match=r"class 'neutral' has 5 examples, fewer than k \* runs = 4 \* 2"):
        disjoint_few_shot(cb_examples(), k=4, seed=0, task="cb", runs=2)


def test_a_short_class_gives_all_it_has_only_when_asked():
    """CB has 16 'neutral' training examples in all, so k = 32 per class needs short='all'."""
    with pytest.raises(ValueError, match=r"class 'neutral' has 5 examples, fewer than k \* runs = 8 \* 1 \(data"):
        sample_few_shot(cb_examples(), k=8, seed=0, task="cb")
    sample = sample_few_shot(cb_examples(), k=8, seed=0, task="cb", short="all")
    assert Counter(ex.label for ex in sample) == {"entailment": 8, "contradiction": 8, "neutral": 5}
    # the long classes are drawn exactly as without the option: the short one changes nothing else
    full = sample_few_shot(cb_examples(), k=5, seed=0, task="cb")
    assert {ex.idx for ex in full if ex.label != "neutral"} <= {ex.idx for ex in sample}
    with pytest.raises(ValueError, match="needs runs=1"):
        disjoint_few_shot(cb_examples(), k=8, seed=0, task="cb", runs=2, short="all")
    stsb = [Example(f"stsb s: {i}", "1.0", "stsb", 1.0, idx=i) for i in range(3)]  # not classification: still refused
    with pytest.raises(ValueError, match="the split has 3 examples"):
        sample_few_shot(stsb, k=4, seed=0, short="all")


def test_load_tasks_passes_the_short_class_option(tmp_path):
    """data.few_shot_short_class reaches the draw: CB at k = 32 per class from a file with 3 neutral."""
    import json

    from promptmix.rundirs.config import DataConfig
    from promptmix.rundirs.data import load_tasks

    cb = tmp_path / "superglue" / "CB"
    cb.mkdir(parents=True)
    rows = [("entailment", 40), ("contradiction", 40), ("neutral", 3)]
    lines = [
        json.dumps({"premise": f"p{label}{i}", "hypothesis": "h", "label": label, "idx": n})
        for n, (label, i) in enumerate((label, i) for label, count in rows for i in range(count))
    ]
    for split in ("train", "val"):
        (cb / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    config = {"data_dir": str(tmp_path), "few_shot_k": 32, "few_shot_seed": 1}
    with pytest.raises(ValueError, match="class 'neutral' has 3 examples"):
        load_tasks(DataConfig(**config), ["cb"])
    train = load_tasks(DataConfig(**config, few_shot_short_class="all"), ["cb"])["cb"].train
    assert Counter(ex.label for ex in train) == {"entailment": 32, "contradiction": 32, "neutral": 3}
