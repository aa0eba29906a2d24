"""What a task is: how a raw record becomes text-to-text, how text maps back, how it is scored.

A task is declared as a class with a handful of attributes (see ``glue.py`` for the pattern)::

    @register_task
    class RTE(ClassificationTask):
        name = "rte"
        source = glue_source("RTE", "rte", columns=("sentence1", "sentence2", "label"))
        input_fields = ("sentence1", "sentence2")
        label_words = ["entailment", "not_entailment"]
        metric_names = ("accuracy",)

Inputs are rendered in the T5 / ATTEMPT style, ``"<prefix> <field>: <text> <field>: <text>"``
with the dataset's own field names, e.g. ``"rte sentence1: ... sentence2: ..."``.
The kinds of task (classification, regression, span QA, generation) live in ``kinds.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from promptmix.tasks.example import DataError, Example
from promptmix.tasks.metrics import METRICS
from promptmix.tasks.sources import load_raw_layout
from promptmix.tasks.splits import first_of_each_group, protocol_splits

_DEFAULT = object()  # marks "use the task's declared default" for an option


def text_field(record: Mapping[str, Any], field: str) -> str:
    """``record[field]`` as stripped text; a missing or null field, or one holding a list or
    an object (which ``str`` would render as Python syntax), raises a DataError naming it.
    Numbers are written out: datasets store ids and word indices as numbers."""
    if field not in record or record[field] is None:
        present = ", ".join(sorted(map(str, record))) or "none"
        raise DataError(f"missing (the record has: {present})", field=field)
    value = record[field]
    if isinstance(value, str):
        return value.strip()
    if not isinstance(value, (int, float)):
        raise DataError(f"expected text, got {type(value).__name__} {_shown(value)}", field=field)
    return str(value)


def string_list(value: Any, field: str, what: str, *, allow_empty: bool = True, allow_blank: bool = False) -> list[str]:
    """``value`` as a list of stripped strings; anything else (a string, a number, a list
    holding another type, a blank string unless ``allow_blank``, an empty list unless
    ``allow_empty``) raises a DataError naming ``field``."""
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) and (allow_blank or v.strip()) for v in value)
        or not (value or allow_empty)
    ):
        raise DataError(
            f"expected a {'' if allow_empty else 'non-empty '}list of {what} "
            f"({'' if allow_blank else 'non-blank '}strings), got {_shown(value)}",
            field=field,
        )
    return [v.strip() for v in value]


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)  # an error names what was sent without repeating a long value whole
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


class Task:
    """Base class of every task. Subclass a kind from ``kinds.py``, not this class directly.

    Declared by subclasses (class attributes):
        name: canonical lower-case name, e.g. ``"rte"``, ``"superglue-rte"``.
        aliases: other accepted names; matching ignores case, ``-``, ``_``, ``.`` and spaces.
        benchmark: where the papers report it ("glue", "superglue", "mrqa", "others", ...).
        source: a :class:`~promptmix.tasks.sources.DataSource` (local files and hub id).
        prefix: first word of every input; defaults to ``name``.
        input_fields: record fields rendered as ``"<field>: <text>"``, in order.
        label_field, id_field: record fields holding the label and the record's id.
        label_words: target strings of a classification task, else ``None``.
        choices_per_example: each example brings its own candidate answers (``choices_of``)
            instead of label words (multiple-choice tasks; see ``kinds.py``).
        metric_names: keys of :data:`promptmix.tasks.metrics.METRICS`.
        score_metrics: metrics averaged into ``"score"`` (default: all of ``metric_names``).
        main_metric: the key used for best-checkpoint selection.
        max_source_length: input token budget from the papers (256; MultiRC 348; MRQA 512).
        dedupe_eval_groups: keep one example per group in dev/test (generation references).

    Options (keyword arguments of the constructor, also accepted by ``get_task``):
        max_train_examples: cap on the training split (Yelp: 100,000); ``None`` for no cap.
        files: ``{split: path}`` replacing the declared local files (relative to the data
            directory, or absolute), e.g. ``{"train": "glue/QQP/train_subset_mieseung.tsv"}``.
        skip_malformed: skip (and log) malformed rows instead of failing on the first one.
        dev_from_train: hold this many training examples out as dev and keep the whole
            evaluation set as test (``splits.py``); ``None``: the papers' protocol, or the
            alternate layout's own hold-out where one is read.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    benchmark: ClassVar[str] = "custom"
    source: ClassVar[Any] = None
    prefix: ClassVar[str | None] = None
    input_fields: ClassVar[tuple[str, ...]] = ()
    label_field: ClassVar[str] = "label"
    id_field: ClassVar[str] = "idx"
    label_words: ClassVar[list[str] | None] = None
    choices_per_example: ClassVar[bool] = False
    metric_names: ClassVar[tuple[str, ...]] = ()
    score_metrics: ClassVar[tuple[str, ...] | None] = None
    main_metric: ClassVar[str] = "score"
    max_source_length: ClassVar[int] = 256
    default_max_train_examples: ClassVar[int | None] = None
    dedupe_eval_groups: ClassVar[bool] = False

    def __init__(
        self,
        *,
        max_train_examples: Any = _DEFAULT,
        files: Mapping[str, str] | None = None,
        skip_malformed: bool = False,
        dev_from_train: int | None = None,
    ):
        if max_train_examples is _DEFAULT:
            max_train_examples = self.default_max_train_examples
        if max_train_examples is not None and int(max_train_examples) < 1:
            raise ValueError(f"max_train_examples must be positive or None, got {max_train_examples}")
        self.max_train_examples = max_train_examples
        declared = dict(self.source.files) if self.source is not None else {}
        unknown = set(files or {}) - {"train", "validation", "test"}
        if unknown:
            raise ValueError(f"files: unknown split(s) {sorted(unknown)}; use train, validation, test")
        self.files = {**declared, **(files or {})}
        self.files_replaced = bool(files)  # the declared release files (and alternate layouts) no longer apply
        self.skip_malformed = bool(skip_malformed)
        if dev_from_train is not None and (isinstance(dev_from_train, bool) or int(dev_from_train) < 1):
            raise ValueError(f"dev_from_train must be a positive number of examples or None, got {dev_from_train!r}")
        self.dev_from_train = None if dev_from_train is None else int(dev_from_train)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # -- text-to-text --------------------------------------------------------------------

    def inputs(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(field label, text)`` pairs rendered into the source, in order."""
        return [(field, text_field(record, field)) for field in self.input_fields]

    def target_and_label(self, record: Mapping[str, Any]) -> tuple[str, Any]:
        """Target text and gold label of a record; ``("", None)`` when it carries no label."""
        raise NotImplementedError

    def group_of(self, record: Mapping[str, Any]) -> str | None:
        """Key of the group a record belongs to (see :attr:`Example.group`)."""
        return None

    def choices_of(self, record: Mapping[str, Any]) -> list[str] | None:
        """The record's own candidate answers (see :attr:`Example.choices`); None for tasks
        without per-example candidates."""
        return None

    def answer_candidates(self, example: Example) -> list[str] | None:
        """What rank classification scores for ``example``: its own choices, else the task's
        label words; None when answers are generated."""
        if example.choices:
            return list(example.choices)
        return list(self.label_words) if self.label_words else None

    def source_text(self, record: Mapping[str, Any]) -> str:
        """The formatted input: ``"<prefix> <field>: <text> ..."`` (T5 / ATTEMPT style)."""
        words = [self.prefix or self.name]
        words += [f"{field}: {text}" for field, text in self.inputs(record)]
        return " ".join(words)

    def format(self, record: Mapping[str, Any], *, idx: Any = None, require_label: bool = False) -> Example:
        """Turn a raw record (the dataset's own field names) into an :class:`Example`.

        Raises DataError naming the field when an input field is missing, a label is
        unknown or a number is malformed; with ``require_label`` also when there is no label.
        """
        source = self.source_text(record)
        target, label = self.target_and_label(record)
        if label is None and require_label:
            raise DataError("missing label", field=self.label_field)
        choices = self.choices_of(record)
        return Example(
            source=source,
            target=target,
            task=self.name,
            label=label,
            group=self.group_of(record),
            idx=_as_id(record.get(self.id_field, idx)),
            choices=tuple(choices) if choices is not None else None,
        )

    def parse_prediction(self, text: str) -> Any:
        """Map generated text back to a label word / number / span; ``None`` if invalid."""
        raise NotImplementedError

    # -- scoring -------------------------------------------------------------------------

    def compute_metrics(self, predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        """Score generated strings against examples; all values in percent (0-100).

        Returns one entry per metric name plus ``"score"``, the mean of ``score_metrics``
        (the papers' per-task average, e.g. (F1 + accuracy) / 2 for MRPC).
        """
        if len(predictions) != len(examples):
            raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
        if self.dedupe_eval_groups:
            keep = first_of_each_group(examples)
            predictions, examples = [predictions[i] for i in keep], [examples[i] for i in keep]
        parsed = [self.parse_prediction(text) for text in predictions]
        results = {name: float(METRICS[name](self, parsed, list(examples))) for name in self.metric_names}
        averaged = [results[name] for name in (self.score_metrics or self.metric_names)]
        results["score"] = math.fsum(averaged) / len(averaged)
        return results

    # -- data ----------------------------------------------------------------------------

    def load_splits(
        self, data_dir: str | Path | None = None, seed: int = 42, *, hub: bool | None = None
    ) -> dict[str, list[Example]]:
        """Train / dev / test examples under the papers' protocol (see ``splits.py``).

        Args:
            data_dir: directory holding the datasets in their original release layouts.
            seed: seed of the dev/test partition and of the training cap.
            hub: ``True`` loads from the hub only, ``False`` from ``data_dir`` only,
                ``None`` tries local files first and then the hub (unless offline).
        """
        raw, layout = load_raw_layout(self, data_dir, hub=hub)
        dev_from_train = (
            self.dev_from_train if self.dev_from_train is not None else getattr(layout, "dev_from_train", None)
        )
        return protocol_splits(
            raw,
            seed,
            max_train=self.max_train_examples,
            dedupe_eval_groups=self.dedupe_eval_groups,
            dev_from_train=dev_from_train,
        )


def _as_id(value: Any) -> Any:
    """Ids read from text files ("17") as the hub has them (17)."""
    return int(value) if isinstance(value, str) and value.isdigit() else value
