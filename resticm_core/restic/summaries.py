"""What restic said a step did, read from its output: forget, copy and check.

``backup`` has its own JSON summary (:class:`~resticm_core.restic.BackupParser`);
the other steps are read here, after the command ended, from the stdout the
:class:`~resticm_core.restic.Restic` facade captured:

* ``forget --json`` prints one JSON list of groups (``keep``, ``remove``,
  ``reasons``) on its first line. With ``--prune`` restic 0.14 prints prune's
  text after it on stdout, so only the first line that parses counts.
  ``reasons`` names the kept snapshots by ``time`` and ``tree`` (restic 0.14
  gives no ``id`` there; 0.17+ does).
* ``copy`` has no JSON output in any version (0.14 to 0.18): it prints
  ``snapshot 1a2b3c4d of [...] at ...`` for each snapshot it copies, then
  ``snapshot 5e6f7a8b saved``; snapshots already in the destination are not named.
* ``check`` reads what its arguments asked for (``--read-data``,
  ``--read-data-subset``): nothing to parse.

A parser never raises: output it does not understand gives no summary, and the
step keeps its outcome (the summary is information, not a verdict).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..phases import CheckSummary, CopiedSnapshot, CopySummary, ForgetSummary, SnapshotRef

#: restic's short snapshot IDs; restic 0.17+ prints full IDs where 0.14 printed short ones.
SHORT_ID_LENGTH = 8

_COPY_SOURCE = re.compile(r"^snapshot ([0-9a-f]{8,64}) of \[")
_COPY_SAVED = re.compile(r"^snapshot ([0-9a-f]{8,64}) saved")


def _first_json_list(stdout: str) -> list[Any] | None:
    """The first line of *stdout* that is a JSON list (``null``: restic found no snapshot)."""
    for line in stdout.splitlines():
        line = line.strip()
        if line == "null":
            return []
        if not line.startswith("["):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, list):
            return value
    return None


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _ref(snapshot: Mapping[str, Any], reasons: tuple[str, ...] = ()) -> SnapshotRef | None:
    ident = snapshot.get("short_id") or snapshot.get("id")
    if not isinstance(ident, str) or not ident:
        return None
    return SnapshotRef(
        id=ident[:SHORT_ID_LENGTH],
        time=str(snapshot.get("time") or ""),
        host=str(snapshot.get("hostname") or ""),
        tags=_strings(snapshot.get("tags")),
        paths=_strings(snapshot.get("paths")),
        reasons=reasons,
    )


def _reasons(group: Mapping[str, Any]) -> dict[tuple[str, str], tuple[str, ...]]:
    """The ``matches`` of each kept snapshot, by (time, tree): 0.14 gives no id there."""
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for reason in group.get("reasons") or []:
        if not isinstance(reason, dict) or not isinstance(reason.get("snapshot"), dict):
            continue
        snapshot = reason["snapshot"]
        key = (str(snapshot.get("time") or ""), str(snapshot.get("tree") or ""))
        found[key] = _strings(reason.get("matches"))
    return found


def _by_time(refs: Iterable[SnapshotRef]) -> tuple[SnapshotRef, ...]:
    # RFC 3339 times of one restic sort as text only with one offset; restic writes
    # each snapshot's own offset, so sort on the parsed instant when it parses.
    from datetime import datetime

    def key(ref: SnapshotRef) -> tuple[int, float, str]:
        try:
            text = re.sub(r"(\.\d{6})\d+", r"\1", ref.time).replace("Z", "+00:00")
            return (0, datetime.fromisoformat(text).timestamp(), ref.id)
        except ValueError:
            return (1, 0.0, ref.time)

    return tuple(sorted(refs, key=key))


def parse_forget(stdout: str) -> ForgetSummary | None:
    """The snapshots ``restic forget --json`` removed and kept; None when it printed no list."""
    groups = _first_json_list(stdout)
    if groups is None:
        return None
    removed: list[SnapshotRef] = []
    kept: list[SnapshotRef] = []
    for group in groups:
        if not isinstance(group, dict):
            continue
        reasons = _reasons(group)
        for snapshot in group.get("keep") or []:
            if isinstance(snapshot, dict):
                key = (str(snapshot.get("time") or ""), str(snapshot.get("tree") or ""))
                ref = _ref(snapshot, reasons.get(key, ()))
                if ref is not None:
                    kept.append(ref)
        for snapshot in group.get("remove") or []:
            if isinstance(snapshot, dict):
                ref = _ref(snapshot)
                if ref is not None:
                    removed.append(ref)
    return ForgetSummary(removed=_by_time(removed), kept=_by_time(kept))


def parse_copy(stdout: str) -> CopySummary:
    """The snapshots ``restic copy`` copied, each with its new ID, in the order copied."""
    copied: list[CopiedSnapshot] = []
    pending: str | None = None
    for line in stdout.splitlines():
        line = line.strip()
        source = _COPY_SOURCE.match(line)
        if source is not None:
            if pending is not None:  # named, never saved: its copy failed
                copied.append(CopiedSnapshot(source_id=pending))
            pending = source.group(1)[:SHORT_ID_LENGTH]
            continue
        saved = _COPY_SAVED.match(line)
        if saved is not None and pending is not None:
            copied.append(CopiedSnapshot(source_id=pending, id=saved.group(1)[:SHORT_ID_LENGTH]))
            pending = None
    if pending is not None:
        copied.append(CopiedSnapshot(source_id=pending))
    return CopySummary(copied=tuple(c for c in copied if c.id))


def check_summary(args: Sequence[str]) -> CheckSummary:
    """What ``restic check`` with *args* reads."""
    if "--read-data" in args:
        return CheckSummary(read="all data", read_data=True)
    for flag in args:
        if flag.startswith("--read-data-subset="):
            subset = flag.partition("=")[2]
            return CheckSummary(read=f"subset {subset}", subset=subset)
    if "--read-data-subset" in args:
        index = list(args).index("--read-data-subset")
        if index + 1 < len(args):
            subset = args[index + 1]
            return CheckSummary(read=f"subset {subset}", subset=subset)
    return CheckSummary()


__all__ = ["check_summary", "parse_copy", "parse_forget"]
