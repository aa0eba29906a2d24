"""Inference on runs the training package really trained (a few steps of ATTEMPT on a tiny T5):
the attention heatmap of an ATTEMPT-m run and of a one-run-per-task experiment, `eval`
reproducing the test metrics training reported, and `predict` across both runs."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from predictor_factory import saved_tiny_t5
from tiny_models import REPO

from promptmix.cli import main
from promptmix.prompts.library import PromptLibrary
from promptmix.training.config import load_config
from promptmix.training.stages import run_stage

FIXTURES = REPO / "tests" / "tasks" / "fixtures"
SOURCES = {"src-sst2": "sst2", "src-rte": "rte"}


def _tiny_t5_with_sources(root, t5_tokenizer):
    """A saved tiny T5 and a library at ``root/prompts`` holding the SOURCES as seeded random prompts."""
    model_dir, backbone = saved_tiny_t5(root, t5_tokenizer)
    gen = torch.Generator().manual_seed(0)
    library = PromptLibrary(root / "prompts")
    for entry, task in SOURCES.items():
        library.add(
            entry,
            torch.randn(4, backbone.hidden_size, generator=gen) * 0.5,
            task=task,
            method="prompt-tuning",
            backbone=backbone,
        )
    return model_dir, backbone


@pytest.fixture(scope="module")
def trained(tmp_path_factory, t5_tokenizer):
    root = tmp_path_factory.mktemp("trained")
    model_dir, backbone = _tiny_t5_with_sources(root, t5_tokenizer)
    common = {
        "model.name": str(model_dir),
        "data.data_dir": str(FIXTURES),
        "method.prompt_tuning.prompt_length": 4,
        "method.attempt.attn_dim": 8,
        "optim.batch_size": 4,
        "optim.max_steps": 3,
        "optim.warmup_steps": 1,
        "eval.every": 0,
        "eval.batch_size": 8,
        "eval.max_new_tokens": 4,
        "run.save_every": 0,
        "run.progress": False,
        "run.tensorboard": False,
        "library.root": str(root / "prompts"),
        "library.sources": list(SOURCES),
        "library.init_from": "src-sst2",
    }
    runs = {"multi": root / "attempt-m", "per_task": root / "attempt"}
    run_stage(
        load_config(
            None,
            {**common, "data.tasks": ["cb", "stsb"], "data.multi_task": True, "run.dir": str(runs["multi"])},
            stage="attempt",
        ),
        backbone=backbone,
    )
    run_stage(
        load_config(None, {**common, "data.tasks": ["cb", "rte"], "run.dir": str(runs["per_task"])}, stage="attempt"),
        backbone=backbone,
    )
    return runs


@pytest.mark.parametrize("run, tasks", [("multi", ["cb", "stsb"]), ("per_task", ["cb", "rte"])])
def test_attention_heatmap_rows_sum_to_one(trained, tmp_path, capsys, run, tasks):
    png = tmp_path / "attention.png"
    assert main(["attention", "--run", str(trained[run]), "--split", "dev", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((tmp_path / "attention.csv").open()))
    assert [r["task"] for r in rows] == tasks
    for r in rows:
        weights = [float(r[c]) for c in (*SOURCES, "target")]
        assert sum(weights) == pytest.approx(1.0, abs=1e-5) and all(0 < w < 1 for w in weights)
        assert int(r["examples"]) == 2  # the fixture dev split


def test_eval_reproduces_the_test_metrics_training_reported(trained, capsys):
    for run in trained.values():
        assert main(["eval", "--run", str(run), "--split", "test", "--json"]) == 0
        ours = json.loads(capsys.readouterr().out)
        reported = json.loads((run / "results.json").read_text())["test"]
        assert ours.keys() == reported.keys()
        for task in ours:
            assert ours[task] == pytest.approx(reported[task]), task


def test_predict_mixes_tasks_of_an_attempt_m_run_and_a_per_task_run(trained, tmp_path, capsys):
    lines = [
        {"task": "stsb", "record": {"sentence1": "A man plays.", "sentence2": "A man sings."}},
        {"task": "rte", "record": {"sentence1": "It rains.", "sentence2": "It is wet."}},
        {"task": "cb", "text": "cb premise: It is late. hypothesis: It is early."},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    args = [
        "predict",
        "--run",
        str(trained["multi"]),
        "--run",
        str(trained["per_task"] / "rte"),
        "--input",
        str(tmp_path / "in.jsonl"),
        "--output",
        "-",
    ]
    assert main(args) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["task"] for o in out] == ["stsb", "rte", "cb"]
    assert all(set(o["attention"]) == {*SOURCES, "target"} for o in out)


# Scripted dev scores of the per-task-selected run (one per dev evaluation, steps 2, 4, 6): cb is
# best at step 2, stsb at step 4, their mean (method/) at step 4; rte never gets a dev value.
DEV_SCORES = [{"cb": 90.0, "stsb": 50.0}, {"cb": 60.0, "stsb": 95.0}, {"cb": 70.0, "stsb": 40.0}]


@pytest.fixture(scope="module")
def per_task_run(tmp_path_factory, t5_tokenizer):
    """An ATTEMPT-m run on cb, stsb and rte with ``eval.select: per-task``, its dev scores
    scripted (DEV_SCORES) so that cb's best step is not the mean's, its test set scored for real."""
    from promptmix.training import runs as training_runs

    root = tmp_path_factory.mktemp("per-task")
    model_dir, backbone = _tiny_t5_with_sources(root, t5_tokenizer)
    real_evaluate, evaluations = training_runs.evaluate, []

    def scripted_dev(model, tasks, split, *args, **kwargs):
        if split != "dev":
            return real_evaluate(model, tasks, split, *args, **kwargs)
        scores = DEV_SCORES[min(len(evaluations), len(DEV_SCORES) - 1)]
        evaluations.append(scores)
        out = {name: {tasks[name].task.main_metric: score} for name, score in scores.items()}
        return {**out, "score": sum(scores.values()) / len(scores)}

    run = root / "attempt-m-per-task"
    config = load_config(
        None,
        {
            "model.name": str(model_dir),
            "data.data_dir": str(FIXTURES),
            "data.tasks": ["cb", "stsb", "rte"],
            "data.multi_task": True,
            "method.prompt_tuning.prompt_length": 4,
            "method.attempt.attn_dim": 8,
            "optim.batch_size": 4,
            "optim.max_steps": 6,
            "optim.warmup_steps": 1,
            "eval.every": 2,
            "eval.select": "per-task",
            "eval.batch_size": 8,
            "eval.max_new_tokens": 4,
            "run.save_every": 0,
            "run.progress": False,
            "run.tensorboard": False,
            "run.dir": str(run),
            "library.root": str(root / "prompts"),
            "library.sources": list(SOURCES),
            "library.init_from": "src-sst2",
        },
        stage="attempt",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training_runs, "evaluate", scripted_dev)
        run_stage(config, backbone=backbone)
    extra = json.loads((run / "results.json").read_text())["extra"]
    assert extra["best_step_per_task"] == {"cb": 2, "stsb": 4} and extra["test_with_method"] == ["rte"]
    return {"run": run, "backbone": backbone}


def _prompts(method, task, hidden_size):
    """``method``'s prompts [2, m, d] for two ``task`` inputs (fixed random embeddings)."""
    emb = torch.randn(2, 5, hidden_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return method.eval()(emb, torch.ones(2, 5, dtype=torch.long), method.task_ids_for([task, task])).prompts


def test_eval_of_a_per_task_selected_run_reproduces_its_test_scores(per_task_run, capsys):
    """eval scored every task with method/ (the mean's best step), not with the best-per-task/<task>
    method each target's reported test score came from."""
    from promptmix.prompts.checkpoint import load_method
    from promptmix.rundirs.read import load_run_with_data

    run, backbone = per_task_run["run"], per_task_run["backbone"]
    loaded = load_run_with_data(run, backbone=backbone)  # what eval scores with
    assert list(loaded.tasks) == ["cb", "stsb", "rte"]
    assert loaded.sources == {
        "cb": str(run / "best-per-task" / "cb"),
        "stsb": str(run / "best-per-task" / "stsb"),
        "rte": str(run),
    }
    d = backbone.hidden_size
    best_cb = _prompts(load_method(run / "best-per-task" / "cb", backbone), "cb", d)
    assert torch.equal(_prompts(loaded.method, "cb", d), best_cb)
    assert not torch.equal(_prompts(load_method(run / "method", backbone), "cb", d), best_cb)  # steps 4 and 2
    assert main(["eval", "--run", str(run), "--split", "test", "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    reported = json.loads((run / "results.json").read_text())["test"]
    assert ours == reported
    assert main(["eval", "--run", str(run), "--split", "test"]) == 0
    out = capsys.readouterr().out
    for task, source in (("cb", run / "best-per-task" / "cb"), ("stsb", run / "best-per-task" / "stsb"), ("rte", run)):
        assert f"{task} (test, " in out and f"method {source}): " in out.split(f"{task} (test, ")[1].split("\n")[0]


def test_predictor_answers_each_target_with_its_best_per_task_method(per_task_run):
    from promptmix.cli.prompts import saved_method_of
    from promptmix.inference.loader import load_predictor
    from promptmix.prompts.checkpoint import SavedMethod, load_method
    from promptmix.rundirs.read import find_methods

    run, backbone = per_task_run["run"], per_task_run["backbone"]
    found = find_methods(run)
    assert [(s.name, s.task_names()) for s in found] == [
        (str(run / "best-per-task" / "cb"), ["cb"]),
        (str(run / "best-per-task" / "stsb"), ["stsb"]),
        (str(run), ["rte"]),
    ]
    predictor = load_predictor(run, backbone=backbone)
    router = predictor.method
    assert {t: router.member_of(t)[0] for t in ("cb", "stsb", "rte")} == {s.task_names()[0]: s.name for s in found}

    def prompts(method, task):
        return _prompts(method, task, backbone.hidden_size)

    whole = load_method(run / "method", backbone)
    for task, directory in (("cb", run / "best-per-task" / "cb"), ("stsb", run / "best-per-task" / "stsb")):
        assert torch.equal(prompts(router, task), prompts(load_method(directory, backbone), task))
    assert not torch.equal(prompts(router, "cb"), prompts(whole, "cb"))  # step 2, not the mean's step 4
    assert torch.equal(prompts(router, "stsb"), prompts(whole, "stsb"))  # stsb's best is the mean's
    assert torch.equal(prompts(router, "rte"), prompts(whole, "rte"))  # no dev value: method/
    # The answers' label scores too: those of best-per-task/cb alone, not those of method/.
    example = [{"task": "cb", "text": "cb premise: It is late. hypothesis: It is early."}]
    served = predictor.predict(example)[0].label_scores
    alone = load_predictor([SavedMethod.read(run / "best-per-task" / "cb")], backbone=backbone)
    assert served == alone.predict(example)[0].label_scores
    assert (
        served != load_predictor([SavedMethod.read(run / "method")], backbone=backbone).predict(example)[0].label_scores
    )
    assert saved_method_of(run, "cb").directory == run / "best-per-task" / "cb"
    assert saved_method_of(run, "rte").directory == run / "method"


def test_serve_lists_the_directory_answering_each_task_of_a_per_task_selected_run(per_task_run, monkeypatch, capsys):
    from promptmix.serving import server as server_module

    class NotServing:  # instead of listening
        def __init__(self, *args, **kwargs):
            pass

        def run(self):
            pass

    monkeypatch.setattr(server_module, "make_server", NotServing)
    before, run = torch.get_num_threads(), per_task_run["run"]
    try:
        assert main(["serve", "--run", str(run), "--port", "0", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    for task, source in (("cb", run / "best-per-task" / "cb"), ("stsb", run / "best-per-task" / "stsb"), ("rte", run)):
        assert f"  {task}: {source}\n" in out
