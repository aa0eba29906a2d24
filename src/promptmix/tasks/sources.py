"""Where a task's data comes from: local files in the original release layout, or the hub.

:func:`load_raw_splits` returns the released splits as examples (``"train"``,
``"validation"`` and, where the release has a labelled one, ``"test"``); ``splits.py`` then
applies the papers' protocol. Local files win; the hub (``datasets.load_dataset``) is the
fallback unless it is switched off (``HF_HUB_OFFLINE=1``). A dataset id that is a folder on
this machine (parquet files, a ``save_to_disk`` directory) is read from disk, offline or not.
When neither has the data, the error lists exactly which files to put where.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptmix.tasks.example import DataError, Example
from promptmix.tasks.readers import read_parquet

if TYPE_CHECKING:
    from promptmix.tasks.base import Task

logger = logging.getLogger(__name__)

Reader = Callable[[Path], Iterable[tuple[str, Any]]]

# hub_splits of a release whose test set is labelled (and therefore used as the test split).
LABELLED_TEST_SPLITS = {"train": "train", "validation": "validation", "test": "test"}


def release_files(
    pattern: str, train: str = "train", validation: str | None = "dev", test: str | None = None
) -> dict[str, str]:
    """``{split: path}`` from a path pattern with one ``{}`` for the release's split name."""
    names = {"train": train, "validation": validation, "test": test}
    return {split: pattern.format(name) for split, name in names.items() if name is not None}


@dataclass(frozen=True)
class LocalLayout:
    """Another local layout of a task's data, read when the release files are absent: a copy
    kept by another repository (``../shared/data/more``), or a subset of the release.

    Attributes:
        files: ``{split: path relative to the data directory}``; ``"train"`` and at least one
            of ``"validation"`` / ``"test"``.
        readers: ``{split: reader}`` (the files of one layout may differ in format).
        release: what the files are, for messages.
        dev_from_train: hold this many training examples out as dev (the layout has no dev
            file of its own, or its evaluation files are better kept whole as test); a task's
            own ``dev_from_train`` option wins.
    """

    files: Mapping[str, str]
    readers: Mapping[str, Reader]
    release: str
    dev_from_train: int | None = None


@dataclass(frozen=True)
class DataSource:
    """How to find a dataset.

    Attributes:
        files: ``{split: path relative to the data directory}`` for ``"train"``,
            ``"validation"`` and, only where the release labels it, ``"test"``.
        reader: turns one such file into ``(where, record | DataError)`` pairs.
        release: what the files are and where they come from, for error messages.
        hub_id, hub_config: arguments of ``datasets.load_dataset``.
        hub_splits: ``{split: hub split name}``, same keys as ``files``.
        hub_filter: ``(field, value)`` keeping only matching hub rows (MRQA's ``subset``).
        alternates: other local layouts, tried in order when the release files are absent
            and the task's files were not replaced by its ``files`` option.
        split_field, split_values: a release holding every split in one file (or hub split)
            with a column naming each row's split (SICK's ``SemEval_set``): split ``s`` is the
            rows whose ``split_field`` is ``split_values[s]`` (e.g. ``{"validation": "TRIAL"}``).
    """

    files: Mapping[str, str]
    reader: Reader
    release: str
    hub_id: str | None = None
    hub_config: str | None = None
    hub_splits: Mapping[str, str] = field(default_factory=lambda: {"train": "train", "validation": "validation"})
    hub_filter: tuple[str, str] | None = None
    alternates: tuple[LocalLayout, ...] = ()
    split_field: str | None = None
    split_values: Mapping[str, str] = field(default_factory=dict)

    def hub_name(self) -> str:
        """``"id"`` or ``"id/config"``, for messages and the CLI."""
        return f"{self.hub_id}/{self.hub_config}" if self.hub_config else str(self.hub_id)

    def hub_call(self) -> str:
        """The ``datasets.load_dataset`` call that loads this source, as text."""
        config = f", {self.hub_config!r}" if self.hub_config else ""
        return f"datasets.load_dataset({self.hub_id!r}{config})"


class MissingDataError(FileNotFoundError):
    """Neither local files nor the hub could provide a task's data; says what to put where."""

    def __str__(self) -> str:
        return str(self.args[0])


def local_paths(task: Task, data_dir: str | Path | None) -> dict[str, Path]:
    """``{split: path}`` of the task's local files under ``data_dir`` (existing or not); absolute
    paths (a task file's, see ``declared.py``) stand without a data directory."""
    if data_dir is None:
        return {split: Path(p) for split, p in task.files.items() if Path(p).is_absolute()}
    return {split: Path(data_dir) / rel for split, rel in task.files.items()}


def hub_offline() -> bool:
    """True when the environment switches the hub off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)."""
    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(flag.strip().upper() in {"1", "ON", "YES", "TRUE"} for flag in flags)


def load_raw_splits(task: Task, data_dir: str | Path | None, *, hub: bool | None = None) -> dict[str, list[Example]]:
    """The released splits of ``task`` as examples (see :func:`load_raw_layout`)."""
    return load_raw_layout(task, data_dir, hub=hub)[0]


def load_raw_layout(
    task: Task, data_dir: str | Path | None, *, hub: bool | None = None
) -> tuple[dict[str, list[Example]], LocalLayout | None]:
    """The released splits of ``task`` as examples, from local files (the release layout,
    else the first complete alternate layout) or the hub, and the alternate layout read (None
    for the release files or the hub).

    Args:
        data_dir: directory holding the original release files (may be ``None``).
        hub: ``True`` hub only, ``False`` local only, ``None`` local first, then the hub
            when it is not switched off.
    """
    if task.source is None:
        raise MissingDataError(
            f"task '{task.name}' declares no data source; build its examples "
            "with task.format(record) from your own data"
        )
    paths = local_paths(task, data_dir)
    if len(paths) < len(task.files):
        paths = {}  # relative files and no data directory: only the hub can serve
    if hub is not True and paths and all(path.exists() for path in paths.values()):
        return {split: read_local_split(task, path, split) for split, path in paths.items()}, None
    layout = alternate_layout(task, data_dir) if hub is not True else None
    if layout is not None and data_dir is not None:  # a layout is only found under a data_dir
        return {
            split: format_rows(task, layout.readers[split](Path(data_dir) / rel), Path(data_dir) / rel)
            for split, rel in layout.files.items()
        }, layout
    hub_note = _hub_skip_reason(task, hub)
    if hub_note is None:
        try:
            return {split: read_hub_split(task, name, split) for split, name in task.source.hub_splits.items()}, None
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - any hub failure becomes part of the message
            if hub:
                raise
            hub_note = f"loading it failed: {type(err).__name__}: {err}"
    raise MissingDataError(missing_data_message(task, paths, hub_note, data_dir))


def alternate_layout(task: Task, data_dir: str | Path | None) -> LocalLayout | None:
    """The first of the task's alternate layouts whose files all exist under ``data_dir``;
    None without one, or when the task's ``files`` option replaced the release files."""
    if data_dir is None or getattr(task, "files_replaced", False):
        return None
    for layout in task.source.alternates:
        if all((Path(data_dir) / rel).exists() for rel in layout.files.values()):
            return layout
    return None


def _hub_skip_reason(task: Task, hub: bool | None) -> str | None:
    """Why the hub is not tried, or ``None`` to try it."""
    if task.source.hub_id is None:
        return "the task declares no hub dataset"
    if is_local_dataset(task.source.hub_id):
        return None if hub is not False else "not tried (hub=False)"  # a folder on disk needs no hub
    if hub is False:
        return "not tried (hub=False)"
    if hub is None and hub_offline():
        return "not tried: HF_HUB_OFFLINE=1 is set"
    return None


def missing_data_message(
    task: Task, paths: Mapping[str, Path], hub_note: str, data_dir: str | Path | None = None
) -> str:
    """The error text naming each file to put in place, and why the hub did not serve."""
    lines = [f"no data for task '{task.name}'."]
    if paths:
        lines.append(f"Put the {task.source.release} files here:")
        for split, path in paths.items():
            state = "found" if path.exists() else "MISSING"
            lines.append(f"  {split:<10} {path}  ({state})")
        if data_dir is not None and not getattr(task, "files_replaced", False):
            for layout in task.source.alternates:
                lines.append(f"or the {layout.release} files:")
                for split, rel in layout.files.items():
                    path = Path(data_dir) / rel
                    lines.append(f"  {split:<10} {path}  ({'found' if path.exists() else 'MISSING'})")
    else:
        lines.append(
            f"No data directory was given; pass one holding the {task.source.release} "
            f"files at: {', '.join(task.files.values())}"
        )
    if task.source.hub_id is not None:
        lines.append(f"Hub: {task.source.hub_call()} {hub_note}")
    else:
        lines.append(f"Hub: {hub_note}")
    return "\n".join(lines)


def read_local_split(task: Task, path: str | Path, split: str | None = None) -> list[Example]:
    """Every labelled example of one local file, formatted by ``task`` (see :func:`format_rows`);
    with ``split``, only that split's rows of a file that holds several (``split_field``). A
    ``.parquet`` file (the hub's export of a dataset, hub field names) is read as such whatever
    the task's release format, so a built-in task's ``files`` option can name one."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":  # the hub's own export: records with the hub's field names
        return format_rows(task, only_split(task, read_parquet(path), split), path)
    return format_rows(task, only_split(task, task.source.reader(path), split), path)


def only_split(task: Task, rows: Iterable[tuple[str, Any]], split: str | None) -> Iterable[tuple[str, Any]]:
    """The rows of ``split`` when the task's source names each row's split in a column; every
    row otherwise. A row without that column is a DataError naming it."""
    column = task.source.split_field if task.source is not None else None
    if column is None or split is None:
        yield from rows
        return
    wanted = str(task.source.split_values[split])
    for where, item in rows:
        if isinstance(item, Mapping):
            if column not in item:
                yield (
                    where,
                    DataError(f"missing (it names each row's split: {dict(task.source.split_values)})", field=column),
                )
                continue
            if str(item[column]).strip() != wanted:
                continue
        yield where, item


def read_hub_split(task: Task, hub_split: str, split: str) -> list[Example]:
    """One split from the hub via ``datasets.load_dataset``, formatted by ``task``."""
    import datasets

    source = task.source
    if is_local_dataset(source.hub_id):
        rows = load_local_dataset(source.hub_id, source.hub_config, hub_split, whole=source.split_field is not None)
    else:
        rows = datasets.load_dataset(source.hub_id, source.hub_config, split=hub_split)
    keep = source.hub_filter
    numbered = ((f"row {i}", record) for i, record in enumerate(rows) if keep is None or record.get(keep[0]) == keep[1])
    examples = format_rows(task, only_split(task, numbered, split), f"hub {source.hub_name()} [{hub_split}]")
    logger.info("%s %s: %d examples from the hub", task.name, split, len(examples))
    return examples


def is_local_dataset(path: str | None) -> bool:
    """True when a task's dataset id is a folder (or file) on this machine, not a hub id."""
    return path is not None and Path(path).is_absolute() and Path(path).exists()


def load_local_dataset(path: str, config: str | None, split: str, *, whole: bool = False) -> Any:
    """One split of a dataset on disk, without the hub: a ``save_to_disk`` directory through
    ``datasets.load_from_disk`` (a single saved Dataset only when ``whole``: its rows name their
    split in a column), any other folder (parquet, csv, json files named by split) through
    ``datasets.load_dataset`` of the folder."""
    import datasets

    folder = Path(path)
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        loaded = datasets.load_from_disk(str(folder))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"the saved dataset has splits {sorted(loaded)}, not {split!r}", file=folder)
            return loaded[split]
        if not whole:
            raise DataError(
                "holds one saved Dataset, not a DatasetDict of splits; save a DatasetDict, or name the "
                "column that gives each row's split (split_field)",
                file=folder,
            )
        return loaded
    try:
        return datasets.load_dataset(str(folder), config, split=split)
    except ValueError as err:  # e.g. an unknown split: name the folder
        raise DataError(f"{type(err).__name__}: {err}", file=folder) from None


def format_rows(task: Task, rows: Iterable[tuple[str, Any]], file: str | Path) -> list[Example]:
    """Format ``(where, record | DataError)`` rows, requiring a label on each.

    A malformed row raises a DataError naming file, place and field, unless the task was
    built with ``skip_malformed=True``: then each such row is logged and skipped.
    """
    examples = []
    for position, (where, item) in enumerate(rows):
        try:
            if isinstance(item, DataError):
                raise item
            examples.append(task.format(item, idx=position, require_label=True))
        except DataError as err:
            located = err if err.file is not None else err.located(file, where)
            if not task.skip_malformed:
                raise located from None
            logger.warning("skipping malformed row: %s", located)
    warn_if_constant_input(task, examples, file)
    return examples


def warn_if_constant_input(task: Task, examples: list[Example], file: str | Path) -> None:
    """Warn when every example of a split has the same input: a template that shows no field
    of the record (or a field that never varies) leaves a model nothing to learn from."""
    if len(examples) > 1 and len({example.source for example in examples}) == 1:
        logger.warning(
            "task '%s' (%s): all %d examples have the same input %r; its template shows no field "
            "that varies, so a model can only learn the most common answer",
            task.name,
            file,
            len(examples),
            examples[0].source[:200],
        )
