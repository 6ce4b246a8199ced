"""The :class:`Restic` facade: the command lines the workflow runs (``backup --json``,
``forget``...), per-command timeouts, and the parsing of restic's JSON output.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ..backoff import Backoff, pause
from ..config import Repository
from ..errors import ResticmError, ResticNotFoundError
from ..phases import BackupSummary
from ..restic_options import command_args
from .environment import PasswordProvider, configured_password, printable_command
from .errors import (
    FOREIGN_LOCK_HINT,
    NOT_INSTALLED_MESSAGE,
    SHORT_ID_LENGTH,
    BackupOutcome,
    ResticCommandError,
    ResticErrorKind,
    ResticResult,
    command_name,
    failure_detail,
    retryable_failure,
)
from .locks import is_dead_local_lock
from .runner import ResticRunner, takes_lock

log = logging.getLogger(__name__)

#: A ``restic list locks`` line: one lock ID.
_LOCK_ID = re.compile(r"^[0-9a-f]{64}$")
#: The first restic version with ``--retry-lock``.
RETRY_LOCK_SINCE = (0, 16, 0)
#: Seconds for the read-only commands a run waits on; the others default to no timeout.
DEFAULT_TIMEOUTS: Mapping[str, float] = {"cat": 300.0, "snapshots": 300.0, "list": 300.0}
StatusCallback = Callable[[Mapping[str, Any]], None]

# -- the facade -----------------------------------------------------------------------------------


def _summary_from(message: Mapping[str, Any]) -> BackupSummary:
    """A :class:`BackupSummary` from a ``message_type: summary`` line; odd values become 0."""

    def number(key: str, kind: Callable[[Any], Any] = int) -> Any:
        try:
            return kind(message.get(key) or 0)
        except (TypeError, ValueError):
            return kind(0)

    # restic 0.14 reports the short ID, restic >= 0.17 the full one: resticm's reports,
    # hook variables and notifications carry the short ID with every version.
    snapshot = message.get("snapshot_id")
    return BackupSummary(
        snapshot_id=str(snapshot)[:SHORT_ID_LENGTH] if snapshot else None,
        files_new=number("files_new"),
        files_changed=number("files_changed"),
        files_unmodified=number("files_unmodified"),
        dirs_new=number("dirs_new"),
        dirs_changed=number("dirs_changed"),
        dirs_unmodified=number("dirs_unmodified"),
        data_added=number("data_added"),
        total_files_processed=number("total_files_processed"),
        total_bytes_processed=number("total_bytes_processed"),
        total_duration=number("total_duration", float),
        data_added_packed=number("data_added_packed") if "data_added_packed" in message else None,
    )


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class BackupParser:
    """Reads ``backup --json`` stdout as it streams: forwards status, keeps the summary."""

    def __init__(self, on_status: StatusCallback | None) -> None:
        self._on_status = on_status
        self.summary: BackupSummary | None = None

    def __call__(self, line: str) -> None:
        message = _json_object(line.strip())
        if message is None:
            return  # restic prints the odd non-JSON line even with --json
        kind = message.get("message_type")
        if kind == "summary":
            self.summary = _summary_from(message)
        elif kind == "status" and self._on_status is not None:
            self._show_status(message)

    def _show_status(self, message: Mapping[str, Any]) -> None:
        assert self._on_status is not None
        try:
            self._on_status(message)
        except Exception:
            # A broken progress display must not cost the summary: stop calling it.
            self._on_status = None
            log.warning("backup progress callback failed; progress display disabled", exc_info=True)


def backup_args(
    paths: Sequence[str],
    *,
    tags: Sequence[str] = (),
    excludes: Sequence[str] = (),
    exclude_file: str | None = None,
    host: str | None = None,
) -> list[str]:
    """The arguments of ``restic backup --json``: flags, then ``--`` and the paths.

    ``--`` keeps a path that starts with ``-`` from being read as an option.
    """
    args = ["backup", "--json"]
    for tag in tags:
        args += ["--tag", tag]
    for pattern in excludes:
        args += ["--exclude", pattern]
    if exclude_file:
        args += ["--exclude-file", exclude_file]
    if host:
        args += ["--host", host]
    return [*args, "--", *paths]


def forget_args(
    policy_args: Sequence[str],
    *,
    host: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
) -> list[str]:
    """The arguments of ``restic forget``."""
    args = ["forget", *policy_args]
    if host:
        args += ["--host", host]
    if prune:
        args.append("--prune")
    if dry_run:
        args.append("--dry-run")
    return args


def check_args(*, read_data: bool = False, subset: str | None = None) -> list[str]:
    """The arguments of ``restic check``; a full read wins over a subset."""
    if read_data:
        return ["check", "--read-data"]
    if subset:
        return ["check", "--read-data-subset", subset]
    return ["check"]


class Restic:
    """The restic commands the workflow runs, over a :class:`ResticRunner`.

    :param cancel: when set (resticm got a signal), the running restic is stopped.
    :param timeouts: seconds per command name (``backup``, ``forget``, ``prune``,
        ``check``, ``copy``, ``init``, ``snapshots``, ``cat``, ``list``...), over
        :data:`DEFAULT_TIMEOUTS`; a missing name means no timeout.
    :param password_provider: source of a copy/init *source* password when its
        config names none; default: the runner's own ``password_provider``.
    """

    def __init__(
        self,
        runner: ResticRunner,
        *,
        cancel: threading.Event | None = None,
        timeouts: Mapping[str, float] | None = None,
        password_provider: PasswordProvider | None = None,
        retry_lock: float | None = None,
        retry_delay: float = 5.0,
        retries: int = 0,
        retry_backoff: float = 5.0,
    ) -> None:
        self.runner = runner
        self.cancel = cancel
        self.timeouts: dict[str, float] = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        #: Seconds to keep retrying a command whose repository is locked by another process.
        self.retry_lock = retry_lock
        #: The first wait between retries; it doubles up to a minute.
        self.retry_delay = retry_delay
        #: Extra attempts after a transient backend failure (see :func:`retryable_failure`).
        self.retries = max(0, retries)
        #: The first wait before such an attempt; it doubles up to a minute.
        self.retry_backoff = retry_backoff
        self.password_provider: PasswordProvider | None = password_provider or getattr(
            runner, "password_provider", None
        )

    def run(
        self,
        args: Sequence[str],
        repository: Repository,
        *,
        on_stdout: Callable[[str], None] | None = None,
        capture_stdout: bool = False,
        extra_env: Mapping[str, str] | None = None,
        stdin: int | None = None,
    ) -> ResticResult:
        """Any restic command, with the timeout configured for its name.

        With :attr:`retry_lock`, a command that finds the repository locked is
        retried until that many seconds passed: restic >= 0.16 does it itself
        (``--retry-lock``); for older restic the retries happen here, with backoff.
        A command reading *stdin* (a streamed dump) is never retried here: the
        stream cannot be read twice.
        """
        command = command_name(args)
        retry = self.retry_lock if self.retry_lock and takes_lock(args) else None
        streamed: dict[str, Any] = {} if stdin is None else {"stdin": stdin}
        native = retry is not None and self._has_retry_lock()
        if native:
            args = [command, "--retry-lock", f"{retry:.0f}s", *args[1:]]
        args = command_args(args, repository)  # issue 18: options, limits, extra_args
        deadline = time.monotonic() + (retry or 0)
        lock_backoff = Backoff(self.retry_delay, cap=60.0)
        lock_retries = 0
        transient_retries = 0
        dead_lock_removed = False
        while True:
            result = self.runner.execute(
                args,
                repository,
                timeout=self.timeouts.get(command),
                on_stdout=on_stdout,
                capture_stdout=capture_stdout,
                cancel=self.cancel,
                extra_env=extra_env,
                **streamed,
            )
            if not streamed and self._retry_transient(result, repository, transient_retries):
                transient_retries += 1
                continue
            if not dead_lock_removed and self._remove_dead_lock(result, repository, streamed):
                dead_lock_removed = True
                if not streamed:  # a stream cannot be read twice
                    continue
            result = self._with_lock_hint(result)
            remaining = deadline - time.monotonic()
            if (
                native
                or streamed
                or result.error_kind is not ResticErrorKind.LOCKED
                or remaining <= 0
            ):
                return result
            wait = min(lock_backoff.delay(lock_retries), remaining)
            log.warning(
                "repository %s is locked by another process; retrying restic %s in %.0fs",
                repository.name,
                command,
                wait,
            )
            if not pause(wait, self.cancel):
                return result
            lock_retries += 1

    def _remove_dead_lock(
        self, result: ResticResult, repository: Repository, streamed: Mapping[str, Any]
    ) -> bool:
        """``restic unlock`` when *result* was locked out by a dead process of this host.

        Such a lock is a leftover (a restic killed with SIGKILL, resticm killed by
        the OOM killer): without this, every later prune and check fails until
        someone unlocks by hand. ``restic unlock`` removes stale locks only (this
        host's dead processes, locks older than 30 minutes), never a live one.
        """
        holder = result.lock_holder
        if holder is None:
            return False
        if not is_dead_local_lock(holder[1], holder[0]):
            return False
        pid, host = holder
        log.warning(
            "restic %s on %s: the repository is locked by PID %d of this host (%s), which no "
            "longer runs (a killed restic left it); removing the stale lock with restic unlock%s",
            result.command,
            repository.name,
            pid,
            host,
            "" if streamed else " and running the command once more",
        )
        unlock = self.runner.execute(
            command_args(["unlock"], repository),
            repository,
            timeout=self.timeouts.get("unlock"),
            cancel=self.cancel,
        )
        if not unlock.ok:
            log.warning(
                "could not remove the stale lock on %s: %s", repository.name, unlock.message
            )
            return False
        log.info("removed the stale lock of PID %d on %s", pid, repository.name)
        return True

    @staticmethod
    def _with_lock_hint(result: ResticResult) -> ResticResult:
        """A locked-out result names ``resticm unlock --restic`` when another host holds it."""
        holder = result.lock_holder
        if holder is None or result.hint or holder[1] == socket.gethostname():
            return result
        return attrs.evolve(result, hint=FOREIGN_LOCK_HINT)

    def _retry_transient(self, result: ResticResult, repository: Repository, done: int) -> bool:
        """Wait before another attempt after a transient failure; False: give up."""
        if done >= self.retries or not retryable_failure(result):
            return False
        wait = Backoff(self.retry_backoff, cap=60.0).delay(done)
        log.warning(
            "restic %s on %s failed with a transient backend error (%s); attempt %d of %d in %.0fs",
            result.command,
            repository.name,
            failure_detail(result.stderr_tail, result.error_kind) or "no message",
            done + 2,
            self.retries + 1,
            wait,
        )
        return pause(wait, self.cancel)

    def _has_retry_lock(self) -> bool:
        try:
            return self.runner.version() >= RETRY_LOCK_SINCE
        except ResticmError:
            return False

    def describe(self, args: Sequence[str], repository: Repository) -> str:
        """The printable command line ``restic -r <redacted url> <args>``."""
        return printable_command(command_args(args, repository), repository)

    def version(self) -> tuple[int, int, int]:
        return self.runner.version()

    def ensure_installed(self) -> None:
        """Raise :class:`ResticNotFoundError` when restic is not installed.

        A runner with an ``installed()`` method (:class:`SubprocessResticRunner`)
        answers with a ``PATH`` lookup, without starting ``restic version``: the
        version is read only when a version-gated flag (``--retry-lock``) needs it.
        Other runners (test fakes, plugins' runners) are asked for their version.
        """
        installed: Callable[[], bool] | None = getattr(self.runner, "installed", None)
        if installed is None:
            self.runner.version()
        elif not installed():
            raise ResticNotFoundError(NOT_INSTALLED_MESSAGE)

    def backup(
        self,
        repository: Repository,
        paths: Sequence[str],
        *,
        tags: Sequence[str] = (),
        excludes: Sequence[str] = (),
        exclude_file: str | None = None,
        host: str | None = None,
        on_status: StatusCallback | None = None,
    ) -> BackupOutcome:
        """``restic backup --json``; status messages go to *on_status* as they come.

        Exit 3 (some files unreadable, snapshot written) is ``PARTIAL`` with a summary.
        """
        parser = BackupParser(on_status)
        args = backup_args(
            paths, tags=tags, excludes=excludes, exclude_file=exclude_file, host=host
        )
        result = self.run(args, repository, on_stdout=parser)
        return BackupOutcome(result=result, summary=parser.summary)

    def forget(
        self,
        repository: Repository,
        policy_args: Sequence[str],
        *,
        host: str | None,
        prune: bool = False,
        dry_run: bool = False,
    ) -> ResticResult:
        """``restic forget <policy> [--host H] [--prune]``.

        An empty *policy_args* still runs: restic then says "no policy was
        specified, no snapshots will be removed" and keeps everything, which is
        the safe outcome. Refusing belongs to the caller, which knows whether the
        user asked for it.
        """
        # --json: the removed and kept snapshots for the step's summary (restic/summaries.py).
        args = [*forget_args(policy_args, host=host, prune=prune, dry_run=dry_run), "--json"]
        return self.run(args, repository, capture_stdout=True)

    def prune(self, repository: Repository) -> ResticResult:
        return self.run(["prune"], repository)

    def check(
        self, repository: Repository, *, read_data: bool = False, subset: str | None = None
    ) -> ResticResult:
        return self.run(check_args(read_data=read_data, subset=subset), repository)

    def unlock(self, repository: Repository) -> ResticResult:
        """``restic unlock``: removes stale locks only (never ``--remove-all``)."""
        return self.run(["unlock"], repository)

    def source_env(self, source: Repository) -> dict[str, str]:
        """``RESTIC_FROM_*`` variables naming *source* and its password, for copy and init.

        Nothing goes on the command line: the URL may embed credentials. Without
        a configured or plugin password, the runner falls back on the inherited one.
        """
        env = {"RESTIC_FROM_REPOSITORY": source.url}
        password = configured_password(source, prefix="RESTIC_FROM_")
        if password is None and self.password_provider is not None:
            provided = self.password_provider(source)
            password = ("RESTIC_FROM_PASSWORD", provided) if provided else None
        if password is not None:
            env[password[0]] = password[1]
        return env

    def init(
        self, repository: Repository, *, copy_chunker_params_from: Repository | None = None
    ) -> ResticResult:
        """``restic init``; with a source, ``--copy-chunker-params`` from it (copy targets
        deduplicate best with the source's chunker)."""
        if copy_chunker_params_from is None:
            return self.run(["init"], repository)
        return self.run(
            ["init", "--copy-chunker-params"],
            repository,
            extra_env=self.source_env(copy_chunker_params_from),
        )

    def copy(
        self,
        destination: Repository,
        source: Repository,
        *,
        host: str | None = None,
        snapshot_ids: Sequence[str] = (),
    ) -> ResticResult:
        """``restic copy`` from *source* into *destination* (all snapshots, or those given)."""
        args = ["copy"]
        if host:
            args += ["--host", host]
        return self.run(  # stdout: the copied snapshots, for the step's summary
            [*args, *snapshot_ids],
            destination,
            extra_env=self.source_env(source),
            capture_stdout=True,
        )

    def cat_config(self, repository: Repository) -> ResticResult:
        """The preflight probe: ``restic --no-lock cat config``, read-only, takes no lock."""
        return self.run(["--no-lock", "cat", "config"], repository, capture_stdout=True)

    def cat_lock(self, repository: Repository, lock_id: str) -> dict[str, Any]:
        """A lock's content (``time``, ``exclusive``, ``hostname``, ``username``, ``pid``).

        ``--no-lock``: a plain ``cat`` would itself create a lock.
        """
        result = self.run(["--no-lock", "cat", "lock", lock_id], repository, capture_stdout=True)
        value = self._json(result)
        if not isinstance(value, dict):
            raise ResticCommandError(
                result, f"restic cat lock printed no lock on {repository.name}"
            )
        return value

    def snapshots(
        self,
        repository: Repository,
        *,
        host: str | None = None,
        tags: Sequence[str] = (),
        latest: int | None = None,
    ) -> list[dict[str, Any]]:
        """``restic snapshots --json`` (filtered); raises :class:`ResticCommandError` on failure."""
        args = ["snapshots", "--json"]
        if host:
            args += ["--host", host]
        for tag in tags:
            args += ["--tag", tag]
        if latest:
            args += ["--latest", str(latest)]
        result = self.run(args, repository, capture_stdout=True)
        value = self._json(result)
        if value is None:  # restic prints `null` for no snapshots in some versions
            return []
        if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
            raise ResticCommandError(
                result, f"restic snapshots printed no list on {repository.name}"
            )
        return value

    def list_locks(self, repository: Repository) -> list[str]:
        """The IDs of the repository's locks (``restic --no-lock list locks``).

        restic's ``list`` has no JSON mode: one 64-hex ID per line.
        """
        result = self.run(["--no-lock", "list", "locks"], repository, capture_stdout=True)
        if not result.ok:
            raise ResticCommandError(result)
        return [line.strip() for line in result.stdout.splitlines() if _LOCK_ID.match(line.strip())]

    @staticmethod
    def _json(result: ResticResult) -> Any:
        if not result.ok:
            raise ResticCommandError(result)
        try:
            return json.loads(result.stdout or "null")
        except ValueError as exc:
            raise ResticCommandError(
                result,
                f"restic {result.command} on {result.repository} printed invalid JSON: {exc}",
            ) from None
