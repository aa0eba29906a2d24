"""Task names, aliases, "did you mean", options, and tasks registered from user code."""

from __future__ import annotations

import pytest
from taskdata import registry_snapshot  # noqa: F401  (a fixture)

from promptmix.tasks import ClassificationTask, DataSource, UnknownTaskError, get_task, list_tasks, register_task
from promptmix.tasks.readers import read_jsonl


@pytest.mark.parametrize(
    "alias, name",
    [
        ("SST-2", "sst2"),
        ("sst_2", "sst2"),
        ("STS-B", "stsb"),
        ("superglue-cb", "cb"),
        ("wsc.fixed", "wsc"),
        ("Yelp-2", "yelp_polarity"),
        ("SuperGLUE-RTE", "superglue-rte"),
        ("RTE", "rte"),
        ("natural_questions", "nq"),
    ],
)
def test_names_and_aliases(alias, name):
    assert get_task(alias).name == name


def test_unknown_name_suggests_near_matches():
    with pytest.raises(UnknownTaskError) as info:
        get_task("mrcp")
    assert isinstance(info.value, KeyError)
    assert str(info.value).startswith("unknown task 'mrcp'. Did you mean 'mrpc'?")
    with pytest.raises(KeyError, match="Did you mean 'multirc'"):
        get_task("multi-rc2")


def test_unknown_option_names_the_accepted_ones():
    with pytest.raises(
        ValueError,
        match=r"task 'rte' has no option\(s\) \['max_train'\]; options: "
        r"\['max_train_examples', 'files', 'skip_malformed', 'dev_from_train'\]",
    ):
        get_task("rte", max_train=5)
    assert get_task("winogrande", size="m").files["train"] == "winogrande_1.1/train_m.jsonl"
    assert get_task("winogrande", size="m").source.hub_config == "winogrande_m"
    with pytest.raises(ValueError, match="winogrande size must be one of"):
        get_task("winogrande", size="xxl")


def test_declared_defaults_of_the_papers():
    assert [get_task(n).max_source_length for n in ("rte", "multirc", "nq", "squad")] == [256, 348, 512, 256]
    assert get_task("rte").label_words == ["entailment", "not_entailment"]
    assert get_task("stsb").label_words is None and get_task("squad").label_words is None
    assert {get_task(n).main_metric for n in list_tasks()} == {"score"}


def test_user_code_registers_a_task_without_editing_the_library(registry_snapshot, tmp_path):
    (tmp_path / "sarcasm").mkdir()
    rows = ['{"headline": "Area man wins", "is_sarcastic": 1}', '{"headline": "Rates rise", "is_sarcastic": 0}']
    for split in ("train", "dev"):
        (tmp_path / "sarcasm" / f"{split}.jsonl").write_text("\n".join(rows * 2) + "\n")

    @register_task
    class Sarcasm(ClassificationTask):
        name = "sarcasm"
        aliases = ("headlines",)
        source = DataSource(
            files={"train": "sarcasm/train.jsonl", "validation": "sarcasm/dev.jsonl"},
            reader=read_jsonl,
            release="sarcasm headlines JSONL",
        )
        input_fields = ("headline",)
        label_field = "is_sarcastic"
        label_words = ["literal", "sarcastic"]
        metric_names = ("accuracy", "f1")

    task = get_task("Headlines")
    splits = task.load_splits(tmp_path)
    assert [len(splits[s]) for s in ("train", "dev", "test")] == [4, 2, 2]
    assert splits["train"][0].source == "sarcasm headline: Area man wins"
    assert splits["train"][0].target == "sarcastic"
    assert "sarcasm" in list_tasks()
    assert task.compute_metrics(["sarcastic", "literal"], splits["train"][:2])["score"] == 100.0


def test_registration_checks_the_declaration(registry_snapshot):
    class Clash(ClassificationTask):
        name = "my-rte"
        aliases = ("rte",)
        label_words = ["yes", "no"]

    with pytest.raises(ValueError, match=r"clashes with registered task\(s\) \['rte'\]"):
        register_task(Clash)
    register_task(Clash, overwrite=True)
    assert get_task("rte").name == "my-rte"

    class BadMetric(ClassificationTask):
        name = "bad"
        label_words = ["a", "b"]
        metric_names = ("accuracy", "bleurt")

    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['bleurt'\]"):
        register_task(BadMetric)
