"""Raw YAML trees that remember where each value was written, and how they merge.

A configuration may come from several files (``include:``, ``conf.d/*.yaml``) and a
job inherits the top-level keys (docs/configuration.md, "Merge rules"). Merging
happens on the parsed YAML *before* the converter sees it, so each job is an
ordinary :class:`~resticm_core.config.Config`; every value keeps its
:class:`Origin` (file, line, key path as written there), so a problem in a merged
tree is still reported where it was written::

    conf.d/web.yaml:7: jobs.web.retention.keep_daily: must be 0 (off) or more, got -1

The rules: mappings merge key by key, anything else (lists, scalars) replaces, and
a value tagged ``!reset`` replaces without merging (``!reset`` alone, with no value,
removes the inherited key so its default applies).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import attrs
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from .errors import ConfigError, KeyPath

#: The tag that clears an inherited value.
RESET_TAG = "!reset"


@attrs.frozen
class Origin:
    """Where a value was written."""

    #: The file as shown in messages.
    source: str
    #: 0-based line, None when unknown (a merged ``<<`` key).
    line: int | None
    #: The key path as written in that file (``("jobs", "web", "retention")``).
    path: KeyPath


@attrs.frozen
class Node:
    """A parsed value and its origin. Mappings hold ``dict[key, Node]``, lists ``list[Node]``."""

    value: object
    origin: Origin
    #: Tagged ``!reset``: replaces an inherited value instead of merging with it.
    reset: bool = False
    #: ``!reset`` with no value: removes the inherited key.
    remove: bool = False

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    def get(self, key: Hashable) -> Node | None:
        """The child *key* of a mapping node (None when absent or not a mapping)."""
        if not isinstance(self.value, dict):
            return None
        child = self.value.get(key)
        return child if isinstance(child, Node) else None

    def without(self, *keys: Hashable) -> Node:
        """A mapping node without *keys*."""
        assert isinstance(self.value, dict)
        kept = {k: v for k, v in self.value.items() if k not in keys}
        return attrs.evolve(self, value=kept)


#: ``transform(text, origin, quoted)``: a string value as it should be kept
#: (interpolation); *quoted*: written in quotes.
StringHook = Callable[[str, Origin, bool], object]


def from_yaml(
    data: object,
    source: str,
    *,
    transform: StringHook | None = None,
    path: KeyPath = (),
    line: int | None = None,
) -> Node:
    """The :class:`Node` tree of parsed YAML *data* (ruamel's round-trip types)."""
    line = own_line(data) if line is None else line
    origin = Origin(source, line, path)
    reset = _tag_of(data) == RESET_TAG
    if isinstance(data, TaggedScalar) and reset:
        text = data.value
        if text is None or text == "":
            return Node(None, origin, reset=True, remove=True)
        data = text
    if isinstance(data, Mapping):
        children: dict[Hashable, Node] = {}
        for key in data:
            child_line = line_of(data, "key", key)
            children[key] = from_yaml(
                data[key],
                source,
                transform=transform,
                path=(*path, key),
                line=line if child_line is None else child_line,
            )
        return Node(children, origin, reset=reset)
    if isinstance(data, list | tuple):
        items = []
        for index, item in enumerate(data):
            item_line = line_of(data, "item", index)
            items.append(
                from_yaml(
                    item,
                    source,
                    transform=transform,
                    path=(*path, index),
                    line=line if item_line is None else item_line,
                )
            )
        return Node(items, origin, reset=reset)
    if isinstance(data, str):
        quoted = isinstance(data, DoubleQuotedScalarString | SingleQuotedScalarString)
        text = str(data)  # plain str for the converter, whatever ruamel wrapped it in
        value = transform(text, origin, quoted) if transform is not None else text
        return Node(value, origin, reset=reset)
    return Node(data, origin, reset=reset)


def merge(base: Node | None, over: Node) -> Node:
    """*over* on top of *base*: mappings merge, the rest replaces, ``!reset`` replaces.

    ``!reset`` markers stay in the result (a removed key as a node with ``remove``
    set): a job merged later onto the top level must not inherit what an earlier
    layer reset. :func:`to_plain` drops them.
    """
    if base is None or over.reset or over.remove or not (base.is_mapping and over.is_mapping):
        return over
    assert isinstance(base.value, dict) and isinstance(over.value, dict)
    merged = dict(base.value)
    for key, child in over.value.items():
        merged[key] = merge(merged.get(key), child)
    return attrs.evolve(over, value=merged)


def merge_all(nodes: Iterable[Node]) -> Node | None:
    """Merge *nodes* in order, each on top of the ones before."""
    result: Node | None = None
    for node in nodes:
        result = merge(result, node)
    return result


def to_plain(node: Node) -> tuple[object, dict[KeyPath, Origin]]:
    """Plain dicts, lists and scalars for the converter, and the origin of every path."""
    origins: dict[KeyPath, Origin] = {}

    def walk(current: Node, path: KeyPath) -> object:
        origins[path] = current.origin
        if isinstance(current.value, dict):
            return {k: walk(v, (*path, k)) for k, v in current.value.items() if not v.remove}
        if isinstance(current.value, list):
            kept = [v for v in current.value if not v.remove]
            return [walk(v, (*path, i)) for i, v in enumerate(kept)]
        return None if current.remove else current.value

    return walk(node, ()), origins


@attrs.frozen
class LocatedTree:
    """A merged tree's plain data and origins: turns key paths into located messages.

    Duck-types :class:`resticm_core.config_file._Document` (``source``, ``data``,
    ``message``, ``error``) so the converter's problems read as they do for one file.
    """

    source: str
    data: object
    origins: Mapping[KeyPath, Origin]

    def where(self, path: KeyPath) -> tuple[str, str, int | None]:
        """``(file, dotted key path as written, 0-based line)`` of *path*."""
        for cut in range(len(path), -1, -1):
            origin = self.origins.get(tuple(path[:cut]))
            if origin is not None:
                return origin.source, dotted((*origin.path, *path[cut:])), origin.line
        return self.source, dotted(path), None

    def message(self, path: KeyPath, message: str) -> str:
        source, key, line = self.where(path)
        place = source if line is None else f"{source}:{line + 1}"
        return f"{place}: {key}: {message}" if key else f"{place}: {message}"

    def error(self, problems: Iterable[tuple[KeyPath, str]]) -> ConfigError:
        located = []
        for path, text in problems:
            source, _key, line = self.where(path)
            located.append(((source, line or 0), self.message(path, text)))
        located.sort(key=lambda item: item[0])  # stable: same-line problems keep their order
        return ConfigError(message for _, message in located)


def dotted(path: Iterable[Hashable]) -> str:
    """``jobs.web.hooks.pre_backup[1]`` for ``("jobs", "web", "hooks", "pre_backup", 1)``."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _tag_of(data: object) -> str | None:
    tag: Any = getattr(data, "tag", None)
    value = getattr(tag, "value", tag)
    return value if isinstance(value, str) else None


def line_of(node: object, how: str, part: Hashable) -> int | None:
    """The 0-based line ruamel recorded for *part* of *node* (``key``/``item``), if any."""
    lc = getattr(node, "lc", None)
    if lc is None:  # plain dicts and lists (config_from_dict) have no positions
        return None
    try:
        position = getattr(lc, how)(part)
    except (KeyError, IndexError, TypeError):  # merged (<<) keys have no own position
        return None
    return int(position[0]) if position else None


def own_line(node: object) -> int | None:
    """The 0-based line *node* itself starts on, if ruamel recorded it."""
    lc = getattr(node, "lc", None)
    line = getattr(lc, "line", None)
    return line if isinstance(line, int) else None
