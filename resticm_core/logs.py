"""Logging for the CLI: console on stderr, an optional rotating file, secrets redacted.

The library only logs to the ``resticm_core`` logger; installing handlers is the
application's business, so :func:`setup_logging` is called by the CLI, never on import.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import json
import logging
import logging.handlers
import os
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from .config import Logging
from .logcontext import ContextFilter, record_context
from .secrets import Redactor

LOGGER_NAME = "resticm_core"
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

#: ``logging.file`` values that mean "the local syslog daemon" (journald reads /dev/log too).
SYSLOG_TARGETS = ("syslog", "journald")
#: The syslog socket; the environment variable overrides it (tests, chroots).
DEFAULT_SYSLOG_ADDRESS = "/dev/log"
SYSLOG_ADDRESS_VARIABLE = "RESTICM_SYSLOG_SOCKET"


#: Names of the handlers :func:`setup_logging` installs (and only those it removes).
_HANDLER_PREFIX = "resticm.setup_logging."

#: Log-record flags: a record meant for the console only, or for the log file only.
CONSOLE_ONLY = "resticm_console_only"
FILE_ONLY = "resticm_file_only"


class _SkipFlagged(logging.Filter):
    """Drops the records flagged for the other destination."""

    def __init__(self, flag: str) -> None:
        super().__init__()
        self.flag = flag

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, self.flag, False)


class HookOutputLog:
    """An :class:`~resticm_core.hooks.OutputSink` for the CLI.

    The console gets every line a hook prints, as it comes. The log file gets the
    first *head* lines, then, when the hook ends, an ``... N lines omitted ...``
    marker and the last *tail* lines: a hook printing gigabytes cannot fill the
    disk through the log, and memory holds at most *tail* lines per hook.
    """

    def __init__(self, logger: logging.Logger, *, head: int = 20, tail: int = 20) -> None:
        self.logger = logger
        self.head = head
        self.tail = tail
        self._seen: dict[str, int] = {}
        self._tails: dict[str, collections.deque[str]] = {}
        self._lock = threading.Lock()

    def hook_line(self, hook: str, line: str) -> None:
        with self._lock:
            seen = self._seen[hook] = self._seen.get(hook, 0) + 1
            if seen > self.head:
                self._tails.setdefault(hook, collections.deque(maxlen=self.tail)).append(line)
        extra: dict[str, object] = {"hook": hook}
        if seen > self.head:
            extra[CONSOLE_ONLY] = True
        self.logger.info("[%s] %s", hook, line, extra=extra)

    def hook_text(self, hook: str, text: str) -> None:
        """:meth:`hook_line` for the lines of one read (joined by ``"\n"``): the lines
        the log file keeps are logged one by one as before; the rest reach the
        console as one record (one write, one redaction pass over whole lines) and
        feed the tail. Only the kept lines are cut out of *text*."""
        count = text.count("\n") + 1
        with self._lock:
            before = self._seen.get(hook, 0)
            self._seen[hook] = before + count
            room = max(0, self.head - before)
            rest: str | None = text
            logged: list[str] = []
            if room:
                parts = text.split("\n", room)
                logged, rest = parts[:room], (parts[room] if len(parts) > room else None)
            if rest is not None:
                tail = self._tails.setdefault(hook, collections.deque(maxlen=self.tail))
                tail.extend(rest.rsplit("\n", self.tail)[-self.tail :])
        for line in logged:
            self.logger.info("[%s] %s", hook, line, extra={"hook": hook})
        if rest is not None and self.logger.isEnabledFor(logging.INFO):
            prefix = f"[{hook}] "
            # The text is the message itself, with no arguments: logging then uses it
            # as it is (a "%s" argument would copy the whole read once more).
            self.logger.info(
                prefix + rest.replace("\n", "\n" + prefix),
                extra={"hook": hook, CONSOLE_ONLY: True},
            )

    def hook_finished(self, hook: str) -> None:
        """Write the omitted-lines marker and the tail of *hook* to the log file."""
        with self._lock:
            seen = self._seen.pop(hook, 0)
            tail = list(self._tails.pop(hook, ()))
        omitted = seen - self.head - len(tail)
        if omitted > 0:
            self.logger.info(
                "[%s] ... %d lines omitted ...",
                hook,
                omitted,
                extra={FILE_ONLY: True, "hook": hook},
            )
        for line in tail:
            self.logger.info("[%s] %s", hook, line, extra={FILE_ONLY: True, "hook": hook})

    def message(self, level: int, text: str) -> None:
        self.logger.log(level, "%s", text)


class RedactingFilter(logging.Filter):
    """Replaces every known secret in the formatted message with ``***``."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, message, then the
    context fields that apply (command, repository, phase, hook; see
    :mod:`resticm_core.logcontext`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname,
            "message": record.getMessage(),
            **record_context(record),
        }
        return json.dumps(entry, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """Plain lines; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"ERROR: {message}"
        if record.levelno >= logging.WARNING:
            return f"WARNING: {message}"
        return message


class _DropOnWriteError:
    """The first failed write to a log destination ends it for the rest of the run.

    logging's default prints a ``--- Logging error ---`` traceback for every
    record that cannot be written (a full disk: thousands of lines on stderr).
    Instead: one console warning naming the destination and the reason, then
    the handler ignores every record. Only ``OSError`` counts: a record that
    cannot be formatted is a bug, reported as logging always does.
    """

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self.dropped = False

    def drop(self, handler: logging.Handler, close: Callable[[], None]) -> bool:
        """Called from ``handleError``: True when the error ended the destination."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError) or self.dropped:
            return self.dropped
        self.dropped = True  # first: the warning below passes through this handler too
        with contextlib.suppress(OSError, ValueError):
            close()  # unwritten buffered lines would fail again at exit
        message = (
            f"cannot write {self.what}: {exc.strerror or exc}; "
            "logging to the console only for the rest of this run"
        )
        if any(h is not handler for h in self.logger.handlers):
            self.logger.warning("%s", message, extra={CONSOLE_ONLY: True})
        else:  # no console configured: stderr is still the place for this one line
            print(f"WARNING: {message}", file=sys.stderr)
        return True


class _RotatingFile(logging.handlers.RotatingFileHandler):
    def __init__(self, path: Path, *, logger: logging.Logger, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._failure = _DropOnWriteError(logger, f"log file {path}")

    def emit(self, record: logging.LogRecord) -> None:
        if not self._failure.dropped:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if not self._failure.drop(self, self._close_stream):
            super().handleError(record)

    def _close_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()


class _Syslog(logging.handlers.SysLogHandler):
    def __init__(self, address: str, *, logger: logging.Logger, **kwargs: Any) -> None:
        super().__init__(address=address, **kwargs)
        self._failure = _DropOnWriteError(logger, f"to syslog at {address}")

    def emit(self, record: logging.LogRecord) -> None:
        if not self._failure.dropped:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if not self._failure.drop(self, self._close_socket):
            super().handleError(record)

    def _close_socket(self) -> None:
        sock = getattr(self, "socket", None)  # not in the type stubs
        if sock is not None:
            sock.close()


def setup_logging(
    settings: Logging | None,
    *,
    redactor: Redactor,
    verbose: bool = False,
    stream: TextIO | None = None,
    syslog_address: str | None = None,
) -> logging.Logger:
    """Install console (stderr) and file (or syslog) handlers on the ``resticm_core`` logger.

    Called again, it replaces the handlers it installed before and leaves every
    other handler of the logger alone.

    A log file that cannot be opened (or a syslog socket that cannot be reached)
    is reported on the console and skipped: a backup must not fail because its
    log directory is missing.

    :param syslog_address: the syslog socket for ``file: syslog``; default
        ``$RESTICM_SYSLOG_SOCKET``, else ``/dev/log``.
    """
    logger = logging.getLogger(LOGGER_NAME)
    # Only the handlers an earlier call installed: an embedding application's own
    # handlers (and the run-capture dispatch of logcontext) are not ours to remove.
    for handler in list(logger.handlers):
        if (handler.get_name() or "").startswith(_HANDLER_PREFIX):
            logger.removeHandler(handler)
            handler.close()
    logger.propagate = False
    level = LEVELS.get((settings.level if settings else "info").lower(), logging.INFO)
    logger.setLevel(logging.DEBUG if verbose else level)
    redacting = RedactingFilter(redactor)
    context = ContextFilter()

    if settings is None or settings.console:
        console = logging.StreamHandler(stream or sys.stderr)
        console.setFormatter(ConsoleFormatter())
        # The skip first: a record meant for the other destination is not redacted here.
        console.addFilter(_SkipFlagged(FILE_ONLY))
        console.addFilter(redacting)
        console.addFilter(context)
        console.set_name(f"{_HANDLER_PREFIX}console")
        logger.addHandler(console)

    if settings is not None and settings.file:
        if settings.file.strip().lower() in SYSLOG_TARGETS:
            destination = _syslog_handler(logger, settings, syslog_address)
        else:
            destination = _file_handler(logger, settings)
        if destination is not None:
            destination.addFilter(_SkipFlagged(CONSOLE_ONLY))
            destination.addFilter(redacting)
            destination.addFilter(context)
            destination.set_name(f"{_HANDLER_PREFIX}destination")
            logger.addHandler(destination)
    return logger


def hide_flagged_on_console(logger: logging.Logger, flag: str) -> None:
    """Keep the records logged with ``extra={flag: True}`` off the console handler
    :func:`setup_logging` installed (the log file still gets them)."""
    for handler in logger.handlers:
        if handler.get_name() == f"{_HANDLER_PREFIX}console":
            handler.addFilter(_SkipFlagged(flag))


#: Where root's logs go by default; a user who cannot write there logs under XDG instead.
SYSTEM_LOG_DIR = Path("/var/log")
#: Marks that the fallback was announced: the notice is shown once, not on every command.
_FALLBACK_NOTICED = ".log-fallback-noticed"


def effective_log_file(
    configured: str,
    *,
    euid: int | None = None,
    environ: Mapping[str, str] | None = None,
    writable: Callable[[Path], bool] | None = None,
) -> tuple[Path, bool]:
    """The log file to open, and whether it is the non-root fallback.

    The Go tool's default ``/var/log/resticm/resticm.log`` is root's: a user who cannot
    write there (a config copied from a server, a laptop) logs to
    ``$XDG_STATE_HOME/resticm/resticm.log`` (``~/.local/state/resticm/``) instead of
    losing the log and warning on every command. Any other path is used as written.
    """
    path = Path(os.path.expanduser(configured))
    uid = os.geteuid() if euid is None else euid
    if uid == 0 or not path.is_relative_to(SYSTEM_LOG_DIR) or (writable or _writable)(path):
        return path, False
    from .state import default_state_dir

    return default_state_dir(environ, euid=uid) / path.name, True


def _writable(path: Path) -> bool:
    """Whether this user could create or append *path* (its nearest existing ancestor).

    A directory this user cannot even search (``/var/log/resticm``, 0750 root) means no.
    """
    try:
        if path.exists():
            return os.access(path, os.W_OK)
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    except OSError:
        return False
    return os.access(parent, os.W_OK | os.X_OK)


def _announce_fallback(logger: logging.Logger, configured: str, used: Path) -> None:
    marker = used.parent / _FALLBACK_NOTICED
    if marker.exists():
        return
    logger.warning(
        "logging to %s: %s is root's and not writable by uid %d (shown once; set "
        "logging.file to choose another file)",
        used,
        configured,
        os.geteuid(),
    )
    with contextlib.suppress(OSError):
        marker.touch(mode=0o600)


def _file_handler(logger: logging.Logger, settings: Logging) -> logging.Handler | None:
    try:
        path, fallback = effective_log_file(settings.file)
        if fallback:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _announce_fallback(logger, settings.file, path)
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        handler = _RotatingFile(
            path,
            logger=logger,
            maxBytes=max(settings.max_size_mb, 0) * 1024 * 1024,
            backupCount=max(settings.max_files, 0),
            encoding="utf-8",
        )
        if path.is_file():  # hook output may carry sensitive data; never chmod a device
            os.chmod(path, 0o600)
    except OSError as exc:
        logger.warning(
            "cannot write log file %s: %s; logging to the console only",
            settings.file,
            exc.strerror or exc,
        )
        return None
    handler.setFormatter(
        JsonFormatter()
        if settings.json
        else logging.Formatter("%(asctime)s [%(levelname)s] %(message)s")
    )
    return handler


def _syslog_handler(
    logger: logging.Logger, settings: Logging, address: str | None
) -> logging.Handler | None:
    """A handler for the local syslog socket (journald listens there too).

    The level travels as the syslog priority; ``max_size_mb``/``max_files`` do
    not apply (the syslog daemon rotates).
    """
    address = address or os.environ.get(SYSLOG_ADDRESS_VARIABLE) or DEFAULT_SYSLOG_ADDRESS
    try:
        _probe_unix_socket(address)
        handler = _Syslog(
            address, logger=logger, facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
    except OSError as exc:
        logger.warning(
            "cannot reach syslog at %s: %s; logging to the console only",
            address,
            exc.strerror or exc,
        )
        return None
    # The tag syslog shows (``resticm[1234]:``); JSON keeps its fields for journald users.
    handler.ident = f"resticm[{os.getpid()}]: "
    handler.setFormatter(JsonFormatter() if settings.json else logging.Formatter("%(message)s"))
    return handler


def _probe_unix_socket(address: str) -> None:
    """Raise OSError when nothing listens at *address*.

    SysLogHandler swallows a failed connection and retries on every record,
    printing a traceback each time; a dead socket is better said once, up front.
    """
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_UNIX, kind) as probe:
            try:
                probe.connect(address)
            except OSError as exc:
                if kind == socket.SOCK_STREAM:
                    raise exc
                continue
            return
