"""Named soft prompts on disk, each tied to the backbone it was trained on.

A trained prompt is worth keeping: SPoT, ATTEMPT and MPT all start new tasks from prompts
trained earlier. A prompt is only meaningful in the input-embedding space of the model it
was trained with, so every entry records that model's identity (name, width and a
fingerprint of its embedding matrix, see :meth:`promptmix.backbone.Backbone.identity`) and
:meth:`PromptLibrary.load` refuses a backbone whose identity differs, saying which and why.

Layout (safetensors + JSON, never pickle)::

    root/<name>.json                 PromptRecord: task, method, backbone identity, m, dev metrics,
                                     creation time, the tensor file's name and its sha256
    root/<name>@<token>.safetensors  tensor "prompt" [m, d] (fp32); entries written before the
                                     record named its file (and the shipped libraries) use
                                     root/<name>.safetensors
    root/.promptmix.lock             taken by every write (add, remove), so two processes
                                     writing one library take turns

The record is the entry. ``add`` writes the tensor under a fresh name first, then the record
that names it (atomically, see :mod:`promptmix._io`): that rename is the one switch from the
old entry to the new, so a crash at any point leaves either the whole old entry or the whole
new one, never a record whose tensor is another's. The old tensor is deleted after the switch
(or, after a crash, by the next write of that name). The libraries shipped inside the package
are read-only, except to the training stage that makes their prompts (a source stage whose
config names ``library.root: promptmix:<name>``, as configs/smollm2 does).
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import difflib
import glob
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock
import torch
from torch import Tensor

from promptmix._io import atomic_save_safetensors, atomic_write_text, check_finite, read_json, read_safetensors

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# A tensor file of entry NAME: "@" is not allowed in names, so "<name>@..." belongs to one entry only.
TENSOR_FILE = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127})(@[0-9a-f]{16})?\.safetensors")
LOCK_FILE = ".promptmix.lock"
LOCK_TIMEOUT = 600.0  # seconds a write waits for another process's write of the same library
FORMAT_VERSION = 1
TENSOR_KEY = "prompt"


class IncompatiblePromptError(ValueError):
    """A prompt (or prompt method) saved for one backbone was asked to run on another."""


class PromptExistsError(FileExistsError, ValueError):
    """A library entry of that name exists and ``overwrite`` was not given."""


class UnknownPromptError(KeyError):
    """No library entry of that name."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


# -- backbone identity ------------------------------------------------------------------------
IDENTITY_FIELDS = {"backbone": str, "hidden_size": int, "fingerprint": str}


def backbone_identity(backbone: Any) -> dict[str, Any]:
    """``{"backbone", "hidden_size", "fingerprint"}`` of a :class:`Backbone` or of an identity
    dict (as saved files hold), validated."""
    if hasattr(backbone, "identity"):
        backbone = backbone.identity()
    if not isinstance(backbone, Mapping):
        raise TypeError(f"expected a Backbone or its identity dict, got {type(backbone).__name__}")
    for key, kind in IDENTITY_FIELDS.items():
        value = backbone.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"backbone identity field {key!r} must be {kind.__name__}, got {value!r}")
    return {key: backbone[key] for key in IDENTITY_FIELDS}


def check_compatible(saved: Mapping[str, Any], backbone: Any, *, what: str) -> None:
    """Raise :class:`IncompatiblePromptError` unless ``backbone`` has the width and embedding
    fingerprint ``saved`` (an identity dict) records. ``what`` names the prompt and its file."""
    saved, current = backbone_identity(saved), backbone_identity(backbone)
    reasons = []
    if saved["hidden_size"] != current["hidden_size"]:
        reasons.append(
            f"its vectors are {saved['hidden_size']} wide "
            f"but the backbone's embeddings are {current['hidden_size']} wide"
        )
    if saved["fingerprint"] != current["fingerprint"]:
        reasons.append(f"the embedding fingerprints differ ({saved['fingerprint']} vs {current['fingerprint']})")
    if not reasons:
        return
    raise IncompatiblePromptError(
        f"{what} was trained on backbone {saved['backbone']!r} (hidden size {saved['hidden_size']}, "
        f"fingerprint {saved['fingerprint']}) and cannot run on backbone {current['backbone']!r} "
        f"(hidden size {current['hidden_size']}, fingerprint {current['fingerprint']}): " + "; ".join(reasons) + ". "
        "A soft prompt is a set of points in one model's input-embedding space; any other model, even one "
        "of the same architecture and width, embeds tokens differently, so the prompt does not transfer. "
        f"Load {saved['backbone']!r} or retrain the prompt on {current['backbone']!r}."
    )


def check_name(name: str) -> str:
    """Entry names become file names: letters, digits, '-', '_', '.', not starting with '.'."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid prompt name {name!r}: use 1-128 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return name


# -- records ----------------------------------------------------------------------------------
@dataclass
class PromptRecord:
    """What ``root/<name>.json`` holds about one prompt."""

    name: str
    task: str
    method: str
    backbone: str
    hidden_size: int
    prompt_length: int
    fingerprint: str
    sha256: str
    """sha256 of ``<name>.safetensors``: ties the record to exactly those bytes."""
    created: str
    """ISO 8601 UTC time of ``add``."""
    tensor_file: str = ""
    """The tensor file's name in the library directory; empty: ``<name>.safetensors`` (entries
    written before records named their file)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Dev-set metrics of the prompt when it was saved (e.g. ``{"accuracy": 0.73}``)."""
    card: dict[str, Any] = field(default_factory=dict)
    """Where the prompt came from, free-form JSON: the source stage records the dev metric with
    the majority class's and the best constant answer's scores beside it, steps, examples seen,
    wall time, seed, the command and the git revision (see :func:`card_markdown`)."""
    format_version: int = FORMAT_VERSION

    @property
    def identity(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "hidden_size": self.hidden_size, "fingerprint": self.fingerprint}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | os.PathLike = "<dict>") -> PromptRecord:
        """Validate and build; errors name ``source`` (the JSON file) and the field."""
        kinds = {
            f.name: (dict if f.name in ("metrics", "card") else int if f.type == "int" else str)
            for f in dataclasses.fields(cls)
        }
        missing = sorted(set(kinds) - set(data) - {"metrics", "card", "format_version", "tensor_file"})
        if missing:
            raise ValueError(f"{source}: missing field(s) {missing}")
        for key, value in data.items():
            if key not in kinds:
                raise ValueError(f"{source}: unknown field {key!r}")
            if not isinstance(value, kinds[key]) or isinstance(value, bool):
                raise ValueError(f"{source}: field {key!r} must be {kinds[key].__name__}, got {value!r}")
        if data.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ValueError(
                f"{source}: format_version {data['format_version']} is newer than this promptmix "
                f"reads ({FORMAT_VERSION}); upgrade promptmix"
            )
        try:
            metrics = _clean_metrics(data.get("metrics"))
        except ValueError as err:
            raise ValueError(f"{source}: field 'metrics': {err}") from None
        file = data.get("tensor_file", "")
        match = TENSOR_FILE.fullmatch(file)
        if file and (match is None or match["name"] != data["name"]):  # never a path out of the library
            raise ValueError(
                f"{source}: field 'tensor_file' is {file!r}, expected '{data['name']}@<16 hex>.safetensors'"
            )
        return cls(**{**data, "metrics": metrics})


def _clean_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    out = {}
    for key, value in (metrics or {}).items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"metrics must map names to numbers; got {key!r}: {value!r}")
        out[key] = float(value)
    return out


def _check_prompt(prompt: Tensor, hidden_size: int, name: str) -> Tensor:
    """A detached fp32 CPU copy of a valid [m, d] prompt."""
    if not isinstance(prompt, Tensor) or prompt.dim() != 2:
        shape = tuple(prompt.shape) if isinstance(prompt, Tensor) else type(prompt).__name__
        raise ValueError(f"prompt {name!r} must be a [prompt_length, hidden_size] tensor, got {shape}")
    if prompt.shape[1] != hidden_size:
        raise ValueError(f"prompt {name!r} is {prompt.shape[1]} wide but its backbone has hidden size {hidden_size}")
    if not torch.isfinite(prompt).all():
        raise ValueError(f"prompt {name!r} contains NaN or infinite values; refusing to save it")
    return prompt.detach().to("cpu", torch.float32).contiguous().clone()


SHIPPED_PREFIX = "promptmix:"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"  # the shipped libraries, one folder each


def shipped_libraries() -> dict[str, Path]:
    """The prompt libraries shipped inside the package, ``{name: directory}``: trained source
    prompts for a backbone (``promptmix:smollm2-135m``), read like any library."""
    root = PRETRAINED_DIR
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir()} if root.is_dir() else {}


def resolve_library_root(spec: str | os.PathLike) -> Path:
    """A directory from a path or ``promptmix:<name>[/<subpath>]`` (a shipped library, or a
    file or folder inside it, such as ``promptmix:smollm2-135m/mpt-source``)."""
    text = os.fspath(spec)
    if not text.startswith(SHIPPED_PREFIX):
        return Path(text).expanduser()
    name, _, subpath = text[len(SHIPPED_PREFIX) :].partition("/")
    shipped = shipped_libraries()
    if name not in shipped:
        close = difflib.get_close_matches(name, list(shipped), n=3, cutoff=0.5)
        hint = (
            f"did you mean {', '.join(SHIPPED_PREFIX + c for c in close)}?"
            if close
            else (f"shipped: {', '.join(SHIPPED_PREFIX + n for n in shipped) or 'none'}")
        )
        raise ValueError(f"no shipped prompt library {SHIPPED_PREFIX + name!r}; {hint}")
    return shipped[name] / subpath if subpath else shipped[name]


def card_markdown(record: PromptRecord) -> str:
    """A prompt's card as Markdown: what it is, how well it does, how it was made."""
    card = record.card
    lines = [
        f"# {record.name}",
        "",
        f"Soft prompt for task `{record.task}` ({record.method}), {record.prompt_length} × {record.hidden_size}, "
        f"trained on backbone `{record.backbone}` (embedding fingerprint {record.fingerprint}).",
        "",
    ]
    metric = card.get("metric")
    if metric is not None and card.get("dev_score") is not None:
        majority, best = card.get("majority_dev_score"), card.get("best_constant_dev_score")
        floors = [f"majority class: {_number(majority)}"] if _is_number(majority) else []
        if _is_number(best) and best != majority:  # an F1-type metric can favour a rarer answer
            floors.append(f"best constant answer {card.get('best_constant_answer')!r}: {_number(best)}")
        lines.append(
            f"- dev {metric}: **{_number(card['dev_score'])}**" + (f" ({'; '.join(floors)})" if floors else "")
        )
    labels = {
        "best_step": "best step",
        "steps": "steps trained",
        "examples_seen": "examples seen at the best step",
        "seconds": "training wall time (s)",
        "seed": "seed",
        "settings": "settings",
        "command": "command",
        "git_revision": "git revision",
        "machine": "machine",
        "date": "date",
        "imported_from": "imported from the PEFT adapter",
        "base_model_name_or_path": "the adapter's base model",
        "source": "exported from",
    }
    for key, label in labels.items():
        if key in card:
            value = card[key]
            value = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else value
            lines.append(f"- {label}: `{value}`" if key in ("command", "git_revision") else f"- {label}: {value}")
    if record.metrics:
        lines.append("- dev metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in record.metrics.items()))
    lines.append(f"- created: {record.created}; tensor sha256 {record.sha256[:16]}…")
    return "\n".join(lines) + "\n"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> str:
    """A score with one decimal; anything else a hand-edited card holds (a string, say) as it is,
    so one odd card does not stop a listing."""
    return f"{value:.1f}" if _is_number(value) else repr(value)


def is_shipped(root: Path) -> bool:
    """Whether ``root`` lies inside a library shipped with the package (read-only)."""
    try:
        Path(root).resolve().relative_to(PRETRAINED_DIR.resolve())
    except ValueError:
        return False
    return True


def default_library_root() -> Path:
    """``$PROMPTMIX_LIBRARY``, else ``$XDG_DATA_HOME/promptmix/prompts`` (``~/.local/share/...``)."""
    if os.environ.get("PROMPTMIX_LIBRARY"):
        return Path(os.environ["PROMPTMIX_LIBRARY"]).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "promptmix" / "prompts"


# -- the library ------------------------------------------------------------------------------
class PromptLibrary:
    """A directory of named prompts.

    Example::

        lib = PromptLibrary("prompts/")
        lib.add("mnli-t5base", method.task_prompt("mnli"), task="mnli", method="prompt-tuning",
                backbone=backbone, metrics={"accuracy": 0.853})
        prompt = lib.load("mnli-t5base", backbone)     # [m, d], or IncompatiblePromptError

    Shapes: stored and returned prompts are [m, d] fp32.
    """

    def __init__(self, root: str | os.PathLike, *, update_shipped: bool = False) -> None:
        """``update_shipped``: allow writes to a shipped library (only for the training stage that
        makes its prompts; the CLI's add, import and remove never pass it)."""
        self.spec = os.fspath(root)
        self.root = resolve_library_root(root)
        self.update_shipped = update_shipped

    def __repr__(self) -> str:
        return f"PromptLibrary({str(self.root)!r})"

    @property
    def read_only(self) -> bool:
        """A library shipped inside the package: ``add`` and ``remove`` refuse it (unless opened
        with ``update_shipped``)."""
        return not self.update_shipped and is_shipped(self.root)

    def tensor_path(self, name: str) -> Path:
        """The tensor file of entry ``name``: the one its record names (checked as :meth:`get`
        checks it, so never a path out of the library), else ``<name>.safetensors``."""
        if self.record_path(name).is_file():
            file = self.get(name).tensor_file
            if file:
                return self.root / file
        return self.root / f"{name}.safetensors"

    def record_path(self, name: str) -> Path:
        return self.root / f"{check_name(name)}.json"

    def check_directory(self) -> None:
        """Raise ValueError when the library's path exists but is not a directory."""
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"prompt library {self.root} is a file, not a directory; give a directory for the library")

    def names(self) -> list[str]:
        """Entry names, sorted (temporary files of writes in progress are hidden)."""
        self.check_directory()
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json") if NAME_PATTERN.fullmatch(p.stem))

    def __contains__(self, name: str) -> bool:
        return NAME_PATTERN.fullmatch(str(name)) is not None and self.record_path(name).is_file()

    @contextlib.contextmanager
    def _writing(self, action: str) -> Iterator[None]:
        """Hold the library's write lock: two processes adding or removing entries take turns,
        so neither reads a state the other is halfway through replacing."""
        if self.read_only:
            raise ValueError(
                f"{self.spec} is a prompt library shipped with promptmix ({self.root}) and is read-only; "
                f"cannot {action}: use a library of your own (--library DIR or $PROMPTMIX_LIBRARY)"
            )
        self.check_directory()
        self.root.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.root / LOCK_FILE, timeout=LOCK_TIMEOUT)
        try:
            with lock:
                yield
        except filelock.Timeout:
            raise TimeoutError(
                f"{self.root / LOCK_FILE}: another process has held the library's write lock for "
                f"{LOCK_TIMEOUT:.0f} s; try again when it is done"
            ) from None

    def _drop_stale_tensors(self, name: str, keep: Path | None) -> None:
        """Delete tensor files of ``name`` other than ``keep`` (left by an overwrite or removal
        a crash interrupted after its switch). Only called with the write lock held."""
        for path in self.root.glob(f"{glob.escape(name)}*.safetensors"):
            match = TENSOR_FILE.fullmatch(path.name)
            if match is not None and match["name"] == name and path != keep:
                path.unlink(missing_ok=True)

    def add(
        self,
        name: str,
        prompt: Tensor,
        *,
        task: str,
        method: str,
        backbone: Any,
        metrics: Mapping[str, float] | None = None,
        card: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> PromptRecord:
        """Save ``prompt`` [m, d] under ``name``; ``backbone`` is the :class:`Backbone` it was
        trained on or its ``identity()`` dict; ``card`` is free-form JSON provenance. Refuses to
        replace an entry unless ``overwrite``. Writers of one library take turns (a file lock)."""
        identity = backbone_identity(backbone)
        value = _check_prompt(prompt, identity["hidden_size"], check_name(name))
        for label, text in (("task", task), ("method", method)):
            if not isinstance(text, str) or not text:
                raise ValueError(f"prompt {name!r}: {label} must be a non-empty string, got {text!r}")
        card_copy = json.loads(json.dumps(dict(card or {})))  # a JSON copy, or a TypeError before anything is written
        clean = _clean_metrics(metrics)
        with self._writing(f"add {name!r}"):
            if name in self and not overwrite:
                old = self.get(name)
                raise PromptExistsError(
                    f"prompt {name!r} already exists in {self.root} (task {old.task!r}, "
                    f"backbone {old.backbone!r}, created {old.created}); pass overwrite=True to replace it"
                )
            # A fresh file name: the entry standing now keeps its tensor until the record switches.
            tensor = self.root / f"{name}@{secrets.token_hex(8)}.safetensors"
            try:
                digest = atomic_save_safetensors({TENSOR_KEY: value}, tensor, metadata={"format": "pt", "name": name})
                record = PromptRecord(
                    name=name,
                    task=task,
                    method=method,
                    **identity,
                    prompt_length=int(value.shape[0]),
                    sha256=digest,
                    created=datetime.now(UTC).isoformat(timespec="seconds"),
                    tensor_file=tensor.name,
                    metrics=clean,
                    card=card_copy,
                )
                atomic_write_text(self.record_path(name), json.dumps(record.to_dict(), indent=2) + "\n")  # the switch
            except BaseException:
                tensor.unlink(missing_ok=True)  # the old record (if any) still names the old tensor
                raise
            self._drop_stale_tensors(name, keep=tensor)
        return record

    def get(self, name: str) -> PromptRecord:
        """The record of ``name``; an unknown name raises :class:`UnknownPromptError` with the
        closest names."""
        if check_name(name) not in self:
            names = self.names()
            close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
            hint = (
                f"; did you mean {', '.join(map(repr, close))}?"
                if close
                else (f"; it holds {len(names)} prompt(s)" + (f": {', '.join(names[:10])}" if names else ""))
            )
            raise UnknownPromptError(f"no prompt named {name!r} in {self.root}{hint}")
        path = self.record_path(name)
        record = PromptRecord.from_dict(read_json(path), source=path)
        if record.name != name:
            raise ValueError(f"{path}: field 'name' is {record.name!r}, expected {name!r} (file renamed by hand?)")
        return record

    def list(self) -> list[PromptRecord]:
        """Every entry's record, sorted by name; the first unreadable record raises (see :meth:`scan`)."""
        return [self.get(name) for name in self.names()]

    # ``builtins.list``: in the class body from here on, ``list`` is the method above.
    def scan(self) -> tuple[builtins.list[PromptRecord], builtins.list[str]]:
        """Every readable entry's record, sorted by name, and one line for each ``*.json`` that
        is not a readable record (naming the file and why), so one stray file hides nothing else."""
        self.check_directory()
        if not self.root.is_dir():
            return [], []
        records, problems = [], []
        for path in sorted(self.root.glob("*.json")):
            if not NAME_PATTERN.fullmatch(path.stem):
                problems.append(f"{path}: not a prompt record (its name is no valid prompt name)")
                continue
            try:
                records.append(self.get(path.stem))
            except (ValueError, KeyError, OSError) as err:
                problems.append(str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err))
        return records, problems

    def remove(self, name: str) -> PromptRecord:
        """Delete an entry (record first, so it vanishes in one step); returns its record."""
        if not self.read_only:
            self.get(name)  # an unknown name is told before the lock would create a missing library's directory
        with self._writing(f"remove {name!r}"):
            record = self.get(name)
            self.record_path(name).unlink()
            self._drop_stale_tensors(name, keep=None)
        return record

    def load(self, name: str, backbone: Any) -> Tensor:
        """The prompt [m, d] (fp32, on the backbone's device when given a :class:`Backbone`).

        Raises :class:`IncompatiblePromptError` when ``backbone`` (a Backbone or identity dict)
        is not the one the prompt was trained on, and ValueError when the tensor holds NaN or ±inf.
        """
        for attempt in range(3):
            record = self.get(name)
            path = self.root / (record.tensor_file or f"{name}.safetensors")
            check_compatible(record.identity, backbone, what=f"prompt {name!r} ({path})")
            try:
                tensors = read_safetensors(path, record.sha256)
                break
            except FileNotFoundError:
                # An overwrite by another process switched the record and deleted the tensor
                # the record read a moment ago named: read the new record.
                if attempt == 2 or self.get(name) == record:
                    raise
        check_finite(tensors, path)
        prompt = tensors.get(TENSOR_KEY)
        expected = (record.prompt_length, record.hidden_size)
        if prompt is None or tuple(prompt.shape) != expected:
            found = {k: tuple(v.shape) for k, v in tensors.items()}
            raise ValueError(f"{path} should hold tensor {TENSOR_KEY!r} of shape {expected}, found {found}")
        device = backbone.embeddings.device if hasattr(backbone, "embeddings") else None
        return prompt.to(device) if device is not None else prompt


def fixed_task_prompt(method: Any, task: str) -> Tensor:
    """The [m, d] prompt ``method`` gives every example of ``task``, for storing in a library.

    Only input-independent prompts can be stored as one tensor (prompt tuning; MPT's
    P* ∘ u_k v_k). This runs the method on two different random inputs and refuses when the
    prompts differ (ATTEMPT mixes prompts per input): save such a method whole with
    :func:`promptmix.prompts.checkpoint.save_method` instead.
    """
    task_id = method.task_ids_for([task, task])
    param = next(iter(method.parameters()), None)
    device = param.device if param is not None else None
    gen = torch.Generator().manual_seed(0)
    embeds = torch.randn(2, 3, method.hidden_size, generator=gen).to(device)  # [2, n=3, d]
    mask = torch.ones(2, 3, dtype=torch.long, device=device)
    with torch.no_grad():
        out = method(embeds, mask, task_id)
    prompts = out.prompts.detach().float()
    if out.prompt_mask is not None and not bool(out.prompt_mask.all()):
        prompts = prompts[:, out.prompt_mask[0].bool()]  # drop pad slots of routed prompts
    if not torch.equal(prompts[0], prompts[1]):
        raise ValueError(
            f"the {method.config.method} method's prompt for {task!r} depends on the input, so it "
            "is not one stored prompt; keep the whole method with save_method instead"
        )
    return prompts[0].cpu().clone()
