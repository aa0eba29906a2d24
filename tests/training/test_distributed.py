"""Two CPU processes (gloo, through ``accelerate launch``) end with the same prompts as one
process with the same global batch: each process takes half of every global batch and the
loss is normalised by the global token count, so the DDP-averaged gradient is the same."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import safetensors.torch
import yaml

from trainhelpers import config, model_dirs, random_library  # noqa: F401  (fixture)


ACCELERATE_DDP = Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "ddp.yaml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_match_one(model_dirs, tmp_path):
    from promptmix.training.stages import run_stage

    random_library(tmp_path / "prompts", model_dirs["t5"])
    settings = {"data__tasks": ["cb"], "library__sources": ["sst2", "rte"], "library__init_from": "rte",
                "optim__group_lr": {"attention": 0.1}, "optim__batch_size": 8, "optim__max_steps": 3, "eval__every": 2}
    two = config("attempt", model_dirs["t5"], tmp_path, run__dir=str(tmp_path / "two"), **settings)
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(two.to_dict()))
    # The shipped DDP config, shrunk to 2 processes in fp32: with no GPU the processes join a
    # gloo group on CPU, as a user's CPU run of the documented command would.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_DDP),
           "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(_free_port()),
           "-m", "promptmix.cli", "train", "attempt", "--config", str(path)]
    done = subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rng = safetensors.torch.load_file(tmp_path / "two" / "checkpoints" / "step-000003" / "rng.safetensors")
    assert sorted(rng) == ["rank0.torch", "rank1.torch"]  # really two processes

    run_stage(config("attempt", model_dirs["t5"], tmp_path, run__dir=str(tmp_path / "one"), **settings))
    final = ("checkpoints", "step-000003", "trainable.safetensors")
    one_state = safetensors.torch.load_file(tmp_path.joinpath("one", *final))
    two_state = safetensors.torch.load_file(tmp_path.joinpath("two", *final))
    assert one_state.keys() == two_state.keys()
    for key in one_state:
        assert (one_state[key] - two_state[key]).abs().max() <= 1e-5, key
