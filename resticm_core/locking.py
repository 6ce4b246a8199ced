"""The process lock: one resticm run per configuration at a time.

Keyed by the config file's real path (by the repository URL for configs built
from a mapping), held with ``flock`` on a file in a private per-user directory:
``/run/resticm`` for root, ``/run/user/<uid>/resticm`` or ``/tmp/resticm-<uid>``
for other users. The location depends on neither HOME, XDG variables nor sudo,
so ``sudo resticm`` and a root cron job share it, and other users cannot hold it;
only an explicit ``RESTICM_LOCK_DIR`` moves it (containers, test suites).
The descriptor is close-on-exec, so a daemonised hook child cannot inherit it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import stat
import time
from pathlib import Path
from types import TracebackType

from .errors import LockHeldError, ResticmError

#: An explicit lock directory (containers, test suites): the only way to move the lock.
#: Deliberately not HOME or XDG_RUNTIME_DIR, which differ between `sudo` and root's cron.
LOCK_DIR_ENV = "RESTICM_LOCK_DIR"


def default_lock_dir(euid: int | None = None) -> Path:
    """The private lock directory of the effective user (``$RESTICM_LOCK_DIR`` if set)."""
    explicit = os.environ.get(LOCK_DIR_ENV)
    if explicit:
        return Path(explicit)
    uid = os.geteuid() if euid is None else euid
    if uid == 0:
        return Path("/run/resticm")
    runtime = Path(f"/run/user/{uid}")
    if runtime.is_dir() and runtime.stat().st_uid == uid:
        return runtime / "resticm"
    return Path(f"/tmp/resticm-{uid}")


def lock_key(config_path: Path | None, repository: str, job: str | None = None) -> str:
    """A file-name-safe key: the config's real path, else the repository.

    :param job: the job of a config with ``jobs:``: each job has its own lock, so
        two jobs of one file may run at once but not the same job twice.
    """
    source = str(config_path.resolve()) if config_path else f"repository:{repository}"
    if job is not None:
        source += f"#job:{job}"
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    stem = (config_path.stem if config_path else "repository")[:40]
    if job is not None:
        stem = f"{stem}-{job}"[:60]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    return f"{safe}-{digest}"


def _private_dir(path: Path) -> None:
    """Create *path* 0700 and refuse one another user could tamper with."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ResticmError(f"cannot create lock directory {path}: {exc.strerror}") from exc
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise ResticmError(
            f"lock directory {path} is not a directory owned by uid {os.geteuid()}; "
            "remove it and run again"
        )
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


class ProcessLock:
    """An exclusive lock for one configuration. Use as a context manager."""

    def __init__(self, key: str, *, lock_dir: Path | None = None) -> None:
        self.dir = lock_dir or default_lock_dir()
        self.path = self.dir / f"{key}.lock"
        self._fd: int | None = None

    def holder(self) -> dict[str, object]:
        """What the holder wrote (pid, host, started), or {} when unreadable."""
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def acquire(self, *, wait: float = 0.0) -> None:
        """Take the lock, waiting up to *wait* seconds; LockHeldError if another run has it."""
        _private_dir(self.dir)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockHeldError(self._held_message()) from None
                time.sleep(0.2)
        # A dead holder's file is simply re-locked: flock died with its process.
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(record).encode())
        except OSError:
            os.close(fd)  # drops the flock: a run that reports failure holds nothing
            raise
        self._fd = fd

    def _held_message(self) -> str:
        info = self.holder()
        started = info.get("started")
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
            if isinstance(started, (int, float))
            else "unknown time"
        )
        return (
            f"another resticm run (pid {info.get('pid', '?')}, started {when}) holds "
            f"{self.path}; wait for it or pass --lock-wait SECONDS"
        )

    def release(self) -> None:
        # The file stays: deleting a lock file another process may be opening
        # would let two runs lock two different files.
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
