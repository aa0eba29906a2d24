"""GLUE: MNLI, QQP, QNLI, SST-2, STS-B, MRPC, RTE, CoLA and WNLI.

Local layout (the GLUE release, as ``download_glue_data.py`` writes it)::

    <data_dir>/glue/<TASK>/train.tsv, dev.tsv     (MNLI: dev_matched.tsv)

TSVs are read without quote handling, as GLUE's own readers do. CoLA has no header; QQP
may have none (the standard files have one). Column names become the hub's ``nyu-mll/glue``
field names, so local rows and hub rows format alike.

Label words are words, not the label indices ATTEMPT's code used, so that rank
classification can score them; they follow the hub's ClassLabel order (index 0 first).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from promptmix.tasks.kinds import ClassificationTask, RegressionTask
from promptmix.tasks.readers import drop_unlabelled, read_csv, read_json_records, read_tsv
from promptmix.tasks.registry import register_task
from promptmix.tasks.sources import DataSource, LocalLayout, release_files


def glue_source(
    folder: str,
    config: str,
    columns: Sequence[str],
    *,
    names: Sequence[str] | None = None,
    rename: Mapping[str, str] | None = None,
    dev_file: str = "dev",
    dev_split: str = "validation",
    alternates: tuple[LocalLayout, ...] = (),
) -> DataSource:
    """A GLUE task's files ``glue/<folder>/{train,dev}.tsv`` and hub config ``nyu-mll/glue``."""
    return DataSource(
        files=release_files(f"glue/{folder}/{{}}.tsv", validation=dev_file),
        reader=glue_reader(columns, names=names, rename=rename),
        release="GLUE (gluebenchmark.com) TSV",
        hub_id="nyu-mll/glue",
        hub_config=config,
        hub_splits={"train": "train", "validation": dev_split},
        alternates=alternates,
    )


def glue_reader(columns: Sequence[str], *, names: Sequence[str] | None = None, rename: Mapping[str, str] | None = None):
    return functools.partial(read_tsv, columns=columns, names=names, rename={"index": "idx", **(rename or {})})


# Training subsets kept as one JSON object of {id: {text_a, text_b, label}} (``more/`` in
# ../shared/data; its README says where they come from).
_SUBSET = "more/{}/train_subset/{}.json"

# MNLI: the 8,999-example training subset trains, the disjoint 1,000 held-out training examples
# are dev (the papers' dev for a task over 10,000 examples is 1,000 held-out training examples),
# and the MultiNLI dev_matched CSV (9,815 labelled pairs: "-" rows dropped, as GLUE does) is test.
MNLI_SUBSET = LocalLayout(
    files={
        "train": _SUBSET.format("MNLI", "train"),
        "validation": _SUBSET.format("MNLI", "dev"),
        "test": "more/MNLI/multinli_1.0_dev_matched.csv",
    },
    readers={
        "train": functools.partial(read_json_records, rename={"text_a": "premise", "text_b": "hypothesis"}),
        "validation": functools.partial(read_json_records, rename={"text_a": "premise", "text_b": "hypothesis"}),
        "test": lambda path: drop_unlabelled(
            read_csv(
                path,
                columns=("pairID", "sentence1", "sentence2", "label"),
                rename={"sentence1": "premise", "sentence2": "hypothesis", "pairID": "idx"},
            )
        ),
    },
    release="MNLI training subset (JSON) + MultiNLI 1.0 dev_matched (CSV)",
)

# QNLI: the 8,999-example training subset trains; GLUE's dev set is halved into dev and test
# by the papers' rule for a training set under 10,000 examples.
QNLI_SUBSET = LocalLayout(
    files={"train": _SUBSET.format("QNLI", "train"), "validation": "glue/QNLI/dev.tsv"},
    readers={
        "train": functools.partial(read_json_records, rename={"text_a": "question", "text_b": "sentence"}),
        "validation": glue_reader(("question", "sentence", "label")),
    },
    release="QNLI training subset (JSON) + GLUE QNLI dev (TSV)",
)


_PAIR = ("sentence1", "sentence2", "label")


@register_task
class MNLI(ClassificationTask):
    name = "mnli"
    aliases = ("multi_nli", "glue-mnli")
    benchmark = "glue"
    source = glue_source(
        "MNLI",
        "mnli",
        ("sentence1", "sentence2", "gold_label"),
        rename={"sentence1": "premise", "sentence2": "hypothesis", "gold_label": "label"},
        dev_file="dev_matched",
        dev_split="validation_matched",
        alternates=(MNLI_SUBSET,),
    )
    input_fields = ("premise", "hypothesis")
    label_words = ["entailment", "neutral", "contradiction"]


@register_task
class QQP(ClassificationTask):
    """Quora Question Pairs. The standard files have a header; header-less subsets (such as
    ``train_subset_mieseung.tsv``) load with ``files={"train": ...}`` and the same columns."""

    name = "qqp"
    aliases = ("glue-qqp",)
    benchmark = "glue"
    source = glue_source(
        "QQP",
        "qqp",
        ("question1", "question2", "is_duplicate"),
        names=("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
        rename={"is_duplicate": "label", "id": "idx"},
    )
    input_fields = ("question1", "question2")
    label_words = ["not_duplicate", "duplicate"]
    metric_names = ("f1", "accuracy")


@register_task
class QNLI(ClassificationTask):
    name = "qnli"
    aliases = ("glue-qnli",)
    benchmark = "glue"
    source = glue_source("QNLI", "qnli", ("question", "sentence", "label"), alternates=(QNLI_SUBSET,))
    input_fields = ("question", "sentence")
    label_words = ["entailment", "not_entailment"]


@register_task
class SST2(ClassificationTask):
    name = "sst2"
    aliases = ("glue-sst2",)
    benchmark = "glue"
    source = glue_source("SST-2", "sst2", ("sentence", "label"))
    input_fields = ("sentence",)
    label_words = ["negative", "positive"]


@register_task
class STSB(RegressionTask):
    name = "stsb"
    aliases = ("glue-stsb",)
    benchmark = "glue"
    source = glue_source("STS-B", "stsb", ("sentence1", "sentence2", "score"), rename={"score": "label"})
    input_fields = ("sentence1", "sentence2")


@register_task
class MRPC(ClassificationTask):
    name = "mrpc"
    aliases = ("glue-mrpc",)
    benchmark = "glue"
    source = glue_source(
        "MRPC",
        "mrpc",
        ("Quality", "#1 String", "#2 String"),
        rename={"Quality": "label", "#1 String": "sentence1", "#2 String": "sentence2"},
    )
    input_fields = ("sentence1", "sentence2")
    label_words = ["not_equivalent", "equivalent"]
    metric_names = ("f1", "accuracy")


@register_task
class RTE(ClassificationTask):
    name = "rte"
    aliases = ("glue-rte",)
    benchmark = "glue"
    source = glue_source("RTE", "rte", _PAIR)
    input_fields = ("sentence1", "sentence2")
    label_words = ["entailment", "not_entailment"]


@register_task
class CoLA(ClassificationTask):
    name = "cola"
    aliases = ("glue-cola",)
    benchmark = "glue"
    source = glue_source("CoLA", "cola", ("sentence", "label"), names=("source", "label", "original_label", "sentence"))
    input_fields = ("sentence",)
    label_words = ["unacceptable", "acceptable"]
    metric_names = ("matthews_correlation",)


@register_task
class WNLI(ClassificationTask):
    name = "wnli"
    aliases = ("glue-wnli",)
    benchmark = "glue"
    source = glue_source("WNLI", "wnli", _PAIR)
    input_fields = ("sentence1", "sentence2")
    label_words = ["not_entailment", "entailment"]
