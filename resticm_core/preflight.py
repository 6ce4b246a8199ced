"""The preflight probe: will the backup reach its repository and open it with this password?

Asked once before pre_backup hooks stop services (DESIGN §10). The honest answer is
``restic --no-lock cat config``, which costs a second restic start and, above all,
restic's key derivation (scrypt, calibrated by restic to about 0.5 s). This module
gives the same answer for a few milliseconds where something cheaper tells the truth,
and asks restic wherever it does not:

* **Reachable?** A local repository: its ``config`` file is readable and ``keys/`` is
  not empty. ``rest:``/``s3:`` over HTTP(S): one bounded TCP connect to the server
  (:mod:`resticm_core.reachability`; a refused or silent server fails the run at once,
  where restic >= 0.17 would retry for 15 minutes). ``sftp:``: one TCP connect to
  port 22; a failure is confirmed by restic (``~/.ssh/config`` may name another host
  or port). Any other backend: restic.
* **Right password?** A :class:`PasswordRecord` says "this password file, unchanged
  since, opened this repository's current key files". It holds **no password-derived
  value** at all, only the password file's identity (device, inode, size, mtime and
  ctime: a write or chmod changes ctime, which user space cannot set back) and, for a
  local repository, a digest of its ``config`` file and the names, sizes and mtimes
  of its key files. Anything different (another password file, a rewritten one, a
  key added or removed, another repository at the path) and restic is asked again;
  when restic says yes, the record is rewritten. A password given as a value
  (``password:``, ``RESTIC_PASSWORD``, a plugin's provider) or by a command is
  always checked by restic: the only cheap check of a password value is a cheap
  hash of it, and a hash that is cheaper to brute-force than restic's own key files
  would weaken the repository (see docs/architecture.md, Decisions).

A remote repository's key files are not visible without restic: its record is kept
by URL and password file only, and dropped when a backup on it fails, so a key
removed on the server costs one failed backup (after hooks), then the next run asks
restic first.

The record lives in the state directory (:func:`resticm_core.state.default_state_dir`),
``preflight/<digest of the URL>.json``, 0600 in a 0700 directory. A corrupt, foreign or
unreadable record counts as "no record": restic is asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import stat
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .config import Repository
from .reachability import unreachable
from .restic import (
    Restic,
    ResticErrorKind,
    ResticResult,
    SubprocessResticRunner,
    configured_password,
)
from .state import repository_id

log = logging.getLogger("resticm_core")

#: What the step shows: the restic command the cheap check stands for.
PROBE_ARGS = ("--no-lock", "cat", "config")
RECORD_DIR = "preflight"
#: Seconds one sftp connect may take before restic is asked instead.
SFTP_CONNECT_TIMEOUT = 5.0
_RECORD_VERSION = 1
#: restic's backends that are not a local path (restic's location.Parse).
_REMOTE_PREFIXES = (
    "rest:", "s3:", "sftp:", "b2:", "azure:", "gs:", "swift:", "rclone:", "smb:", "opendal:",
)


@attrs.frozen
class Probe:
    """How the preflight was answered: ``cheap`` says whether restic was spared."""

    result: ResticResult
    cheap: bool
    #: The repository id when known (restic printed the config, or a record holds it).
    repository_id: str | None = None


def local_path(url: str) -> Path | None:
    """The directory of a local repository URL (``/path`` or ``local:/path``), else None."""
    if url.startswith("local:"):
        return Path(os.path.expanduser(url[len("local:") :]))
    if url.startswith(_REMOTE_PREFIXES) or not url:
        return None
    return Path(os.path.expanduser(url))


def sftp_server(url: str) -> tuple[str, int] | None:
    """``(host, 22)`` of ``sftp:[user@]host:/path``, or host/port of ``sftp://...``."""
    if not url.startswith("sftp:"):
        return None
    rest = url[len("sftp:") :]
    if rest.startswith("//"):
        authority = rest[2:].split("/", 1)[0].rsplit("@", 1)[-1]
        host, _, port = authority.partition(":")
        try:
            return (host, int(port) if port else 22) if host else None
        except ValueError:
            return None
    host = rest.split(":", 1)[0].rsplit("@", 1)[-1]
    return (host, 22) if host and ":" in rest else None


def password_file_identity(path: str) -> dict[str, Any] | None:
    """What identifies the password file's content without reading it, or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None  # a FIFO or a device: the content is not tied to the inode
    return {
        "path": os.path.abspath(path),
        "dev": st.st_dev,
        "ino": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
    }


def password_file_of(
    repository: Repository, environ: Mapping[str, str], has_provider: bool
) -> str | None:
    """The password file restic will read for *repository*, or None when the password
    comes another way (a value, a command, a plugin). Mirrors
    :func:`resticm_core.restic.child_environment`'s order without calling the provider."""
    configured = configured_password(repository)
    if configured is not None:
        return configured[1] if configured[0] == "RESTIC_PASSWORD_FILE" else None
    if has_provider:
        return None  # a provider may answer: only restic can check what it gives
    for name in ("RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND"):
        if environ.get(name):
            return environ[name] if name == "RESTIC_PASSWORD_FILE" else None
    return None


def local_fingerprint(path: Path) -> dict[str, Any] | None:
    """The repository's ``config`` digest and key files, or None when either is missing
    or unreadable (restic then says what is wrong, in its own words)."""
    try:
        config = (path / "config").read_bytes()
        keys = sorted(
            (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
            for entry in os.scandir(path / "keys")
            if entry.is_file()
        )
    except OSError:
        return None
    if not config or not keys:
        return None
    return {
        "config_sha256": hashlib.sha256(config).hexdigest(),
        "keys": [list(k) for k in keys],
    }


class PasswordRecord:
    """The records "this password file opened this repository", one file per URL.

    :param state_dir: the user's state directory (``RESTICM_STATE_DIR`` in tests).
    """

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / RECORD_DIR

    @staticmethod
    def _digest(url: str) -> str:
        # The URL itself is never written: a rest: URL may hold a password.
        return hashlib.sha256(url.encode()).hexdigest()

    def _path(self, url: str) -> Path:
        return self.directory / (self._digest(url)[:32] + ".json")

    def load(self, url: str) -> dict[str, Any] | None:
        path = self._path(url)
        try:
            st = os.stat(path)
            # Someone else's (or a world-writable) record is not trusted.
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("version") != _RECORD_VERSION:
            return None
        return data if data.get("url_sha256") == self._digest(url) else None

    def save(self, url: str, entry: Mapping[str, Any]) -> None:
        """Write atomically (0600 in a 0700 directory); a failure only costs the next
        run a restic probe, so it is logged, not raised."""
        data = {
            "version": _RECORD_VERSION,
            "url_sha256": self._digest(url),
            "time": time.time(),
            **entry,
        }
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".record-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(data, out)
                os.replace(tmp, self._path(url))
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            log.debug("cannot write the preflight record in %s: %s", self.directory, exc)

    def forget(self, url: str) -> None:
        """Drop the record: the next preflight asks restic."""
        try:
            self._path(url).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.debug("cannot remove the preflight record of %s: %s", self.directory, exc)


def _ok(repository: Repository, started: float) -> ResticResult:
    return ResticResult(
        args=PROBE_ARGS,
        repository=repository.name,
        exit_code=0,
        duration=time.monotonic() - started,
    )


def _tcp_refused(host: str, port: int, timeout: float) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return True
    return False


def probe(
    restic: Restic,
    repository: Repository,
    *,
    state_dir: Path | None,
    environ: Mapping[str, str],
) -> Probe:
    """Answer the preflight for *repository*: cheaply when the module docstring's
    conditions hold, otherwise with ``restic --no-lock cat config``.

    Only the real :class:`SubprocessResticRunner` gets the cheap path: a test fake or a
    plugin's runner is always asked (its repositories need not be on this disk).
    """
    runner = restic.runner
    if not isinstance(runner, SubprocessResticRunner) or state_dir is None:
        return _restic_probe(restic, repository, None, None)
    started = time.monotonic()
    url = repository.url
    runner_env = runner.environ
    records = PasswordRecord(state_dir)
    path = local_path(url)
    fingerprint: dict[str, Any] = {}
    if path is not None:
        local = local_fingerprint(path)
        if local is None:
            return _restic_probe(restic, repository, None, records)  # restic names the problem
        fingerprint.update(local)
    else:
        env = {**runner_env, **repository.storage_environment()}
        why = unreachable(url, environ=env)
        if why is not None:
            # restic >= 0.17 would retry this for 15 minutes before it failed.
            records.forget(url)
            return Probe(
                ResticResult(
                    args=PROBE_ARGS,
                    repository=repository.name,
                    exit_code=None,
                    duration=time.monotonic() - started,
                    error_kind=ResticErrorKind.FAILED,
                    failure=f"repository unreachable: {why}",
                ),
                cheap=True,
            )
        sftp = sftp_server(url)
        if sftp is not None and _tcp_refused(*sftp, SFTP_CONNECT_TIMEOUT):
            return _restic_probe(restic, repository, None, records)  # ssh config may differ
        if sftp is None and not url.startswith(("rest:", "s3:")):
            return _restic_probe(restic, repository, None, None)  # nothing cheaper can tell
    password_file = password_file_of(
        repository, runner_env, runner.password_provider is not None
    )
    identity = password_file_identity(password_file) if password_file else None
    if identity is None:
        return _restic_probe(restic, repository, None, None)
    fingerprint["password_file"] = identity
    record = records.load(url)
    if record is not None and all(record.get(k) == v for k, v in fingerprint.items()):
        recorded_id = record.get("repository_id")
        return Probe(
            _ok(repository, started),
            cheap=True,
            repository_id=recorded_id if isinstance(recorded_id, str) else None,
        )
    return _restic_probe(restic, repository, fingerprint, records)


def _restic_probe(
    restic: Restic,
    repository: Repository,
    fingerprint: Mapping[str, Any] | None,
    records: PasswordRecord | None,
) -> Probe:
    result = restic.cat_config(repository)
    repo_id = repository_id(result.stdout) if result.ok else None
    if records is not None:
        if result.ok and fingerprint is not None:
            records.save(repository.url, {**fingerprint, "repository_id": repo_id})
        elif not result.ok:
            records.forget(repository.url)
    return Probe(result, cheap=False, repository_id=repo_id)


def forget_record(state_dir: Path | None, repository: Repository) -> None:
    """Drop *repository*'s record (a backup on it failed: the next preflight asks restic)."""
    if state_dir is not None:
        PasswordRecord(state_dir).forget(repository.url)


__all__ = [
    "PasswordRecord",
    "Probe",
    "forget_record",
    "local_fingerprint",
    "local_path",
    "password_file_identity",
    "password_file_of",
    "probe",
    "sftp_server",
]
