"""Sharded training is real: two CPU processes launched with the shipped FSDP config (gloo)
shard the frozen backbone layer by layer, optimise only the prompt method, and end with the
same prompts as one process with the same global batch. Set-ups promptmix cannot run fail
with a message saying what to use instead."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_distributed import launch_two_processes, run_one_process_and_compare
from trainhelpers import model_dirs  # noqa: F401  (fixture)

ACCELERATE_FSDP = Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "fsdp.yaml"


def test_two_fsdp_processes_shard_the_backbone_and_match_one(model_dirs, tmp_path):
    launch_two_processes(model_dirs["llama"], tmp_path, ACCELERATE_FSDP)
    setup = json.loads((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[0])["setup"]
    assert setup["distributed"] == "FSDP" and setup["processes"] == 2
    assert setup["fsdp_units"] == 2 + 1  # each of the tiny Llama's 2 decoder layers, and the root
    per_process, frozen = setup["frozen_parameters_per_process"], setup["frozen_parameters"]
    assert (
        len(per_process) == 2 and sum(per_process) == frozen and max(per_process) < 0.6 * frozen
    )  # halves, not copies
    one = run_one_process_and_compare(model_dirs["llama"], tmp_path)
    assert setup["optimized_parameters"] == one.trainable_parameters  # the method's parameters, nothing else
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
