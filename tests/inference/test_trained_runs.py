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


@pytest.fixture(scope="module")
def trained(tmp_path_factory, t5_tokenizer):
    root = tmp_path_factory.mktemp("trained")
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
