"""Loading what inference serves onto one backbone: saved runs' prompt methods and library prompts.

A run is read with :func:`promptmix.rundirs.read.find_methods` (every method it holds, each a
:class:`~promptmix.prompts.checkpoint.SavedMethod` with its record read once), a directory
written by :func:`promptmix.prompts.checkpoint.save_method` included; a multi-task run trained
with ``eval.select: per-task`` answers each target with its ``best-per-task/<task>`` method
(the one its test score came from) and any other task with ``<run>/method``. A *library prompt* is a
named [m, d] prompt in a :class:`~promptmix.prompts.library.PromptLibrary`, served as prompt
tuning for the task its record names. Any mix of them becomes one :class:`PromptRouter`; the
backbone is loaded once, from the name the first method (or prompt) recorded unless one is
given, and every method is checked against it (a prompt trained on another backbone is
refused). Each task's inputs are truncated to the limit its method was trained with
(:func:`promptmix.rundirs.read.saved_source_lengths`).
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
from promptmix.rundirs.read import find_methods, saved_source_lengths


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
    ``backbone``. Members are named by the methods' names (run directories, a per-task-selected
    run's ``best-per-task/<task>``) / ``library:<name>``; a method restricted to some of its tasks
    (``SavedMethod.tasks``) answers only those."""
    members: list[tuple[str, Any, Sequence[str] | None]] = [
        (saved.name, saved.load(backbone), saved.tasks) for saved in methods
    ]
    lib = _library(library) if prompts else None
    for name in prompts:
        assert lib is not None  # opened above when there are prompts
        record, value = lib.get(name), lib.load(name, backbone)
        method = SoftPrompt(SoftPromptConfig(prompt_length=int(value.shape[0])), backbone.hidden_size, [record.task])
        method.set_prompt(record.task, value)
        members.append((f"library:{name}", method, None))
    if not members:
        raise ValueError("nothing to load: give at least one run or library prompt")
    return PromptRouter(members)


def load_predictor(
    runs: Sequence[str | os.PathLike | SavedMethod] = (),
    *,
    library: str | os.PathLike | None = None,
    prompts: Sequence[str] = (),
    backbone: Backbone | str | None = None,
    **options: Any,
) -> Predictor:
    """A :class:`Predictor` over the methods of ``runs`` and the library ``prompts``.

    ``runs``: run directories (each read once with :func:`~promptmix.rundirs.read.find_methods`)
    or methods found beforehand. ``backbone``: a loaded :class:`Backbone`, a name for
    :func:`promptmix.loading.load_backbone`, or None for the one the first method recorded.
    ``options`` go to the Predictor; without ``max_source_lengths`` each method's tasks get the
    input limit it was trained with.
    """
    if isinstance(runs, (str, os.PathLike)):  # one run, not a sequence of its characters
        runs = [runs]
    methods = [found for item in runs for found in ([item] if isinstance(item, SavedMethod) else find_methods(item))]
    if not isinstance(backbone, Backbone):
        backbone = load_backbone(backbone or recorded_backbone(methods, library, prompts))
        backbone.model.eval()
    options.setdefault("max_source_lengths", saved_source_lengths(methods))
    return Predictor(backbone, load_router(backbone, methods, library=library, prompts=prompts), **options)


def _library(root: str | os.PathLike | None) -> PromptLibrary:
    return PromptLibrary(root if root is not None else default_library_root())
