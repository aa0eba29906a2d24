"""The two types every task module shares: an :class:`Example` and the :class:`DataError` a
malformed record raises. A leaf: it imports nothing of promptmix, so ``base``, ``sources``,
``splits``, ``metrics`` and the readers can all build on it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Example:
    """One text-to-text example.

    Attributes:
        source: formatted input text, e.g. ``"rte sentence1: ... sentence2: ..."``.
        target: target text, e.g. ``"entailment"``; ``""`` when the record has no label.
        task: canonical task name.
        label: gold label: a label word (classification), a float (regression), a list of
            answer strings (QA) or of reference texts (generation); ``None`` if unlabelled.
        group: examples that must stay together (a MultiRC question, a ReCoRD query, an E2E
            meaning representation); ``None`` for independent examples.
        idx: the record's own id, or its position in the file when it has none.
        choices: this example's own candidate answers (COPA's two alternatives, ReCoRD's
            entities), which rank classification scores; ``None`` for tasks whose answers are
            fixed label words or free text.
    """

    source: str
    target: str
    task: str
    label: Any = None
    group: str | None = None
    idx: Any = None
    choices: tuple[str, ...] | None = None


class DataError(ValueError):
    """A record that cannot be used. Names the file, the place in it and the field when known."""

    def __init__(
        self, reason: str, *, field: str | None = None, file: str | Path | None = None, where: str | None = None
    ):
        self.reason, self.field, self.file, self.where = reason, field, file, where
        parts = []
        if file is not None:
            parts.append(f"{file}, {where}" if where else str(file))
        elif where:
            parts.append(where)
        if field:
            parts.append(f"field '{field}'")
        super().__init__(": ".join(parts + [reason]))

    def located(self, file: str | Path, where: str | None) -> DataError:
        """The same error, placed at ``file`` / ``where`` (a line number, a JSON path)."""
        return DataError(self.reason, field=self.field, file=file, where=where)
