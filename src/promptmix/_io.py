"""Atomic writes: a file or directory is either the old version or the complete new one.

A crash (or Ctrl-C, or a full disk) in the middle of saving a prompt, a checkpoint or a
converted model must never leave a half-written file where a reader will find it. Every
writer here builds its output under a hidden temporary name *in the same directory* (so the
final rename stays on one filesystem, where ``os.replace`` is atomic), fsyncs it, renames it
into place and fsyncs the directory so the rename itself survives a power cut. On any error
the temporary is removed and the previous version is left untouched.

Replacing a *directory* takes two renames (no system call swaps two directories), so a
crash between them is possible; the swap goes through two fixed hidden names,
``.<name>.new.tmp`` (the finished new copy) and ``.<name>.old.tmp`` (the old copy moved
aside), so :func:`recover_directory` can tell an interrupted swap from anything else and
finish it. Readers and resuming writers call it before they look for the directory.

Only safetensors and JSON/text are written: nothing in promptmix is pickled.

A write that fails for want of space (``ENOSPC``/``EDQUOT``, or safetensors' wrapped
``StorageFull`` error) is raised as :class:`StorageFullError`, one line naming the file and
the space left on its filesystem, rather than the library's own exception and traceback.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = [
    "StorageFullError",
    "atomic_directory",
    "atomic_file",
    "atomic_save_safetensors",
    "atomic_write_text",
    "check_finite",
    "read_json",
    "read_safetensors",
    "recover_directory",
    "sha256_file",
]


class StorageFullError(OSError):
    """A write ran out of disk space (or quota); the message names the file and the space left."""


_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or quota) is full: an OSError with that errno, or the
    Rust io::Error that safetensors wraps in its SafetensorError text."""
    if isinstance(err, StorageFullError):
        return False  # already explained
    if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
        return True
    text = str(err)
    return any(mark in text for mark in ("StorageFull", "No space left", "QuotaExceeded", "Disk quota exceeded"))


def storage_full(path: Path, err: BaseException) -> StorageFullError:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return StorageFullError(
        errno.ENOSPC,
        f"cannot write {path}: no space left on its device ({free} in {path.parent}); free some space and run again",
    )


def _fsync_path(path: Path) -> None:
    """fsync a file or directory by path (directories: so a rename inside them is durable)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() and hasattr(os, "O_DIRECTORY") else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories cannot be opened on Windows; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_name(path: Path, kind: str) -> Path:
    """Create and return a fresh hidden file (or, with kind="dir", directory) next to ``path``,
    on the same filesystem, e.g. ``.rte.json.k3j2.tmp``."""
    prefix, parent = f".{path.name}.", path.parent
    if kind == "dir":
        made = Path(tempfile.mkdtemp(dir=parent, prefix=prefix, suffix=".tmp"))
    else:
        fd, name = tempfile.mkstemp(dir=parent, prefix=prefix, suffix=".tmp")
        os.close(fd)
        made = Path(name)
    # mkstemp/mkdtemp create private (0600/0700) entries; give the result the permissions an
    # ordinary open()/mkdir() would have, so a shared cache stays readable by the group.
    made.chmod((0o777 if kind == "dir" else 0o666) & ~_umask())
    return made


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_beside(path: Path, kind: str) -> Path:
    """A fresh temporary name next to ``path`` (its parent created); a full disk is one
    StorageFullError naming the path and the free space."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _temp_name(path, kind)
    except OSError as err:
        if is_disk_full(err):
            raise storage_full(path, err) from None
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; write it inside the block. On a clean exit it
    is fsynced and renamed over ``path`` (replacing any old file); on an error it is deleted
    and ``path`` is unchanged. Parent directories are created."""
    path = Path(path)
    tmp = _temp_beside(path, "file")
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_disk_full(err):
            raise storage_full(path, err) from None
        raise
    _fsync_path(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_save_safetensors(
    tensors: dict[str, Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> str:
    """Save ``tensors`` with :func:`safetensors.torch.save_file` atomically; return the
    file's sha256, so a JSON record written next to it can vouch for exactly these bytes.

    Tensors must not share storage (safetensors refuses aliasing); clone views first.
    """
    with atomic_file(path) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)
        # save_file recreates the file owner-only (0600), undoing the group-readable mode the
        # temporary was given: a shared prompt library or run must stay readable by the group.
        tmp.chmod(0o666 & ~_umask())
        digest = sha256_file(tmp)
    return digest


def read_safetensors(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, Tensor]:
    """Load a safetensors file (CPU tensors), first checking its sha256 when one is given.

    A mismatch means the file is not the one its record describes: replaced by hand, or an
    overwrite interrupted between writing the tensors and writing their record.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tensor file {path} is missing")
    data = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ValueError(
            f"{path} does not match the sha256 its record holds ({expected_sha256[:12]}…): it was "
            "changed after the record was written, or an overwrite was interrupted; save it again"
        )
    try:
        return safetensors.torch.load(data)
    except Exception as err:  # safetensors raises its own SafetensorError for corrupt headers
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err


def check_finite(tensors: dict[str, Tensor], path: str | os.PathLike) -> dict[str, Tensor]:
    """``tensors`` unchanged, or a ValueError naming ``path`` and the first floating-point tensor
    holding NaN or ±inf: a prompt that diverged answers every input with garbage, so it is
    refused where it is read rather than served."""
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(value.isfinite().all()):
            bad = int((~value.isfinite()).sum())
            raise ValueError(
                f"{path}: tensor {key!r} holds {bad} NaN or infinite value(s) of {value.numel()}; "
                "the training that wrote it diverged (retrain, e.g. with a lower optim.lr)"
            )
    return tensors


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Load a JSON object from ``path``; errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, found {type(data).__name__}")
    return data


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it to ``path`` on a clean exit.

    Yields the temporary directory (empty). On an error it is removed and ``path`` is left as
    it was. If ``path`` exists: with ``overwrite=False`` a :class:`FileExistsError` is raised
    (before the block runs, or at the rename if another process created it meanwhile, in
    which case the other process's directory wins); with ``overwrite=True`` the old
    directory is moved aside, the new one renamed in, and the old one deleted, so ``path``
    is missing only for the instant between the two renames, never half-written; after a
    crash in that instant :func:`recover_directory` puts the new copy in place.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    tmp = _temp_beside(path, "dir")
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                _fsync_path(file)
        _rename_directory(tmp, path, overwrite)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(err):
            raise storage_full(path, err) from None
        raise
    _fsync_path(path.parent)


def _swap_names(path: Path) -> tuple[Path, Path]:
    """The fixed hidden names a directory swap goes through: (new copy, old copy)."""
    return path.with_name(f".{path.name}.new.tmp"), path.with_name(f".{path.name}.old.tmp")


def _rename_directory(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` to ``path``; an existing ``path`` is replaced only if allowed.

    Replacing: ``tmp`` -> ``.<name>.new.tmp``; ``path`` -> ``.<name>.old.tmp`` (the commit
    point: from here on :func:`recover_directory` completes the swap rather than undoing it);
    ``.<name>.new.tmp`` -> ``path``; the old copy is deleted.
    """
    if not path.exists():
        try:
            os.rename(tmp, path)
        except OSError as err:
            if path.exists():
                raise FileExistsError(f"{path} was created by someone else while this copy was being built") from err
            raise
        return
    if not overwrite:
        raise FileExistsError(f"{path} was created by someone else while this copy was being built")
    staged, retired = _swap_names(path)
    for stale in (staged, retired):  # left by an earlier interrupted swap; path is the version that stands
        shutil.rmtree(stale, ignore_errors=True)
    os.rename(tmp, staged)
    _fsync_path(path.parent)
    os.rename(path, retired)
    try:
        os.rename(staged, path)
    except FileNotFoundError:
        if not path.is_dir():  # a reader's recover_directory may have finished the swap for us
            raise
    shutil.rmtree(retired, ignore_errors=True)


def recover_directory(path: str | os.PathLike, *, clean: bool = False) -> bool:
    """Finish a replacement of ``path`` that a crash interrupted between its renames.

    If ``path`` is missing and the finished new copy (``.<name>.new.tmp``) exists, it is
    renamed into place (the swap had committed); if only the old copy (``.<name>.old.tmp``)
    exists, it is put back. Once ``path`` exists an old copy left behind is deleted. With
    ``clean`` (only for the directory's single writer, e.g. a run being resumed) a new copy
    that never got swapped in and half-built ``.<name>.*.tmp`` directories are deleted too.
    Returns True when ``path`` was missing and has been restored. A read-only location is
    left as it is (logged).
    """
    path = Path(path)
    staged, retired = _swap_names(path)
    restored = False
    try:
        if not path.exists():
            for copy in (staged, retired):
                if copy.is_dir():
                    os.rename(copy, path)
                    _fsync_path(path.parent)
                    logger.warning(
                        "%s was missing after an interrupted replacement; restored it from %s", path, copy.name
                    )
                    restored = True
                    break
        if path.exists():
            shutil.rmtree(retired, ignore_errors=True)
            if clean:
                for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
                    shutil.rmtree(leftover, ignore_errors=True)
    except OSError as err:  # e.g. a run directory served read-only: report, let the reader fail as before
        logger.warning("could not recover %s from an interrupted replacement: %s", path, err)
    return restored


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (to tie a JSON record to the tensor file it describes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
