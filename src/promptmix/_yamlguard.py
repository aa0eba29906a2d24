"""Bounds checked on a YAML text before anything is built from it.

YAML's anchors and aliases let a few hundred bytes stand for billions of nodes (the
"billion laughs" file: nine levels of ten aliases each), an alias inside its own anchor
(``aliases: &x [*x]``) builds a structure that contains itself, and thousands of nested
brackets overflow the recursive composer. PyYAML's safe loader guards against none of these:
they end in a MemoryError after gigabytes, or a RecursionError traceback. :func:`check_yaml`
walks the parser's event stream (iterative, no nodes built) and refuses such a text with one
line naming the source and line, before composing it.
"""

from __future__ import annotations

import yaml

MAX_BYTES = 8 << 20  # config and task files are a few KiB; inline examples may add some
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_NODES = 1_000_000  # nodes once every alias is expanded


class YamlTooBigError(ValueError):
    """A YAML text over one of the bounds; the message names the source and line, ``reason`` and
    ``line`` (1-based, or None) are there for callers that place errors themselves."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source, self.line, self.reason = source, line, reason
        super().__init__(f"{source}, line {line}: {reason}" if line is not None else f"{source}: {reason}")


def check_yaml(
    text: str, source: str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
) -> None:
    """Raise :class:`YamlTooBigError` when ``text`` is over ``max_bytes``, nests deeper than
    ``max_depth``, expands (aliases included) to more than ``max_nodes`` nodes, or holds an
    alias inside the node it names. Syntax errors are left to the loader (it names them)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise YamlTooBigError(source, None, f"{size:,} bytes, more than the {max_bytes:,} a YAML file here may hold")
    nodes = 0
    sizes: dict[str, int] = {}  # anchor -> the nodes its value expands to
    open_: list[tuple[str | None, int]] = []  # the collections being read: (anchor, nodes before it)

    def refuse(event: yaml.Event, reason: str) -> YamlTooBigError:
        return YamlTooBigError(source, event.start_mark.line + 1 if event.start_mark is not None else None, reason)

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                open_.append((event.anchor, nodes))
                nodes += 1
                if len(open_) > max_depth:
                    raise refuse(event, f"nested more than {max_depth} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, before = open_.pop()
                if anchor is not None:
                    sizes[anchor] = nodes - before
            elif isinstance(event, yaml.ScalarEvent):
                nodes += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in open_):
                    raise refuse(
                        event,
                        f"alias *{event.anchor} is inside the node &{event.anchor} names, which would contain itself",
                    )
                # an undefined alias: the loader names it
                nodes += sizes.get(event.anchor, 1) if event.anchor is not None else 1
            if nodes > max_nodes:
                raise refuse(
                    event,
                    f"expands to more than {max_nodes:,} values once its aliases (*name) are replaced "
                    "by what they name; write the values out or use fewer aliases",
                )
    except yaml.YAMLError:
        return  # malformed: the loader's own error says where
