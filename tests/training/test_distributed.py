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


# ATTEMPT on CB over two random sources, 3 steps of global batch 8, dev scored every 2
SETTINGS = {
    "data__tasks": ["cb"],
    "library__sources": ["sst2", "rte"],
    "library__init_from": "rte",
    "optim__group_lr": {"attention": 0.1},
    "optim__batch_size": 8,
    "optim__max_steps": 3,
    "eval__every": 2,
}
FINAL = ("checkpoints", "step-000003", "trainable.safetensors")


def launch_two_processes(model_dir, tmp_path, accelerate_config: Path) -> None:
    """The SETTINGS run in ``tmp_path/two``, launched with a shipped Accelerate config shrunk to
    2 processes in fp32, exactly as its header tells a CPU user: with no GPU the processes join
    a gloo group on CPU."""
    random_library(tmp_path / "prompts", model_dir)
    two = config("attempt", model_dir, tmp_path, run__dir=str(tmp_path / "two"), **SETTINGS)
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(two.to_dict()))
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(accelerate_config),
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "promptmix.cli",
        "train",
        "attempt",
        "--config",
        str(path),
    ]
    done = subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def run_one_process_and_compare(model_dir, tmp_path):
    """The same run in one process (``tmp_path/one``); its final trainable state must equal the
    two-process run's within float reduction-order noise. Returns the one-process result."""
    from promptmix.training.stages import run_stage

    one = run_stage(config("attempt", model_dir, tmp_path, run__dir=str(tmp_path / "one"), **SETTINGS))
    one_state = safetensors.torch.load_file(tmp_path.joinpath("one", *FINAL))
    two_state = safetensors.torch.load_file(tmp_path.joinpath("two", *FINAL))
    assert one_state.keys() == two_state.keys()
    for key in one_state:
        assert (one_state[key] - two_state[key]).abs().max() <= 1e-5, key
    return one


def test_two_processes_match_one(model_dirs, tmp_path):
    launch_two_processes(model_dirs["t5"], tmp_path, ACCELERATE_DDP)
    rng = safetensors.torch.load_file(tmp_path / "two" / "checkpoints" / "step-000003" / "rng.safetensors")
    assert sorted(rng) == ["rank0.torch", "rank1.torch"]  # really two processes
    run_one_process_and_compare(model_dirs["t5"], tmp_path)
