"""SuperGLUE: BoolQ, CB, COPA, MultiRC, ReCoRD, RTE, WiC and WSC, plus ``copa-choices`` and
``record-choices``, which answer from each example's own candidates (the alternatives'
text, the passage's entities) instead of the papers' label words and generation.

Local layout (the SuperGLUE release)::

    <data_dir>/superglue/<Task>/train.jsonl, val.jsonl

MultiRC (one line per passage with nested questions and answers) is flattened to one
example per (question, answer), grouped by question; ReCoRD (one line per passage with
nested queries) to one example per query, grouped by query; WSC's ``target`` object to the
hub's flat span fields. Inputs follow T5 / ATTEMPT; WSC marks the noun with ``*`` and the
pronoun with ``#`` as T5 does, but matches the span text case-insensitively and as literal
text: T5's case-sensitive regular expression leaves 102 of the 1,608 spans in the released
WSC files unmarked, this leaves 8 (spans whose index or text is wrong in the data).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from promptmix.tasks.base import string_list, text_field
from promptmix.tasks.example import DataError
from promptmix.tasks.kinds import ClassificationTask, MultipleChoiceTask, QATask
from promptmix.tasks.readers import Row, nested, read_jsonl, read_nested_jsonl
from promptmix.tasks.registry import register_task
from promptmix.tasks.sources import DataSource, LocalLayout, release_files


def superglue_source(
    folder: str, config: str, reader=read_jsonl, alternates: tuple[LocalLayout, ...] = ()
) -> DataSource:
    """A SuperGLUE task's files ``superglue/<folder>/{train,val}.jsonl``, hub ``aps/super_glue``."""
    return DataSource(
        files=release_files(f"superglue/{folder}/{{}}.jsonl", validation="val"),
        reader=reader,
        release="SuperGLUE (super.gluebenchmark.com) JSONL",
        hub_id="aps/super_glue",
        hub_config=config,
        alternates=alternates,
    )


def _multirc_rows(item: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
    paragraph = nested(item, "passage", "text")
    for qi, question in enumerate(nested(item, "passage", "questions")):
        for ai, answer in enumerate(nested(question, "answers")):
            idx = {"paragraph": item.get("idx"), "question": question.get("idx", qi), "answer": answer.get("idx", ai)}
            yield (
                f"question {qi}, answer {ai}",
                {
                    "paragraph": paragraph,
                    "question": question.get("question"),
                    "answer": answer.get("text"),
                    "label": answer.get("label"),
                    "idx": idx,
                },
            )


def _record_rows(item: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
    text = nested(item, "passage", "text")
    try:
        entities = sorted({text[e["start"] : e["end"] + 1] for e in item["passage"].get("entities", [])})
        for qi, qa in enumerate(nested(item, "qas")):
            answers = sorted({answer["text"] for answer in qa.get("answers", [])})
            yield (
                f"qas {qi}",
                {
                    "passage": text,
                    "query": qa.get("query"),
                    "entities": entities,
                    "answers": answers,
                    "idx": {"passage": item.get("idx"), "query": qa.get("idx", qi)},
                },
            )
    except (KeyError, TypeError) as err:
        raise DataError(
            f"malformed entity or answer span ({type(err).__name__}: {err})", field="passage.entities / qas.answers"
        ) from None


def _wsc_rows(item: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
    flat = {k: v for k, v in item.items() if k != "target"}
    flat.update(nested(item, "target"))
    yield "", flat


def read_multirc(path: Path) -> Iterator[Row]:
    """MultiRC JSONL (one passage per line) as one record per (question, answer)."""
    return read_nested_jsonl(path, _multirc_rows)


def read_record(path: Path) -> Iterator[Row]:
    """ReCoRD JSONL (one passage per line) as one record per query, hub field names."""
    return read_nested_jsonl(path, _record_rows)


def read_wsc(path: Path) -> Iterator[Row]:
    """WSC JSONL with the ``target`` span object flattened into the record."""
    return read_nested_jsonl(path, _wsc_rows)


_BINARY = ["False", "True"]


def read_boolq_rows(path: Path) -> Iterator[Row]:
    """BoolQ rows in the original release layout (question, passage, answer true/false, title),
    as the SuperGLUE layout names them (``answer`` -> ``label``, ``qid`` -> ``idx``)."""
    for where, item in read_jsonl(path):
        if isinstance(item, dict):
            item = {("label" if k == "answer" else "idx" if k == "qid" else k): v for k, v in item.items()}
        yield where, item


# The first 1,550 rows of BoolQ train (release layout) train; the SuperGLUE validation set is
# halved into dev and test by the papers' rule for a training set under 10,000 examples.
BOOLQ_TRAIN_ROWS = LocalLayout(
    files={"train": "more/BoolQ/boolq_train_1550_en.jsonl", "validation": "superglue/BoolQ/val.jsonl"},
    readers={"train": read_boolq_rows, "validation": read_jsonl},
    release="BoolQ train rows (release JSONL) + SuperGLUE BoolQ val",
)


@register_task
class BoolQ(ClassificationTask):
    name = "boolq"
    aliases = ("superglue-boolq",)
    benchmark = "superglue"
    source = superglue_source("BoolQ", "boolq", alternates=(BOOLQ_TRAIN_ROWS,))
    input_fields = ("question", "passage")
    label_words = list(_BINARY)


@register_task
class CB(ClassificationTask):
    name = "cb"
    aliases = ("superglue-cb",)
    benchmark = "superglue"
    source = superglue_source("CB", "cb")
    input_fields = ("premise", "hypothesis")
    label_words = ["entailment", "contradiction", "neutral"]
    metric_names = ("macro_f1", "accuracy")


@register_task
class COPA(ClassificationTask):
    name = "copa"
    aliases = ("superglue-copa",)
    benchmark = "superglue"
    source = superglue_source("COPA", "copa")
    input_fields = ("choice1", "choice2", "premise", "question")
    label_words = ["choice1", "choice2"]


@register_task
class COPAChoices(MultipleChoiceTask):
    """COPA answered with the alternatives' own text (rank classification over the two
    sentences), where the papers' ``copa`` answers the literal words "choice1" / "choice2"."""

    name = "copa-choices"
    benchmark = "superglue"
    source = COPA.source
    input_fields = ("premise", "question")
    choice_fields = ("choice1", "choice2")


def remove_markup(text: str) -> str:
    """MultiRC's HTML markup out (``<br>``, ``<b>``, ``</b>``), as T5 does."""
    return re.sub(r"</?b>", "", text.replace("<br>", " "))


@register_task
class MultiRC(ClassificationTask):
    name = "multirc"
    aliases = ("superglue-multirc",)
    benchmark = "superglue"
    source = superglue_source("MultiRC", "multirc", read_multirc)
    input_fields = ("question", "answer", "paragraph")
    label_words = list(_BINARY)
    metric_names = ("f1", "group_em")
    max_source_length = 348

    def inputs(self, record):
        return [(field, remove_markup(text).strip()) for field, text in super().inputs(record)]

    def group_of(self, record):
        idx = record.get("idx")
        return f"{idx.get('paragraph')}-{idx.get('question')}" if isinstance(idx, Mapping) else None


@register_task
class ReCoRD(QATask):
    name = "record"
    aliases: ClassVar[tuple[str, ...]] = ("superglue-record",)  # record-choices has none
    benchmark = "superglue"
    source = superglue_source("ReCoRD", "record", read_record)

    def inputs(self, record):
        passage = re.sub(r"(\.|\?|!|\"|')\n@highlight\n", r"\1 ", text_field(record, "passage"))
        passage = re.sub(r"\n@highlight\n", ". ", passage)
        entities = string_list(record.get("entities"), "entities", "entities")
        return [("query", text_field(record, "query")), ("entities", ", ".join(entities)), ("passage", passage)]

    def group_of(self, record):
        idx = record.get("idx")
        return f"{idx.get('passage')}-{idx.get('query')}" if isinstance(idx, Mapping) else None


@register_task
class ReCoRDChoices(ReCoRD):
    """ReCoRD answered by ranking the passage's entities (its candidate answers) instead of
    generating the answer; scored like ``record`` (SQuAD EM / F1 against every gold answer)."""

    name = "record-choices"
    aliases = ()
    choices_per_example = True

    def choices_of(self, record):
        # A blank entity would be a candidate answer of "" (and ranked like any other).
        return string_list(record.get("entities"), "entities", "entities", allow_empty=False)


@register_task
class SuperGLUERTE(ClassificationTask):
    name = "superglue-rte"
    benchmark = "superglue"
    source = superglue_source("RTE", "rte")
    input_fields = ("premise", "hypothesis")
    label_words = ["entailment", "not_entailment"]


@register_task
class WiC(ClassificationTask):
    name = "wic"
    aliases = ("superglue-wic",)
    benchmark = "superglue"
    source = superglue_source("WiC", "wic")
    input_fields = ("sentence1", "sentence2", "word")
    label_words = list(_BINARY)


def mark_span(text: str, span: str, index: int, mark: str) -> str:
    """Surround the ``span`` starting at whitespace word ``index`` with ``mark`` (T5's WSC
    marking); the text is unchanged when the span is not there."""
    words = r"\s+".join(re.escape(word) for word in span.split())
    pattern = re.compile(rf"^((?:\S+\s+){{{int(index)}}})({words})", re.IGNORECASE)
    return pattern.sub(lambda m: f"{m.group(1)}{mark} {m.group(2)} {mark}", text, count=1)


def _word_index(record: Mapping[str, Any], field: str) -> int:
    value = text_field(record, field)
    if not value.isdigit():
        raise DataError(f"not a word index: {value!r}", field=field)
    return int(value)


@register_task
class WSC(ClassificationTask):
    name = "wsc"
    aliases = ("superglue-wsc", "wsc.fixed", "superglue-wsc.fixed")
    benchmark = "superglue"
    source = superglue_source("WSC", "wsc.fixed", read_wsc)
    label_words = list(_BINARY)

    def inputs(self, record):
        span1, span2 = text_field(record, "span1_text"), text_field(record, "span2_text")
        index1, index2 = _word_index(record, "span1_index"), _word_index(record, "span2_index")
        text = mark_span(text_field(record, "text"), span1, index1, "*")
        # The two marks put before span 2 when span 1 comes first shift its word index by 2.
        text = mark_span(text, span2, index2 + (2 if index1 < index2 else 0), "#")
        return [("text", text)]
