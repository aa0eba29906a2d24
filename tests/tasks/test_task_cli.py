"""``promptmix tasks``: every task with its source, split sizes where data is present, metrics."""

from __future__ import annotations

import argparse
import re

from taskdata import FIXTURES, REAL_DATA, needs_real_data

from promptmix.cli import tasks as tasks_cli
from promptmix.tasks import list_tasks


def run_cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="promptmix")
    tasks_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    rows = {line.split()[0]: re.split(r"\s{2,}", line.strip()) for line in capsys.readouterr().out.splitlines()}
    return code, rows


def test_lists_every_task_with_sizes_from_fixture_layouts(capsys):
    code, rows = run_cli(["tasks", "--data-dir", str(FIXTURES)], capsys)
    assert code == 0
    assert rows.pop("TASK") == ["TASK", "BENCHMARK", "SOURCE (local | hub)", "TRAIN/DEV/TEST", "METRICS"]
    assert list(rows) == list_tasks()
    assert rows["rte"] == ["rte", "glue", "glue/RTE/{train,dev}.tsv | nyu-mll/glue/rte", "3/2/2", "accuracy"]
    assert rows["nq"][2:] == [
        "mrqa/{train,dev}/NaturalQuestionsShort.jsonl.gz | mrqa-workshop/mrqa[subset=NaturalQuestionsShort]",
        "3/2/2",
        "squad_em, squad_f1",
    ]
    assert rows["multirc"][3:] == ["5/4/4", "f1, group_em"]
    assert rows["e2e"][2] == "e2e-dataset/{trainset,devset,testset_w_refs}.csv | GEM/e2e_nlg"


@needs_real_data
def test_real_data_sizes_and_missing_files(capsys):
    code, rows = run_cli(["tasks", "--data-dir", str(REAL_DATA), "--benchmark", "glue"], capsys)
    assert code == 0 and list(rows)[1:] == ["mnli", "qqp", "qnli", "sst2", "stsb", "mrpc", "rte", "cola"]
    assert rows["sst2"][3] == "66349/1000/872"
    assert rows["rte"][3] == "2490/138/139"
    # QNLI has no train.tsv here: its training subset in more/ is read instead, and said so
    assert rows["qnli"][2:4] == [
        "{more/QNLI/train_subset/train.json,glue/QNLI/dev.tsv} | nyu-mll/glue/qnli",
        "8999/2731/2732",
    ]
    code, rows = run_cli(["tasks", "--data-dir", str(REAL_DATA), "--benchmark", "others"], capsys)
    assert rows["paws"][3] == "missing train, validation, test" and rows["scitail"][3] == "804/500/2126"


def test_without_a_data_dir_no_sizes(capsys):
    code, rows = run_cli(["tasks", "--benchmark", "superglue"], capsys)
    assert code == 0 and {row[3] for name, row in rows.items() if name != "TASK"} == {"-"}


def test_the_promptmix_dispatcher_reports_a_bad_benchmark(capsys):
    from promptmix.cli import main

    assert main(["tasks", "--benchmark", "glu"]) == 2
    assert "unknown benchmark 'glu'. Did you mean 'glue'?" in capsys.readouterr().err


def test_a_data_dir_that_does_not_exist_warns_and_lists_without_sizes(capsys, tmp_path):
    missing = tmp_path / "no-such-data"
    parser = argparse.ArgumentParser(prog="promptmix")
    tasks_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tasks", "--data-dir", str(missing), "--benchmark", "glue"])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert f"--data-dir {missing} ({missing}) is not a directory" in captured.err
    sizes = {re.split(r"\s{2,}", line.strip())[3] for line in captured.out.splitlines()[1:]}
    assert sizes == {"-"}  # not "missing train, validation" for every task


def test_tasks_list_is_the_same_as_tasks(capsys):
    """`promptmix tasks list`, as `promptmix prompts list` reads; it was an argparse error."""
    assert run_cli(["tasks", "list", "--benchmark", "superglue"], capsys) == run_cli(
        ["tasks", "--benchmark", "superglue"], capsys
    )
