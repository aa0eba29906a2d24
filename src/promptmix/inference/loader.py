"""Loading what inference serves onto one backbone: saved prompt methods and library prompts.

A saved method is a directory written by :func:`promptmix.prompts.checkpoint.save_method`,
found beforehand with its record read once (a :class:`~promptmix.prompts.checkpoint.SavedMethod`;
:func:`promptmix.training.rundir.find_methods` finds those of a training run). A *library
prompt* is a named [m, d] prompt in a :class:`~promptmix.prompts.library.PromptLibrary`,
served as prompt tuning for the task its record names. Any mix of them becomes one
:class:`PromptRouter`; the backbone is loaded once, from the name the first method (or prompt)
recorded unless one is given, and every method is checked against it (a prompt trained on
another backbone is refused).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from promptmix.backbone import Backbone
from promptmix.inference.predictor import Predictor
from promptmix.loading import load_backbone
from promptmix.prompts import SoftPrompt, SoftPromptConfig
from promptmix.prompts.checkpoint import SavedMethod
from promptmix.prompts.library import PromptLibrary, default_library_root
from promptmix.prompts.router import PromptRouter


def recorded_backbone(
    methods: Sequence[SavedMethod] = (), library: str | os.PathLike | None = None, prompts: Sequence[str] = ()
) -> str:
    """The backbone name the first method (else the first library prompt) was trained on."""
    if methods:
        return methods[0].record.backbone["backbone"]
    if prompts:
        return _library(library).get(prompts[0]).backbone
    raise ValueError("nothing to load: give at least one run or library prompt")


def load_router(
    backbone: Backbone,
    methods: Sequence[SavedMethod] = (),
    *,
    library: str | os.PathLike | None = None,
    prompts: Sequence[str] = (),
) -> PromptRouter:
    """One router over every saved method and every named library prompt, all checked against
    ``backbone``. Members are named by the methods' names (run directories) / ``library:<name>``."""
    members: list[tuple[str, Any]] = [(saved.name, saved.load(backbone)) for saved in methods]
    lib = _library(library) if prompts else None
    for name in prompts:
        assert lib is not None  # opened above when there are prompts
        record, value = lib.get(name), lib.load(name, backbone)
        method = SoftPrompt(SoftPromptConfig(prompt_length=int(value.shape[0])), backbone.hidden_size, [record.task])
        method.set_prompt(record.task, value)
        members.append((f"library:{name}", method))
    if not members:
        raise ValueError("nothing to load: give at least one run or library prompt")
    return PromptRouter(members)


def load_predictor(
    methods: Sequence[SavedMethod] = (),
    *,
    library: str | os.PathLike | None = None,
    prompts: Sequence[str] = (),
    backbone: Backbone | str | None = None,
    **options: Any,
) -> Predictor:
    """A :class:`Predictor` over saved methods and library prompts.

    ``backbone``: a loaded :class:`Backbone`, a name for :func:`promptmix.loading.load_backbone`,
    or None for the one the first method recorded. ``options`` go to the Predictor.
    """
    if not isinstance(backbone, Backbone):
        backbone = load_backbone(backbone or recorded_backbone(methods, library, prompts))
        backbone.model.eval()
    options.setdefault("max_source_lengths", recorded_source_lengths(methods))
    return Predictor(backbone, load_router(backbone, methods, library=library, prompts=prompts), **options)


def recorded_source_lengths(methods: Sequence[SavedMethod]) -> dict[str, int]:
    """``{task: input token limit}`` the saved methods were trained with: what a training run
    records in ``method.json`` (``extra.max_source_length``); methods saved without it add nothing."""
    lengths: dict[str, int] = {}
    for saved in methods:
        recorded = saved.record.extra.get("max_source_length")
        if isinstance(recorded, dict):
            lengths.update({str(task): int(n) for task, n in recorded.items()})
    return lengths


def _library(root: str | os.PathLike | None) -> PromptLibrary:
    return PromptLibrary(root if root is not None else default_library_root())
