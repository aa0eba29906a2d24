"""Tasks without Python: task files in YAML (every answer kind, every file format), errors that
name file, line and field, task directories from --tasks-dir or $PROMPTMIX_TASKS_DIR, and Python
plugins through the ``promptmix.tasks`` entry-point group."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from tiny_models import REPO

from promptmix.cli import main
from promptmix.tasks import DataError, get_task, list_tasks, registry
from promptmix.tasks.declared import definition_text, load_task_file, task_origin
from promptmix.tasks.plugins import TASKS_DIR_ENV, load_entry_points, load_env_dirs

EXAMPLE_TASKS = REPO / "docs" / "example" / "tasks"


@pytest.fixture(autouse=True)
def _clean(clean_task_registry):
    """Every task a test here registers is gone after it (conftest.py)."""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_documented_example_task_loads_with_the_papers_protocol():
    cls = load_task_file(EXAMPLE_TASKS / "headlines.yaml")
    task = get_task("headlines")
    splits = task.load_splits(None)  # file paths are the task file's: no data directory needed
    assert {k: len(v) for k, v in splits.items()} == {"train": 24, "dev": 8, "test": 8}
    first = splits["train"][0]
    assert (first.source, first.target, first.label) == (
        "Is this headline sarcastic? City council approves new bike lanes downtown",
        "literal",
        "literal",
    )
    assert splits["train"][1].target == "sarcastic"
    assert task.max_source_length == 64 and task.metric_names == ("accuracy", "f1") and task.benchmark == "custom"
    assert task.compute_metrics(["sarcastic"] * 8, splits["dev"]) == {
        "accuracy": 50.0,
        "f1": pytest.approx(200 / 3),
        "score": pytest.approx((50 + 200 / 3) / 2),
    }
    assert task_origin(task) == f"task file {EXAMPLE_TASKS / 'headlines.yaml'}" and cls.origin.endswith(
        "headlines.yaml"
    )


def test_multiple_choice_csv_and_free_text_answers(tmp_path):
    (tmp_path / "mc.csv").write_text(
        "ctx,a,b,gold\nThe sky is,blue,green,1\nGrass is,red,green,2\nSnow is,white,black,1\n"
    )
    write(
        tmp_path / "mc.yaml",
        """
        name: colours
        data: {files: {train: mc.csv, validation: mc.csv}}
        input: "{ctx} ..."
        choices: ["{a}", "{b}"]
        label_field: gold
        label_base: 1
    """,
    )
    jsonl(
        tmp_path / "qa" / "train.jsonl",
        [{"q": "2+2?", "answers": ["4", "four"]}, {"q": "capital of France?", "answers": "Paris"}],
    )
    write(
        tmp_path / "qa.yaml",
        """
        name: tiny-qa
        data: {files: {train: qa/train.jsonl, validation: qa/train.jsonl}, format: jsonl}
        input: "question: {q}"
        answer_field: answers
    """,
    )
    load_task_file(tmp_path / "mc.yaml"), load_task_file(tmp_path / "qa.yaml")
    colours = get_task("colours").load_splits(None)["train"]
    assert [(ex.source, ex.choices, ex.target) for ex in colours] == [
        ("The sky is ...", ("blue", "green"), "blue"),
        ("Grass is ...", ("red", "green"), "green"),
        ("Snow is ...", ("white", "black"), "white"),
    ]
    assert get_task("colours").choices_per_example and get_task("colours").metric_names == ("accuracy",)
    qa = get_task("tiny-qa")
    rows = qa.load_splits(None)["train"]
    assert [(ex.target, ex.label) for ex in rows] == [("4", ["4", "four"]), ("Paris", ["Paris"])]
    assert qa.compute_metrics(["four", "paris"], rows)["squad_em"] == 100.0


BAD = [  # (file text, line, field, words of the reason)
    (
        "name: x\ndata: {files: {train: a.jsonl}}\ninput: '{a}'\nlabel_words: [y, n]\nmetric: acuracy\n",
        5,
        "metric",
        "unknown metric 'acuracy'",
    ),
    (
        "name: x\ndata:\n  files: {train: a.jsonl}\n  formt: jsonl\ninput: '{a}'\nlabel_words: [y, n]\n",
        4,
        "data.formt",
        "unknown key (valid keys: files, file, format, hub, split_field, split_values)",
    ),
    (
        "name: x\ndata: {files: {train: a.jsonl}}\ninput: '{a.b}'\nlabel_words: [y, n]\n",
        3,
        "input",
        "placeholder {a.b} must name one record field",
    ),
    (
        "name: x\ndata: {files: {train: a.jsonl}}\ninput: '{a}'\nlabel_words: [y, n]\nanswer_field: z\n",
        5,
        "answer_field",
        "give exactly one of label_words, choices, choices_field, answer_field",
    ),
    (
        "name: x\ndata: {files: {train: a.jsonl}}\ninput: '{a}'\nmax_source_length: -3\nlabel_words: [y, n]\n",
        4,
        "max_source_length",
        "greater than 0",
    ),
    (
        "name: x\ndata: {files: {train: a.jsonl}}\ninput: '{a}'\nlabel_words: [y, n]\nmetric: [accuracy, squad_f1]\n",
        5,
        "metric.1",
        "squad_f1 scores generated answers: it needs answer_field",
    ),
    ("name: X y\ndata: {files: {train: a.jsonl}}\ninput: '{a}'\nlabel_words: [y, n]\n", 1, "name", "use lower-case"),
    (
        "name: rte\ndata: {files: {train: a.jsonl}}\ninput: '{a}'\nlabel_words: [y, n]\n",
        1,
        "name",
        "clashes with registered task(s) ['rte']: rename this task",
    ),
    (
        "name: x\ndata: {files: {train: a.txt}}\ninput: '{a}'\nlabel_words: [y, n]\n",
        2,
        "data.files.train",
        "cannot tell the format from '.txt'",
    ),
]


@pytest.mark.parametrize("text, line, field, reason", BAD, ids=[b[2] + ":" + b[3][:20] for b in BAD])
def test_a_malformed_task_file_names_file_line_and_field(tmp_path, text, line, field, reason):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_task_file(path)
    assert str(err.value).startswith(f"{path}, line {line}: field '{field}': ")
    assert reason in str(err.value)


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path / "bad.yaml", "name: x\ndata: {files: {train: a.jsonl}\ninput: '{a}'\n")
    with pytest.raises(DataError, match=rf"^{path}, line 3: not valid YAML"):
        load_task_file(path)


def test_a_malformed_record_names_the_data_file_line_and_field(tmp_path):
    jsonl(tmp_path / "d.jsonl", [{"text": "ok", "label": 0}, {"txt": "typo", "label": 1}])
    load_task_file(
        write(
            tmp_path / "t.yaml",
            "name: t\ndata: {files: {train: d.jsonl, validation: d.jsonl}}\ninput: '{text}'\nlabel_words: [a, b]\n",
        )
    )
    with pytest.raises(DataError, match=rf"{tmp_path / 'd.jsonl'}, line 2: field 'text': missing"):
        get_task("t").load_splits(None)


def test_a_task_file_registered_again_with_the_same_definition_is_the_same_task(tmp_path):
    first = load_task_file(EXAMPLE_TASKS / "headlines.yaml")
    copy = write(tmp_path / "copy" / "headlines.yaml", definition_text(get_task("headlines")))  # a run's copy
    assert load_task_file(copy).definition == first.definition and get_task("headlines").origin == first.origin
    changed = write(tmp_path / "changed" / "headlines.yaml", definition_text(get_task("headlines")).replace("64", "65"))
    with pytest.raises(DataError, match="field 'name': task 'headlines' clashes"):
        load_task_file(changed)


def test_task_directories_from_the_environment_and_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(TASKS_DIR_ENV, f"{tmp_path / 'none-here'}")
    with pytest.raises(FileNotFoundError, match="task directory .*none-here.* does not exist"):
        load_env_dirs()
    monkeypatch.setenv(TASKS_DIR_ENV, str(EXAMPLE_TASKS))
    assert load_env_dirs() == ["headlines"] and "headlines" in list_tasks()
    registry._unregister("headlines")
    monkeypatch.delenv(TASKS_DIR_ENV)
    assert main(["tasks", "--tasks-dir", str(EXAMPLE_TASKS)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("headlines "))
    assert "custom" in row and "24/8/8" not in row and "accuracy, f1" in row
    with pytest.raises(registry.UnknownTaskError):
        get_task("sarcasm-typo")
    assert "--tasks-dir" in str(pytest.raises(KeyError, get_task, "no-such-task").value)


def test_python_plugins_through_the_entry_point_group(tmp_path, monkeypatch):
    """An installed distribution (here: a *.dist-info directory on sys.path) declares a Task
    class in the 'promptmix.tasks' group; discovery registers it, and a broken one is named."""
    write(
        tmp_path / "my_tasks.py",
        """
        from promptmix.tasks import ClassificationTask

        class Sarcasm(ClassificationTask):
            name = "plugin-sarcasm"
            input_fields = ("headline",)
            label_words = ["literal", "sarcastic"]
    """,
    )
    info = tmp_path / "my_tasks-1.0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: my-tasks\nVersion: 1.0\n")
    write(info / "entry_points.txt", "[promptmix.tasks]\nsarcasm = my_tasks:Sarcasm\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_entry_points() == ["plugin-sarcasm"]
    task = get_task("plugin-sarcasm")
    assert task.format({"headline": "x", "label": 1}).target == "sarcastic"
    assert task_origin(task) == "Python class my_tasks.Sarcasm"
    write(info / "entry_points.txt", "[promptmix.tasks]\nbroken = my_tasks_missing:Nothing\n")
    with pytest.raises(
        ImportError,
        match="entry point broken = my_tasks_missing:Nothing \\(group promptmix.tasks, "
        "distribution my-tasks\\) failed to load: ModuleNotFoundError",
    ):
        load_entry_points()
    sys.modules.pop("my_tasks", None)


@pytest.mark.parametrize(
    "template, reason",
    [
        (
            "Review: {{review}}",
            "{{review}} is Jinja (lm-eval) syntax, which this key reads as the literal text {review}; write {review}",
        ),
        ("Review: {{ review }} ({stars} stars)", "{{ review }} is Jinja"),
        ("Is this review positive?", "names no record field, so every example's input would be this same text"),
    ],
)
def test_a_template_that_names_no_field_or_uses_jinja_is_refused(tmp_path, template, reason):
    jsonl(tmp_path / "d.jsonl", [{"review": "great", "stars": 5, "label": 1}])
    path = write(
        tmp_path / "t.yaml",
        f"name: t\ndata: {{files: {{train: d.jsonl}}}}\ninput: {json.dumps(template)}\nlabel_words: [bad, good]\n",
    )
    with pytest.raises(DataError) as err:
        load_task_file(path)
    assert str(err.value).startswith(f"{path}, line 3: field 'input': ") and reason in str(err.value)


def test_a_split_whose_inputs_are_all_the_same_is_warned_about(tmp_path, caplog):
    jsonl(tmp_path / "d.jsonl", [{"review": "same", "label": i % 2} for i in range(4)])
    jsonl(tmp_path / "v.jsonl", [{"review": f"text {i}", "label": i % 2} for i in range(4)])
    load_task_file(
        write(
            tmp_path / "t.yaml",
            "name: t\ndata: {files: {train: d.jsonl, validation: v.jsonl}}\n"
            "input: 'Review: {review}'\nlabel_words: [bad, good]\n",
        )
    )
    with caplog.at_level("WARNING", logger="promptmix.tasks.sources"):
        get_task("t").load_splits(None)
    warned = [r.getMessage() for r in caplog.records if "same input" in r.getMessage()]
    assert (
        len(warned) == 1 and "d.jsonl" in warned[0] and "all 4 examples have the same input 'Review: same'" in warned[0]
    )


LAUGHS = "name: lol\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10)
)


@pytest.mark.parametrize(
    "text, line, reason",
    [
        (
            LAUGHS,
            7,
            "expands to more than 1,000,000 values once its aliases",
        ),  # the old code took 3 GB, then MemoryError
        ("name: x\naliases: &x [*x]\n", 2, "alias *x is inside the node &x names"),  # was a RecursionError traceback
        ("name: x\ndeep: " + "[" * 20000 + "]" * 20000 + "\n", 2, "nested more than 64 levels deep"),  # likewise
    ],
)
def test_yaml_bombs_are_refused_before_anything_is_built(tmp_path, text, line, reason):
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_task_file(path)
    assert str(err.value).startswith(f"{path}, line {line}: {reason}"), str(err.value)


@pytest.mark.parametrize(
    "text, reason",
    [
        (LAUGHS.replace("name: lol\n", "stage: attempt\n"), "expands to more than"),
        ("stage: attempt\noptim: &x {a: *x}\n", "alias *x is inside"),
    ],
)
def test_config_files_and_overrides_refuse_yaml_bombs_in_one_line(tmp_path, capsys, text, reason):
    (tmp_path / "bomb.yaml").write_text(text)
    assert main(["train", "attempt", "--config", str(tmp_path / "bomb.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'bomb.yaml'}, line " in err and reason in err, err
    (tmp_path / "ok.yaml").write_text("stage: attempt\n")
    assert (
        main(
            [
                "train",
                "attempt",
                "--config",
                str(tmp_path / "ok.yaml"),
                "--set",
                "data.tasks=" + "[" * 5000 + "]" * 5000,
            ]
        )
        == 2
    )
    assert "nested more than 64 levels deep" in capsys.readouterr().err
