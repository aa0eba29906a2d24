"""The papers' "Others" group: SciTail, Yelp-2 (polarity), WinoGrande and PAWS-Wiki.

Local layouts (the original releases)::

    <data_dir>/SciTailV1.1/tsv_format/scitail_1.0_{train,dev,test}.tsv     (no header)
    <data_dir>/yelp_review_polarity_csv/{train,test}.csv                 (class 1/2, text)
    <data_dir>/winogrande_1.1/train_<size>.jsonl + train_<size>-labels.lst,
                              dev.jsonl + dev-labels.lst
    <data_dir>/paws/final/{train,dev,test}.tsv      (paws_wiki_labeled_final.tar.gz, extracted)

SciTail, PAWS and Yelp release labelled test sets, which are used as test; Yelp has no
validation set, so 1,000 training examples are held out as dev, and its training set is
capped at 100,000 examples as in ATTEMPT (option ``max_train_examples``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path

from promptmix.tasks.example import DataError
from promptmix.tasks.kinds import ClassificationTask, MultipleChoiceTask
from promptmix.tasks.readers import Row, read_csv, read_jsonl, read_tsv, utf8_errors
from promptmix.tasks.registry import register_task
from promptmix.tasks.sources import LABELLED_TEST_SPLITS, DataSource, LocalLayout, release_files

_PAIR_LABEL = ("premise", "hypothesis", "label")


def read_scitail_tokenised(path: Path) -> Iterator[Row]:
    """A header-less, tokenised SciTail TSV of premise, hypothesis and 0 (entails) / 1 (neutral)."""
    for where, item in read_tsv(path, columns=_PAIR_LABEL, names=_PAIR_LABEL):
        if isinstance(item, dict):
            label = item["label"].strip()
            if label not in ("0", "1"):
                item = DataError(f"unknown label {label!r} (expected 0 = entails or 1 = neutral)", field="label")
            else:
                item["label"] = "entails" if label == "0" else "neutral"
        yield where, item


# No SciTail training set in ../shared/data/more: its dev file (1,304 pairs) is the pool few-shot
# training sets are drawn from, 500 of them held out as dev, and its test file (2,126) is test.
SCITAIL_DEV_TEST = LocalLayout(
    files={"train": "more/SciTail/dev.txt", "test": "more/SciTail/test.txt"},
    readers={"train": read_scitail_tokenised, "test": read_scitail_tokenised},
    release="SciTail v1.1 dev and test (tokenised TSV, 0 = entails)",
    dev_from_train=500,
)


@register_task
class SciTail(ClassificationTask):
    name = "scitail"
    benchmark = "others"
    source = DataSource(
        files=release_files("SciTailV1.1/tsv_format/scitail_1.0_{}.tsv", test="test"),
        reader=functools.partial(read_tsv, columns=_PAIR_LABEL, names=_PAIR_LABEL),
        release="SciTail v1.1 (allenai.org/data/scitail) tsv_format",
        hub_id="allenai/scitail",
        hub_config="tsv_format",
        hub_splits=LABELLED_TEST_SPLITS,
        alternates=(SCITAIL_DEV_TEST,),
    )
    input_fields = ("premise", "hypothesis")
    label_words = ["entailment", "neutral"]
    raw_labels = {"entails": 0, "neutral": 1}


def read_yelp(path: Path) -> Iterator[Row]:
    """Yelp polarity CSV: class ("1" negative, "2" positive) and text with ``\\n`` escapes."""
    for where, item in read_csv(path, columns=("label", "text"), names=("label", "text")):
        if isinstance(item, dict):
            item["text"] = item["text"].replace("\\n", "\n").replace('\\"', '"')
        yield where, item


@register_task
class YelpPolarity(ClassificationTask):
    name = "yelp_polarity"
    aliases = ("yelp", "yelp-2", "yelp_review_polarity")
    benchmark = "others"
    source = DataSource(
        files=release_files("yelp_review_polarity_csv/{}.csv", validation=None, test="test"),
        reader=read_yelp,
        release="Yelp review polarity (Zhang et al. 2015) CSV",
        hub_id="fancyzhx/yelp_polarity",
        hub_splits={"train": "train", "test": "test"},
    )
    input_fields = ("text",)
    label_words = ["negative", "positive"]
    raw_labels = {"1": 0, "2": 1}
    default_max_train_examples = 100_000


def read_winogrande(path: Path) -> Iterator[Row]:
    """WinoGrande JSONL; answers come from the ``<stem>-labels.lst`` file beside it when
    present (one "1" / "2" per line), else from each row's ``answer``."""
    labels_path = path.with_name(f"{path.stem}-labels.lst")
    with utf8_errors(labels_path):
        labels = labels_path.read_text(encoding="utf-8").split() if labels_path.exists() else None
    for position, (where, item) in enumerate(read_jsonl(path)):
        if isinstance(item, dict) and labels is not None:
            if position >= len(labels):
                item = DataError(f"{labels_path.name} has only {len(labels)} labels", field="answer")
            else:
                item["answer"] = labels[position]
        yield where, item


WINOGRANDE_SIZES = ("xs", "s", "m", "l", "xl")


class _WinoGrandeSize:
    """Option ``size`` picks the training set (xs, s, m, l, xl; the papers use xl)."""

    source = DataSource(
        files=release_files("winogrande_1.1/{}.jsonl", train="train_xl"),
        reader=read_winogrande,
        release="WinoGrande 1.1 (winogrande.allenai.org) JSONL + label files",
        hub_id="allenai/winogrande",
        hub_config="winogrande_xl",
    )

    def __init__(self, *, size: str = "xl", **options):
        if size not in WINOGRANDE_SIZES:
            raise ValueError(f"winogrande size must be one of {WINOGRANDE_SIZES}, got {size!r}")
        self.size = size
        self.source = dataclasses.replace(
            type(self).source,
            hub_config=f"winogrande_{size}",
            files={**type(self).source.files, "train": f"winogrande_1.1/train_{size}.jsonl"},
        )
        super().__init__(**options)


@register_task
class WinoGrande(_WinoGrandeSize, ClassificationTask):
    """WinoGrande; option ``size`` picks the training set (xs, s, m, l, xl; the papers use xl)."""

    name = "winogrande"
    benchmark = "others"
    input_fields = ("sentence", "option1", "option2")
    label_field = "answer"
    label_words = ["option1", "option2"]
    raw_labels = {"1": 0, "2": 1}


@register_task
class WinoGrandeChoices(_WinoGrandeSize, MultipleChoiceTask):
    """WinoGrande answered with the options' own text (the papers' ``winogrande`` answers the
    words "option1" / "option2"); option ``size`` as there."""

    name = "winogrande-choices"
    benchmark = "others"
    input_fields = ("sentence",)
    label_field = "answer"
    choice_fields = ("option1", "option2")
    label_base = 1


@register_task
class PAWS(ClassificationTask):
    name = "paws"
    aliases = ("paws-wiki", "paws_wiki")
    benchmark = "others"
    source = DataSource(
        files=release_files("paws/final/{}.tsv", test="test"),
        reader=functools.partial(read_tsv, columns=("sentence1", "sentence2", "label")),
        release="PAWS-Wiki labeled final (github.com/google-research-datasets/paws) TSV",
        hub_id="google-research-datasets/paws",
        hub_config="labeled_final",
        hub_splits=LABELLED_TEST_SPLITS,
    )
    input_fields = ("sentence1", "sentence2")
    label_words = ["not_paraphrase", "paraphrase"]
