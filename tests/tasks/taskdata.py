"""Shared by the task tests: data paths (tiny fixtures in original layouts, the real data)
and a registry fixture.

A module with its own name rather than a second conftest.py: other test folders import
helpers with ``from conftest import ...``, which a conftest.py here would shadow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
T5_TOKENIZER = REAL_DATA.parent / "models" / "t5-small-tokenizer"

needs_real_data = pytest.mark.skipif(
    not (REAL_DATA / "glue").is_dir(), reason=f"real GLUE/SuperGLUE files not found at {REAL_DATA}"
)


@pytest.fixture
def registry_snapshot():
    """Restore the task registry after a test that registers its own tasks."""
    from promptmix.tasks import registry

    tasks, keys = dict(registry._TASKS), dict(registry._KEYS)
    yield registry
    registry._TASKS.clear()
    registry._TASKS.update(tasks)
    registry._KEYS.clear()
    registry._KEYS.update(keys)
