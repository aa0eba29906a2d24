"""Where a result came from: the command, the code revision, the machine, the libraries.

Written into prompt cards (and run records) so a number can be traced back to what made it.
Every function degrades to None / a partial answer instead of failing: provenance must never
stop a run that trained for hours.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any


def git_revision(path: str | os.PathLike | None = None) -> str | None:
    """``<commit>`` of the git checkout holding ``path`` (default: this package's source, else
    the cwd), with ``+dirty`` when tracked files differ from it; None outside a checkout."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def command_line() -> str:
    """The command that is running, as a shell would take it (``promptmix train ...``)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("promptmix", "__main__.py"):
        argv[0] = "promptmix"
    return shlex.join(argv)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def versions(
    packages: tuple[str, ...] = ("promptmix", "torch", "transformers", "accelerate", "datasets", "safetensors"),
) -> dict[str, str]:
    """Installed versions of the libraries a result depends on."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance() -> dict[str, Any]:
    """Everything above in one JSON-able dict, with the UTC time."""
    return {
        "command": command_line(),
        "git_revision": git_revision(),
        "machine": machine(),
        "versions": versions(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
