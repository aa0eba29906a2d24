"""What a trained run leaves for later use: the input limit it trained with (inference holds
inputs to it), and its card (README.md with the training curves), updated on resume."""

from __future__ import annotations

import argparse
import json

import pytest
from trainhelpers import base_overrides, model_dirs  # noqa: F401  (fixture)

from promptmix.inference.loader import load_predictor
from promptmix.training.config import load_config
from promptmix.training.stages import run_stage


@pytest.fixture(scope="module")
def trained(model_dirs, tmp_path_factory):
    """Prompt tuning on rte for 4 steps on the tiny T5, inputs limited to 96 tokens."""
    tmp = tmp_path_factory.mktemp("run-outputs")
    overrides = base_overrides(model_dirs["t5"], tmp, **{"data.tasks": ["rte"], "data.max_source_length": 96})
    result = run_stage(load_config(None, overrides, stage="prompt-tuning"))
    assert result.completed
    return tmp / "run"


def _predictor(run):
    from promptmix.cli.predict import add_model_arguments, predictor_from_args

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    return predictor_from_args(parser.parse_args(["--run", str(run)]))


def test_the_method_records_its_input_limit_and_inference_keeps_it(trained):
    record = json.loads((trained / "method" / "method.json").read_text())
    assert record["extra"]["max_source_length"] == {"rte": 96}
    assert _predictor(trained).max_source_lengths == {"rte": 96}  # not rte's own 256
    assert load_predictor(trained).max_source_lengths == {"rte": 96}  # the library call, given the run's path


def test_a_run_saved_before_the_record_held_it_falls_back_to_its_config(trained, tmp_path):
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(trained, old)
    path = old / "method" / "method.json"
    record = json.loads(path.read_text())
    del record["extra"]["max_source_length"]
    path.write_text(json.dumps(record))
    assert _predictor(old).max_source_lengths == {"rte": 96}  # from config.yaml's data.max_source_length
    assert load_predictor(old).max_source_lengths == {"rte": 96}


# -- the run's card --------------------------------------------------------------------------------
def test_the_card_says_what_the_run_is_and_how_it_did(trained):
    from promptmix._provenance import git_revision, versions
    from promptmix.loading import load_backbone

    card = (trained / "README.md").read_text()
    results = json.loads((trained / "results.json").read_text())
    backbone = load_backbone(json.loads((trained / "method" / "method.json").read_text())["backbone"]["backbone"])
    assert card.startswith("# prompt-tuning on rte\n") and "- status: completed: 4 steps" in card
    assert f"embedding fingerprint `{backbone.fingerprint()}`" in card and f"`{backbone.name}`" in card
    assert f"- best dev step: {results['best_step']}" in card
    assert f"- trainable parameters: {results['trainable_parameters']:,}" in card
    assert f"- wall time in the training loop: {results['seconds']:.1f} s" in card
    assert "| rte | Python class promptmix.tasks.glue.RTE | 16 / 4 / 4 | accuracy |" in card
    assert (
        f"| dev | rte | accuracy {results['dev']['rte']['accuracy']:.2f}, score {results['dev']['rte']['score']:.2f} |"
        in card
    )
    assert f"| test | **mean of the tasks' main metrics** | **{results['test']['score']:.2f}** |" in card
    assert "max_source_length: 96" in card.split("```yaml")[1]  # the resolved config
    assert f"torch {versions()['torch']}" in card and f"git revision: `{git_revision()}`" in card
    assert "![training loss and dev score over steps](training_curves.png)" in card


def test_the_curves_are_the_logged_loss_and_dev_scores(trained):
    from promptmix.training.card import curves

    lines = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    loss, dev = curves(trained / "metrics.jsonl")
    assert loss == [(r["step"], r["loss"]) for r in lines if "loss" in r] and loss[-1][0] == 4
    assert dev == [(r["step"], r["dev"]["score"]) for r in lines if "dev" in r] and [s for s, _ in dev] == [2, 4]
    png = (trained / "training_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 900  # 9 in at 100 dpi


def test_the_card_of_a_stopped_run_says_so_and_a_resume_updates_it(model_dirs, tmp_path):
    overrides = base_overrides(model_dirs["llama"], tmp_path, **{"data.tasks": ["rte"], "run.stop_after": 2})
    first = run_stage(load_config(None, overrides, stage="prompt-tuning"))
    assert not first.completed
    card = (tmp_path / "run" / "README.md").read_text()
    assert "- status: in progress: stopped at step 2 of 4; continue with `promptmix train prompt-tuning" in card
    assert "No dev or test results yet." not in card  # dev ran at step 2
    overrides["run.stop_after"] = None
    assert run_stage(load_config(None, overrides, stage="prompt-tuning"), resume=True).completed
    card = (tmp_path / "run" / "README.md").read_text()
    assert "- status: completed: 4 steps" in card and "| test | rte |" in card


def test_test_predictions_are_kept_and_give_the_test_score(trained):
    """<run>/test_predictions/<task>.jsonl holds the scored checkpoint's answer per test example,
    in order: the accuracy recomputed from it is results.json's test score."""
    results = json.loads((trained / "results.json").read_text())
    rows = [json.loads(line) for line in (trained / "test_predictions" / "rte.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(set(r) == {"idx", "prediction", "text", "label"} for r in rows)
    accuracy = 100 * sum(r["prediction"] == r["label"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(results["test"]["rte"]["accuracy"])
