"""MNLI, QNLI, SciTail and BoolQ from the copies in ``../shared/data/more`` (layouts other than
the releases'), the ``dev_from_train`` split rule, and the errors of a malformed row there.
Tiny fixtures in those layouts live in ``fixtures/more``; the release files beside them win."""

from __future__ import annotations

import json
import shutil

import pytest
from taskdata import FIXTURES, REAL_DATA, needs_real_data


@pytest.fixture
def more_dir(tmp_path):
    """A data directory with only the ``more/`` copies (plus the GLUE QNLI dev and SuperGLUE
    BoolQ validation files those layouts evaluate on)."""
    shutil.copytree(FIXTURES / "more", tmp_path / "more")
    for rel in ("glue/QNLI/dev.tsv", "superglue/BoolQ/val.jsonl"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / rel, tmp_path / rel)
    return tmp_path


def _sizes(splits):
    return {name: len(split) for name, split in splits.items()}


def test_mnli_subset_layout(more_dir):
    """train = the JSON subset, dev = the held-out JSON, test = dev_matched without its "-" row."""
    from promptmix.tasks import get_task

    splits = get_task("mnli").load_splits(more_dir)
    assert _sizes(splits) == {"train": 9, "dev": 4, "test": 4}
    first = json.loads((more_dir / "more/MNLI/train_subset/train.json").read_text())["0"]
    assert splits["train"][0].source == f"mnli premise: {first['text_a']} hypothesis: {first['text_b']}"
    assert splits["train"][0].target == first["label"] and splits["train"][0].idx == 0
    assert [ex.label for ex in splits["test"]] == ["neutral", "contradiction", "entailment", "contradiction"]
    assert splits["test"][0].idx == "63735n"


def test_qnli_subset_layout_halves_glue_dev(more_dir):
    from promptmix.tasks import get_task

    dev_rows = len((more_dir / "glue/QNLI/dev.tsv").read_text().splitlines()) - 1
    splits = get_task("qnli").load_splits(more_dir)
    assert _sizes(splits) == {"train": 6, "dev": dev_rows // 2, "test": dev_rows - dev_rows // 2}
    assert splits["train"][0].source.startswith("qnli question: ") and " sentence: " in splits["train"][0].source


def test_scitail_dev_file_trains_and_test_file_tests(more_dir):
    """No SciTail train here: 500 of the dev file are held out as dev (all 8 of the fixture's
    cannot be: an error), the rest is the pool, the test file is test; 0 = entails."""
    from promptmix.tasks import get_task

    with pytest.raises(ValueError, match="dev_from_train=500: cannot hold out 500 of the 8 training"):
        get_task("scitail").load_splits(more_dir)
    splits = get_task("scitail", dev_from_train=3).load_splits(more_dir)
    assert _sizes(splits) == {"train": 5, "dev": 3, "test": 4}
    rows = [line.split("\t") for line in (more_dir / "more/SciTail/test.txt").read_text().splitlines()]
    assert [ex.label for ex in splits["test"]] == ["entailment" if r[2] == "0" else "neutral" for r in rows]


def test_boolq_release_rows_layout(more_dir):
    from promptmix.tasks import get_task

    splits = get_task("boolq").load_splits(more_dir)
    assert len(splits["train"]) == 4
    first = json.loads((more_dir / "more/BoolQ/boolq_train_1550_en.jsonl").read_text().splitlines()[0])
    assert splits["train"][0].target == str(first["answer"]) and splits["train"][0].idx == first["qid"]


def test_release_files_win_over_more(tmp_path):
    """Where the release layout is complete it is read, not the ``more/`` copy beside it."""
    from promptmix.tasks import get_task

    splits = get_task("mnli").load_splits(FIXTURES)
    assert len(splits["train"]) != 9  # the fixture's glue/MNLI/train.tsv


def test_files_option_turns_alternates_off(more_dir):
    from promptmix.tasks import MissingDataError, get_task

    with pytest.raises(MissingDataError, match="glue/MNLI/mine.tsv"):
        get_task("mnli", files={"train": "glue/MNLI/mine.tsv"}).load_splits(more_dir, hub=False)


def test_missing_data_message_names_the_alternate_layout(tmp_path):
    from promptmix.tasks import MissingDataError, get_task

    with pytest.raises(MissingDataError) as err:
        get_task("scitail").load_splits(tmp_path, hub=False)
    text = str(err.value)
    assert "SciTailV1.1/tsv_format/scitail_1.0_train.tsv" in text
    assert f"{tmp_path / 'more/SciTail/dev.txt'}  (MISSING)" in text


def test_malformed_subset_record_names_file_and_record(more_dir):
    from promptmix.tasks import DataError, get_task

    path = more_dir / "more/MNLI/train_subset/train.json"
    records = json.loads(path.read_text())
    records["3"]["label"] = "maybe"
    path.write_text(json.dumps(records))
    with pytest.raises(DataError) as err:
        get_task("mnli").load_splits(more_dir)
    assert str(path) in str(err.value) and "record '3'" in str(err.value) and "label" in str(err.value)


def test_malformed_scitail_label_names_line(more_dir):
    from promptmix.tasks import DataError, get_task

    path = more_dir / "more/SciTail/test.txt"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].rsplit("\t", 1)[0] + "\tentails?"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        get_task("scitail", dev_from_train=3).load_splits(more_dir)
    assert str(path) in str(err.value) and "line 2" in str(err.value) and "'entails?'" in str(err.value)


def test_dev_from_train_keeps_the_evaluation_set_whole():
    """CB with dev_from_train: n training examples become dev, all validation rows are test."""
    from promptmix.tasks import get_task

    plain = get_task("cb").load_splits(FIXTURES)
    held = get_task("cb", dev_from_train=1).load_splits(FIXTURES)
    assert len(held["test"]) == len(plain["dev"]) + len(plain["test"])
    assert len(held["train"]) == len(plain["train"]) - 1 and len(held["dev"]) == 1
    assert {ex.source for ex in held["dev"]} <= {ex.source for ex in plain["train"]}
    with pytest.raises(ValueError, match="dev_from_train"):
        get_task("cb", dev_from_train=0)


@needs_real_data
def test_real_more_sizes():
    """The sizes ``promptmix tasks --data-dir ../shared/data`` shows (the data README's counts)."""
    from promptmix.tasks import get_task

    sizes = {name: _sizes(get_task(name).load_splits(REAL_DATA)) for name in ("mnli", "qnli", "scitail", "boolq")}
    assert sizes == {
        "mnli": {"train": 8999, "dev": 1000, "test": 9815},
        "qnli": {"train": 8999, "dev": 2731, "test": 2732},
        "scitail": {"train": 804, "dev": 500, "test": 2126},
        "boolq": {"train": 1550, "dev": 1635, "test": 1635},
    }
    cb = _sizes(get_task("cb", dev_from_train=50).load_splits(REAL_DATA))
    assert cb == {"train": 200, "dev": 50, "test": 56}


def test_dev_from_train_that_takes_every_group_is_refused():
    """The size check counted examples, but whole groups are held out: 3 groups of 4 with
    dev_from_train=9 took all 12 examples as dev and left an empty training split."""
    from promptmix.tasks.example import Example
    from promptmix.tasks.splits import protocol_splits

    train = [Example(f"q{g} a{i}", "yes", "t", label="yes", group=g, idx=4 * g + i) for g in range(3) for i in range(4)]
    test = [Example("x", "yes", "t", label="yes", idx=0)]
    with pytest.raises(
        ValueError, match=r"^dev_from_train=9: holding out whole groups took all 3 groups of the 12 training"
    ):
        protocol_splits({"train": train, "test": test}, 0, dev_from_train=9)
    splits = protocol_splits({"train": train, "test": test}, 0, dev_from_train=4)
    assert len(splits["train"]) == 8 and len(splits["dev"]) == 4


def test_a_training_split_alone_is_a_clear_error_or_holds_dev_out():
    """Only a training split: without dev_from_train nothing can be evaluated (said in words, not
    a TypeError from halving nothing); with it, dev is held out and test is empty."""
    from promptmix.tasks import Example
    from promptmix.tasks.splits import protocol_splits

    train = [Example(source=f"x{i}", target="a", task="t", label="a") for i in range(10)]
    with pytest.raises(ValueError, match="training split only"):
        protocol_splits({"train": train}, 42)
    splits = protocol_splits({"train": train}, 42, dev_from_train=3)
    assert _sizes(splits) == {"train": 7, "dev": 3, "test": 0}
