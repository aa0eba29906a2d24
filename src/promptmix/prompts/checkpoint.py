"""A prompt method's complete state on disk, rebuilt exactly and only for its own backbone.

The library (:mod:`promptmix.prompts.library`) keeps single [m, d] prompts; a trained method
is more: ATTEMPT holds target prompts, the attention module G and its frozen source prompts
(buffers), MPT a shared prompt and per-task factors. ``save_method`` writes all of it:

    directory/method.safetensors   method.state_dict(): parameters and persistent buffers
    directory/method.json          {"config": method.to_config(), "backbone": identity,
                                    "extra": {...}, "sha256": <of method.safetensors>}

``load_method`` rebuilds the module with :func:`promptmix.prompts.build_method` and loads the
state strictly, so the result is bit-identical to what was saved. Given a backbone it first
checks that the method was trained on it (same width and embedding fingerprint) and
otherwise raises :class:`IncompatiblePromptError` saying which backbones and why. Both files
are written atomically, tensors first and the JSON record last; only other files in
``directory`` (training logs, ...) are left alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from promptmix._io import (
    atomic_save_safetensors,
    atomic_write_text,
    check_finite,
    read_json,
    read_safetensors,
    recover_directory,
)
from promptmix._validation import Hint, validate, validated
from promptmix.prompts import PromptMethod, build_method
from promptmix.prompts.library import (
    BackboneIdentity,
    IncompatiblePromptError,
    Sha256,
    backbone_identity,
    check_compatible,
)

WEIGHTS_FILE = "method.safetensors"
RECORD_FILE = "method.json"
FORMAT_VERSION = 1
Version = Annotated[int, Field(ge=1, le=FORMAT_VERSION), Hint("written by a newer promptmix; upgrade it")]

__all__ = ["IncompatiblePromptError", "MethodRecord", "SavedMethod", "load_method", "read_method_record", "save_method"]


@validated
class MethodRecord:
    """What ``method.json`` holds."""

    config: dict[str, Any]
    """``method.to_config()``: the method name, its config fields and ``hidden_size`` (checked
    by the method's own config type when :func:`load_method` builds it)."""
    backbone: BackboneIdentity
    """Identity of the backbone the method was trained on (name, hidden size, fingerprint)."""
    sha256: Sha256
    extra: dict[str, Any] = field(default_factory=dict)
    """Caller's additions (training step, dev metrics, ...)."""
    format_version: Version = FORMAT_VERSION


@dataclass(frozen=True)
class SavedMethod:
    """A directory written by :func:`save_method`, found on disk with its record read once:
    what loaders pass on. ``name`` says where it came from (its training run's directory, for
    one found by :func:`promptmix.rundirs.read.find_methods`) in errors and listings. ``tasks``
    restricts what it answers to some of the tasks it holds (a per-task-selected run's
    ``best-per-task/<task>`` holds every task of the run but answers only ``<task>``); None:
    every task it holds."""

    name: str
    directory: Path
    record: MethodRecord
    tasks: tuple[str, ...] | None = None

    @classmethod
    def read(
        cls, directory: str | os.PathLike, name: str | None = None, tasks: Sequence[str] | None = None
    ) -> SavedMethod:
        record = read_method_record(directory)
        held = list(record.config.get("tasks", []))
        if tasks is not None and not set(tasks) <= set(held):
            missing = sorted(set(tasks) - set(held))
            raise ValueError(f"{directory} holds no prompt for {', '.join(missing)}; its tasks: {', '.join(held)}")
        return cls(
            name if name is not None else str(directory),
            Path(directory),
            record,
            tuple(tasks) if tasks is not None else None,
        )

    def task_names(self) -> list[str]:
        """The tasks it answers, in the order the method holds them."""
        held = [str(t) for t in self.record.config.get("tasks", [])]
        return held if self.tasks is None else [t for t in held if t in self.tasks]

    def load(self, backbone: Any = None) -> PromptMethod:
        """:func:`load_method` with the record already read."""
        return load_method(self.directory, backbone, record=self.record)


def save_method(
    method: PromptMethod, directory: str | os.PathLike, backbone: Any, *, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``method``'s config and full state to ``directory`` (created if needed).

    ``backbone``: the :class:`Backbone` the method was trained on, or its identity dict.
    ``extra``: any JSON-serialisable dict stored alongside. Returns ``directory``.
    """
    directory = Path(directory)
    identity = backbone_identity(backbone)
    if method.hidden_size != identity["hidden_size"]:
        raise ValueError(
            f"method is {method.hidden_size} wide but backbone {identity['backbone']!r} "
            f"has hidden size {identity['hidden_size']}"
        )
    config = method.to_config()
    extra = dict(extra or {})
    try:
        json.dumps(extra)
    except (TypeError, ValueError) as err:
        raise ValueError(f"extra for {directory / RECORD_FILE} must be JSON-serialisable: {err}") from err
    # Clone: state_dict entries may be views sharing storage, which safetensors refuses.
    state = {key: value.detach().to("cpu").contiguous().clone() for key, value in method.state_dict().items()}
    digest = atomic_save_safetensors(
        state, directory / WEIGHTS_FILE, metadata={"format": "pt", "method": str(config.get("method"))}
    )
    record = MethodRecord(config=config, backbone=identity, sha256=digest, extra=extra)
    atomic_write_text(directory / RECORD_FILE, json.dumps(dataclasses.asdict(record), indent=2) + "\n")
    return directory


def read_method_record(directory: str | os.PathLike) -> MethodRecord:
    """Read and validate ``directory/method.json`` without touching the tensors. A directory a
    crash left mid-replacement is put back first (:func:`promptmix._io.recover_directory`)."""
    recover_directory(directory)
    path = Path(directory) / RECORD_FILE
    return validate(MethodRecord, read_json(path), str(path))


def load_method(
    directory: str | os.PathLike, backbone: Any = None, *, record: MethodRecord | None = None
) -> PromptMethod:
    """Rebuild the method saved in ``directory``, bit-exactly.

    With ``backbone`` (a :class:`Backbone` or identity dict) it is checked first and the
    method is moved to the backbone's device; a method trained on another backbone raises
    :class:`IncompatiblePromptError`, and a state holding NaN or ±inf a ValueError naming the
    file. ``record``: the directory's record when the caller has read it already
    (:class:`SavedMethod`).
    """
    directory = Path(directory)
    record = record if record is not None else read_method_record(directory)
    weights = directory / WEIGHTS_FILE
    if backbone is not None:
        name = record.config.get("method", "prompt")
        check_compatible(record.backbone, backbone, what=f"the {name} method saved in {directory}")
    state = check_finite(read_safetensors(weights, record.sha256), weights)  # a diverged run is not served
    try:
        method = build_method(record.config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{directory / RECORD_FILE}: field 'config' does not build a prompt method: {err}") from err
    try:
        method.load_state_dict(state, strict=True)
    except RuntimeError as err:  # missing / unexpected keys, shape mismatches
        raise ValueError(f"{weights} does not match the method its config describes: {err}") from err
    if hasattr(backbone, "embeddings"):
        method.to(backbone.embeddings.device)
    return method
