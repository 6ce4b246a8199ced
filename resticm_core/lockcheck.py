"""``verify_no_locks``: find restic locks a finished step left behind.

restic's ``list`` has no JSON mode (the Go tool's check never worked, spec §9):
list the lock ids with ``restic --no-lock list locks`` (takes no lock), then read
each with ``restic --no-lock cat lock ID`` (a plain ``cat`` would lock itself).

A lock of *this* host is stale when its process is gone or it is older than
the run: once a step finished, nothing of ours should hold one. Locks of other
hosts are another machine's business and only reported.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
from collections.abc import Callable

import attrs

from .config import Repository
from .errors import ResticmError
from .restic import Restic
from .restic.locks import is_dead_local_lock, pid_alive

_FRACTION = re.compile(r"(\.\d{6})\d+")


@attrs.frozen(kw_only=True)
class LockInfo:
    """One restic lock as ``restic cat lock`` shows it."""

    id: str
    hostname: str
    pid: int
    time: float | None
    exclusive: bool
    stale: bool = False

    def describe(self) -> str:
        when = (
            dt.datetime.fromtimestamp(self.time).strftime("%Y-%m-%d %H:%M:%S")
            if self.time is not None
            else "unknown time"
        )
        kind = "exclusive" if self.exclusive else "shared"
        return f"{kind} lock {self.id[:8]} of PID {self.pid} on {self.hostname} since {when}"


@attrs.frozen(kw_only=True)
class LockReport:
    """What :func:`verify_locks` found on one repository."""

    repository: str
    stale: tuple[LockInfo, ...] = ()
    foreign: tuple[LockInfo, ...] = ()
    #: Why verification itself could not run (a failure too: it must not pass silently).
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.stale and not self.error

    def message(self) -> str:
        if self.error:
            return f"could not verify locks on {self.repository}: {self.error}"
        if self.stale:
            locks = "; ".join(lock.describe() for lock in self.stale)
            return f"stale lock from this host on {self.repository}: {locks}"
        return ""


def parse_lock_time(text: object) -> float | None:
    """restic's lock time (RFC 3339, nanoseconds) as epoch seconds."""
    if not isinstance(text, str) or not text:
        return None
    cleaned = _FRACTION.sub(r"\1", text.replace("Z", "+00:00"))
    try:
        return dt.datetime.fromisoformat(cleaned).timestamp()
    except ValueError:
        return None


def verify_locks(
    restic: Restic,
    repository: Repository,
    *,
    run_started: float,
    hostname: str | None = None,
    alive: Callable[[int], bool] = pid_alive,
) -> LockReport:
    """List and classify the locks on *repository* (see the module docstring)."""
    host = hostname or socket.gethostname()
    try:
        ids = restic.list_locks(repository)
        raw = [(lock_id, restic.cat_lock(repository, lock_id)) for lock_id in ids]
    except ResticmError as exc:
        return LockReport(repository=repository.name, error=str(exc))
    stale: list[LockInfo] = []
    foreign: list[LockInfo] = []
    for lock_id, data in raw:
        pid = data.get("pid")
        info = LockInfo(
            id=lock_id,
            hostname=str(data.get("hostname", "")),
            pid=pid if isinstance(pid, int) else -1,
            time=parse_lock_time(data.get("time")),
            exclusive=bool(data.get("exclusive")),
        )
        if info.hostname != host:
            foreign.append(info)
            continue
        older = info.time is not None and info.time < run_started
        if is_dead_local_lock(info.hostname, info.pid, host=host, alive=alive) or older:
            stale.append(attrs.evolve(info, stale=True))
        # A live lock of ours that is newer than the run belongs to a running
        # restic (a parallel copy reading this repository): not stale.
    return LockReport(repository=repository.name, stale=tuple(stale), foreign=tuple(foreign))


__all__ = [
    "LockInfo",
    "LockReport",
    "is_dead_local_lock",
    "parse_lock_time",
    "pid_alive",
    "verify_locks",
]
