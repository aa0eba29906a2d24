"""Extractive QA: SQuAD v1.1 (a source task) and the MRQA 2019 datasets.

Local layouts (the original releases)::

    <data_dir>/squad/train-v1.1.json, dev-v1.1.json
    <data_dir>/mrqa/train/<Name>.jsonl.gz, mrqa/dev/<Name>.jsonl.gz
        Name: NaturalQuestionsShort, HotpotQA, NewsQA, SearchQA, TriviaQA-web

Inputs are ``"<task> question: ... context: ..."``; the target is the first gold answer and
the scores are SQuAD-normalised EM / F1, maximised over gold answers. Unlike T5 the text is
not re-spaced around punctuation (SQuAD normalisation drops punctuation anyway). MRQA
tasks are reported by F1 in both papers, so their ``score`` is F1 alone. Each MRQA dataset
must come from its own files or hub subset: there is no silent fallback to SQuAD.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from promptmix.tasks.example import DataError
from promptmix.tasks.kinds import QATask
from promptmix.tasks.readers import Row, read_json, read_nested_jsonl
from promptmix.tasks.registry import register_task
from promptmix.tasks.sources import DataSource, release_files


def read_squad(path: Path) -> Iterator[Row]:
    """SQuAD v1.1 JSON as one record per question, with the hub's field names."""
    content = read_json(path)
    data = content.get("data") if isinstance(content, Mapping) else None
    if not isinstance(data, list):
        yield "top level", DataError("expected an object with a 'data' list", field="data")
        return
    for ai, article in enumerate(data):
        for pi, paragraph in enumerate(article.get("paragraphs", [])):
            for qi, qa in enumerate(paragraph.get("qas", [])):
                answers = qa.get("answers") or []
                yield (
                    f"data[{ai}].paragraphs[{pi}].qas[{qi}]",
                    {
                        "id": qa.get("id"),
                        "title": article.get("title"),
                        "context": paragraph.get("context"),
                        "question": qa.get("question"),
                        "answers": {
                            "text": [a.get("text") for a in answers],
                            "answer_start": [a.get("answer_start") for a in answers],
                        },
                    },
                )


def _mrqa_rows(item: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
    if "header" in item:  # the first line of every MRQA file describes the dataset
        return
    for qi, qa in enumerate(item.get("qas") or []):
        yield (
            f"qas {qi}",
            {
                "context": item.get("context"),
                "question": qa.get("question"),
                "answers": qa.get("answers"),
                "qid": qa.get("qid"),
                "detected_answers": qa.get("detected_answers"),
            },
        )


def read_mrqa(path: Path) -> Iterator[Row]:
    """An MRQA ``.jsonl.gz`` file (header line, then one context per line) as one record per
    question, with the hub's field names."""
    return read_nested_jsonl(path, _mrqa_rows)


@register_task
class SQuAD(QATask):
    name = "squad"
    aliases = ("squad1.1", "squad_v1")
    benchmark = "sources"
    source = DataSource(
        files=release_files("squad/{}-v1.1.json"),
        reader=read_squad,
        release="SQuAD v1.1 (rajpurkar.github.io/SQuAD-explorer) JSON",
        hub_id="rajpurkar/squad",
    )
    input_fields = ("question", "context")
    id_field = "id"


def mrqa_source(subset: str) -> DataSource:
    """Files ``mrqa/{train,dev}/<subset>.jsonl.gz``; hub rows of ``mrqa-workshop/mrqa`` whose
    ``subset`` field is ``subset``."""
    return DataSource(
        files=release_files(f"mrqa/{{}}/{subset}.jsonl.gz"),
        reader=read_mrqa,
        release="MRQA 2019 shared task (github.com/mrqa/MRQA-Shared-Task-2019) .jsonl.gz",
        hub_id="mrqa-workshop/mrqa",
        hub_filter=("subset", subset),
    )


class MRQATask(QATask):
    """Shared declaration of the MRQA datasets: 512 input tokens, reported by F1."""

    benchmark = "mrqa"
    input_fields = ("question", "context")
    id_field = "qid"
    score_metrics = ("squad_f1",)
    max_source_length = 512


@register_task
class NaturalQuestions(MRQATask):
    name = "nq"
    aliases = ("natural_questions", "naturalquestionsshort")
    source = mrqa_source("NaturalQuestionsShort")


@register_task
class HotpotQA(MRQATask):
    name = "hotpotqa"
    source = mrqa_source("HotpotQA")


@register_task
class NewsQA(MRQATask):
    name = "newsqa"
    source = mrqa_source("NewsQA")


@register_task
class SearchQA(MRQATask):
    name = "searchqa"
    source = mrqa_source("SearchQA")


@register_task
class TriviaQA(MRQATask):
    name = "triviaqa"
    aliases = ("triviaqa-web",)
    source = mrqa_source("TriviaQA-web")
