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
