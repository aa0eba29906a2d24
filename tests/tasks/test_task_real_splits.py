"""The papers' split protocol on the real GLUE / SuperGLUE files in ../shared/data."""

from __future__ import annotations

import pytest
from taskdata import REAL_DATA, needs_real_data

from promptmix.tasks import MissingDataError, get_task

pytestmark = needs_real_data

# task -> (train, dev, test): rows in MANIFEST.tsv and what the protocol makes of them.
#   < 10k training examples: validation (n rows) -> dev n // 2, test n - n // 2
#   >= 10k: 1,000 training rows -> dev, validation -> test
EXPECTED = {
    "rte": (2490, 138, 139),  # validation 277
    "sst2": (67349 - 1000, 1000, 872),  # 67,349 train >= 10k
    "cola": (8551, 521, 522),  # validation 1,043
    "mrpc": (3668, 204, 204),  # validation 408
    "stsb": (5749, 750, 750),  # validation 1,500
    "wnli": (635, 35, 36),  # validation 71
    "cb": (250, 28, 28),  # validation 56
    "superglue-rte": (2490, 138, 139),  # validation 277
    "wic": (5428, 319, 319),  # validation 638
    "wsc": (554, 52, 52),  # validation 104
    # 27,243 (question, answer) rows but 5,131 questions < 10k: the 953 validation questions
    # (4,848 answers) are halved by question, 476 to dev and 477 to test.
    "multirc": (27243, 2410, 2438),
}


def sizes(splits):
    return tuple(len(splits[name]) for name in ("train", "dev", "test"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_split_sizes_follow_the_protocol_and_are_stable(name):
    task = get_task(name)
    first = task.load_splits(REAL_DATA, seed=42, hub=False)
    assert sizes(first) == EXPECTED[name]
    again = task.load_splits(REAL_DATA, seed=42, hub=False)
    for split in ("train", "dev", "test"):
        assert [ex.idx for ex in first[split]] == [ex.idx for ex in again[split]]
    # dev and the split it was cut from share no row
    ids = {split: {repr(ex.idx) for ex in first[split]} for split in first}
    assert not ids["dev"] & (ids["train"] if name == "sst2" else ids["test"])


def test_small_task_dev_and_test_partition_the_validation_set():
    rte = get_task("rte")
    splits = rte.load_splits(REAL_DATA, seed=42, hub=False)
    dev_ids, test_ids = [ex.idx for ex in splits["dev"]], [ex.idx for ex in splits["test"]]
    assert sorted(dev_ids + test_ids) == list(range(277))
    other_seed = rte.load_splits(REAL_DATA, seed=1, hub=False)
    assert [ex.idx for ex in other_seed["dev"]] != dev_ids
    assert len(other_seed["dev"]) == 138
    # The partition is torch.randperm under manual_seed(42), as the official ATTEMPT code.
    import torch

    perm = torch.randperm(277, generator=torch.Generator().manual_seed(42)).tolist()
    assert dev_ids == sorted(perm[:138])


def test_large_task_holds_out_1000_training_rows_and_tests_on_validation():
    splits = get_task("sst2").load_splits(REAL_DATA, seed=42, hub=False)
    train_ids = {ex.idx for ex in splits["train"]}
    dev_ids = {ex.idx for ex in splits["dev"]}
    assert len(train_ids | dev_ids) == 67349 and not train_ids & dev_ids
    assert splits["test"][0].source == "sst2 sentence: it 's a charming and often affecting journey ."
    assert splits["test"][0].target == "positive"


def test_multirc_never_splits_a_question():
    splits = get_task("multirc").load_splits(REAL_DATA, seed=42, hub=False)
    groups = {name: {ex.group for ex in splits[name]} for name in splits}
    assert (len(groups["dev"]), len(groups["test"])) == (476, 477)
    assert not groups["dev"] & groups["test"]
    assert len(groups["train"]) == 5131


def test_training_cap_is_a_seeded_option():
    capped = get_task("sst2", max_train_examples=5000).load_splits(REAL_DATA, seed=42, hub=False)
    assert sizes(capped) == (5000, 1000, 872)
    again = get_task("sst2", max_train_examples=5000).load_splits(REAL_DATA, seed=42, hub=False)
    assert [ex.idx for ex in capped["train"]] == [ex.idx for ex in again["train"]]
    assert get_task("yelp").max_train_examples == 100_000


@pytest.mark.parametrize(
    "name, present, missing, other",
    [
        ("qnli", "glue/QNLI/dev.tsv", "glue/QNLI/train.tsv", "more/QNLI/train_subset/train.json"),
        ("boolq", "superglue/BoolQ/val.jsonl", "superglue/BoolQ/train.jsonl", "more/BoolQ/boolq_train_1550_en.jsonl"),
    ],
)
def test_missing_train_file_names_what_to_put_where(tmp_path, name, present, missing, other):
    """Only the evaluation file there (no more/ copy either): the error names the release's
    missing train file and the other layout's, each with where it goes."""
    import shutil

    (tmp_path / present).parent.mkdir(parents=True)
    shutil.copy(REAL_DATA / present, tmp_path / present)
    with pytest.raises(MissingDataError) as info:
        get_task(name).load_splits(tmp_path)
    message = str(info.value)
    assert f"{tmp_path / missing}  (MISSING)" in message and f"{tmp_path / other}  (MISSING)" in message
    assert f"{tmp_path / present}  (found)" in message and "HF_HUB_OFFLINE=1" in message
