"""A user's task in YAML, through the command line on a tiny T5: trained with ``promptmix
train --tasks-dir``, then evaluated, answered and served from the run alone (the run keeps a
copy of its task file), and the run's card."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import yaml
from tiny_models import REPO
from trainhelpers import model_dirs  # noqa: F401  (fixture)

from promptmix.cli import main
from promptmix.tasks import registry

EXAMPLE_TASKS = REPO / "docs" / "example" / "tasks"


@pytest.fixture
def trained(model_dirs, tmp_path, clean_task_registry):
    config = {
        "stage": "prompt-tuning",
        "model": {"name": str(model_dirs["t5"])},
        "data": {"tasks": ["headlines"]},
        "method": {"prompt_tuning": {"prompt_length": 4}},
        "optim": {"batch_size": 4, "max_steps": 4, "warmup_steps": 1},
        "eval": {"every": 2, "batch_size": 8},
        "run": {"dir": str(tmp_path / "run"), "progress": False, "tensorboard": False, "log_every": 1},
    }
    (tmp_path / "headlines.yaml").write_text(yaml.safe_dump(config))
    assert (
        main(
            ["train", "prompt-tuning", "--config", str(tmp_path / "headlines.yaml"), "--tasks-dir", str(EXAMPLE_TASKS)]
        )
        == 0
    )
    registry._unregister("headlines")  # what follows must find the task through the run alone
    return tmp_path / "run"


def test_a_yaml_task_trains_evaluates_predicts_and_serves(trained, tmp_path, capsys):
    from promptmix.cli.predict import add_model_arguments, predictor_from_args
    from promptmix.serving.app import create_app
    from promptmix.serving.server import BackgroundServer

    summary = json.loads((trained / "results.json").read_text())
    copy = yaml.safe_load((trained / "tasks" / "headlines.yaml").read_text())
    assert copy["data"]["files"]["train"] == str(EXAMPLE_TASKS / "headlines" / "train.jsonl")  # absolute
    assert main(["eval", "--run", str(trained), "--split", "test", "--json"]) == 0  # no --tasks-dir
    test = json.loads(capsys.readouterr().out)
    assert test["headlines"] == pytest.approx(summary["test"]["headlines"])  # what training reported
    (tmp_path / "in.jsonl").write_text(json.dumps({"headline": "Dog elected mayor"}) + "\n")
    assert (
        main(
            [
                "predict",
                "--run",
                str(trained),
                "--task",
                "headlines",
                "--input",
                str(tmp_path / "in.jsonl"),
                "--output",
                str(tmp_path / "out.jsonl"),
            ]
        )
        == 0
    )
    answer = json.loads((tmp_path / "out.jsonl").read_text())
    assert answer["prediction"] in ("literal", "sarcastic") and set(answer["label_scores"]) == {"literal", "sarcastic"}

    import argparse

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    predictor = predictor_from_args(parser.parse_args(["--run", str(trained)]))

    async def ask(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            tasks = (await client.get("/v1/tasks")).json()
            served = await client.post(
                "/v1/predict", json={"task": "headlines", "inputs": [{"headline": "Dog elected mayor"}]}
            )
            return tasks, served.json()["predictions"][0]

    with BackgroundServer(create_app(predictor)) as server:
        tasks, served = asyncio.run(ask(server.url))
    assert tasks == [
        {
            "name": "headlines",
            "kind": "classification",
            "label_words": ["literal", "sarcastic"],
            "input_fields": ["headline"],
            "max_source_length": 64,
            "prompt_from": str(trained),
            "attention_over": None,
        }
    ]
    assert served["prediction"] == answer["prediction"] and served["score"] == pytest.approx(answer["score"], abs=1e-5)


def test_the_worked_examples_config_is_a_valid_preset_for_its_task(clean_task_registry):
    from promptmix.tasks import get_task, load_task_dir
    from promptmix.training.config import load_config

    config = load_config(REPO / "docs" / "example" / "headlines-prompt-tuning.yaml")
    assert (
        config.stage == "prompt-tuning" and config.data.tasks == ["headlines"] and config.model.name == "smollm2-135m"
    )
    load_task_dir(EXAMPLE_TASKS)
    assert get_task(config.data.tasks[0]).label_words == ["literal", "sarcastic"]


def test_an_lm_eval_task_file_trains_and_is_evaluated_and_answered_from_the_run_alone(
    model_dirs, tmp_path, capsys, clean_task_registry
):
    """lm-eval's COPA file (a !function input, Jinja choices) trains a prompt; the run keeps the
    definition (the function's module by absolute path) and eval / predict work from it alone."""
    import shutil

    lm_eval = REPO / "tests" / "tasks" / "fixtures" / "lm_eval"
    copa = REPO / "tests" / "tasks" / "fixtures" / "superglue" / "COPA"
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    shutil.copy(lm_eval / "utils.py", tasks_dir / "utils.py")
    (tasks_dir / "copa.yaml").write_text((lm_eval / "copa.yaml").read_text() + "name: copa-lm-eval\n")
    config = {
        "stage": "prompt-tuning",
        "model": {"name": str(model_dirs["t5"])},
        "data": {
            "tasks": ["copa-lm-eval"],
            "task_options": {
                "copa-lm-eval": {"files": {"train": str(copa / "train.jsonl"), "validation": str(copa / "val.jsonl")}}
            },
        },
        "method": {"prompt_tuning": {"prompt_length": 4}},
        "optim": {"batch_size": 2, "max_steps": 2, "warmup_steps": 1},
        "eval": {"every": 2, "batch_size": 8},
        "run": {"dir": str(tmp_path / "run"), "progress": False, "tensorboard": False, "log_every": 1},
    }
    (tmp_path / "copa.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "prompt-tuning", "--config", str(tmp_path / "copa.yaml"), "--tasks-dir", str(tasks_dir)]) == 0
    registry._unregister("copa-lm-eval")
    trained = tmp_path / "run"
    assert "!function" in (trained / "tasks" / "copa-lm-eval.yaml").read_text()
    capsys.readouterr()
    assert main(["eval", "--run", str(trained), "--split", "validation", "--json"]) == 0  # no --tasks-dir
    assert "copa-lm-eval" in json.loads(capsys.readouterr().out)
    record = {
        "premise": "The man broke his toe.",
        "choice1": "He dropped a hammer on his foot.",
        "choice2": "He got a hole in his sock.",
        "question": "cause",
    }
    (tmp_path / "in.jsonl").write_text(json.dumps(record) + "\n")
    assert (
        main(
            [
                "predict",
                "--run",
                str(trained),
                "--task",
                "copa-lm-eval",
                "--input",
                str(tmp_path / "in.jsonl"),
                "--output",
                str(tmp_path / "out.jsonl"),
            ]
        )
        == 0
    )
    answer = json.loads((tmp_path / "out.jsonl").read_text())
    assert answer["prediction"] in (record["choice1"], record["choice2"])
