"""The four kinds of task: what the target is, and how generated text maps back to it.

- :class:`ClassificationTask`: the target is a label word; text that is no label word is
  an invalid prediction (``None``), scored as wrong.
- :class:`RegressionTask` (STS-B): the target is the score rounded to the nearest 0.2 and
  written with one decimal, as T5 did ("3.8"); unparseable text is an invalid prediction
  (``None``), which the correlation metrics read as -1.0 (T5's default).
- :class:`QATask`: the target is the first gold answer, the label all of them.
- :class:`GenerationTask`: the target is one reference, the label all references of the input.
- :class:`MultipleChoiceTask`: each example brings its own candidate answers (COPA's two
  alternatives, WinoGrande's options); the target and label are the right candidate's text,
  rank classification scores the candidates, and a generated text is right when it is that text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from promptmix.tasks.base import Task, string_list, text_field
from promptmix.tasks.example import DataError, Example


def is_missing_label(raw: Any) -> bool:
    """True for raw values that mean "no label": None, "", and the hub test sets' -1."""
    if raw is None:
        return True
    if isinstance(raw, str):
        return raw.strip() in ("", "-1")
    return isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw == -1


class ClassificationTask(Task):
    """A task whose target is one of ``label_words``.

    Raw labels may be an index into ``label_words`` (the hub's ClassLabel order), a bool
    (SuperGLUE JSONL), a label word, or a name in ``raw_labels`` (e.g. SciTail's "entails").
    When ``raw_labels`` is declared, digit strings are names too, never indices.

    ``label_format`` (set on an instance, e.g. by ``data.label_format``): ``"words"`` writes
    the target as the label word ("entailment"); ``"index"`` as the label's index ("0"), as
    the official ATTEMPT code trains. Either way ``Example.label`` is the word and a
    prediction is parsed back to the word, so the metrics are the same functions.
    """

    label_words: ClassVar[list[str]]  # every classification task names its words (Task: None)
    raw_labels: ClassVar[Mapping[str, int]] = {}
    label_format: str = "words"
    metric_names: ClassVar[tuple[str, ...]] = ("accuracy",)

    def label_index(self, raw: Any) -> int | None:
        """Index into ``label_words`` of a raw label; ``None`` for "no label"."""
        if is_missing_label(raw):
            return None
        count = len(self.label_words)
        if isinstance(raw, bool):
            return int(raw)
        if isinstance(raw, int) and 0 <= raw < count:
            return raw
        if isinstance(raw, str):
            names = {word.lower(): i for i, word in enumerate(self.label_words)}
            names.update({name.lower(): i for name, i in self.raw_labels.items()})
            key = raw.strip().lower()
            if key in names:
                return names[key]
            if not self.raw_labels and key.isdigit() and int(key) < count:
                return int(key)
        expected = ", ".join(list(self.label_words) + list(self.raw_labels))
        raise DataError(
            f"unknown label {raw!r} (expected one of: {expected}, or an index 0..{count - 1})", field=self.label_field
        )

    def target_and_label(self, record: Mapping[str, Any]) -> tuple[str, Any]:
        index = self.label_index(record.get(self.label_field))
        if index is None:
            return "", None
        word = self.label_words[index]
        return self.target_words()[index], word

    def target_words(self) -> list[str]:
        """The target text of each label: the label words, or their indices ("0", "1", ...)."""
        if self.label_format == "index":
            return [str(i) for i in range(len(self.label_words))]
        return list(self.label_words)

    def answer_candidates(self, example: Example) -> list[str] | None:
        if example.choices:
            return list(example.choices)
        return self.target_words()

    def parse_prediction(self, text: str) -> str | None:
        wanted = text.strip().lower()
        return next(
            (word for word, target in zip(self.label_words, self.target_words()) if target.lower() == wanted), None
        )


def round_to_fifth(value: float) -> str:
    """STS-B target text: the score rounded to the nearest 0.2, one decimal ("3.8"); a tie
    goes to the even number of fifths (2.5 -> "2.4"), as T5's ``tf.round`` does.

    (ATTEMPT's ``round_stsb_target`` computes ``np.round(label * 5 / 5, 1)``, which rounds
    to 0.1, not 0.2.)
    """
    return f"{round(value * 5) / 5:.1f}"


class RegressionTask(Task):
    """A task whose target is a number written as text (STS-B)."""

    metric_names: ClassVar[tuple[str, ...]] = ("pearson", "spearman")
    invalid_value: ClassVar[float] = -1.0
    """What the metrics count an invalid prediction as (T5's default for STS-B)."""

    def target_and_label(self, record: Mapping[str, Any]) -> tuple[str, Any]:
        raw: Any = record.get(self.label_field)  # any JSON value; None is a missing label
        if is_missing_label(raw):
            return "", None
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise DataError(f"not a number: {raw!r}", field=self.label_field)
        return round_to_fifth(value), value

    def parse_prediction(self, text: str) -> float | None:
        try:
            value = float(text.strip())
        except ValueError:
            return None
        return value if math.isfinite(value) else None


class QATask(Task):
    """Extractive QA: the target is the first gold answer; scored with SQuAD EM / F1."""

    answers_field: ClassVar[str] = "answers"
    label_field: ClassVar[str] = "answers"
    metric_names: ClassVar[tuple[str, ...]] = ("squad_em", "squad_f1")

    def answers(self, record: Mapping[str, Any]) -> list[str]:
        """Gold answers: a list of strings, or SQuAD's ``{"text": [...], ...}``."""
        value = record.get(self.answers_field)
        if isinstance(value, Mapping):
            value = value.get("text")
        if value is None:
            return []
        return string_list(value, self.answers_field, "answers", allow_blank=True)

    def target_and_label(self, record: Mapping[str, Any]) -> tuple[str, Any]:
        answers = self.answers(record)
        return (answers[0], answers) if answers else ("", None)

    def parse_prediction(self, text: str) -> str:
        return text.strip()


class GenerationTask(Task):
    """Data-to-text: one example per reference; the label holds every reference of the input."""

    target_field: ClassVar[str] = "target"
    references_field: ClassVar[str] = "references"
    label_field: ClassVar[str] = "target"
    metric_names: ClassVar[tuple[str, ...]] = ("bleu",)
    dedupe_eval_groups: ClassVar[bool] = True

    def target_and_label(self, record: Mapping[str, Any]) -> tuple[str, Any]:
        refs = string_list(
            record.get(self.references_field) or [], self.references_field, "references", allow_blank=True
        )
        target = record.get(self.target_field)
        target = text_field(record, self.target_field) if target is not None else (refs[0] if refs else "")
        if not target:
            return "", None
        return target, refs or [target]

    def group_of(self, record: Mapping[str, Any]) -> str | None:
        return " ".join(text for _, text in self.inputs(record))

    def parse_prediction(self, text: str) -> str:
        return text.strip()


class MultipleChoiceTask(Task):
    """A task whose examples carry their own candidate answers.

    Candidates come from ``choice_fields`` (one record field per candidate) or ``choices_field``
    (one field holding the list). The raw label is the right candidate's index, counted from
    ``label_base`` (WinoGrande's "1"/"2": 1), or its text.
    """

    choices_per_example: ClassVar[bool] = True
    choice_fields: ClassVar[tuple[str, ...]] = ()
    choices_field: ClassVar[str | None] = None
    label_base: ClassVar[int] = 0
    metric_names: ClassVar[tuple[str, ...]] = ("accuracy",)

    def choices_of(self, record: Mapping[str, Any]) -> list[str]:
        if self.choice_fields:
            return [text_field(record, field) for field in self.choice_fields]
        value = record.get(self.choices_field) if self.choices_field is not None else None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise DataError(
                f"expected a non-empty list of candidate answer strings, got {value!r}", field=self.choices_field
            )
        return [v.strip() for v in value]

    def target_and_label(self, record: Mapping[str, Any]) -> tuple[str, Any]:
        raw = record.get(self.label_field)
        if is_missing_label(raw):
            return "", None
        choices = self.choices_of(record)
        if isinstance(raw, str) and raw.strip() in choices:
            return raw.strip(), raw.strip()
        text = str(raw).strip()
        index = (int(text) if text.lstrip("-").isdigit() else -1) - self.label_base if not isinstance(raw, bool) else -1
        if not 0 <= index < len(choices):
            raise DataError(
                f"label {raw!r} is neither one of the {len(choices)} candidates' text nor an index "
                f"{self.label_base}..{self.label_base + len(choices) - 1}",
                field=self.label_field,
            )
        return choices[index], choices[index]

    def parse_prediction(self, text: str) -> str:
        return text.strip()
