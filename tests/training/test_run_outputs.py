"""What a trained run leaves for later use: the input limit it trained with (inference holds
inputs to it)."""

from __future__ import annotations

import argparse
import json

import pytest

from promptmix.training.config import load_config
from promptmix.training.stages import run_stage
from trainhelpers import base_overrides, model_dirs  # noqa: F401  (fixture)


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


def test_a_run_saved_before_the_record_held_it_falls_back_to_its_config(trained, tmp_path):
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(trained, old)
    path = old / "method" / "method.json"
    record = json.loads(path.read_text())
    del record["extra"]["max_source_length"]
    path.write_text(json.dumps(record))
    assert _predictor(old).max_source_lengths == {"rte": 96}  # from config.yaml's data.max_source_length
