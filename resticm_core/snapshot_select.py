"""Which snapshot, on which repository: the selectors of ``restore``, ``ls``, ``diff``, ``dump``.

resticm resolves a selector itself, from ``restic snapshots --json``, and hands
restic a full snapshot id: ``latest~N`` and ``--before/--after`` do not exist in
restic, and resolving here gives the same answer on restic 0.14 and 0.18.

Selectors:

- ``latest``: the newest snapshot that passes the filter (host, paths, tags, dates);
- ``latest~N``: the N-th before it (``latest~0`` is ``latest``);
- an id prefix (at least 4 hex digits): that snapshot, on any host. A copy
  repository gives copied snapshots new ids and keeps the source's as
  ``original``, so the primary's id finds its copy on a mirror too.

The repository: ``--from NAME`` (the primary or a backend), else the first of the
primary and ``copy_to_backends``, in that order, that answers and holds a
matching snapshot. Each one passed over is reported with the reason.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from .config import PRIMARY, Config, Repository
from .errors import ResticmError, UsageError
from .lockcheck import parse_lock_time
from .reachability import unreachable
from .restic import Restic, ResticCommandError, ResticErrorKind
from .secrets import redact_url

_LATEST = re.compile(r"^latest(?:~(\d+))?$")
_ID_PREFIX = re.compile(r"^[0-9a-f]{4,64}$")
#: restic's words for a backend that cannot be reached at all.
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "no route to host",
    "network is unreachable",
    "i/o timeout",
    "temporary failure in name resolution",
)


@attrs.frozen(kw_only=True)
class SnapshotFilter:
    """What ``latest`` and ``latest~N`` consider. An id prefix ignores it."""

    #: None: every host.
    host: str | None = None
    #: Absolute paths the snapshot must all hold (restic's ``--path``).
    paths: tuple[str, ...] = ()
    #: Tags the snapshot must all carry.
    tags: tuple[str, ...] = ()
    #: Epoch seconds: only snapshots taken before / after.
    before: float | None = None
    after: float | None = None

    def accepts(self, snapshot: Mapping[str, Any]) -> bool:
        if self.host and snapshot.get("hostname") != self.host:
            return False
        held = {os.path.normpath(str(p)) for p in snapshot.get("paths") or ()}
        if not {os.path.normpath(p) for p in self.paths} <= held:
            return False
        if not set(self.tags) <= set(snapshot.get("tags") or ()):
            return False
        when = snapshot_time(snapshot)
        if self.before is not None and (when is None or when >= self.before):
            return False
        return not (self.after is not None and (when is None or when <= self.after))

    def describe(self) -> str:
        parts = []
        if self.host:
            parts.append(f"host {self.host}")
        if self.paths:
            parts.append("paths " + ", ".join(self.paths))
        if self.tags:
            parts.append("tags " + ", ".join(self.tags))
        if self.before is not None:
            parts.append(f"before {_iso(self.before)}")
        if self.after is not None:
            parts.append(f"after {_iso(self.after)}")
        return "; ".join(parts) or "any snapshot"


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def snapshot_time(snapshot: Mapping[str, Any]) -> float | None:
    return parse_lock_time(snapshot.get("time"))


def short_id(snapshot: Mapping[str, Any]) -> str:
    return str(snapshot.get("short_id") or str(snapshot.get("id", ""))[:8])


def parse_date(text: str, option: str) -> float:
    """``2026-12-01``, ``2026-12-01 10:00``, ``2026-12-01T10:00:00Z``... as epoch seconds.

    A time without a zone is local time; a date alone is its midnight.
    """
    cleaned = text.strip().replace("Z", "+00:00")
    try:
        value = dt.datetime.fromisoformat(cleaned)
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: not a date (use YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS])"
        ) from None
    return value.timestamp() if value.tzinfo else value.astimezone().timestamp()


def check_selector(selector: str) -> str:
    """*selector* itself, or a :class:`UsageError` saying what is accepted."""
    if _LATEST.match(selector) or _ID_PREFIX.match(selector.lower()):
        return selector
    raise UsageError(
        f"snapshot {selector!r}: expected 'latest', 'latest~N' or a snapshot id "
        "(at least 4 hex digits)"
    )


def configured_paths(config: Config) -> tuple[str, ...]:
    """The configured directories as restic records them (absolute, normalised)."""
    return tuple(
        os.path.normpath(os.path.abspath(os.path.expanduser(d))) for d in config.directories
    )


class NoSnapshot(ResticmError):
    """No snapshot matches the selector on this repository."""


def pick(
    snapshots: Iterable[Mapping[str, Any]], selector: str, flt: SnapshotFilter
) -> Mapping[str, Any]:
    """The snapshot *selector* names among *snapshots*; :class:`NoSnapshot` if none."""
    every = list(snapshots)
    latest = _LATEST.match(selector)
    if latest is None:
        prefix = selector.lower()
        found = [
            s
            for s in every
            if str(s.get("id", "")).startswith(prefix)
            or str(s.get("original", "")).startswith(prefix)
        ]
        own = [s for s in found if str(s.get("id", "")).startswith(prefix)]
        found = own or found  # an own id wins over a copy's original
        if not found:
            raise NoSnapshot(f"no snapshot with id {selector}")
        if len(found) > 1:
            ids = ", ".join(short_id(s) for s in found[:5])
            raise UsageError(f"snapshot id {selector} is ambiguous ({ids}): give more digits")
        return found[0]
    back = int(latest.group(1) or 0)
    matching = sorted((s for s in every if flt.accepts(s)), key=lambda s: snapshot_time(s) or 0.0)
    if len(matching) <= back:
        if not matching:
            raise NoSnapshot(f"no snapshot of {flt.describe()}")
        raise NoSnapshot(f"{selector}: only {len(matching)} snapshot(s) of {flt.describe()}")
    return matching[-1 - back]


@attrs.frozen(kw_only=True)
class SkippedRepository:
    """A repository passed over while looking for the snapshot, and why."""

    name: str
    #: The URL with any password hidden.
    url: str
    #: ``unreachable``, ``missing``, ``wrong_password``, ``no_snapshot``, ``failed``.
    kind: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class Choice:
    """The repository and snapshot a command works on."""

    repository: Repository
    snapshot: Mapping[str, Any]
    skipped: tuple[SkippedRepository, ...] = ()
    #: Every snapshot of that repository (for ``latest~N`` of ``diff``...).
    snapshots: tuple[Mapping[str, Any], ...] = ()

    @property
    def snapshot_id(self) -> str:
        return str(self.snapshot.get("id", ""))


class NoRepository(ResticmError):
    """No repository could serve the snapshot; :attr:`skipped` says why for each."""

    def __init__(self, message: str, skipped: Sequence[SkippedRepository]) -> None:
        super().__init__(message)
        self.skipped = tuple(skipped)


def candidates(config: Config, source: str | None) -> list[Repository]:
    """``--from NAME``, else the primary and then ``copy_to_backends`` in order."""
    from .mirror import resolve_repository

    if source:
        return [resolve_repository(config, source)]
    names = [PRIMARY, *(n for n in config.copy_to_backends if n != PRIMARY)]
    return [config.repository_named(n) for n in names]


def _failure_kind(error: ResticCommandError) -> str:
    kind = error.result.error_kind
    if kind is ResticErrorKind.WRONG_PASSWORD:
        return "wrong_password"
    if kind is ResticErrorKind.REPOSITORY_MISSING:
        return "missing"
    text = " ".join(error.result.stderr_tail).lower()
    if kind is ResticErrorKind.TIMEOUT or any(m in text for m in _UNREACHABLE):
        return "unreachable"
    return "failed"


def _snapshots(restic: Restic, repo: Repository) -> list[dict[str, Any]]:
    """Every snapshot of *repo*, read without a lock (``--no-lock``).

    A read-only probe needs none; a mirror on read-only storage serves too, and a
    probe stopped by its timeout (``timeouts.snapshots``) leaves no lock to remove.
    """
    import json

    result = restic.run(["--no-lock", "snapshots", "--json"], repo, capture_stdout=True)
    if not result.ok:
        raise ResticCommandError(result)
    try:
        value = json.loads(result.stdout or "null")
    except ValueError as exc:
        raise ResticCommandError(result, f"restic snapshots printed invalid JSON: {exc}") from None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
        raise ResticCommandError(result, f"restic snapshots printed no list on {repo.name}")
    return value


def choose(
    config: Config,
    restic: Restic,
    selector: str,
    flt: SnapshotFilter,
    *,
    source: str | None = None,
) -> Choice:
    """The first repository that answers and holds the snapshot (see the module docstring).

    :raises NoRepository: none could; each one's reason is in ``skipped``.
    """
    check_selector(selector)
    skipped: list[SkippedRepository] = []
    for repo in candidates(config, source):
        shown = redact_url(repo.url)
        down = unreachable(repo.url)
        if down is not None:  # restic >= 0.17 would retry a refused connection for 15 minutes
            skipped.append(
                SkippedRepository(name=repo.name, url=shown, kind="unreachable", reason=down)
            )
            continue
        try:
            every = _snapshots(restic, repo)
            snapshot = pick(every, selector, flt)
        except ResticCommandError as exc:
            if exc.result.error_kind is ResticErrorKind.INTERRUPTED:
                raise NoRepository(str(exc), skipped) from None  # stopped: try no other
            # restic's message for a missing repository suggests 'resticm init': not here.
            reason = str(exc).replace(" (create it with 'resticm init')", "")
            skipped.append(
                SkippedRepository(
                    name=repo.name, url=shown, kind=_failure_kind(exc), reason=reason
                )
            )
            continue
        except NoSnapshot as exc:
            skipped.append(
                SkippedRepository(name=repo.name, url=shown, kind="no_snapshot", reason=str(exc))
            )
            continue
        return Choice(
            repository=repo, snapshot=snapshot, skipped=tuple(skipped), snapshots=tuple(every)
        )
    if source:
        message = skipped[0].reason
    else:
        message = "no repository holds a matching snapshot: " + "; ".join(
            f"{s.name}: {s.reason}" for s in skipped
        )
    raise NoRepository(message, skipped)


__all__ = [
    "Choice",
    "NoRepository",
    "NoSnapshot",
    "SkippedRepository",
    "SnapshotFilter",
    "check_selector",
    "choose",
    "configured_paths",
    "parse_date",
    "pick",
]
