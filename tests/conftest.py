"""Shared fixtures: tiny random backbones built in memory, the real t5-small tokenizer.

No test touches the network: the hub is switched off before transformers is imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
from tiny_models import DATA_DIR, SHARED, T5_TOKENIZER, TINY_D, tiny_llama, tiny_t5  # noqa: F401 (re-exported)


@pytest.fixture(scope="session")
def t5_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(T5_TOKENIZER)


@pytest.fixture(params=["t5", "llama"])
def tiny_backbone(request, t5_tokenizer):
    """A frozen tiny backbone of each kind (encoder-decoder, decoder-only) sharing the T5 vocab."""
    from promptmix.backbone import Backbone

    model = tiny_t5() if request.param == "t5" else tiny_llama()
    return Backbone(model, t5_tokenizer, f"tiny-{request.param}")


@pytest.fixture
def clean_task_registry():
    """Every task a test registers (task files, plugins) is gone after it: other tests compare
    the registry with the papers' tasks."""
    from promptmix.tasks import registry

    tasks, keys = dict(registry._TASKS), dict(registry._KEYS)
    yield
    registry._TASKS.clear(), registry._TASKS.update(tasks)
    registry._KEYS.clear(), registry._KEYS.update(keys)
