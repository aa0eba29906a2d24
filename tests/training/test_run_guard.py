"""A run directory guards itself: one process trains into it at a time, its config.yaml is never
rewritten (or filled with defaults) on resume, a resume may extend the step budget, and the
mistakes that need no backbone are told before it loads."""

from __future__ import annotations

import json

import yaml
from trainhelpers import base_overrides, model_dirs  # noqa: F401  (fixture)

from promptmix.cli import main


def _preset(tmp_path, model_dir, **extra) -> str:
    """A tiny prompt-tuning preset on rte as a YAML file (its run.dir is tmp_path/run)."""
    values = base_overrides(
        model_dir,
        tmp_path,
        **{"data.tasks": ["rte"], "data.max_dev_examples": 4, "data.max_test_examples": 4, "eval.every": 0, **extra},
    )
    nested: dict = {}
    for dotted, value in values.items():
        *sections, key = dotted.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = value
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump({"stage": "prompt-tuning", **nested}))
    return str(path)


def test_a_second_run_into_a_locked_run_dir_is_refused_naming_the_holder(tmp_path, capsys):
    import filelock

    run = tmp_path / "run"
    run.mkdir()
    (run / ".promptmix-run.pid").write_text("4242\n")
    with filelock.FileLock(run / ".promptmix-run.lock", timeout=0):  # another process is training there
        code = main(["train", "prompt-tuning", "--config", _preset(tmp_path, tmp_path / "no-such-model")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"{run} is in use by another promptmix run (pid 4242)" in err


def test_resume_never_rewrites_the_config_refuses_a_truncated_one_and_extends_a_finished_run(
    model_dirs, tmp_path, capsys
):
    preset = _preset(tmp_path, model_dirs["t5"], **{"optim.max_steps": 2})
    run = tmp_path / "run"
    assert main(["train", "prompt-tuning", "--config", preset]) == 0
    import filelock

    assert not (run / ".promptmix-run.pid").exists()
    with filelock.FileLock(run / ".promptmix-run.lock", timeout=0):  # released when the run ended
        pass
    capsys.readouterr()
    config = run / "config.yaml"
    whole = config.read_bytes()

    # Mistakes told before the backbone loads: a fresh run into a finished one.
    assert main(["train", "prompt-tuning", "--config", preset, "--set", "model.name=/no/such/model"]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err

    # A truncated config.yaml: refused in one line, and the file is left exactly as it was.
    config.write_bytes(whole[: len(whole) // 2])
    assert main(["train", "prompt-tuning", "--resume", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{config} is not the config the run wrote" in err, err
    assert config.read_bytes() == whole[: len(whole) // 2]
    config.write_bytes(b"optim: [unclosed\n")
    assert main(["train", "prompt-tuning", "--resume", "--run-dir", str(run)]) == 2
    assert f"{config} is not valid YAML" in capsys.readouterr().err
    config.write_bytes(whole)

    # A resume with the run's own config leaves config.yaml byte for byte; a killed run's temporary is cleaned.
    (run / ".training_curves.png.k3j2.tmp").write_bytes(b"half a png")
    assert main(["train", "prompt-tuning", "--resume", "--run-dir", str(run)]) == 0
    assert config.read_bytes() == whole and not list(run.glob(".*.tmp"))

    # A finished run is extended by raising optim.max_steps; config.yaml records the new budget.
    capsys.readouterr()
    assert main(["train", "prompt-tuning", "--resume", "--run-dir", str(run), "--set", "optim.max_steps=4"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["completed"] and summary["steps"] == 4
    assert yaml.safe_load(config.read_text())["optim"]["max_steps"] == 4
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 4


def test_mistakes_that_need_no_backbone_are_told_before_it_loads(tmp_path, capsys):
    """The model named does not exist, so any error about it means the backbone was loaded first."""
    preset = _preset(tmp_path, tmp_path / "no-such-model")
    assert main(["train", "prompt-tuning", "--config", preset, "--set", "data.tasks=[rte, rtee]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown task 'rtee'. Did you mean 'rte'?" in err, err
    assert main(["train", "prompt-tuning", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert f"config file {tmp_path / 'missing.yaml'} does not exist" in capsys.readouterr().err


def test_a_run_given_relative_paths_is_evaluated_from_another_directory(model_dirs, tmp_path, capsys, monkeypatch):
    """The run stored its paths as given (relative), so `eval --run` from elsewhere found neither
    backbone nor data; it stores them absolute now."""
    import os

    from trainhelpers import FIXTURES

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    preset = _preset(tmp_path, model_dirs["t5"], **{"optim.max_steps": 1})
    relative = [
        f"model.name={os.path.relpath(model_dirs['t5'], work)}",
        f"data.data_dir={os.path.relpath(FIXTURES, work)}",
    ]
    assert (
        main(
            [
                "train",
                "prompt-tuning",
                "--config",
                preset,
                "--run-dir",
                "run",
                *[x for r in relative for x in ("--set", r)],
            ]
        )
        == 0
    )
    saved = yaml.safe_load((work / "run" / "config.yaml").read_text())
    assert saved["model"]["name"] == str(model_dirs["t5"]) and saved["data"]["data_dir"] == str(FIXTURES)
    assert saved["run"]["dir"] == str(work / "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["eval", "--run", str(work / "run"), "--split", "validation", "--json"]) == 0
    assert "rte" in json.loads(capsys.readouterr().out)
    # A run written before (relative paths kept): the error says which flag to pass.
    config = work / "run" / "config.yaml"
    config.write_text(yaml.safe_dump({**saved, "model": {**saved["model"], "name": "tiny-t5-relative"}}))
    assert main(["eval", "--run", str(work / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "recorded backbone 'tiny-t5-relative'" in err and "pass --backbone" in err, err


def test_raising_max_steps_of_a_finished_run_that_cannot_go_on_is_refused(model_dirs, tmp_path, capsys):
    """Before, an extension of a run stopped by eval.patience silently did nothing, and one whose
    checkpoints were deleted started over at step 0 and overwrote method/ and results.json."""
    import shutil

    preset = _preset(tmp_path, model_dirs["t5"], **{"optim.max_steps": 2})
    run = tmp_path / "run"
    assert main(["train", "prompt-tuning", "--config", preset]) == 0
    capsys.readouterr()
    results = run / "results.json"
    kept = {
        p: p.read_bytes()
        for p in [results, run / "config.yaml", run / "metrics.jsonl", run / "method" / "method.safetensors"]
    }
    extend = ["train", "prompt-tuning", "--resume", "--run-dir", str(run), "--set", "optim.max_steps=4"]

    stopped = json.loads(kept[results])
    stopped["extra"]["early_stopped"] = True
    results.write_text(json.dumps(stopped))
    assert main(extend) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the backbone's loading bar
    assert err.startswith("promptmix train: error:") and f"the run in {run} stopped early by eval.patience" in err, err
    assert "raise eval.patience" in err
    results.write_bytes(kept[results])

    shutil.rmtree(run / "checkpoints")
    assert main(extend) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("promptmix train: error:") and f"the finished run in {run} has no checkpoint left" in err, err
    assert all(path.read_bytes() == data for path, data in kept.items())
    assert main(["train", "prompt-tuning", "--resume", "--run-dir", str(run)]) == 0  # a plain resume still skips it
