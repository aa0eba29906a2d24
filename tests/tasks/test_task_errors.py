"""Malformed rows fail with file, line and field named; skipping them is an explicit option."""

from __future__ import annotations

import json
import logging
import re

import pytest
from taskdata import REAL_DATA, needs_real_data

from promptmix.tasks import DataError, MissingDataError, get_task

RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"


def write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def rte_dir(tmp_path, bad_row):
    good = "0\tA dog runs.\tAn animal moves.\tentailment\n1\tIt rains.\tIt is dry.\tnot_entailment\n"
    write(tmp_path, "glue/RTE/train.tsv", RTE_HEADER + good + bad_row)
    write(tmp_path, "glue/RTE/dev.tsv", RTE_HEADER + good)
    return tmp_path


@pytest.mark.parametrize(
    "bad_row, message",
    [
        (
            "2\tA cat sleeps.\tA cat is awake.\n",
            "line 4: field 'label': missing: the row has 3 of 4 fields (index, sentence1, sentence2, label)",
        ),
        (
            "2\tA cat sleeps.\tA cat is awake.\tmaybe\n",
            "line 4: field 'label': unknown label 'maybe' (expected one of: entailment, not_entailment, "
            "or an index 0..1)",
        ),
        ("2\tA cat sleeps.\tA cat is awake.\t\n", "line 4: field 'label': missing label"),
        (
            "2\tA cat sleeps.\tA cat is awake.\tentailment\textra\n",
            "line 4: the row has 5 fields, expected 4 (index, sentence1, sentence2, label)",
        ),
    ],
)
def test_malformed_tsv_row_names_file_line_and_field(tmp_path, bad_row, message):
    data = rte_dir(tmp_path, bad_row)
    with pytest.raises(DataError) as info:
        get_task("rte").load_splits(data)
    assert str(info.value) == f"{data / 'glue/RTE/train.tsv'}, {message}"
    assert info.value.file == data / "glue/RTE/train.tsv"


def test_bad_number_in_stsb(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    row = "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane.\tA jet.\t{}\n"
    write(tmp_path, "glue/STS-B/train.tsv", header + row.format("4.2") + row.format("high"))
    write(tmp_path, "glue/STS-B/dev.tsv", header + row.format("4.2"))
    with pytest.raises(DataError, match=re.escape("train.tsv, line 3: field 'label': not a number: 'high'")):
        get_task("stsb").load_splits(tmp_path)


def test_jsonl_missing_field_and_bad_json(tmp_path):
    good = {"premise": "p", "hypothesis": "h", "label": "neutral", "idx": 0}
    lines = [json.dumps(good), json.dumps({"premise": "p", "label": "neutral", "idx": 1})]
    write(tmp_path, "superglue/CB/train.jsonl", "\n".join(lines) + "\n")
    write(tmp_path, "superglue/CB/val.jsonl", json.dumps(good) + "\n{oops\n")
    with pytest.raises(
        DataError,
        match=re.escape("CB/train.jsonl, line 2: field 'hypothesis': missing (the record has: idx, label, premise)"),
    ):
        get_task("cb").load_splits(tmp_path)
    write(tmp_path, "superglue/CB/train.jsonl", json.dumps(good) + "\n")
    with pytest.raises(DataError, match=re.escape("CB/val.jsonl, line 2: invalid JSON (Expecting property")):
        get_task("cb").load_splits(tmp_path)


def test_nested_multirc_error_names_the_question_and_answer(tmp_path):
    passage = {
        "idx": 0,
        "passage": {
            "text": "t",
            "questions": [
                {
                    "question": "q",
                    "idx": 0,
                    "answers": [{"text": "a", "idx": 0, "label": 1}, {"text": "b", "idx": 1, "label": 7}],
                }
            ],
        },
    }
    write(tmp_path, "superglue/MultiRC/train.jsonl", json.dumps(passage) + "\n")
    write(tmp_path, "superglue/MultiRC/val.jsonl", json.dumps(passage) + "\n")
    with pytest.raises(
        DataError, match=re.escape("train.jsonl, line 1, question 0, answer 1: field 'label': unknown label 7")
    ):
        get_task("multirc").load_splits(tmp_path)


def test_squad_error_names_the_json_path(tmp_path):
    data = {
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "c",
                        "qas": [
                            {"id": "1", "question": "q?", "answers": [{"answer_start": 0, "text": "c"}]},
                            {"id": "2", "answers": [{"answer_start": 0, "text": "c"}]},
                        ],
                    }
                ],
            }
        ]
    }
    write(tmp_path, "squad/train-v1.1.json", json.dumps(data))
    write(tmp_path, "squad/dev-v1.1.json", json.dumps(data))
    with pytest.raises(
        DataError, match=re.escape("train-v1.1.json, data[0].paragraphs[0].qas[1]: field 'question': missing")
    ):
        get_task("squad").load_splits(tmp_path)


@needs_real_data
def test_real_qqp_subset_is_strict_by_default_and_can_skip_with_a_log(caplog):
    subset = REAL_DATA / "glue/QQP/train_subset_mieseung.tsv"
    strict = get_task("qqp", files={"train": str(subset), "validation": str(subset)})
    with pytest.raises(DataError) as info:
        strict.load_splits(REAL_DATA)
    assert str(info.value) == (
        f"{subset}, line 1: field 'is_duplicate': missing: the row has 5 of 6 fields "
        "(id, qid1, qid2, question1, question2, is_duplicate)"
    )
    lenient = get_task("qqp", files={"train": str(subset), "validation": str(subset)}, skip_malformed=True)
    with caplog.at_level(logging.WARNING, logger="promptmix.tasks.sources"):
        splits = lenient.load_splits(REAL_DATA)
    assert [len(splits[s]) for s in ("train", "dev", "test")] == [23496 - 1000, 1000, 23496]
    skipped = [r.getMessage() for r in caplog.records if "skipping malformed row" in r.getMessage()]
    assert len(skipped) == 2 and all("line 1: field 'is_duplicate'" in m for m in skipped)
    assert splits["train"][0].source.startswith("qqp question1: What causes stool color to change")


def test_no_data_anywhere_lists_the_files_to_put_in_place(tmp_path):
    with pytest.raises(MissingDataError) as info:
        get_task("newsqa").load_splits(tmp_path)
    assert str(info.value) == "\n".join(
        [
            "no data for task 'newsqa'.",
            "Put the MRQA 2019 shared task (github.com/mrqa/MRQA-Shared-Task-2019) .jsonl.gz files here:",
            f"  train      {tmp_path / 'mrqa/train/NewsQA.jsonl.gz'}  (MISSING)",
            f"  validation {tmp_path / 'mrqa/dev/NewsQA.jsonl.gz'}  (MISSING)",
            "Hub: datasets.load_dataset('mrqa-workshop/mrqa') not tried: HF_HUB_OFFLINE=1 is set",
        ]
    )
    with pytest.raises(MissingDataError, match="No data directory was given; pass one holding the SQuAD"):
        get_task("squad").load_splits()


@pytest.mark.parametrize("layout", ["tsv", "jsonl", "jsonl.gz"])
def test_a_byte_that_is_not_utf8_names_file_and_line(tmp_path, layout):
    """Text is decoded in chunks, so the decoder's own error cannot say where; the line named
    is the one holding the byte (line 30 of 40, far past the first chunk's start)."""
    import gzip

    if layout == "tsv":
        rows = [f"{i}\tA dog runs {'far ' * 60}.\tAn animal moves.\tentailment\n".encode() for i in range(40)]
        rows[29] = rows[29].replace(b"dog", b"d\xf6g")  # Latin-1 'ö'
        path = tmp_path / "glue/RTE/train.tsv"
        path.parent.mkdir(parents=True)
        path.write_bytes(RTE_HEADER.encode() + b"".join(rows[1:]))
        write(tmp_path, "glue/RTE/dev.tsv", RTE_HEADER + rows[0].decode())
        task, line, byte = "rte", 30, rows[29].index(b"\xf6") + 1
    else:
        rows = [
            json.dumps({"premise": "p " * 100, "hypothesis": "h", "label": "neutral", "idx": i}).encode() + b"\n"
            for i in range(40)
        ]
        rows[29] = rows[29].replace(b'"h"', b'"h\xff"')
        path = tmp_path / f"superglue/CB/train.{layout}"
        path.parent.mkdir(parents=True)
        path.write_bytes(gzip.compress(b"".join(rows)) if layout.endswith(".gz") else b"".join(rows))
        write(tmp_path, "superglue/CB/val.jsonl", rows[0].decode())
        task, line, byte = "cb", 30, rows[29].index(b"\xff") + 1
    with pytest.raises(DataError) as info:
        if layout.endswith(".gz"):  # no task ships gzipped files by default: the reader itself
            from promptmix.tasks.readers import read_jsonl

            list(read_jsonl(path))
        else:
            get_task(task).load_splits(tmp_path, hub=False)
    assert info.value.file == path and info.value.where == f"line {line}"
    assert str(info.value).startswith(f"{path}, line {line}: not valid UTF-8 (byte ")
    assert f"at byte {byte} of the line" in str(info.value)


# Records as a client sends them: every field of the wrong type must be a DataError naming the
# field (the server's 422), never a TypeError/AttributeError (a 500).
WRONG_TYPES = [  # (task, good record, field, wrong value)
    ("record", {"passage": "P.", "query": "Q @placeholder", "entities": ["A"], "answers": ["A"]}, "entities", [1, 2]),
    ("record", {"passage": "P.", "query": "Q @placeholder", "entities": ["A"], "answers": ["A"]}, "answers", 5),
    ("record", {"passage": "P.", "query": "Q @placeholder", "entities": ["A"]}, "query", ["Q"]),
    ("record-choices", {"passage": "P.", "query": "Q", "entities": ["A", "B"]}, "entities", [1, 2]),
    ("record-choices", {"passage": "P.", "query": "Q", "entities": ["A", "B"]}, "entities", ["A", "  "]),
    ("record-choices", {"passage": "P.", "query": "Q", "entities": ["A", "B"]}, "passage", {"text": "P."}),
    ("squad", {"context": "C.", "question": "Q?", "answers": {"text": ["a"]}}, "answers", 5),
    ("squad", {"context": "C.", "question": "Q?", "answers": ["a"]}, "answers", True),
    ("squad", {"context": "C.", "question": "Q?"}, "context", [1, 2]),
    ("nq", {"context": "C.", "question": "Q?", "answers": ["a"]}, "answers", 1.5),
    ("e2e", {"meaning_representation": "name[x]", "target": "t", "references": ["t"]}, "references", [1, 2]),
    ("e2e", {"meaning_representation": "name[x]", "target": "t", "references": ["t"]}, "references", 5),
    ("webnlg", {"input": ["a | b | c"], "target": "t"}, "input", [1, 2]),
    ("webnlg", {"input": ["a | b | c"], "target": "t", "references": ["t"]}, "references", True),
]


@pytest.mark.parametrize(
    "name, record, field, value", WRONG_TYPES, ids=[f"{t}-{f}-{v!r}" for t, _, f, v in WRONG_TYPES]
)
def test_a_field_of_the_wrong_type_is_a_data_error_naming_it(name, record, field, value):
    task = get_task(name)
    task.format(record)  # the good record is fine
    with pytest.raises(DataError, match=f"field '{field}'"):
        task.format({**record, field: value})


def test_a_lone_surrogate_is_refused_at_load_naming_file_line_and_field(tmp_path):
    """JSON's "\\ud800" escape decodes to a lone surrogate, which no tokenizer can encode: the
    old code loaded it and training died at the step that drew it (a TypeError naming nothing),
    and every resume died again. It is refused while the file is read."""
    good = {"premise": "p", "hypothesis": "h", "label": "neutral", "idx": 0}
    lines = [json.dumps(good)] * 3 + ['{"premise": "a\\ud800b", "hypothesis": "h", "label": "neutral", "idx": 3}']
    write(tmp_path, "superglue/CB/train.jsonl", "\n".join(lines) + "\n")
    write(tmp_path, "superglue/CB/val.jsonl", json.dumps(good) + "\n")
    with pytest.raises(DataError) as info:
        get_task("cb").load_splits(tmp_path)
    assert str(info.value).startswith(
        f"{tmp_path / 'superglue/CB/train.jsonl'}, line 4: field 'premise': holds a lone "
        "UTF-16 surrogate ('a\\\\ud800b')"
    )
    # A valid pair is one character and loads.
    lines[3] = '{"premise": "a\\ud83d\\ude00b", "hypothesis": "h", "label": "neutral", "idx": 3}'
    write(tmp_path, "superglue/CB/train.jsonl", "\n".join(lines) + "\n")
    assert len(get_task("cb").load_splits(tmp_path)["train"]) == 4


def test_a_lone_surrogate_in_a_whole_json_file_names_its_line(tmp_path):
    from promptmix.tasks.readers import read_json

    path = write(tmp_path, "data.json", '{"0": {"text": "ok"},\n "1": {"text": ["x", "a\\udc00"]}}\n')
    with pytest.raises(DataError) as info:
        read_json(path)
    assert str(info.value).startswith(f"{path}, line 2: field '1.text[1]': holds a lone UTF-16 surrogate")
