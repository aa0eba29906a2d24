"""Crashes and damage on disk: a process killed between the two renames of a directory swap
leaves something a reader and a resumed run put right; a checkpoint file changed after it was
written is refused, naming the file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_resume import _final_state, _settings, assert_identical
from trainhelpers import config, model_dirs, random_library  # noqa: F401  (fixture)

# Replaces the directory argv[1] with a copy of the directory argv[2] through atomic_directory,
# and dies (as SIGKILL would: no cleanup, no finally) right after rename number argv[3], or,
# with argv[3] == "gone", after the first rename that left no directory at argv[1].
KILL_DURING_SWAP = """
import os, shutil, sys
from pathlib import Path
from promptmix._io import atomic_directory
target, source, when = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
count = [0]
def dying(real):
    def rename(src, dst):
        real(src, dst)
        count[0] += 1
        if str(count[0]) == when or (when == "gone" and not target.exists()):
            os._exit(137)
    return rename
os.rename, os.replace = dying(os.rename), dying(os.replace)
with atomic_directory(target, overwrite=True) as tmp:
    for f in source.iterdir():
        shutil.copy(f, tmp / f.name)
"""


def _kill_during_swap(target: Path, source: Path, when: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILL_DURING_SWAP, str(target), str(source), when],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 137, proc.stderr


def _hidden(directory: Path) -> list[str]:
    """Hidden leftovers (the run's lock file is part of the layout: it stays, unlocked)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".") and p.name != ".promptmix-run.lock")


@pytest.mark.parametrize("after, survivor", [(1, "old"), (2, "new"), (3, "new")])
def test_a_swap_killed_after_each_rename_recovers_one_whole_version(tmp_path, after, survivor):
    """Rename 1 stages the finished copy, 2 moves the old one aside (the commit point), 3 puts
    the new one in place. Whichever was the last, recovery leaves exactly one complete version
    at the name (the new one once the swap committed) and no hidden leftovers."""
    from promptmix._io import recover_directory

    target, source = tmp_path / "method", tmp_path / "source"
    for directory, text in ((target, "old"), (source, "new")):
        directory.mkdir()
        (directory / "a.txt").write_text(text)
        (directory / "b.txt").write_text(text)
    _kill_during_swap(target, source, str(after))
    assert target.is_dir() == (after != 2)  # between renames 2 and 3 the name is missing
    recover_directory(target, clean=True)
    assert {f.name: f.read_text() for f in target.iterdir()} == {"a.txt": survivor, "b.txt": survivor}
    assert _hidden(tmp_path) == []


def test_a_reader_finishes_a_swap_without_deleting_a_writer_s_files(tmp_path):
    from promptmix._io import recover_directory

    target = tmp_path / "method"
    target.mkdir()
    (target / "a.txt").write_text("old")
    building = tmp_path / ".method.k3j2abcd.tmp"  # another process's copy, still being built
    building.mkdir()
    assert not recover_directory(target) and building.is_dir()
    staged, retired = tmp_path / ".method.new.tmp", tmp_path / ".method.old.tmp"
    target.rename(retired)
    staged.mkdir()
    (staged / "a.txt").write_text("new")
    assert recover_directory(target)
    assert (target / "a.txt").read_text() == "new" and _hidden(tmp_path) == [building.name]


def test_resume_and_serving_after_a_kill_between_the_renames_of_method(model_dirs, tmp_path):
    """The state a kill mid-swap leaves (no method/, the copies under hidden names): a server
    loading the run finds the method, and --resume completes the run to exactly the
    uninterrupted run's state, with no hidden leftovers."""
    from promptmix.prompts.checkpoint import load_method
    from promptmix.rundirs.read import find_methods
    from promptmix.training.stages import run_stage

    random_library(tmp_path / "prompts", model_dirs["t5"])
    steps, stage = 6, "attempt"
    whole = run_stage(
        config(stage, model_dirs["t5"], tmp_path, run__dir=str(tmp_path / "whole"), **_settings(stage, steps))
    )
    parted = config(
        stage,
        model_dirs["t5"],
        tmp_path,
        run__dir=str(tmp_path / "parted"),
        run__stop_after=3,
        **_settings(stage, steps),
    )
    assert not run_stage(parted).completed
    run = tmp_path / "parted"
    same = tmp_path / "same-method"
    shutil.copytree(run / "method", same)
    _kill_during_swap(run / "method", same, "gone")  # while the best method was rewritten
    assert not (run / "method").exists()

    served = tmp_path / "served"
    shutil.copytree(run, served)

    last = run_stage(parted, resume=True)
    assert last.completed and whole.completed and last.steps == steps
    assert_identical(_final_state(tmp_path / "whole"), _final_state(run))
    assert _hidden(run) == []

    [found] = find_methods(served)
    method_dir = found.directory
    assert method_dir == served / "method"
    expected = load_method(same)
    for key, value in load_method(method_dir).state_dict().items():
        assert torch.equal(value, expected.state_dict()[key]), key


def _checkpoint(tmp_path: Path) -> Path:
    """A real checkpoint of a 2-parameter AdamW model after one step."""
    from promptmix.training import checkpoint as ckpt

    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(5))]
    opt = torch.optim.AdamW([{"params": params, "name": "prompts", "lr": 0.3}])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    (params[0].sum() + params[1].square().sum()).backward()
    opt.step()
    ckpt.save_checkpoint(
        tmp_path / "checkpoints",
        trainable={"a": params[0], "b": params[1]},
        optimizer=opt.state_dict(),
        scheduler=sched.state_dict(),
        rng=[ckpt.rng_state()],
        trainer={"step": 1},
        keep=2,
    )
    return ckpt.latest_checkpoint(tmp_path / "checkpoints")


@pytest.mark.parametrize(
    "file", ["trainable.safetensors", "optimizer.safetensors", "rng.safetensors", "optimizer.json", "scheduler.json"]
)
def test_a_flipped_bit_in_a_checkpoint_file_is_refused_naming_it(tmp_path, file):
    from promptmix.training.checkpoint import load_checkpoint

    path = _checkpoint(tmp_path)
    untouched = load_checkpoint(path, 0)
    original = (path / file).read_bytes()
    data = bytearray(original)
    # the last byte: a float's lowest mantissa bits in tensor files (still a readable file),
    # the closing newline in JSON files (still valid JSON)
    data[-1] ^= 0x01 if file.endswith(".safetensors") else 0
    if file.endswith(".json"):
        data[-1:] = b" \n"
    (path / file).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{file} does not match the sha256"):
        load_checkpoint(path, 0)
    record = json.loads((path / "trainer.json").read_text())
    assert set(record["sha256"]) == {
        "trainable.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
        "optimizer.json",
        "scheduler.json",
    }
    (path / file).write_bytes(original)  # put back: it loads again, equal to before
    assert torch.equal(load_checkpoint(path, 0)["trainable"]["a"], untouched["trainable"]["a"])


def test_resume_recovers_each_per_task_best_a_kill_left_mid_swap(tmp_path):
    """A resume recovered method/ and model/ but not best-per-task/<task>/ (eval.select
    per-task): a kill between its renames left it missing, and the end of training failed."""
    from types import SimpleNamespace

    from promptmix.training.rundir import open_run_dir

    run = tmp_path / "run"
    best = run / "best-per-task"
    for name, text in ((".rte.new.tmp", "new"), (".rte.old.tmp", "old"), ("cb", "cb"), (".cb.old.tmp", "stale")):
        (best / name).mkdir(parents=True)
        (best / name / "method.safetensors").write_text(text)
    accelerator = SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)
    open_run_dir(
        config("prompt-tuning", tmp_path / "model", tmp_path, data__tasks=["rte", "cb"]), run, True, accelerator
    )
    assert (best / "rte" / "method.safetensors").read_text() == "new"  # the swap had committed
    assert (best / "cb" / "method.safetensors").read_text() == "cb"
    assert _hidden(best) == []
