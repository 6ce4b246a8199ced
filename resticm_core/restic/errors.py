"""How restic ended: its exit codes, :class:`ResticErrorKind`, the classification
of a failure from the exit code and stderr, readable messages, and :class:`ResticResult`.

restic 0.14 (Debian 12) is the floor. It has no exit codes for "repository does
not exist" (10), "lock failed" (11) or "wrong password" (12), which restic 0.17
introduced; for older versions they are recognised from stderr. Texts verified
against restic 0.14.0::

    Fatal: unable to open config file: stat /x/config: no such file or directory
    Is there a repository at the following location?
    Fatal: wrong password or no key found
    unable to create lock in backend: repository is already locked by PID 6039 on vm ...
"""

from __future__ import annotations

import enum
import json
import os
import re
import shlex
import signal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ..errors import ResticmError
from ..phases import BackupSummary
from ..secrets import redact_url

EXIT_OK = 0
EXIT_FAILED = 1
#: The snapshot was written, but some source files could not be read.
EXIT_PARTIAL = 3
#: restic >= 0.17 only.
EXIT_REPOSITORY_MISSING = 10
EXIT_LOCK_FAILED = 11
EXIT_WRONG_PASSWORD = 12
EXIT_INTERRUPTED = 130
#: restic's short snapshot ID: the first 8 hex digits of the ID.
SHORT_ID_LENGTH = 8

NOT_INSTALLED_MESSAGE = "restic is not installed or not on PATH (install the 'restic' package)"
#: Lines of restic's stderr kept for error messages (plus a head of 20 lines).
STDERR_TAIL_LINES = 50


class ResticErrorKind(enum.StrEnum):
    """Why a restic command did not succeed (``NONE`` when it did)."""

    NONE = "none"
    #: Exit 3: the snapshot was written, but some source files could not be read.
    PARTIAL = "partial"
    REPOSITORY_MISSING = "repository_missing"
    WRONG_PASSWORD = "wrong_password"
    LOCKED = "locked"
    NOT_INSTALLED = "not_installed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


# -- recognising failures -------------------------------------------------------------------------

_EXIT_KINDS = {
    EXIT_OK: ResticErrorKind.NONE,
    EXIT_PARTIAL: ResticErrorKind.PARTIAL,
    EXIT_REPOSITORY_MISSING: ResticErrorKind.REPOSITORY_MISSING,
    EXIT_LOCK_FAILED: ResticErrorKind.LOCKED,
    EXIT_WRONG_PASSWORD: ResticErrorKind.WRONG_PASSWORD,
    EXIT_INTERRUPTED: ResticErrorKind.INTERRUPTED,
}
_WRONG_PASSWORD_TEXT = "wrong password or no key found"
_LOCKED_TEXT = "repository is already locked"
_MISSING_CONFIG_TEXT = "unable to open config file"
_MISSING_HINT_TEXT = "Is there a repository at the following location?"
# restic 0.14 prints the "Is there a repository" hint for *every* failure to read
# the config file, a refused connection included. Only these causes mean the
# repository is really absent (local/sftp, rest-server/rclone, S3, Azure, GCS, B2).
_NOT_EXIST_MARKERS = (
    "no such file or directory",
    "does not exist",
    "doesn't exist",
    "not found",
    "nosuchkey",
    "nosuchbucket",
)
#: restic >= 0.17 retries a missing S3 bucket as if it were a failing backend, for
#: minutes (0.14 fails at once); its stderr then says (restic 0.18.0 against moto_server):
#:   Stat(<config/>) returned error, retrying after 712.9ms: Stat: The specified bucket
#:   does not exist
#: A missing bucket is a missing repository: resticm stops restic at the first such line.
_RETRYING_TEXT = "returned error, retrying after"
_MISSING_BUCKET_MARKERS = ("the specified bucket does not exist", "nosuchbucket")
MISSING_BUCKET_FAILURE = (
    "repository does not exist: its bucket does not exist (restic >= 0.17 retries that for"
    " minutes; resticm stopped it) (create it with 'resticm init')"
)
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PROGRESS_LINE = re.compile(r"^\[\d+:\d{2}(?::\d{2})?\]")
_OMITTED_MARKER = re.compile(r"^\.\.\. \d+ lines omitted \.\.\.$")
#: Who holds the lock restic tripped over (0.14 and 0.18 word it alike):
#:   repository is already locked exclusively by PID 6039 on vm by root (UID 0, GID 0)
_LOCK_HOLDER = re.compile(r"repository is already locked (?:exclusively )?by PID (\d+) on (\S+)")
#: Appended to the message of a command locked out by another host's lock.
FOREIGN_LOCK_HINT = (
    "the lock belongs to another host: if restic no longer runs there, remove it with "
    "'resticm unlock --restic' (restic removes another host's lock once it is 30 minutes old)"
)
#: Commands that never hold a repository lock (no stale lock to remove after a kill).
LOCKLESS_COMMANDS = frozenset({"version", "help", "init", "unlock", "generate"})


_KIND_DESCRIPTIONS = {
    ResticErrorKind.WRONG_PASSWORD: "wrong password or no key found",
    ResticErrorKind.LOCKED: "repository is already locked by another process",
    ResticErrorKind.REPOSITORY_MISSING: "repository does not exist (create it with 'resticm init')",
}


def _is_missing_repository(lines: Sequence[str]) -> bool:
    if not any(_MISSING_HINT_TEXT in line for line in lines):
        return False
    causes = (line.lower() for line in lines if _MISSING_CONFIG_TEXT in line)
    return any(marker in cause for cause in causes for marker in _NOT_EXIST_MARKERS)


def retries_missing_bucket(line: str) -> bool:
    """Is this stderr line restic >= 0.17 retrying to read the config of a missing bucket?"""
    lowered = line.lower()
    return (
        _RETRYING_TEXT in lowered
        and "<config/" in lowered
        and any(marker in lowered for marker in _MISSING_BUCKET_MARKERS)
    )


def _kind_from_stderr(lines: Sequence[str]) -> ResticErrorKind:
    """restic < 0.17 exits 1 for everything: recognise the common causes by their text."""
    # JSON lines are per-file error reports of a backup; a file *named* like an
    # error message must not change the verdict. restic's own fatal error in JSON
    # form (``exit_error``, restic >= 0.17 with --json) is restic's text: it counts.
    text_lines: list[str] = []
    for line in lines:
        if not line.lstrip().startswith("{"):
            text_lines.append(line)
        else:
            text_lines += _exit_error_lines(line)
    if any(_WRONG_PASSWORD_TEXT in line for line in text_lines):
        return ResticErrorKind.WRONG_PASSWORD
    if any(_LOCKED_TEXT in line for line in text_lines):
        return ResticErrorKind.LOCKED
    if _is_missing_repository(text_lines):
        return ResticErrorKind.REPOSITORY_MISSING
    return ResticErrorKind.FAILED


def classify(
    exit_code: int | None,
    stderr_lines: Sequence[str] = (),
    *,
    timed_out: bool = False,
    cancelled: bool = False,
) -> ResticErrorKind:
    """The :class:`ResticErrorKind` for how a restic process ended.

    A negative *exit_code* means the process was killed by that signal; None that
    it never started (which callers report as NOT_INSTALLED or FAILED themselves).
    """
    if timed_out:
        return ResticErrorKind.TIMEOUT
    if cancelled:
        return ResticErrorKind.INTERRUPTED
    if exit_code is None:
        return ResticErrorKind.FAILED
    if exit_code in (-signal.SIGINT, -signal.SIGTERM):
        # Someone else stopped restic (an admin, systemd): an interruption, not a failure of it.
        return ResticErrorKind.INTERRUPTED
    if exit_code in _EXIT_KINDS:
        return _EXIT_KINDS[exit_code]
    if exit_code == EXIT_FAILED:
        return _kind_from_stderr(stderr_lines)
    return ResticErrorKind.FAILED


# -- transient backend failures ------------------------------------------------------------------

#: restic's words for a backend that is there but failing right now (texts of
#: restic 0.14.0 against a closed port, a rest-server and an S3 answering 5xx):
#:   Fatal: unable to open config file: Stat: Get "http://127.0.0.1:1/b/?location=":
#:       dial tcp 127.0.0.1:1: connect: connection refused
#:   Fatal: unable to open config file: unexpected HTTP response (503): 503 Service Unavailable
#:   Fatal: unable to open config file: Stat: 503 Service Unavailable
_TRANSIENT_MARKERS = (
    "connection refused",
    "connection reset by peer",
    "broken pipe",
    "i/o timeout",
    "tls handshake timeout",
    "no route to host",
    "network is unreachable",
    "temporary failure in name resolution",
    "server misbehaving",
    "unexpected eof",
    "500 internal server error",
    "502 bad gateway",
    "503 service unavailable",
    "504 gateway timeout",
    "reduce your request rate",
)
#: Where restic stops before it changed anything: the config file is read and the
#: lock created before any command does its work.
_BEFORE_WORK_MARKERS = (
    "unable to open config file",
    "unable to open repository",
    "unable to create lock",
)
#: Commands that may be run again after failing anywhere: they read the repository
#: only, or (forget, copy) do work a second run completes rather than repeats.
RETRY_ANYWHERE_COMMANDS = frozenset(
    {"snapshots", "cat", "list", "ls", "stats", "find", "diff", "check", "forget", "copy"}
)
#: Never retried: a half-created repository must be looked at, not initialised again.
NEVER_RETRIED_COMMANDS = frozenset({"init", "key", "unlock", "version"})


def retryable_failure(result: ResticResult) -> bool:
    """Is *result* a transient backend failure worth another attempt?

    restic retries each backend request itself (for minutes); what reaches
    resticm is mostly a backend that was unreachable when restic started, and
    then restic has done nothing. So: any command (``backup`` and ``prune``
    included) is retried when it failed opening or locking the repository; the
    commands of :data:`RETRY_ANYWHERE_COMMANDS` also when they failed later.
    ``forget --prune`` counts as a prune. Timeouts and interruptions are never
    retried (the time is spent; the user asked to stop).
    """
    if result.error_kind is not ResticErrorKind.FAILED or result.failure:
        return False
    command = result.command
    if command in NEVER_RETRIED_COMMANDS or "--stdin" in result.args:
        return False
    lines = [line.lower() for line in readable_stderr(result.stderr_tail)]
    if not any(marker in line for line in lines for marker in _TRANSIENT_MARKERS):
        return False
    if command in RETRY_ANYWHERE_COMMANDS and "--prune" not in result.args:
        return True
    return any(marker in line for line in lines for marker in _BEFORE_WORK_MARKERS)


# -- making restic's stderr readable --------------------------------------------------------------


def _exit_error_lines(line: str) -> list[str]:
    """The lines of restic's fatal error in JSON form, else [].

    restic >= 0.17 run with ``--json`` prints its fatal error not as ``Fatal: ...``
    text but as ``{"message_type": "exit_error", "code": 10, "message": "Fatal: ..."}``
    (the message may span lines).
    """
    try:
        message = json.loads(line)
    except ValueError:
        return []
    if not isinstance(message, dict) or message.get("message_type") != "exit_error":
        return []
    text = message.get("message")
    if not isinstance(text, str):
        return []
    return [part.strip() for part in text.splitlines() if part.strip()]


def _json_error_text(line: str) -> str | None:
    """A backup's JSON error report (``{"message_type": "error", ...}``) as text, else None."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("message_type") != "error":
        return None
    error = message.get("error")
    item = message.get("item") or ""
    if isinstance(error, dict):
        # restic >= 0.17: {"message": "..."}; restic 0.14: Go's PathError {"Op", "Path", "Err"}.
        reason = error.get("message") or _path_error_text(error)
    else:
        reason = str(error or "unknown error")
    return f"{item}: {reason}" if item else reason


def _path_error_text(error: Mapping[str, Any]) -> str:
    errno = error.get("Err")
    cause = os.strerror(errno) if isinstance(errno, int) else str(errno or "error")
    op = error.get("Op")
    return f"{op}: {cause.lower()}" if op else cause.lower()


def readable_stderr(lines: Iterable[str]) -> list[str]:
    """restic's stderr lines a human should read: no blanks, progress bars, escape codes;
    JSON error reports rendered as ``<item>: <reason>``, a JSON fatal error
    (``exit_error``, restic >= 0.17) as its text."""
    out: list[str] = []
    for raw in lines:
        line = _ANSI_ESCAPE.sub("", raw).strip()
        if not line or _PROGRESS_LINE.match(line) or _OMITTED_MARKER.match(line):
            continue
        if line.startswith("{"):
            text = _json_error_text(line)
            if text is not None:
                out.append(text)
            out += _exit_error_lines(line)
            continue
        out.append(line)
    return out


def _strip_fatal(line: str) -> str:
    return line.removeprefix("Fatal:").strip()


def failure_detail(stderr: Sequence[str], kind: ResticErrorKind) -> str:
    """The one stderr line that says best why restic failed."""
    lines = readable_stderr(stderr)
    wanted = {
        ResticErrorKind.WRONG_PASSWORD: _WRONG_PASSWORD_TEXT,
        ResticErrorKind.LOCKED: _LOCKED_TEXT,
        ResticErrorKind.REPOSITORY_MISSING: _MISSING_CONFIG_TEXT,
    }.get(kind)
    if wanted is not None:
        for line in lines:
            if wanted in line:
                detail = _strip_fatal(line)
                if kind is ResticErrorKind.REPOSITORY_MISSING:
                    if "does not exist" not in detail:
                        detail = f"repository does not exist: {detail}"
                    detail += " (create it with 'resticm init')"
                return detail
    if wanted is not None:
        # restic >= 0.17 says it with its exit code alone; name the cause anyway.
        return _KIND_DESCRIPTIONS[kind]
    if kind is ResticErrorKind.PARTIAL:
        unreadable = [line for line in lines if not line.startswith(("Warning:", "Fatal:"))]
        if unreadable:
            more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
            return f"could not read {unreadable[0]}{more}"
    fatal = [line for line in lines if line.startswith("Fatal:")]
    if fatal:
        return _with_os_cause(_strip_fatal(fatal[-1]), lines)
    return _with_os_cause(lines[-1], lines) if lines else ""


#: The system's words for a repository that cannot be written (EROFS, EACCES, EPERM,
#: ENOSPC, EDQUOT), as Go prints them.
_OS_CAUSES = (
    "read-only file system",
    "permission denied",
    "operation not permitted",
    "no space left on device",
    "disk quota exceeded",
)
_RETRY_PREFIX = re.compile(r"^.*? returned error, retrying after [^:]*: ")


def _with_os_cause(detail: str, lines: Sequence[str]) -> str:
    """*detail*, followed by the line that names the system error when it does not.

    restic 0.14 ends a failed write with a Go stack trace and a bare ``unable to
    create lock in backend``; why (``open /srv/restic/locks/...: read-only file
    system``) is on the line before the trace, verbatim.
    """
    if any(cause in detail.lower() for cause in _OS_CAUSES):
        return detail
    for line in reversed(lines):
        if any(cause in line.lower() for cause in _OS_CAUSES):
            return f"{detail}: {_RETRY_PREFIX.sub('', _strip_fatal(line))}"
    return detail


def command_name(args: Sequence[str]) -> str:
    """The restic subcommand of *args* (``--no-lock cat config`` -> ``cat``)."""
    return next((a for a in args if not a.startswith("-")), "")


# -- results --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ResticResult:
    """How one restic command ended. Holds no secret: args never contain one."""

    #: restic's arguments (without the binary).
    args: tuple[str, ...]
    #: ``primary`` or the backend's name.
    repository: str
    #: None when restic never started; negative when killed by that signal.
    exit_code: int | None
    duration: float = 0.0
    timed_out: bool = False
    cancelled: bool = False
    #: Everything restic printed on stdout, only when capture was requested.
    stdout: str = attrs.field(default="", repr=False)
    #: The last lines of stderr (bounded, secrets redacted).
    stderr_tail: tuple[str, ...] = ()
    error_kind: ResticErrorKind = ResticErrorKind.NONE
    #: Why resticm itself failed the command (could not start, output too large...), else "".
    failure: str = ""
    #: What the user can do about the failure, appended to :attr:`message` ("" for none).
    hint: str = ""

    @classmethod
    def from_exit(
        cls,
        args: Sequence[str],
        repository: str,
        exit_code: int,
        *,
        stderr: Sequence[str] = (),
        stdout: str = "",
        duration: float = 0.0,
    ) -> ResticResult:
        """A result for a restic that exited with *exit_code* (for fakes and tests)."""
        return cls(
            args=tuple(args),
            repository=repository,
            exit_code=exit_code,
            duration=duration,
            stdout=stdout,
            stderr_tail=tuple(stderr),
            error_kind=classify(exit_code, stderr),
        )

    @property
    def ok(self) -> bool:
        return self.error_kind is ResticErrorKind.NONE

    @property
    def command(self) -> str:
        """The restic subcommand (``backup``, ``cat``...)."""
        return command_name(self.args)

    @property
    def command_line(self) -> str:
        """``restic <args>``, shell-quoted; safe to print."""
        return shlex.join(["restic", *(redact_url(a) for a in self.args)])

    @property
    def message(self) -> str:
        """One line a human can act on; empty when the command succeeded."""
        kind = self.error_kind
        what = f"restic {self.command}".rstrip()
        if kind is ResticErrorKind.NONE:
            return ""
        if kind is ResticErrorKind.NOT_INSTALLED:
            return NOT_INSTALLED_MESSAGE
        if kind is ResticErrorKind.TIMEOUT:
            return (
                f"{what} on {self.repository} timed out after {self.duration:.0f}s and was stopped"
                + _backend_trouble(self.stderr_tail)
            )
        if kind is ResticErrorKind.INTERRUPTED:
            if self.cancelled:
                return f"{what} on {self.repository} was stopped because resticm was interrupted"
            return f"{what} on {self.repository} was interrupted{_exit_suffix(self.exit_code)}"
        verb = "finished with warnings" if kind is ResticErrorKind.PARTIAL else "failed"
        detail = self.failure or failure_detail(self.stderr_tail, kind) or _exit_description(self)
        hint = f"; {self.hint}" if self.hint else ""
        return f"{what} {verb} on {self.repository}: {detail}{_exit_suffix(self.exit_code)}{hint}"

    @property
    def lock_holder(self) -> tuple[int, str] | None:
        """(PID, hostname) of the lock a LOCKED command tripped over, when restic named it."""
        if self.error_kind is not ResticErrorKind.LOCKED:
            return None
        for line in self.stderr_tail:
            match = _LOCK_HOLDER.search(line)
            if match is not None:
                return int(match.group(1)), match.group(2)
        return None


def _backend_trouble(stderr: Sequence[str]) -> str:
    """`` (last backend error: ...)`` when restic was retrying a failing backend.

    restic retries a dead backend for minutes before giving up: a timeout then
    says why it took so long.
    """
    for line in reversed(readable_stderr(stderr)):
        if any(marker in line.lower() for marker in _TRANSIENT_MARKERS):
            return f" (last backend error: {line[:300]})"
    return ""


def _exit_description(result: ResticResult) -> str:
    if result.exit_code is not None and result.exit_code < 0:
        return "killed"
    return "no error message"


def _exit_suffix(exit_code: int | None) -> str:
    if exit_code is None:
        return ""
    if exit_code < 0:
        try:
            return f" (signal {signal.Signals(-exit_code).name})"
        except ValueError:
            return f" (signal {-exit_code})"
    return f" (exit {exit_code})"


@attrs.frozen(kw_only=True)
class BackupOutcome:
    """What ``restic backup --json`` did: how it ended and its summary, if it printed one."""

    result: ResticResult
    summary: BackupSummary | None = None

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def partial(self) -> bool:
        return self.result.error_kind is ResticErrorKind.PARTIAL


class ResticCommandError(ResticmError):
    """A restic command whose output the caller needs failed (``snapshots``, ``list locks``)."""

    def __init__(self, result: ResticResult, message: str | None = None) -> None:
        self.result = result
        super().__init__(message or result.message)
