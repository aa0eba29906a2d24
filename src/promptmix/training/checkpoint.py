"""Resumable training checkpoints: safetensors for tensors, JSON for the rest, never pickle.

    <run>/checkpoints/step-000120/
        trainable.safetensors   the trainable parameters by name (prompt-only for prompt methods)
        optimizer.safetensors   optimizer state tensors, key "state.<param index>.<name>"
        optimizer.json          param groups (lr, betas, ..., the group's name) + non-tensor state
        scheduler.json          the LR scheduler's state_dict
        rng.safetensors         torch CPU RNG state (uint8) per process, CUDA states where present
        trainer.json            step, data position (epoch, batch), best dev score, python and
                                numpy RNG states per process, and the sha256 of every other
                                file ("sha256": {file name: digest}), checked on load
    <run>/checkpoints/latest.json   {"checkpoint": "step-000120", "step": 120}

A checkpoint directory is built under a temporary name and renamed into place
(:func:`promptmix._io.atomic_directory`); ``latest.json`` is replaced atomically only after
that, and older checkpoints are deleted only after the pointer moved. A process killed at any
moment therefore leaves ``latest.json`` naming a complete checkpoint (or no pointer at all).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from promptmix._io import (
    atomic_directory,
    atomic_save_safetensors,
    atomic_write_text,
    read_json,
    read_safetensors,
    recover_directory,
    sha256_file,
)

LATEST = "latest.json"


def _to_json(value: Any) -> Any:
    """Tuples -> lists, numpy -> Python, recursively (JSON round-trips floats exactly)."""
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- optimizer --------------------------------------------------------------------------------
def optimizer_to_files(state_dict: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into safetensors tensors and a JSON document."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state_dict["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = _to_json(value)
    return tensors, {"param_groups": _to_json(state_dict["param_groups"]), "scalars": scalars}


def optimizer_from_files(tensors: dict[str, Tensor], document: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_to_files`: a dict ``optimizer.load_state_dict`` accepts."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entry in document.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entry)
    groups = []
    for group in document["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


# -- RNG ----------------------------------------------------------------------------------------
def rng_state() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """This process's RNG states: tensors (torch CPU, CUDA) and JSON (python, numpy)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, value in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = value
    return tensors, {"python": _to_json(random.getstate()), "numpy": _to_json(np.random.get_state())}


def set_rng_state(tensors: dict[str, Tensor], document: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = document["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = document["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# -- whole checkpoints -------------------------------------------------------------------------
def save_checkpoint(
    directory: Path,
    *,
    trainable: dict[str, Tensor],
    optimizer: dict[str, Any],
    scheduler: dict[str, Any],
    rng: list[tuple[dict[str, Tensor], dict[str, Any]]],
    trainer: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``checkpoints/step-XXXXXX`` atomically, point ``latest.json`` at it, prune old ones.

    ``rng``: every process's :func:`rng_state` (gathered on the main process).
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{int(trainer['step']):06d}"
    opt_tensors, opt_doc = optimizer_to_files(optimizer)
    rng_tensors = {f"rank{r}.{k}": v for r, (tensors, _) in enumerate(rng) for k, v in tensors.items()}
    trainer = {**trainer, "rng": [doc for _, doc in rng]}
    with atomic_directory(directory / name, overwrite=True) as tmp:
        digests = {
            "trainable.safetensors": atomic_save_safetensors(
                {k: v.detach().to("cpu").contiguous().clone() for k, v in trainable.items()},
                tmp / "trainable.safetensors",
            ),
            "optimizer.safetensors": atomic_save_safetensors(opt_tensors, tmp / "optimizer.safetensors"),
            "rng.safetensors": atomic_save_safetensors(rng_tensors, tmp / "rng.safetensors"),
        }
        for file, document in (("optimizer.json", opt_doc), ("scheduler.json", _to_json(scheduler))):
            atomic_write_text(tmp / file, json.dumps(document) + "\n")
            digests[file] = sha256_file(tmp / file)
        trainer["sha256"] = digests
        atomic_write_text(tmp / "trainer.json", json.dumps(_to_json(trainer), indent=1) + "\n")
    atomic_write_text(directory / LATEST, json.dumps({"checkpoint": name, "step": int(trainer["step"])}) + "\n")
    _prune(directory, keep)
    return directory / name


def _prune(directory: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (and leftovers of interrupted writes)."""
    done = sorted(p for p in directory.glob("step-*") if p.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in directory.glob(".step-*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint ``latest.json`` names, or None when there is none yet."""
    pointer = directory / LATEST
    if not pointer.is_file():
        return None
    path = directory / read_json(pointer)["checkpoint"]
    recover_directory(path)  # a crash while a checkpoint of the same step was rewritten
    if not (path / "trainer.json").is_file():
        raise FileNotFoundError(f"{pointer} names {path.name}, which is missing or incomplete")
    return path


def load_checkpoint(path: Path, rank: int) -> dict[str, Any]:
    """Everything :func:`save_checkpoint` wrote, with this process's RNG state. Every file is
    checked against the sha256 ``trainer.json`` recorded for it (checkpoints written before
    digests were recorded load unchecked); a mismatch raises ValueError naming the file."""
    trainer = read_json(path / "trainer.json")
    rng_docs = trainer.pop("rng")
    if rank >= len(rng_docs):
        raise ValueError(
            f"{path} was written by {len(rng_docs)} process(es); process {rank} has no RNG state to resume "
            "(resume with the same number of processes)"
        )
    digests = trainer.pop("sha256", {})
    for file in ("optimizer.json", "scheduler.json"):
        _check_digest(path / file, digests.get(file))
    rng_all = read_safetensors(path / "rng.safetensors", digests.get("rng.safetensors"))
    prefix = f"rank{rank}."
    return {
        "trainable": read_safetensors(path / "trainable.safetensors", digests.get("trainable.safetensors")),
        "optimizer": optimizer_from_files(
            read_safetensors(path / "optimizer.safetensors", digests.get("optimizer.safetensors")),
            read_json(path / "optimizer.json"),
        ),
        "scheduler": read_json(path / "scheduler.json"),
        "rng": ({k[len(prefix) :]: v for k, v in rng_all.items() if k.startswith(prefix)}, rng_docs[rank]),
        "trainer": trainer,
    }


def _check_digest(path: Path, expected: str | None) -> None:
    if expected is not None and path.is_file() and sha256_file(path) != expected:
        raise ValueError(
            f"{path} does not match the sha256 {path.parent / 'trainer.json'} holds ({expected[:12]}…): "
            "the file was changed or damaged after the checkpoint was written; point latest.json at an older "
            "step-* directory, or start the run again"
        )
