"""The installed ``resticm`` entry points, found without ``importlib.metadata``.

``importlib.metadata`` (with ``email``, ``csv``, ``zipfile``) is the costliest import
of a backup that only needs to know which plugins are installed, and its scan
parses every distribution's metadata. On the ordinary layout (sys.path made of
directories) the answer is simply in the ``entry_points.txt`` files of the
``*.dist-info`` / ``*.egg-info`` directories on sys.path: this module reads those,
in sys.path order, each time it is asked (no cache: a plugin installed a second
ago is found by the next run). Where that would not find what ``importlib.metadata``
finds (a zip or egg on sys.path, a meta-path finder that provides distributions),
:func:`find_entry_points` returns None and the caller uses pluggy's own scan.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import NamedTuple

#: The value syntax of an entry point, as importlib.metadata.EntryPoint reads it.
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")
_METADATA_DIRS = (".dist-info", ".egg-info")


class EntryPointRef(NamedTuple):
    """One entry point of the group, and the metadata directory that declares it."""

    name: str
    value: str
    metadata_dir: str

    def load(self) -> object:
        """Import the object the entry point names (``module`` or ``module:attr.attr``)."""
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"malformed entry point value {self.value!r}")
        target: object = importlib.import_module(match.group("module"))
        for attr in filter(None, (match.group("attr") or "").split(".")):
            target = getattr(target, attr)
        return target


def find_entry_points(
    group: str, path: Sequence[str] | None = None
) -> list[EntryPointRef] | None:
    """The entry points of *group* on *path* (default sys.path), in path order.

    None when the layout needs ``importlib.metadata`` to be read faithfully: a
    sys.path entry that is a file (a zip or an egg), an ``.egg`` directory, or a
    ``sys.meta_path`` finder other than the standard one that provides distributions.
    """
    if path is None:
        if _other_distribution_finders():
            return None
        path = sys.path
    found: list[EntryPointRef] = []
    for entry in path:
        directory = entry or "."  # "" is the current directory, as for imports
        if directory.lower().endswith(".egg"):
            return None
        try:
            names = sorted(os.listdir(directory))
        except NotADirectoryError:
            return None
        except OSError:  # a missing directory on sys.path holds nothing
            continue
        for name in names:
            if not name.lower().endswith(_METADATA_DIRS):  # as importlib.metadata matches
                continue
            metadata_dir = os.path.join(directory, name)
            text = _read(os.path.join(metadata_dir, "entry_points.txt"))
            if text is not None and f"[{group}]" in text:
                found.extend(
                    EntryPointRef(ep_name, value, metadata_dir)
                    for ep_name, value in _group_entries(text, group)
                )
    return found


def _other_distribution_finders() -> bool:
    import importlib.machinery

    return any(
        hasattr(finder, "find_distributions") and finder is not importlib.machinery.PathFinder
        for finder in sys.meta_path
    )


def _read(file: str) -> str | None:
    try:
        with open(file, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):  # no entry points, or unreadable: none from it
        return None


def _group_entries(text: str, group: str) -> list[tuple[str, str]]:
    """``name = value`` pairs of one section, parsed as importlib.metadata does."""
    entries = []
    section = None
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
        elif section == group and "=" in line:
            name, value = line.split("=", 1)
            entries.append((name.strip(), value.strip()))
    return entries
