"""Sharded training is real: two CPU processes launched with the shipped FSDP config (gloo)
shard the frozen backbone layer by layer, optimise only the prompt method, and end with the
same prompts as one process with the same global batch. Set-ups promptmix cannot run fail
with a message saying what to use instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import safetensors.torch
import yaml

from trainhelpers import config, model_dirs, random_library  # noqa: F401  (fixture)
from test_distributed import _free_port

ACCELERATE_FSDP = Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "fsdp.yaml"


def test_two_fsdp_processes_shard_the_backbone_and_match_one(model_dirs, tmp_path):
    from promptmix.training.stages import run_stage

    random_library(tmp_path / "prompts", model_dirs["llama"])
    settings = {"data__tasks": ["cb"], "library__sources": ["sst2", "rte"], "library__init_from": "rte",
                "optim__group_lr": {"attention": 0.1}, "optim__batch_size": 8, "optim__max_steps": 3, "eval__every": 2}
    two = config("attempt", model_dirs["llama"], tmp_path, run__dir=str(tmp_path / "two"), **settings)
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(two.to_dict()))
    # The shipped config, shrunk to 2 processes in fp32, exactly as its header tells a CPU user.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_FSDP),
           "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(_free_port()),
           "-m", "promptmix.cli", "train", "attempt", "--config", str(path)]
    done = subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    setup = json.loads((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[0])["setup"]
    assert setup["distributed"] == "FSDP" and setup["processes"] == 2
    assert setup["fsdp_units"] == 2 + 1  # each of the tiny Llama's 2 decoder layers, and the root
    per_process, frozen = setup["frozen_parameters_per_process"], setup["frozen_parameters"]
    assert len(per_process) == 2 and sum(per_process) == frozen and max(per_process) < 0.6 * frozen  # halves, not copies

    one = run_stage(config("attempt", model_dirs["llama"], tmp_path, run__dir=str(tmp_path / "one"), **settings))
    assert setup["optimized_parameters"] == one.trainable_parameters  # the method's parameters, nothing else
    final = ("checkpoints", "step-000003", "trainable.safetensors")
    one_state = safetensors.torch.load_file(tmp_path.joinpath("one", *final))
    two_state = safetensors.torch.load_file(tmp_path.joinpath("two", *final))
    assert one_state.keys() == two_state.keys()
    for key in one_state:
        assert (one_state[key] - two_state[key]).abs().max() <= 1e-5, key
    assert json.loads((tmp_path / "two" / "results.json").read_text())["test"] == one.test  # scored after training too


def _accelerator(fsdp_version: int | None = None):
    plugin = SimpleNamespace(fsdp_version=fsdp_version, ignored_modules=None)
    return SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin))


def test_deepspeed_without_a_gpu_is_refused_with_what_to_use(monkeypatch):
    from promptmix.training.sharding import ShardingError, configure

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ShardingError, match="needs CUDA GPUs.*fsdp.yaml"):
        configure(_accelerator(), cpu_processes=True)


def test_fsdp1_configs_are_refused_and_fsdp2_keeps_the_method_whole(monkeypatch):
    from promptmix.training.sharding import METHOD_MODULE, ShardingError, configure

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ShardingError, match="fsdp_version 1"):
        configure(_accelerator(fsdp_version=1), cpu_processes=False)
    accelerator = _accelerator(fsdp_version=2)
    configure(accelerator, cpu_processes=False)
    assert accelerator.state.fsdp_plugin.ignored_modules == METHOD_MODULE == "method"
