"""lm-evaluation-harness task files read as they are (fixtures/lm_eval: BoolQ, SST-2 and COPA
copied from lm-eval), one-file releases whose rows name their split (split_field), and local
data folders (parquet, save_to_disk) read without the hub."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
from tiny_models import REPO

from promptmix.tasks import DataError, get_task
from promptmix.tasks.declared import definition_text, load_task_file

LM_EVAL = REPO / "tests" / "tasks" / "fixtures" / "lm_eval"
SUPERGLUE = REPO / "tests" / "tasks" / "fixtures" / "superglue"
SST2 = REPO / "tests" / "tasks" / "fixtures" / "glue" / "SST-2"


@pytest.fixture(autouse=True)
def _clean(clean_task_registry):
    """Every task a test here registers is gone after it (conftest.py)."""


def named(tmp_path, fixture, name):
    """The lm-eval file (and its utils.py) copied unchanged but for one added ``name:`` line."""
    for extra in LM_EVAL.glob("*.py"):
        shutil.copy(extra, tmp_path / extra.name)
    path = tmp_path / fixture
    path.write_text((LM_EVAL / fixture).read_text() + f"name: {name}\n")
    return path


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_an_lm_eval_file_whose_task_is_promptmixs_own_says_how_to_register_it_beside():
    with pytest.raises(DataError) as err:
        load_task_file(LM_EVAL / "boolq.yaml")
    assert str(err.value).startswith(f"{LM_EVAL / 'boolq.yaml'}, line 3: field 'task': task 'boolq' clashes")
    assert "add `name: boolq-lm-eval`" in str(err.value)


def test_lm_evals_boolq_file_reads_its_hub_dataset_splits_template_and_choices(tmp_path):
    cls = load_task_file(named(tmp_path, "boolq.yaml", "boolq-lm-eval"))
    task = get_task("boolq-lm-eval")
    assert (task.source.hub_id, task.source.hub_config, dict(task.source.hub_splits)) == (
        "super_glue",
        "boolq",
        {"train": "train", "validation": "validation"},
    )
    assert (
        task.label_words == ["no", "yes"] and task.metric_names == ("accuracy",) and cls.origin.endswith("boolq.yaml")
    )
    # data in hand: the SuperGLUE release's JSONL (label true/false), given as the task's files
    task = get_task(
        "boolq-lm-eval",
        files={"train": str(SUPERGLUE / "BoolQ" / "train.jsonl"), "validation": str(SUPERGLUE / "BoolQ" / "val.jsonl")},
    )
    splits = task.load_splits(None)
    first = records(SUPERGLUE / "BoolQ" / "train.jsonl")[0]
    example = (
        splits["train"][0]
        if splits["train"][0].idx == first.get("idx", 0)
        else next(e for e in splits["train"] if e.source.startswith(first["passage"]))
    )
    assert example.source == f"{first['passage']}\nQuestion: {first['question']}?\nAnswer:"
    assert example.target == ("yes" if first["label"] else "no")


def test_lm_evals_sst2_file_renders_its_jinja_template_over_tsv_rows(tmp_path):
    load_task_file(named(tmp_path, "sst2.yaml", "sst2-lm-eval"))
    task = get_task("sst2-lm-eval", files={"train": str(SST2 / "train.tsv"), "validation": str(SST2 / "dev.tsv")})
    assert task.source.hub_id == "nyu-mll/glue"
    example = task.format({"sentence": "a fine film", "label": "1"}, require_label=True)
    assert (example.source, example.target) == (
        "a fine film\nQuestion: Is this sentence positive or negative?\nAnswer:",
        "positive",
    )
    splits = task.load_splits(None)
    assert sum(len(v) for v in splits.values()) == 7 and {e.target for v in splits.values() for e in v} <= {
        "negative",
        "positive",
    }


def test_lm_evals_copa_file_runs_its_function_and_renders_per_record_choices(tmp_path):
    path = named(tmp_path, "copa.yaml", "copa-lm-eval")
    load_task_file(path)
    task = get_task(
        "copa-lm-eval",
        files={"train": str(SUPERGLUE / "COPA" / "train.jsonl"), "validation": str(SUPERGLUE / "COPA" / "val.jsonl")},
    )
    record = {
        "premise": "My body cast a shadow over the grass.",
        "choice1": "The sun was rising.",
        "choice2": "The grass was cut.",
        "question": "cause",
        "label": 0,
    }
    example = task.format(record, require_label=True)
    assert example.source == "My body cast a shadow over the grass because"
    assert example.choices == ("The sun was rising.", "The grass was cut.") and example.target == "The sun was rising."
    splits = task.load_splits(None)
    assert all(e.choices and e.target in e.choices for v in splits.values() for e in v)
    # a run keeps the definition (the function's module by absolute path) and loads it back
    copy = tmp_path / "run" / "copa.yaml"
    copy.parent.mkdir()
    copy.write_text(definition_text(task))
    assert f"!function '{tmp_path / 'utils'}.doc_to_text'" in copy.read_text()
    assert load_task_file(copy) is type(task)  # same definition: the same task


@pytest.mark.parametrize(
    "change, line, field, reason",
    [
        ("output_type: loglikelihood\n", 5, "output_type", "'loglikelihood' has no answer to train on"),
        (
            "process_docs: !function utils.doc_to_text\n",
            16,
            "process_docs",
            "lm-eval key 'process_docs' is not supported",
        ),
        ("metric_list:\n  - metric: brier_score\n", 12, "metric_list.0", "metric 'brier_score': promptmix maps acc"),
        (
            "metric_list:\n  - metric: acc\n    ignore_case: true\n",
            13,
            "metric_list.0.ignore_case",
            "ignore_case: True changes how acc scores",
        ),
        (
            "metric_list:\n  - metric: acc\n    regexes_to_ignore: [',']\n",
            13,
            "metric_list.0.regexes_to_ignore",
            "regexes_to_ignore: [','] changes how acc scores",
        ),
        (
            "metric_list:\n  - metric: acc\n    hf_evaluate: true\n",
            13,
            "metric_list.0.hf_evaluate",
            "hf_evaluate is not supported by promptmix in a metric_list entry",
        ),
        ("doc_to_text: 'Is it positive?'\n", 8, "doc_to_text", "names no record field"),
        ("doc_to_text: '{{ sentence '\n", 8, "doc_to_text", "not a valid Jinja template"),
    ],
)
def test_a_malformed_lm_eval_file_names_file_line_and_field(tmp_path, change, line, field, reason):
    text = (LM_EVAL / "sst2.yaml").read_text() + "name: s-lm\n"
    key = change.split(":")[0]
    kept = [ln for ln in text.splitlines(keepends=True) if not ln.startswith(key + ":")]
    if key == "metric_list":
        kept = [ln for ln in kept if not ln.startswith("  - metric")]
    at = next((i for i, ln in enumerate(text.splitlines()) if ln.startswith(key + ":")), None)
    kept.insert(at if at is not None else len(kept), change)
    path = tmp_path / "bad.yaml"
    path.write_text("".join(kept))
    with pytest.raises(DataError) as err:
        load_task_file(path)
    assert str(err.value).startswith(f"{path}, line {line}: field '{field}': ") and reason in str(err.value)


def test_a_jinja_template_naming_a_field_the_record_lacks_names_file_line_and_field(tmp_path):
    load_task_file(named(tmp_path, "sst2.yaml", "sst2-lm-eval"))
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": "typo'd column", "label": 1}) + "\n")
    task = get_task("sst2-lm-eval", files={"train": str(tmp_path / "d.jsonl"), "validation": str(tmp_path / "d.jsonl")})
    with pytest.raises(
        DataError, match=rf"^{tmp_path / 'd.jsonl'}, line 1: field 'doc_to_text': 'sentence' is undefined"
    ):
        task.load_splits(None)


SICK = (
    "pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tSemEval_set\n"
    "1\tA boy plays.\tA kid plays.\tENTAILMENT\t4.5\tTRAIN\n"
    "2\tA man eats.\tNobody eats.\tCONTRADICTION\t3.1\tTRAIN\n"
    "3\tA dog runs.\tA cat sleeps.\tNEUTRAL\t1.2\tTRIAL\n"
    "4\tTwo women talk.\tWomen are talking.\tENTAILMENT\t4.8\tTEST\n"
    "5\tA girl sings.\tA girl is silent.\tCONTRADICTION\t2.0\tTEST\n"
)


def sick_task(tmp_path, extra=""):
    (tmp_path / "SICK.txt").write_text(SICK)
    return tmp_path / "sick.yaml", textwrap.dedent(f"""\
        name: sick
        data:
          file: SICK.txt
          format: tsv
          split_field: SemEval_set
          split_values: {{train: TRAIN, validation: TRIAL, test: TEST}}{extra}
        input: "premise: {{sentence_A}} hypothesis: {{sentence_B}}"
        label_field: entailment_label
        label_words: [entailment, neutral, contradiction]
        """)


def test_one_file_holding_every_split_is_split_by_the_column_naming_it(tmp_path):
    path, text = sick_task(tmp_path)
    path.write_text(text)
    load_task_file(path)
    raw = get_task("sick").source
    assert raw.split_field == "SemEval_set"
    from promptmix.tasks.sources import load_raw_splits

    splits = load_raw_splits(get_task("sick"), None, hub=False)
    assert {k: [e.source.split(" hypothesis")[0] for e in v] for k, v in splits.items()} == {
        "train": ["premise: A boy plays.", "premise: A man eats."],
        "validation": ["premise: A dog runs."],
        "test": ["premise: Two women talk.", "premise: A girl sings."],
    }
    assert [e.target for e in splits["test"]] == ["entailment", "contradiction"]


def test_split_field_errors_name_file_line_and_field(tmp_path):
    path, text = sick_task(tmp_path)
    path.write_text(text.replace("  split_values: {train: TRAIN, validation: TRIAL, test: TEST}\n", ""))
    with pytest.raises(
        DataError, match=rf"^{path}, line 2: field 'data.split_values': give split_field .* with split_values"
    ):
        load_task_file(path)
    path.write_text(text.replace("SemEval_set", "Split"))
    load_task_file(path)
    with pytest.raises(DataError, match=rf"{tmp_path / 'SICK.txt'}, line 1: expected a header naming .*Split"):
        get_task("sick").load_splits(None)


def _parquet_rows(n=6, offset=0):
    return {"sentence": [f"sentence number {i + offset}" for i in range(n)], "label": [i % 2 for i in range(n)]}


def test_a_local_parquet_folder_and_a_save_to_disk_folder_load_with_the_hub_off(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    parquet = tmp_path / "sst2-parquet"
    parquet.mkdir()
    datasets.Dataset.from_dict(_parquet_rows()).to_parquet(str(parquet / "train.parquet"))
    datasets.Dataset.from_dict(_parquet_rows(4, 100)).to_parquet(str(parquet / "validation.parquet"))
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(_parquet_rows()),
            "validation": datasets.Dataset.from_dict(_parquet_rows(4, 100)),
        }
    ).save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "native.yaml").write_text(
        "name: native-parquet\ndata: {hub: {id: sst2-parquet}}\n"
        "input: 'sentence: {sentence}'\nlabel_words: [negative, positive]\n"
    )
    load_task_file(tmp_path / "native.yaml")
    splits = get_task("native-parquet").load_splits(None)
    assert sum(len(v) for v in splits.values()) == 10
    assert {e.source for v in splits.values() for e in v} >= {"sentence: sentence number 100"}
    # lm-eval's own sst2 file with dataset_path a save_to_disk folder
    text = (LM_EVAL / "sst2.yaml").read_text().replace("dataset_path: nyu-mll/glue", "dataset_path: saved")
    (tmp_path / "lm.yaml").write_text(text.replace("dataset_name: sst2\n", "") + "name: sst2-saved\n")
    load_task_file(tmp_path / "lm.yaml")
    assert get_task("sst2-saved").source.hub_id == str(tmp_path / "saved")
    splits = get_task("sst2-saved").load_splits(None)
    assert sum(len(v) for v in splits.values()) == 10
    assert "sentence number 101\nQuestion: Is this sentence positive or negative?\nAnswer:" in {
        e.source for v in splits.values() for e in v
    }


def test_task_files_read_parquet_data_files(tmp_path):
    import datasets

    datasets.Dataset.from_dict(_parquet_rows()).to_parquet(str(tmp_path / "train.parquet"))
    datasets.Dataset.from_dict(_parquet_rows(4, 100)).to_parquet(str(tmp_path / "dev.parquet"))
    (tmp_path / "t.yaml").write_text(
        "name: pq\ndata: {files: {train: train.parquet, validation: dev.parquet}}\n"
        "input: '{sentence}'\nlabel_words: [negative, positive]\n"
    )
    load_task_file(tmp_path / "t.yaml")
    splits = get_task("pq").load_splits(None)
    assert sorted(e.source for v in splits.values() for e in v)[0] == "sentence number 0"
    assert sum(len(v) for v in splits.values()) == 10


def test_include_data_files_and_generated_answers(tmp_path):
    """lm-eval's include (a shared base file), data_files of the json builder and generate_until."""
    (tmp_path / "_base.yaml").write_text(
        "dataset_path: json\noutput_type: generate_until\ntraining_split: train\n"
        "validation_split: validation\ndoc_to_target: answer\n"
        "metric_list:\n  - metric: exact_match\n"
    )
    rows = [{"q": f"What is {i} plus one?", "answer": str(i + 1)} for i in range(5)]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "qa.yaml").write_text(
        "include: _base.yaml\ntask: plus-one\n"
        "dataset_kwargs:\n  data_files: {train: qa.jsonl, validation: qa.jsonl}\n"
        "doc_to_text: 'Question: {{q}}'\ndescription: 'Arithmetic ({{answer|length}} digit). '\n"
    )
    load_task_file(tmp_path / "qa.yaml")
    task = get_task("plus-one")
    assert task.metric_names == ("squad_em",) and task.source.hub_id is None
    splits = task.load_splits(None)
    example = next(
        e for v in splits.values() for e in v if e.source == "Arithmetic (1 digit). Question: What is 2 plus one?"
    )
    assert (example.target, example.label) == ("3", ["3"])


def test_a_built_in_tasks_files_option_reads_the_hubs_parquet_export(tmp_path):
    import datasets

    for split, n, offset in (("train", 6, 0), ("validation", 4, 100)):
        datasets.Dataset.from_dict({**_parquet_rows(n, offset), "idx": list(range(n))}).to_parquet(
            str(tmp_path / f"{split}.parquet")
        )
    task = get_task(
        "sst2", files={"train": str(tmp_path / "train.parquet"), "validation": str(tmp_path / "validation.parquet")}
    )
    splits = task.load_splits(None)
    assert sum(len(v) for v in splits.values()) == 10
    assert {e.source for v in splits.values() for e in v} >= {"sst2 sentence: sentence number 0"}


def test_an_lm_eval_group_file_is_refused_with_what_to_give_instead(tmp_path):
    path = tmp_path / "_glue.yaml"
    path.write_text("group: glue\ntask:\n  - cola\n  - sst2\naggregate_metric_list:\n  - metric: acc\n")
    with pytest.raises(DataError, match=rf"^{path}, line 2: field 'task': this is an lm-eval group file"):
        load_task_file(path)


def test_the_fields_doc_to_text_shows_are_the_tasks_input_fields(tmp_path):
    load_task_file(named(tmp_path, "boolq.yaml", "boolq-lm-eval"))
    load_task_file(named(tmp_path, "copa.yaml", "copa-lm-eval"))
    assert get_task("boolq-lm-eval").input_fields == ("passage", "question")
    assert get_task("copa-lm-eval").input_fields == ()  # a function: the fields it reads are its own


def test_an_included_file_that_is_a_yaml_bomb_is_refused_before_it_is_built(tmp_path):
    """The include was yaml.load-ed unguarded: nine levels of ten aliases took gigabytes."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    (tmp_path / "_base.yaml").write_text("\n".join(lines) + "\n")
    path = tmp_path / "bomb.yaml"
    path.write_text("include: _base.yaml\ntask: bomb\n")
    with pytest.raises(
        DataError, match=rf"^{path}, line 1: field 'include': {tmp_path / '_base.yaml'}, line \d+: expands to more than"
    ):
        load_task_file(path)


def test_a_rendered_target_that_looks_like_a_list_is_that_list_of_answers(tmp_path):
    """lm-eval literal_evals a rendered doc_to_target "[...]"; promptmix trained on the list's text."""
    rows = [{"q": "Capital of France?", "answer": ["Paris", "paris"]}, {"q": "Odd [one]?", "answer": "[not, a literal"}]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "qa.yaml").write_text(
        "task: capitals\ndataset_path: json\noutput_type: generate_until\n"
        "dataset_kwargs:\n  data_files: {train: qa.jsonl, validation: qa.jsonl}\n"
        "training_split: train\nvalidation_split: validation\n"
        "doc_to_text: '{{q}}'\ndoc_to_target: '{{answer}}'\n"
    )
    load_task_file(tmp_path / "qa.yaml")
    examples = {e.source: e for v in get_task("capitals").load_splits(None).values() for e in v}
    assert (examples["Capital of France?"].target, examples["Capital of France?"].label) == (
        "Paris",
        ["Paris", "paris"],
    )
    assert examples["Odd [one]?"].label == ["[not, a literal"]  # not a literal: its text, as lm-eval keeps it


def test_metric_list_settings_that_change_nothing_are_accepted(tmp_path):
    """Keys of a metric_list entry besides metric were dropped unread; those that leave the
    score as promptmix computes it are accepted (the others are refused, above)."""
    text = (
        (LM_EVAL / "sst2.yaml")
        .read_text()
        .replace(
            "  - metric: acc\n",
            "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n    ignore_case: false\n",
        )
    )
    path = tmp_path / "s.yaml"
    path.write_text(text + "name: s-lm\n")
    load_task_file(path)
    assert get_task("s-lm").metric_names == ("accuracy",)
