"""restic, the engine: one runner seam, a facade the workflow calls, result parsing.

Three layers:

- :class:`ResticRunner` is the one seam for fakes. :class:`SubprocessResticRunner`
  runs the real binary: it builds each child's environment explicitly (inherited
  ``RESTIC_*`` credentials scrubbed, the repository's own set), passes secrets only
  through the environment (never argv), and maps how restic ended to a
  :class:`ResticErrorKind`.
- :class:`Restic` builds the command lines (``backup --json``, ``forget``...),
  applies per-command timeouts and parses restic's JSON output.
- :func:`format_progress` turns a ``backup --json`` status message into one line.

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
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from .children import KnownChildren
from .config import Repository
from .errors import ResticmError, ResticNotFoundError
from .phases import BackupSummary
from .process import ProcessResult, run_process
from .restic_options import command_args
from .secrets import Redactor, is_secret_name, redact_url

log = logging.getLogger(__name__)

#: restic's exit codes (https://restic.readthedocs.io/en/stable/075_scripting.html).
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
#: Captured stdout (``snapshots --json``...) larger than this is refused, not parsed.
MAX_CAPTURE_CHARS = 64 * 1024 * 1024
#: Seconds for the read-only commands a run waits on; the others default to no timeout.
#: The first restic version with ``--retry-lock``.
RETRY_LOCK_SINCE = (0, 16, 0)
DEFAULT_TIMEOUTS: Mapping[str, float] = {"cat": 300.0, "snapshots": 300.0, "list": 300.0}
#: Seconds allowed for ``restic version`` and for removing a stale lock after a kill.
HOUSEKEEPING_TIMEOUT = 60.0

#: Inherited variables that would name another repository or password than the
#: configured one (restic 0.14: RESTIC_PASSWORD_FILE beats RESTIC_PASSWORD, and
#: RESTIC_REPOSITORY_FILE together with RESTIC_REPOSITORY is an error).
SCRUBBED_VARIABLES = (
    "RESTIC_REPOSITORY",
    "RESTIC_REPOSITORY_FILE",
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_KEY_HINT",
)
SCRUBBED_PREFIXES = ("RESTIC_FROM_",)
#: Where an inherited password may come from, in the order they are tried.
PASSWORD_VARIABLES = ("RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND")

PasswordProvider = Callable[[Repository], str | None]
StatusCallback = Callable[[Mapping[str, Any]], None]


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
_VERSION = re.compile(r"\brestic (\d+)\.(\d+)\.(\d+)")
_LOCK_ID = re.compile(r"^[0-9a-f]{64}$")
#: Who holds the lock restic tripped over (0.14 and 0.18 word it alike):
#:   repository is already locked exclusively by PID 6039 on vm by root (UID 0, GID 0)
_LOCK_HOLDER = re.compile(r"repository is already locked (?:exclusively )?by PID (\d+) on (\S+)")
#: Appended to the message of a command locked out by another host's lock.
FOREIGN_LOCK_HINT = (
    "the lock belongs to another host: if restic no longer runs there, remove it with "
    "'resticm unlock --restic' (restic removes another host's lock once it is 30 minutes old)"
)
#: Commands that never hold a repository lock (no stale lock to remove after a kill).
_LOCKLESS_COMMANDS = frozenset({"version", "help", "init", "unlock", "generate"})


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


class _EitherEvent(threading.Event):
    """Set when it was set itself or when *other* (the caller's cancel event) is set."""

    def __init__(self, other: threading.Event | None) -> None:
        super().__init__()
        self.other = other

    def is_set(self) -> bool:
        return super().is_set() or (self.other is not None and self.other.is_set())


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


def _detail(stderr: Sequence[str], kind: ResticErrorKind) -> str:
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


def _command_name(args: Sequence[str]) -> str:
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
        return _command_name(self.args)

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
        detail = self.failure or _detail(self.stderr_tail, kind) or _exit_description(self)
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


def printable_command(
    args: Sequence[str], repository: Repository, extra_env: Mapping[str, str] | None = None
) -> str:
    """``restic -r <url> <args>`` with URL passwords hidden, for ``-v`` and dry runs.

    The repository really goes through ``RESTIC_REPOSITORY`` (and a copy source
    through ``RESTIC_FROM_REPOSITORY``, shown as a variable assignment).
    """
    line = shlex.join(["restic", "-r", redact_url(repository.url), *(redact_url(a) for a in args)])
    source = (extra_env or {}).get("RESTIC_FROM_REPOSITORY")
    if source:
        line = f"RESTIC_FROM_REPOSITORY={shlex.quote(redact_url(source))} {line}"
    return line


# -- the child environment ------------------------------------------------------------------------


def scrubbed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """*environ* without the inherited variables that name a repository or a password."""
    return {
        k: v
        for k, v in environ.items()
        if k not in SCRUBBED_VARIABLES and not k.startswith(SCRUBBED_PREFIXES)
    }


def _inherited_password(environ: Mapping[str, str], prefix: str) -> tuple[str, str] | None:
    for name in PASSWORD_VARIABLES:
        if environ.get(name):
            return name.replace("RESTIC_", prefix, 1), environ[name]
    return None


def configured_password(repository: Repository, prefix: str = "RESTIC_") -> tuple[str, str] | None:
    """The variable and value for the password source the config names, if any.

    *prefix* ``RESTIC_FROM_`` gives the variables of a copy/init source.
    """
    if repository.password:
        return f"{prefix}PASSWORD", repository.password
    if repository.password_file:
        return f"{prefix}PASSWORD_FILE", os.path.expanduser(repository.password_file)
    if repository.password_command:
        return f"{prefix}PASSWORD_COMMAND", repository.password_command
    return None


def child_environment(
    repository: Repository,
    environ: Mapping[str, str],
    *,
    password_provider: PasswordProvider | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The complete environment of a restic child, and the secret values put in it.

    The password comes from the first source that applies: the config
    (``password``, ``password_file``, ``password_command``), then the plugin
    *password_provider*, then the inherited ``RESTIC_PASSWORD``,
    ``RESTIC_PASSWORD_FILE``, ``RESTIC_PASSWORD_COMMAND``. Exactly one password
    variable is set: with two, restic 0.14 lets the file win.
    """
    env = scrubbed_environment(environ)
    env["RESTIC_REPOSITORY"] = repository.url
    secrets: list[str] = []
    password = configured_password(repository)
    if password is None and password_provider is not None:
        provided = password_provider(repository)
        password = ("RESTIC_PASSWORD", provided) if provided else None
    if password is None:
        password = _inherited_password(environ, "RESTIC_")
    if password is not None:
        env[password[0]] = password[1]
        if is_secret_name(password[0]):
            secrets.append(password[1])
    if repository.credentials_from:
        log.debug(
            "%s: no storage credentials of its own; using those of %s (same provider)",
            repository.name,
            repository.credentials_from,
        )
    for overrides in (repository.storage_environment(), extra_env or {}):
        env.update(overrides)
        secrets += [v for k, v in overrides.items() if is_secret_name(k)]
    if "RESTIC_FROM_REPOSITORY" in env and not any(
        k.startswith("RESTIC_FROM_PASSWORD") for k in env
    ):
        # A copy/init source without a configured password falls back on the
        # inherited one, as the repository itself does.
        inherited = _inherited_password(environ, "RESTIC_FROM_")
        if inherited is not None:
            env[inherited[0]] = inherited[1]
            if is_secret_name(inherited[0]):
                secrets.append(inherited[1])
    return env, secrets


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


def _takes_lock(args: Sequence[str]) -> bool:
    """Does this command lock the repository (and so can find it locked)?"""
    return "--no-lock" not in args and _command_name(args) not in _LOCKLESS_COMMANDS


def _left_a_lock(process: ProcessResult, args: Sequence[str]) -> bool:
    """True when restic was killed by a signal while it may have held a repository lock.

    A restic stopped by resticm (timeout, interruption) counts even when it exited
    itself: a SIGINT that arrives while restic is still creating its lock runs the
    cleanup before the lock exists, and the lock is left (seen with restic 0.14).
    """
    killed = process.returncode is not None and process.returncode < 0
    stopped = killed or process.timed_out or process.cancelled
    return stopped and "--no-lock" not in args and _command_name(args) not in _LOCKLESS_COMMANDS


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
        command = _command_name(args)
        retry = self.retry_lock if self.retry_lock and _takes_lock(args) else None
        streamed: dict[str, Any] = {} if stdin is None else {"stdin": stdin}
        native = retry is not None and self._has_retry_lock()
        if native:
            args = [command, "--retry-lock", f"{retry:.0f}s", *args[1:]]
        args = command_args(args, repository)  # issue 18: options, limits, extra_args
        deadline = time.monotonic() + (retry or 0)
        delay = self.retry_delay
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
            log.warning(
                "repository %s is locked by another process; retrying restic %s in %.0fs",
                repository.name, command, min(delay, remaining),
            )
            if self.cancel is not None and self.cancel.wait(min(delay, remaining)):
                return result
            if self.cancel is None:
                time.sleep(min(delay, remaining))
            delay = min(delay * 2, 60.0)

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
        from .lockcheck import is_dead_local_lock  # a backup never needs it (lazy imports)

        if not is_dead_local_lock(holder[1], holder[0]):
            return False
        pid, host = holder
        log.warning(
            "restic %s on %s: the repository is locked by PID %d of this host (%s), which no "
            "longer runs (a killed restic left it); removing the stale lock with restic unlock%s",
            result.command, repository.name, pid, host,
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
        wait = min(self.retry_backoff * 2**done, 60.0)
        log.warning(
            "restic %s on %s failed with a transient backend error (%s); "
            "attempt %d of %d in %.0fs",
            result.command,
            repository.name,
            _detail(result.stderr_tail, result.error_kind) or "no message",
            done + 2,
            self.retries + 1,
            wait,
        )
        if self.cancel is not None:
            return not self.cancel.wait(wait)
        time.sleep(wait)
        return True

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
        return self.run(
            forget_args(policy_args, host=host, prune=prune, dry_run=dry_run), repository
        )

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
        return self.run([*args, *snapshot_ids], destination, extra_env=self.source_env(source))

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


# -- progress display -----------------------------------------------------------------------------

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(size: float) -> str:
    """``1288490188`` -> ``1.2 GiB`` (binary units, as restic prints them)."""
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_duration(seconds: float) -> str:
    """``31`` -> ``0:31``, ``3725`` -> ``1:02:05``."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _number(status: Mapping[str, Any], key: str) -> float:
    value = status.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def format_progress(status: Mapping[str, Any]) -> str:
    """One short line from a ``backup --json`` status message, for a terminal.

    ``42% 1234 files 1.2 GiB/2.8 GiB ETA 0:31``
    """
    percent = min(100, max(0, int(_number(status, "percent_done") * 100)))
    parts = [f"{percent}%", f"{int(_number(status, 'files_done'))} files"]
    done, total = _number(status, "bytes_done"), _number(status, "total_bytes")
    parts.append(f"{format_bytes(done)}/{format_bytes(total)}" if total else format_bytes(done))
    if "seconds_remaining" in status:
        parts.append(f"ETA {format_duration(_number(status, 'seconds_remaining'))}")
    return " ".join(parts)
