"""MPT's data-to-text tasks: E2E and WebNLG, scored with corpus BLEU (sacrebleu).

Local layouts (the original releases)::

    <data_dir>/e2e-dataset/trainset.csv, devset.csv, testset_w_refs.csv    (columns mr, ref)
    <data_dir>/webnlg_challenge_2017/train/**/*.xml, dev/**/*.xml, test/testdata_with_lex.xml

Each (input, reference) pair is one training example; every example of an input carries
all of that input's references in its label and the input as its group, and dev / test
keep one example per input, so BLEU is computed once per input against all references.
Records use the field names of the hub's GEM versions (``GEM/e2e_nlg``, ``GEM/web_nlg``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

from promptmix.tasks.base import string_list
from promptmix.tasks.example import DataError
from promptmix.tasks.kinds import GenerationTask
from promptmix.tasks.readers import Row, read_csv
from promptmix.tasks.registry import register_task
from promptmix.tasks.sources import LABELLED_TEST_SPLITS, DataSource, release_files


def read_e2e(path: Path) -> Iterator[Row]:
    """E2E CSV (``mr``, ``ref``; one row per reference) with every row's references gathered."""
    rows = list(read_csv(path, columns=("mr", "ref")))
    references: dict[str, list[str]] = {}
    for _, item in rows:
        if isinstance(item, dict):
            references.setdefault(item["mr"].strip(), []).append(item["ref"].strip())
    for where, item in rows:
        if isinstance(item, dict):
            mr = item["mr"].strip()
            item = {"meaning_representation": mr, "target": item["ref"], "references": references[mr]}
        yield where, item


@register_task
class E2E(GenerationTask):
    name = "e2e"
    aliases = ("e2e_nlg",)
    benchmark = "nlg"
    source = DataSource(
        files=release_files("e2e-dataset/{}.csv", train="trainset", validation="devset", test="testset_w_refs"),
        reader=read_e2e,
        release="E2E NLG challenge (github.com/tuetschek/e2e-dataset) CSV",
        hub_id="GEM/e2e_nlg",
        hub_splits=LABELLED_TEST_SPLITS,
    )
    input_fields = ("meaning_representation",)


def _lex_text(lex: ElementTree.Element) -> str:
    """Text of a ``<lex>``: its own text (2017 release) or its ``<text>`` child (later ones)."""
    child = lex.find("text")
    return ((child.text if child is not None else lex.text) or "").strip()


def _xml_files(path: Path) -> list[Path]:
    return sorted(path.rglob("*.xml")) if path.is_dir() else [path]


def read_webnlg(path: Path) -> Iterator[Row]:
    """WebNLG XML (a file, or a folder searched for ``*.xml``): one record per ``<lex>``."""
    for file in _xml_files(path):
        name = file.relative_to(path) if path.is_dir() else file.name
        try:
            entries = ElementTree.parse(file).getroot().iter("entry")
        except ElementTree.ParseError as err:
            yield str(name), DataError(f"invalid XML ({err})")
            continue
        for number, entry in enumerate(entries):
            where = f"{name}, entry {number} (eid {entry.get('eid')})"
            triples = [t.text.strip() for t in entry.iter("mtriple") if t.text and t.text.strip()]
            lexes = [text for text in map(_lex_text, entry.findall("lex")) if text]
            if not lexes:
                yield where, DataError("missing", field="lex")
            for lex in lexes:
                yield where, {"input": triples, "target": lex, "references": lexes, "category": entry.get("category")}


@register_task
class WebNLG(GenerationTask):
    name = "webnlg"
    aliases = ("web_nlg",)
    benchmark = "nlg"
    source = DataSource(
        files=release_files("webnlg_challenge_2017/{}", test="test/testdata_with_lex.xml"),
        reader=read_webnlg,
        release="WebNLG challenge 2017 (gitlab.com/shimorina/webnlg-dataset) XML",
        hub_id="GEM/web_nlg",
        hub_config="en",
        hub_splits=LABELLED_TEST_SPLITS,
    )

    def inputs(self, record):
        triples = string_list(record.get("input"), "input", "'subject | predicate | object' triples", allow_empty=False)
        return [("input", " ; ".join(triples))]
