"""Metrics of both papers, in percent (0-100), computed with scikit-learn, SciPy and sacrebleu.

Plain functions take predictions and gold values; :data:`METRICS` maps the names tasks
declare in ``metric_names`` to adapters ``(task, parsed predictions, examples) -> float``.
Register another with :func:`register_metric`.

Invalid classification predictions (text that is no label word) count as wrong: in a binary
task they become the label opposite to the gold one (T5's ``f1_score_with_invalid``
convention, which also keeps F1 and Matthews correlation defined); in a multi-class task
they become a class of their own that no gold example has. An invalid number (STS-B text
that is no number) counts as the task's ``invalid_value``, -1.0 as in T5. An undefined
correlation (constant predictions) scores 0.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from promptmix.tasks.example import Example

MetricFn = Callable[[Any, list, list[Example]], float]
METRICS: dict[str, MetricFn] = {}
INVALID = "<invalid>"


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator adding ``fn(task, parsed_predictions, examples) -> float`` under ``name``."""

    def add(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        return fn

    return add


# -- plain metric functions --------------------------------------------------------------


def accuracy(predictions: Sequence, golds: Sequence) -> float:
    from sklearn.metrics import accuracy_score

    return 100.0 * accuracy_score(golds, predictions)


def binary_f1(predictions: Sequence, golds: Sequence, positive: Any) -> float:
    """F1 of the ``positive`` class."""
    from sklearn.metrics import f1_score

    return 100.0 * f1_score(golds, predictions, labels=[positive], average="micro", zero_division=0)


def macro_f1(predictions: Sequence, golds: Sequence, labels: Sequence) -> float:
    """Unweighted mean of per-class F1 over ``labels`` (CB's F1)."""
    from sklearn.metrics import f1_score

    return 100.0 * f1_score(golds, predictions, labels=list(labels), average="macro", zero_division=0)


def matthews_correlation(predictions: Sequence, golds: Sequence) -> float:
    from sklearn.metrics import matthews_corrcoef

    return 100.0 * matthews_corrcoef(golds, predictions)


def _correlation(fn, predictions: Sequence[float], golds: Sequence[float]) -> float:
    if len(set(predictions)) < 2 or len(set(golds)) < 2:
        return 0.0  # undefined for constant input; score it as no correlation
    value = float(fn(predictions, golds)[0])
    return 0.0 if math.isnan(value) else 100.0 * value


def pearson(predictions: Sequence[float], golds: Sequence[float]) -> float:
    from scipy.stats import pearsonr

    return _correlation(pearsonr, predictions, golds)


def spearman(predictions: Sequence[float], golds: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return _correlation(spearmanr, predictions, golds)


def normalize_answer(text: str) -> str:
    """The official SQuAD v1.1 normalisation: lower case, no punctuation, no a/an/the,
    single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_exact_match(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """Mean over questions of the best exact match against any gold answer (normalised)."""
    scores = [
        max(float(normalize_answer(p) == normalize_answer(g)) for g in golds) for p, golds in zip(predictions, answers)
    ]
    return 100.0 * math.fsum(scores) / len(scores)


def squad_f1(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """Mean over questions of the best token F1 against any gold answer (normalised)."""
    scores = [max(_token_f1(p, g) for g in golds) for p, golds in zip(predictions, answers)]
    return 100.0 * math.fsum(scores) / len(scores)


def group_exact_match(predictions: Sequence, golds: Sequence, groups: Sequence) -> float:
    """Share of groups whose every prediction is right (MultiRC's per-question EM)."""
    right: dict[Any, bool] = {}
    for pred, gold, group in zip(predictions, golds, groups):
        right[group] = right.get(group, True) and pred == gold
    return 100.0 * sum(right.values()) / len(right)


def bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (sacrebleu defaults) with any number of references per prediction."""
    import sacrebleu

    depth = max(len(refs) for refs in references)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(depth)]
    # sacrebleu skips a None reference (fewer references for that prediction); its annotation
    # says str only.
    return float(sacrebleu.corpus_bleu(list(predictions), streams).score)  # type: ignore[arg-type]


# -- adapters: what a task's metric_names resolve to -------------------------------------


def class_predictions(task, parsed: list, examples: list[Example]) -> tuple[list, list]:
    """(predictions with invalid ones replaced as the module docstring says, gold labels)."""
    golds = [ex.label for ex in examples]
    words = task.label_words
    if len(words) == 2:
        filled = [p if p is not None else words[1 - words.index(g)] for p, g in zip(parsed, golds)]
    else:
        filled = [p if p is not None else INVALID for p in parsed]
    return filled, golds


@register_metric("accuracy")
def _accuracy(task, parsed, examples):
    if task.label_words:
        return accuracy(*class_predictions(task, parsed, examples))
    return accuracy(parsed, [ex.label for ex in examples])


@register_metric("f1")
def _f1(task, parsed, examples):
    """Binary F1; the positive class is the second label word (index 1 in the hub's order)."""
    return binary_f1(*class_predictions(task, parsed, examples), positive=task.label_words[1])


@register_metric("macro_f1")
def _macro_f1(task, parsed, examples):
    return macro_f1(*class_predictions(task, parsed, examples), labels=task.label_words)


@register_metric("matthews_correlation")
def _matthews(task, parsed, examples):
    return matthews_correlation(*class_predictions(task, parsed, examples))


@register_metric("group_em")
def _group_em(task, parsed, examples):
    predictions, golds = class_predictions(task, parsed, examples)
    return group_exact_match(predictions, golds, [ex.group for ex in examples])


def _against_labels(fn: Callable[[list, list], float]) -> MetricFn:
    return lambda task, parsed, examples: fn(parsed, [ex.label for ex in examples])


def _correlation_of(fn: Callable[[list, list], float]) -> MetricFn:
    """A correlation of parsed numbers, an invalid one (None) counted as ``task.invalid_value``."""

    def metric(task, parsed, examples):
        filled = [task.invalid_value if p is None else p for p in parsed]
        return fn(filled, [ex.label for ex in examples])

    return metric


# Metrics of parsed predictions against the gold labels as they are (numbers, answer lists,
# reference lists).
METRICS.update(
    {
        "pearson": _correlation_of(pearson),
        "spearman": _correlation_of(spearman),
        "squad_em": _against_labels(squad_exact_match),
        "squad_f1": _against_labels(squad_f1),
        "bleu": _against_labels(bleu),
    }
)
