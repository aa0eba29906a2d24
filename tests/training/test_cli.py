"""The CLI end to end on the fixtures and tiny backbones: the pipeline (source prompts ->
prompt tuning, ATTEMPT, MPT -> table), single stages with --set, resume, and the run
directory each leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from trainhelpers import FIXTURES, PROMPT_LENGTH, model_dirs  # noqa: F401  (fixture)

from promptmix.cli import main


def _write_presets(tmp_path, model_dir):
    """Tiny stage presets (as configs/cpu/ has them) and a pipeline over them."""
    base = {
        "model": {"name": str(model_dir)},
        "data": {"data_dir": str(FIXTURES), "max_dev_examples": 4, "max_test_examples": 4},
        "method": {"prompt_tuning": {"prompt_length": PROMPT_LENGTH}, "attempt": {"attn_dim": 8}},
        "optim": {"batch_size": 4, "max_steps": 2, "warmup_steps": 1},
        "eval": {"every": 0, "batch_size": 8},
        "run": {"progress": False, "save_every": 1},
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    presets = {
        "source": {"stage": "source", "data": {"tasks": ["sst2", "rte"]}},
        "pt": {"stage": "prompt-tuning", "data": {"tasks": ["cb"]}},
        "attempt": {
            "stage": "attempt",
            "data": {"tasks": ["cb"]},
            "library": {"sources": ["sst2", "rte"], "init_from": "rte"},
            "optim": {"group_lr": {"attention": 0.1}},
        },
        "mpt-source": {
            "stage": "mpt-source",
            "library": {"sources": ["sst2", "rte"]},
            "data": {"mixing": "stochastic"},
        },
        "mpt": {"stage": "mpt-target", "data": {"tasks": ["cb"]}, "optim": {"group_lr": {"task_vectors": 0.4}}},
    }
    for name, preset in presets.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"include": "base.yaml", **preset}))
    pipeline = {
        "root": str(tmp_path / "pipe"),
        "common": {"library.root": "{root}/prompts"},
        "stages": [
            {"name": "sources", "config": "source.yaml"},
            {"name": "pt", "config": "pt.yaml", "label": "prompt tuning"},
            {"name": "attempt", "config": "attempt.yaml", "label": "ATTEMPT"},
            {"name": "mpt-source", "config": "mpt-source.yaml"},
            {"name": "mpt", "config": "mpt.yaml", "label": "MPT", "set": {"library.mpt_source": "{root}/mpt-source"}},
        ],
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))


def test_pipeline_end_to_end(model_dirs, tmp_path, capsys):
    _write_presets(tmp_path, model_dirs["llama"])
    assert main(["pipeline", "--config", str(tmp_path / "pipeline.yaml")]) == 0
    out = capsys.readouterr().out
    assert "| method | trainable params | target dev score | target test score | train time |" in out
    d = 32  # tiny model width
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in out.splitlines()
        if line.startswith("| ") and "---" not in line
    }
    assert rows["prompt tuning"] == f"{PROMPT_LENGTH * d:,}"
    assert rows["ATTEMPT"] == f"{PROMPT_LENGTH * d + 2 * d * 8 + 2 * d:,}"  # m·d + 2rd + 2d
    assert rows["MPT"] == f"{PROMPT_LENGTH * d + PROMPT_LENGTH + d:,}"  # l·d + l + d
    pipe = tmp_path / "pipe"
    assert (pipe / "table.md").read_text().startswith("| method")
    assert "scoring: rank (rank classification over the label words); target cb, all training examples" in out
    assert sorted(p.name for p in (pipe / "prompts").glob("*.json")) == ["rte.json", "sst2.json"]
    record = json.loads((pipe / "attempt" / "method" / "method.json").read_text())
    assert record["config"]["method"] == "attempt" and record["config"]["tasks"] == ["cb"]
    assert record["extra"]["stage"] == "attempt" and "cb" in record["extra"]["dev"]
    for run in ("pt", "attempt", "mpt"):
        files = {p.name for p in (pipe / run).iterdir()}
        assert {"config.yaml", "metrics.jsonl", "tb", "checkpoints", "method", "results.json"} <= files
        results = json.loads((pipe / run / "results.json").read_text())
        assert results["completed"] and "cb" in results["test"]
    # --resume on a finished pipeline skips every stage.
    assert main(["pipeline", "--config", str(tmp_path / "pipeline.yaml"), "--resume"]) == 0
    # A fresh run into the same root is refused rather than mixed into the old one.
    assert main(["pipeline", "--config", str(tmp_path / "pipeline.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{pipe} already holds a run (stage 'sources' in " in err and "choose another --root" in err


def test_train_stages_with_overrides_and_resume(model_dirs, tmp_path, capsys):
    _write_presets(tmp_path, model_dirs["t5"])
    lib = f"library.root={tmp_path / 'prompts'}"
    assert (
        main(
            [
                "train",
                "source",
                "--config",
                str(tmp_path / "source.yaml"),
                "--set",
                lib,
                "--run-dir",
                str(tmp_path / "src"),
            ]
        )
        == 0
    )
    run_dir = tmp_path / "att"
    args = [
        "train",
        "attempt",
        "--config",
        str(tmp_path / "attempt.yaml"),
        "--set",
        lib,
        "--set",
        "method.attempt.attention=token",
        "--set",
        "optim.max_steps=3",
        "--run-dir",
        str(run_dir),
    ]
    assert main([*args, "--set", "run.stop_after=1"]) == 3  # stopped early: exit 3, resumable
    assert main(["train", "attempt", "--resume", "--run-dir", str(run_dir)]) == 0  # the run's own config.yaml
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["completed"] and summary["steps"] == 3
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["method"]["attempt"]["attention"] == "token" and saved["stage"] == "attempt"
    assert main([*args[:-2], "--set", "optim.lr=0.5", "--run-dir", str(run_dir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "differs from" in err and "optim.lr" in err
    # Raising the step budget extends even a finished run.
    assert main([*args[:-2], "--set", "optim.max_steps=5", "--run-dir", str(run_dir), "--resume"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 5


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("stage: attempt\noptim: {lr: 0.3, warmup: 5}\n")
    assert main(["train", "attempt", "--config", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['warmup'] (did you mean warmup_steps, warmup_ratio?)" in err and "Traceback" not in err


def test_pipeline_resume_finds_the_task_files_its_runs_keep(tmp_path, monkeypatch, clean_task_registry):
    """The task names were checked before each stage's kept task files were registered, so a
    resumed pipeline over a YAML task failed with 'unknown task' unless given --tasks-dir."""
    from promptmix.training import pipeline as pipeline_module
    from promptmix.training.pipeline import PipelineConfig, run_pipeline

    example = Path(__file__).resolve().parents[2] / "docs" / "example" / "tasks"
    definition = yaml.safe_load((example / "headlines.yaml").read_text())
    definition["data"]["files"] = {split: str(example / path) for split, path in definition["data"]["files"].items()}
    kept = tmp_path / "pipe" / "pt" / "tasks"
    kept.mkdir(parents=True)
    (kept / "headlines.yaml").write_text(yaml.safe_dump(definition))
    (tmp_path / "pt.yaml").write_text(yaml.safe_dump({"stage": "prompt-tuning", "data": {"tasks": ["headlines"]}}))
    (tmp_path / "pipeline.yaml").write_text(
        yaml.safe_dump({"root": str(tmp_path / "pipe"), "stages": [{"name": "pt", "config": "pt.yaml"}]})
    )

    class Checked(Exception):
        pass

    def stop(config):
        raise Checked

    monkeypatch.setattr(pipeline_module, "make_accelerator", stop)  # the names passed: stop before the backbone
    with pytest.raises(Checked):
        run_pipeline(PipelineConfig.load(tmp_path / "pipeline.yaml"), resume=True, echo=lambda *a: None)
