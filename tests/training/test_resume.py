"""Train -> checkpoint -> stop or kill -> --resume reaches exactly the parameters, optimizer
and scheduler state of an uninterrupted run (bit-identical on CPU), with dropout on so the
restored RNG matters, across epoch boundaries and for the stochastic task sampler."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import yaml
from trainhelpers import config, model_dirs, random_library  # noqa: F401  (fixture)

CLI = "import sys; from promptmix.cli import main; sys.exit(main())"
STAGE_SETTINGS = {
    # ATTEMPT on CB (two parameter groups, two-speed rates) with backbone dropout 0.1.
    "attempt": {
        "data__tasks": ["cb"],
        "library__sources": ["sst2", "rte"],
        "library__init_from": "rte",
        "optim__group_lr": {"attention": 0.1},
    },
    # MPT distillation with a frozen teacher and MPT's stochastic task sampling.
    "mpt-source": {"library__sources": ["sst2", "rte"], "data__mixing": "stochastic"},
}


def _settings(stage: str, steps: int) -> dict:
    return {
        **STAGE_SETTINGS[stage],
        "optim__max_steps": steps,
        "optim__batch_size": 8,
        "model__backbone_dropout": 0.1,
        "eval__every": 3,
        "run__save_every": 2,
    }


def _final_state(run_dir: Path) -> dict:
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["checkpoint"]
    ckpt = run_dir / "checkpoints" / latest
    return {
        "trainable": safetensors.torch.load_file(ckpt / "trainable.safetensors"),
        "optimizer": safetensors.torch.load_file(ckpt / "optimizer.safetensors"),
        "scheduler": json.loads((ckpt / "scheduler.json").read_text()),
        "method": safetensors.torch.load_file(run_dir / "method" / "method.safetensors"),
        "results": json.loads((run_dir / "results.json").read_text()),
    }


def assert_identical(a: dict, b: dict) -> None:
    for part in ("trainable", "optimizer", "method"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert a[part][key].dtype == b[part][key].dtype
            assert a[part][key].equal(b[part][key]), f"{part}.{key} differs"
    assert a["scheduler"] == b["scheduler"]
    assert a["results"]["dev"] == b["results"]["dev"] and a["results"]["test"] == b["results"]["test"]


@pytest.mark.parametrize("stage", ["attempt", "mpt-source"])
def test_stop_and_resume_is_bit_identical(stage, model_dirs, tmp_path):
    from promptmix.training.stages import run_stage

    random_library(tmp_path / "prompts", model_dirs["t5"])
    steps = 7  # 8-example batches: CB fixture (18) has 3 per epoch, so this crosses two epochs
    whole = run_stage(
        config(stage, model_dirs["t5"], tmp_path, run__dir=str(tmp_path / "whole"), **_settings(stage, steps))
    )
    assert whole.completed and whole.steps == steps
    parted = config(
        stage,
        model_dirs["t5"],
        tmp_path,
        run__dir=str(tmp_path / "parted"),
        run__stop_after=3,
        **_settings(stage, steps),
    )
    first = run_stage(parted)
    assert not first.completed and first.steps == 3
    assert not (tmp_path / "parted" / "results.json").exists()
    second = run_stage(parted, resume=True)  # stop_after counts per invocation: 3 more
    assert not second.completed and second.steps == 6
    last = run_stage(parted, resume=True)
    assert last.completed and last.steps == steps
    assert_identical(_final_state(tmp_path / "whole"), _final_state(tmp_path / "parted"))
    lines = [json.loads(x) for x in (tmp_path / "parted" / "metrics.jsonl").read_text().splitlines()]
    steps_logged = [x["step"] for x in lines if "dev" in x]
    assert steps_logged == sorted(set(steps_logged))  # no duplicate lines from the interrupted invocations
    assert all(x["dev_seconds"] > 0 for x in lines if "dev" in x)  # each evaluation's wall time is logged


def test_sigkill_then_resume(model_dirs, tmp_path):
    """A process killed with SIGKILL at an arbitrary moment after its first checkpoint leaves a
    resumable latest checkpoint; resuming reaches the uninterrupted run's state."""
    from promptmix.training.stages import run_stage

    random_library(tmp_path / "prompts", model_dirs["t5"])
    steps = 10
    settings = {**_settings("attempt", steps), "optim__batch_size": 4, "eval__every": 0, "run__save_every": 1}
    whole = run_stage(config("attempt", model_dirs["t5"], tmp_path, run__dir=str(tmp_path / "whole"), **settings))
    killed = config("attempt", model_dirs["t5"], tmp_path, run__dir=str(tmp_path / "killed"), **settings)
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(killed.to_dict()))
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "train", "attempt", "--config", str(path)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    pointer = tmp_path / "killed" / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 120
    while not (pointer.exists() and json.loads(pointer.read_text())["step"] >= 3):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_at_kill = json.loads(pointer.read_text())["step"]
    assert step_at_kill < steps, "the run finished before it could be killed; raise `steps`"
    resumed = run_stage(killed, resume=True)
    assert resumed.completed and whole.completed
    assert_identical(_final_state(tmp_path / "whole"), _final_state(tmp_path / "killed"))


def test_a_run_killed_before_its_first_checkpoint_logs_step_0_once_on_resume(model_dirs, tmp_path):
    """An invocation killed after its step-0 evaluation but before its first checkpoint leaves
    that evaluation in metrics.jsonl; the resumed run starts again from step 0 and evaluates
    step 0 again, so the old line must go (it once showed as a doubled first point of a curve)."""
    from promptmix.training.stages import run_stage

    random_library(tmp_path / "prompts", model_dirs["t5"])
    settings = {**_settings("attempt", 4), "eval__at_start": True, "run__stop_after": 1, "run__save_every": 2}
    cfg = config("attempt", model_dirs["t5"], tmp_path, run__dir=str(tmp_path / "run"), **settings)
    first = run_stage(cfg)
    assert first.steps == 1
    # What a SIGKILL between the step-0 evaluation and the first checkpoint leaves behind.
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    resumed = run_stage(cfg, resume=True)  # from step 0 again, one step (stop_after counts per invocation)
    assert resumed.steps == 1
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "dev" in x] == [0]
