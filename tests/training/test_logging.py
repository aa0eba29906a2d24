"""The loop's logs: Accelerate's experiment trackers (run.log_with; TensorBoard by default)
with train/... and eval/... tags, and progress as plain lines when stderr is not a terminal."""

from __future__ import annotations

import dataclasses

import pytest
from accelerate.tracking import GeneralTracker, register_tracker_class
from test_loop import _attempt_job
from trainhelpers import model_dirs  # noqa: F401  (fixture)

LOGGED: list[tuple[str, object, int | None]] = []


class RecordingTracker(GeneralTracker):
    """A user's own tracker, registered by name as Accelerate documents."""

    name = "recording"
    requires_logging_directory = False
    main_process_only = True

    def __init__(self, run_name: str, **kwargs):
        super().__init__()
        self.run_name = run_name

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values: dict):
        LOGGED.append(("config", values, None))

    def log(self, values: dict, step: int | None = None, **kwargs):
        LOGGED.extend((key, value, step) for key, value in values.items())

    def finish(self):
        LOGGED.append(("finished", None, None))


register_tracker_class(RecordingTracker)


def _train(model_dirs, tmp_path, capsys=None, **extra):
    from promptmix.training.loop import train

    cfg, ctx, _method, job = _attempt_job(
        model_dirs, tmp_path / "lib", optim__max_steps=4, eval__every=2, run__log_every=1, run__save_every=0, **extra
    )
    scores = iter([{"score": 40.0, "accuracy": 40.0}, {"score": 60.0, "accuracy": 60.0}])
    run_dir = tmp_path / "run"
    if capsys is not None:
        capsys.readouterr()  # what loading the model printed (transformers' own bars) is not the loop's
    train(dataclasses.replace(job, evaluate=lambda model: next(scores)), cfg, run_dir, ctx.accelerator)
    return run_dir


def test_a_registered_tracker_gets_train_and_eval_tags_through_run_log_with(model_dirs, tmp_path):
    LOGGED.clear()
    run_dir = _train(model_dirs, tmp_path, run__log_with=["recording"])
    tags = {(key, step) for key, _, step in LOGGED}
    assert {("train/loss", s) for s in (1, 2, 3, 4)} <= tags
    assert any(key.startswith("train/lr/") for key, _ in tags)
    assert [(step, value) for key, value, step in LOGGED if key == "eval/score"] == [(2, 40.0), (4, 60.0)]
    assert ("eval/accuracy", 4) in tags and LOGGED[-1][0] == "finished"
    config = next(value for key, value, _ in LOGGED if key == "config")
    assert config["optim.max_steps"] == 4 and config["stage"] == "attempt"
    assert not (run_dir / "tb").exists()  # log_with given: only the trackers it names


def test_tensorboard_by_default_under_tb_with_the_same_tags(model_dirs, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = _train(model_dirs, tmp_path, run__tensorboard=True)
    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "eval/score", "eval/accuracy"} <= set(scalars)
    assert [(e.step, e.value) for e in events.Scalars("eval/score")] == [(2, 40.0), (4, 60.0)]


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(model_dirs, tmp_path, capsys):
    _train(model_dirs, tmp_path, capsys, run__progress=True)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " step " in line and " dev at " not in line]
    assert [line.split(" step ")[1].split(" ")[0] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert "loss" in lines[0] and "ETA" in lines[0]
    assert [line.split(" dev at ")[1].split(" (")[0] for line in err.splitlines() if " dev at " in line] == [
        "step 2: score 40.00",
        "step 4: score 60.00",
    ]
    assert "\r" not in err and "\x1b" not in err


def test_a_tracker_that_is_not_installed_is_named(model_dirs, tmp_path, monkeypatch):
    import accelerate.tracking

    monkeypatch.setattr(accelerate.tracking, "get_available_trackers", lambda: [])
    with pytest.raises(ValueError, match=r"run.log_with: 'wandb' needs its package, which is not installed"):
        _train(model_dirs, tmp_path, run__log_with=["wandb"])


def test_a_resume_may_log_to_other_trackers_but_not_change_training():
    from promptmix.training.rundir import _differences

    saved = {"run": {"log_with": None, "tensorboard": True}, "optim": {"lr": 0.3}}
    assert _differences(saved, {"run": {"log_with": ["wandb"], "tensorboard": False}, "optim": {"lr": 0.3}}) == []
    assert _differences(saved, {"run": {"log_with": None, "tensorboard": True}, "optim": {"lr": 0.1}}) == ["optim.lr"]


def test_evaluation_draws_no_progress_bar_into_a_log_file(model_dirs, tmp_path, capsys):
    """stderr is not a terminal under pytest: dev and test scoring write no tqdm redraws there."""
    from trainhelpers import base_overrides

    from promptmix.training.config import load_config
    from promptmix.training.stages import run_stage

    overrides = base_overrides(model_dirs["t5"], tmp_path, **{"data.tasks": ["rte"], "run.progress": True})
    assert run_stage(load_config(None, overrides, stage="prompt-tuning")).completed
    err = capsys.readouterr().err
    assert "dev rte:" not in err and "test rte:" not in err  # tqdm's bars are "<split> <task>: NN%|..."
    assert "rte dev at step 4: score" in err  # the loop's own plain line is there
