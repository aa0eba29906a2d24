"""Shared by the training tests: tiny random backbones saved as HF model directories (so the
CLI and ``load_backbone`` load them like any model), tiny GLUE/SuperGLUE fixtures in their
original layouts (``fixtures/``, rows copied from ../shared/data), small configs, and a prompt
library of random source prompts.

A module with its own name rather than a conftest.py (see tests/tasks/taskdata.py): test
modules import the ``model_dirs`` fixture from here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"

from conftest import T5_TOKENIZER, tiny_llama, tiny_t5  # noqa: E402  (tests/conftest.py)

PROMPT_LENGTH = 4


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """{"t5": dir, "llama": dir}: tiny random models with the t5-small tokenizer."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("models")
    tokenizer = AutoTokenizer.from_pretrained(T5_TOKENIZER)
    out = {}
    for kind, build in (("t5", tiny_t5), ("llama", tiny_llama)):
        out[kind] = root / f"tiny-{kind}"
        build().save_pretrained(out[kind])
        tokenizer.save_pretrained(out[kind])
    return out


def base_overrides(model_dir: Path, tmp: Path, **extra) -> dict:
    """A small, fast config (as dotted overrides) on the fixture data."""
    values = {
        "model.name": str(model_dir),
        "data.data_dir": str(FIXTURES),
        "method.prompt_tuning.prompt_length": PROMPT_LENGTH,
        "method.attempt.attn_dim": 8,
        "optim.batch_size": 4,
        "optim.max_steps": 4,
        "optim.warmup_steps": 1,
        "eval.every": 2,
        "eval.batch_size": 8,
        "run.save_every": 2,
        "run.progress": False,
        "run.tensorboard": False,
        "library.root": str(tmp / "prompts"),
        "run.dir": str(tmp / "run"),
    }
    values.update({k.replace("__", "."): v for k, v in extra.items()})
    return values


def config(stage: str, model_dir: Path, tmp: Path, **extra):
    from promptmix.training.config import load_config

    return load_config(None, base_overrides(model_dir, tmp, **extra), stage=stage)


def random_library(root: Path, model_dir: Path, tasks=("sst2", "rte"), seed: int = 0) -> list[str]:
    """Library entries (named by task) holding random prompts for the tiny backbone."""
    from promptmix.loading import load_backbone
    from promptmix.prompts.library import PromptLibrary

    backbone = load_backbone(model_dir)
    gen = torch.Generator().manual_seed(seed)
    lib = PromptLibrary(root)
    for task in tasks:
        prompt = torch.randn(PROMPT_LENGTH, backbone.hidden_size, generator=gen) * 0.5
        lib.add(task, prompt, task=task, method="prompt-tuning", backbone=backbone, overwrite=True)
    return list(tasks)
