"""One way to validate (issue 34.3): the training and pipeline configs, the method and prompt
records and the HTTP request bodies are pydantic-validated types with their choices and bounds
declared on the fields, read through one function; a value out of bounds or off the list is
refused naming where it was read, the field and the value, whether it comes from a file or from
code."""

from __future__ import annotations

import json
import re

import pydantic
import pytest
import torch

from promptmix._validation import explain, validate
from promptmix.prompts import AttemptConfig, MPTConfig, SoftPromptConfig, build_method
from promptmix.prompts.checkpoint import MethodRecord, load_method, read_method_record, save_method
from promptmix.prompts.library import PromptLibrary
from promptmix.serving.app import CompletionRequest, PredictRequest, ServeConfig
from promptmix.serving.batcher import BatcherConfig
from promptmix.training.config import OptimConfig, TrainConfig, load_config
from promptmix.training.pipeline import PipelineConfig

IDENTITY = {"backbone": "tiny", "hidden_size": 8, "fingerprint": "0123456789abcdef"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=0", "optim.lr must be > 0, got 0"),
        ("optim.group_lr={attention: -0.1}", "optim.group_lr.attention must be > 0, got -0.1"),
        ("data.mixing=random", "data.mixing must be one of 'proportional' or 'stochastic', got 'random'"),
        ("data.kappa=1", "data.kappa must be >= 2, got 1"),
        ("optim.warmup_ratio=1.5", "optim.warmup_ratio must be < 1, got 1.5"),
        ("eval.every=-1", "eval.every must be >= 0, got -1"),
        ("eval.every=weekly", "eval.every must be an integer or 'epoch', got 'weekly'"),
        ("model.name=''", "model.name must be non-empty, got ''"),
        ("method.attempt.attention=tokens", "method.attempt.attention must be one of 'instance', 'token' or"),
        ("method.mpt.rank=0", "method.mpt.rank must be >= 1, got 0"),
    ],
)
def test_a_training_config_out_of_bounds_names_the_file_key_and_value(tmp_path, override, message):
    preset = tmp_path / "preset.yaml"
    key, _, value = override.partition("=")
    section, _, name = key.rpartition(".")
    nested = f"{{{name}: {value}}}"
    for part in reversed(section.split(".")):
        nested = f"{{{part}: {nested}}}"
    preset.write_text(f"data: {{tasks: [rte]}}\n{nested[1:-1]}\n")
    with pytest.raises(ValueError) as err:
        load_config(preset)
    assert str(err.value).startswith(f"{preset}: {message}"), str(err.value)


def test_a_config_built_in_code_is_checked_as_a_loaded_one():
    with pytest.raises(ValueError, match=r"^lr must be > 0, got -1$"):
        OptimConfig(lr=-1)
    with pytest.raises(ValueError, match=r"^attention must be one of 'instance', 'token' or 'constant', got 'x'$"):
        AttemptConfig(attention="x")
    with pytest.raises(ValueError, match=r"^init must be one of 'vocab', 'class-label', 'text' or 'random'"):
        SoftPromptConfig(init="words")
    with pytest.raises(ValueError, match=r"^prompt_length must be >= 1, got 0$"):
        MPTConfig(prompt_length=0)
    with pytest.raises(ValueError, match=r"^rank: expected int, got '2'$"):
        MPTConfig(rank="2")
    # A rule between fields is the one written by hand, and raises as written.
    with pytest.raises(ValueError, match="attention='constant' has no softmax"):
        AttemptConfig(attention="constant", learn_temperature=True)
    with pytest.raises(ValueError, match="not divisible by gradient_accumulation_steps 4"):
        OptimConfig(batch_size=30, gradient_accumulation_steps=4)
    with pytest.raises(ValueError, match="stage 'attempt' needs library.sources"):
        TrainConfig(stage="attempt")


def _pipeline(tmp_path, body: str):
    (tmp_path / "pt.yaml").write_text("stage: prompt-tuning\ndata: {tasks: [rte]}\n")
    (tmp_path / "pipe.yaml").write_text(body)
    return tmp_path / "pipe.yaml"


@pytest.mark.parametrize(
    "body, message",
    [
        ("stages: []\n", "stages must be non-empty, got []"),
        ("stages: [{name: '', config: pt.yaml}]\n", "stages.0.name must be non-empty, got ''"),
        ("stages: [{name: a, config: pt.yaml, label: 3}]\n", "stages.0.label: expected str | None, got 3"),
        ("stages: [{nme: a, config: pt.yaml}]\n", "stages.0: unknown key(s) ['nme'] (did you mean name?)"),
        ("stage: [{name: a, config: pt.yaml}]\n", "unknown key(s) ['stage'] (did you mean stages?)"),
        ("stages: [{name: a, config: pt.yaml}, {name: a, config: pt.yaml}]\n", "stage names must be unique"),
    ],
)
def test_a_pipeline_config_out_of_bounds_names_the_file_key_and_value(tmp_path, body, message):
    path = _pipeline(tmp_path, body)
    with pytest.raises(ValueError) as err:
        PipelineConfig.load(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), str(err.value)


def test_a_pipeline_stage_config_out_of_bounds_names_the_stage_key_and_value(tmp_path):
    path = _pipeline(tmp_path, "stages: [{name: a, config: pt.yaml, set: {optim.batch_size: 0}}]\n")
    with pytest.raises(ValueError, match=r"stage 'a' .*pt\.yaml\): optim\.batch_size must be >= 1, got 0"):
        PipelineConfig.load(path)


def _attempt():
    config = {"method": "attempt", "prompt_length": 2, "attn_dim": 2, "tasks": ["rte"], "source_names": ["a"]}
    return build_method(config, hidden_size=8)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["backbone"].update(hidden_size=0), "backbone.hidden_size must be >= 1, got 0"),
        (lambda r: r["backbone"].update(hidden_size="8"), "backbone.hidden_size: expected int, got '8'"),
        (lambda r: r.update(sha256="beef"), "sha256 must be a string matching '^[0-9a-f]{64}$', got 'beef'"),
        (lambda r: r.update(format_version=2), "format_version must be <= 1, got 2 (written by a newer promptmix"),
        (lambda r: r.update(extras={}), "unknown key(s) ['extras'] (did you mean extra?)"),
    ],
)
def test_a_method_record_out_of_bounds_names_the_file_field_and_value(tmp_path, edit, message):
    save_method(_attempt(), tmp_path, IDENTITY)
    record = json.loads((tmp_path / "method.json").read_text())
    edit(record)
    (tmp_path / "method.json").write_text(json.dumps(record))
    with pytest.raises(ValueError) as err:
        read_method_record(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'method.json'}: {message}"), str(err.value)


def test_a_method_records_config_is_checked_by_the_methods_own_config_type(tmp_path):
    save_method(_attempt(), tmp_path, IDENTITY)
    record = json.loads((tmp_path / "method.json").read_text())
    record["config"]["attention"] = "tokens"
    (tmp_path / "method.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"method\.json: field 'config' .*attention must be one of .*got 'tokens'"):
        load_method(tmp_path)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("prompt_length", 0, "prompt_length must be >= 1, got 0"),
        ("hidden_size", True, "hidden_size: expected int, got True"),
        ("metrics", {"accuracy": "high"}, "metrics.accuracy: expected float, got 'high'"),
        ("name", "a b", "name must be a string matching"),
        ("format_version", 3, "format_version must be <= 1, got 3 (written by a newer promptmix; upgrade it)"),
    ],
)
def test_a_prompt_record_out_of_bounds_names_the_file_field_and_value(tmp_path, field, value, message):
    library = PromptLibrary(tmp_path)
    library.add("rte", torch.zeros(2, 8), task="rte", method="prompt-tuning", backbone=IDENTITY)
    record = json.loads(library.record_path("rte").read_text())
    library.record_path("rte").write_text(json.dumps({**record, field: value}))
    with pytest.raises(ValueError) as err:
        library.get("rte")
    assert str(err.value).startswith(f"{library.record_path('rte')}: {message}"), str(err.value)


def test_a_prompt_record_keeps_a_nan_metric_it_was_saved_with(tmp_path):
    """A dev correlation of constant answers is NaN; a record holding one was written and must load."""
    library = PromptLibrary(tmp_path)
    library.add(
        "stsb",
        torch.zeros(2, 8),
        task="stsb",
        method="prompt-tuning",
        backbone=IDENTITY,
        metrics={"pearson": float("nan")},
    )
    assert str(library.get("stsb").metrics["pearson"]) == "nan"


@pytest.mark.parametrize(
    "model, body, message",
    [
        (PredictRequest, {"task": "rte", "inputs": []}, "inputs must be non-empty, got []"),
        (PredictRequest, {"task": "rte", "inputs": "x"}, "inputs: expected list[dict[str, Any] | str], got 'x'"),
        (CompletionRequest, {"model": "rte", "prompt": "x", "n": 2}, "n must be <= 1, got 2"),
        (CompletionRequest, {"model": "rte", "prompt": "x", "max_tokens": 0}, "max_tokens must be >= 1, got 0"),
        (
            CompletionRequest,
            {"model": "rte", "prompt": "x", "max_tokens": 2.0},
            "max_tokens: expected int | None, got 2.0",
        ),
        (CompletionRequest, {"model": "rte", "prompt": "x", "stream": True}, "stream must be False, got True"),
        (CompletionRequest, {"model": "rte", "prompt": []}, "prompt must be non-empty, got []"),
    ],
)
def test_an_http_body_out_of_bounds_names_the_field_and_value(model, body, message):
    """Strict as the configs are (2.0 is no integer); the endpoint words them so (tests/serving)."""
    with pytest.raises(pydantic.ValidationError) as err:
        model.model_validate(body)
    assert explain(model, err.value.errors()) == message


def test_the_server_limits_are_declared_too():
    with pytest.raises(ValueError, match=r"^max_wait_ms must be >= 0, got -1$"):
        BatcherConfig(max_wait_ms=-1)
    with pytest.raises(ValueError, match=r"^max_body_bytes must be >= \d+, got 10$"):
        ServeConfig(max_body_bytes=10)
    with pytest.raises(ValueError, match=re.escape("max_inputs_per_request must lie in [1, max_queue=8], got 9")):
        ServeConfig(BatcherConfig(max_queue=8), max_inputs_per_request=9)


def test_validate_is_the_one_loader_and_names_its_source():
    with pytest.raises(ValueError, match=r"^somewhere\.json: missing field 'sha256'$"):
        validate(MethodRecord, {"config": {}, "backbone": IDENTITY}, "somewhere.json")
