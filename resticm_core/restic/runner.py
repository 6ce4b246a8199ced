"""The runner seam (:class:`ResticRunner`) and the real one, :class:`SubprocessResticRunner`.


- :class:`ResticRunner` is the one seam for fakes. :class:`SubprocessResticRunner`
  runs the real binary: it builds each child's environment explicitly (inherited
  ``RESTIC_*`` credentials scrubbed, the repository's own set), passes secrets only
  through the environment (never argv), and maps how restic ended to a
  :class:`ResticErrorKind`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import attrs

from ..children import KnownChildren
from ..config import Repository
from ..errors import ResticmError, ResticNotFoundError
from ..inherited_env import scrubbed_environment
from ..process import ProcessResult, run_process
from ..restic_options import command_args
from ..secrets import Redactor
from .environment import PasswordProvider, child_environment, printable_command
from .errors import (
    LOCKLESS_COMMANDS,
    MISSING_BUCKET_FAILURE,
    NOT_INSTALLED_MESSAGE,
    STDERR_TAIL_LINES,
    ResticErrorKind,
    ResticResult,
    classify,
    command_name,
    retries_missing_bucket,
)

log = logging.getLogger(__name__)

_VERSION = re.compile(r"\brestic (\d+)\.(\d+)\.(\d+)")
#: Captured stdout (``snapshots --json``...) larger than this is refused, not parsed.
MAX_CAPTURE_CHARS = 64 * 1024 * 1024
#: Seconds allowed for ``restic version`` and for removing a stale lock after a kill.
HOUSEKEEPING_TIMEOUT = 60.0


class _EitherEvent(threading.Event):
    """Set when it was set itself or when *other* (the caller's cancel event) is set."""

    def __init__(self, other: threading.Event | None) -> None:
        super().__init__()
        self.other = other

    def is_set(self) -> bool:
        return super().is_set() or (self.other is not None and self.other.is_set())


# -- the runner seam ------------------------------------------------------------------------------


class ResticRunner(Protocol):
    """Runs restic. The one seam: tests and plugin authors substitute a fake here."""

    def execute(
        self,
        args: Sequence[str],
        repository: Repository,
        *,
        timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
        capture_stdout: bool = False,
        cancel: threading.Event | None = None,
        extra_env: Mapping[str, str] | None = None,
        stdin: int | None = None,
    ) -> ResticResult:
        """Run ``restic <args>`` on *repository*. Never raises for a failing restic:
        the result says how it failed (NOT_INSTALLED included).

        *stdin* is a file descriptor restic reads (``backup --stdin`` of a dump);
        None gives it no input. Runners that stream nothing may omit the parameter:
        it is passed only when set."""
        ...

    def version(self) -> tuple[int, int, int]:
        """restic's version; raises :class:`ResticNotFoundError` when it is not installed."""
        ...


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``restic 0.14.0 compiled with go1.19.8 on linux/amd64`` -> ``(0, 14, 0)``."""
    match = _VERSION.search(text)
    if match is None:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


# -- the subprocess runner ------------------------------------------------------------------------


class _StdoutSink:
    """Receives stdout lines: keeps them when capturing (bounded), forwards them to a callback.

    run_process keeps only a bounded tail, so a full capture happens here. A
    failing callback is logged and ignored: an exception in the reader thread
    would stop draining the pipe and hang restic.
    """

    def __init__(self, callback: Callable[[str], None] | None, capture: bool) -> None:
        self._callback = callback
        self._capture = capture
        self._chunks: list[str] = []
        self._size = 0
        self.overflow = False
        self._callback_failed = False

    def __call__(self, line: str) -> None:
        if self._capture and not self.overflow:
            self._size += len(line) + 1
            if self._size > MAX_CAPTURE_CHARS:
                self.overflow = True
                self._chunks.clear()
            else:
                self._chunks.append(line)
        if self._callback is not None and not self._callback_failed:
            try:
                self._callback(line)
            except Exception:
                self._callback_failed = True
                log.warning("restic output callback failed; ignoring it from now on", exc_info=True)

    @property
    def text(self) -> str:
        return "".join(f"{chunk}\n" for chunk in self._chunks)


class SubprocessResticRunner:
    """Runs the real restic binary, one child process per command.

    :param binary: the restic executable, looked up in the child's ``PATH``.
    :param environ: the environment children derive from (default: a snapshot of
        ``os.environ`` taken now). Inherited credentials are scrubbed, see
        :func:`child_environment`.
    :param password_provider: called with a repository whose config names no
        password source (plugins: vaults, keyrings); returns the password or None.
    :param on_command: called with the printable command line before each run.
    :param kill_grace: seconds between TERM and KILL when restic is stopped.
    :param children: the run's registry of live children; restic children are
        registered there so a hook's leftover sweep never takes one for an orphan.
    """

    def __init__(
        self,
        binary: str = "restic",
        *,
        environ: Mapping[str, str] | None = None,
        password_provider: PasswordProvider | None = None,
        on_command: Callable[[str], None] | None = None,
        kill_grace: float = 10.0,
        children: KnownChildren | None = None,
    ) -> None:
        self.binary = binary
        self.children = children
        self.environ: Mapping[str, str] = dict(os.environ if environ is None else environ)
        self.password_provider = password_provider
        self.on_command = on_command
        self.kill_grace = kill_grace
        self._version: tuple[int, int, int] | None = None
        self._version_lock = threading.Lock()

    def _which(self, env: Mapping[str, str]) -> str | None:
        return shutil.which(self.binary, path=env.get("PATH", os.defpath))

    def execute(
        self,
        args: Sequence[str],
        repository: Repository,
        *,
        timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
        capture_stdout: bool = False,
        cancel: threading.Event | None = None,
        extra_env: Mapping[str, str] | None = None,
        stdin: int | None = None,
    ) -> ResticResult:
        args = tuple(str(a) for a in args)
        try:
            env, secrets = child_environment(
                repository,
                self.environ,
                password_provider=self.password_provider,
                extra_env=extra_env,
            )
        except Exception as exc:  # a plugin's failure must not escape as a traceback
            redactor = Redactor(urls=[repository.url])
            return ResticResult(
                args=args,
                repository=repository.name,
                exit_code=None,
                error_kind=ResticErrorKind.FAILED,
                failure=redactor.redact(
                    f"could not get the repository password from a plugin: {exc}"
                ),
            )
        binary = self._which(env)
        if binary is None:
            return ResticResult(
                args=args,
                repository=repository.name,
                exit_code=None,
                error_kind=ResticErrorKind.NOT_INSTALLED,
                failure=NOT_INSTALLED_MESSAGE,
            )
        if self.on_command is not None:
            self.on_command(printable_command(args, repository, extra_env))
        sink = _StdoutSink(on_stdout, capture_stdout)
        missing_bucket = _EitherEvent(cancel)

        def watch_stderr(line: str) -> None:
            if retries_missing_bucket(line):
                missing_bucket.set()

        process = run_process(
            [binary, *args],
            env=env,
            timeout=timeout,
            kill_grace=self.kill_grace,
            on_stdout=sink,
            on_stderr=watch_stderr,
            cancel=missing_bucket,
            tail_lines=STDERR_TAIL_LINES,
            # restic removes its own repository lock on SIGINT (not on SIGTERM).
            stop_signal=signal.SIGINT,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            known=self.children,
        )
        redactor = Redactor(secrets, urls=[repository.url, env.get("RESTIC_FROM_REPOSITORY", "")])
        result = _result(args, repository.name, process, sink, redactor)
        if process.cancelled and not (cancel is not None and cancel.is_set()):
            # Stopped by resticm for a missing bucket: restic never got as far as a lock.
            return attrs.evolve(
                result,
                cancelled=False,
                error_kind=ResticErrorKind.REPOSITORY_MISSING,
                failure=MISSING_BUCKET_FAILURE,
            )
        if _left_a_lock(process, args):
            self._remove_stale_lock(binary, env, repository)
        return result

    def _remove_stale_lock(
        self, binary: str, env: Mapping[str, str], repository: Repository
    ) -> None:
        """Remove the lock a restic killed by a signal left behind.

        restic 0.14 cleans up on SIGINT only; TERM/KILL (timeouts, cancellation)
        leave its lock, which blocks the next prune or check. ``restic unlock``
        without ``--remove-all`` removes only stale locks: this host's locks of
        dead processes, and locks older than 30 minutes.
        """
        process = run_process(
            [binary, *command_args(["unlock"], repository)],
            env=env,
            timeout=HOUSEKEEPING_TIMEOUT,
            kill_grace=self.kill_grace,
            known=self.children,
        )
        if process.ok:
            log.info("removed the lock restic left on %s when it was stopped", repository.name)
        else:
            log.warning(
                "restic was stopped on %s and its lock could not be removed (%s); "
                "run 'restic unlock' on it",
                repository.name,
                process.describe_failure(),
            )

    def installed(self) -> bool:
        """Is restic on the children's ``PATH``? A lookup only: no process is started."""
        return self._which(scrubbed_environment(self.environ)) is not None

    def version(self) -> tuple[int, int, int]:
        """restic's version, detected once per runner (``restic version``)."""
        with self._version_lock:
            if self._version is None:
                self._version = self._detect_version()
            return self._version

    def _detect_version(self) -> tuple[int, int, int]:
        env = scrubbed_environment(self.environ)
        binary = self._which(env)
        if binary is None:
            raise ResticNotFoundError(NOT_INSTALLED_MESSAGE)
        process = run_process([binary, "version"], env=env, timeout=HOUSEKEEPING_TIMEOUT)
        output = "\n".join(process.stdout_tail)
        version = parse_version(output) if process.ok else None
        if version is None:
            reason = process.describe_failure() or f"unexpected output {output[:200]!r}"
            raise ResticmError(f"cannot determine the version of {binary}: {reason}")
        return version


def takes_lock(args: Sequence[str]) -> bool:
    """Does this command lock the repository (and so can find it locked)?"""
    return "--no-lock" not in args and command_name(args) not in LOCKLESS_COMMANDS


def _left_a_lock(process: ProcessResult, args: Sequence[str]) -> bool:
    """True when restic was killed by a signal while it may have held a repository lock.

    A restic stopped by resticm (timeout, interruption) counts even when it exited
    itself: a SIGINT that arrives while restic is still creating its lock runs the
    cleanup before the lock exists, and the lock is left (seen with restic 0.14).
    """
    killed = process.returncode is not None and process.returncode < 0
    stopped = killed or process.timed_out or process.cancelled
    return stopped and "--no-lock" not in args and command_name(args) not in LOCKLESS_COMMANDS


def _result(
    args: tuple[str, ...],
    repository: str,
    process: ProcessResult,
    sink: _StdoutSink,
    redactor: Redactor,
) -> ResticResult:
    stderr = tuple(redactor.redact(line) for line in process.stderr_tail)
    failure = ""
    if process.start_error:
        failure = redactor.redact(process.start_error)
        kind = ResticErrorKind.FAILED
    else:
        kind = classify(
            process.returncode,
            stderr,
            timed_out=process.timed_out,
            cancelled=process.cancelled,
        )
    if sink.overflow:
        failure = (
            f"restic printed more than {MAX_CAPTURE_CHARS // (1024 * 1024)} MiB; output refused"
        )
        if kind in (ResticErrorKind.NONE, ResticErrorKind.PARTIAL):
            kind = ResticErrorKind.FAILED
    return ResticResult(
        args=args,
        repository=repository,
        exit_code=process.returncode,
        duration=process.duration,
        timed_out=process.timed_out,
        cancelled=process.cancelled,
        stdout=sink.text,
        stderr_tail=stderr,
        error_kind=kind,
        failure=failure,
    )
