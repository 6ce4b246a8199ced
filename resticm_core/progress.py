"""A live progress line for a terminal, from what restic prints while it works.

restic tells how far it is in two ways, and the versions differ (restic 0.14 to 0.18):

* ``backup --json`` (every version, dumps too: ``backup --stdin --json``) and
  ``restore --json`` (restic >= 0.16) print ``{"message_type": "status", ...}``
  lines: percent, files, bytes, ETA, the current files.
* ``check`` (``--read-data`` included), ``copy``, ``prune`` and ``forget --prune``
  have no JSON status in any version (``check --json`` of 0.18 prints its summary
  only). With ``RESTIC_PROGRESS_FPS`` set, they print text status lines on stdout
  even when it is not a terminal: ``[0:05] 61.54%  8 / 13 packs copied``.
* ``restore`` of restic < 0.16 prints no progress at all, and ``forget`` without
  ``--prune`` none either: the line is then a spinner with the step's name and
  its elapsed time.

:class:`ProgressRunner` wraps a :class:`~resticm_core.restic.ResticRunner`: it reads
each command's stdout on its way to the caller (nothing changes for the caller)
and reports to a :class:`ProgressSink`. :class:`TerminalProgress` is the sink of
the CLI: one line on a terminal, redrawn in place. It is also the stream of the
console log handler, so that a log or hook line clears the progress line, is
written, and the progress line is drawn again under it. Nothing here logs: the
progress reaches neither the log file nor the notifications.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TextIO

import attrs

from .display import format_bytes, format_duration

#: The restic commands that get a progress line (a spinner at least).
SHOWN_COMMANDS = frozenset({"backup", "restore", "check", "copy", "forget", "prune", "dump"})
#: Those whose progress is text status lines, printed only with ``RESTIC_PROGRESS_FPS``
#: (backup and restore print JSON status at restic's own rate).
TEXT_STATUS_COMMANDS = frozenset({"check", "copy", "forget", "prune"})
#: How often restic prints its text status lines (``RESTIC_PROGRESS_FPS``).
PROGRESS_FPS = "2"
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_TEXT_STATUS = re.compile(
    r"^\[(?:(\d+):)?(\d+):(\d\d)\]\s+(\d+(?:\.\d+)?)%\s+(\d+)\s*/\s*(\d+)\s*(.*)$"
)


@attrs.frozen(kw_only=True)
class Progress:
    """How far one running restic command is. None: restic did not say."""

    #: restic's command (``backup``, ``check``...).
    command: str
    #: ``primary`` or the backend's name.
    repository: str
    #: Seconds since the command started.
    elapsed: float = 0.0
    #: 0.0 to 1.0.
    fraction: float | None = None
    files_done: int | None = None
    files_total: int | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    seconds_remaining: float | None = None
    #: The file restic works on.
    current: str = ""
    #: A text status line's counter: ``8 / 13 packs copied``.
    items: str = ""

    @property
    def percent(self) -> int | None:
        if self.fraction is None:
            return None
        return min(100, max(0, int(self.fraction * 100)))


def _int(message: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = message.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return None


def _float(message: Mapping[str, Any], key: str) -> float | None:
    value = message.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def from_status(
    message: Mapping[str, Any], command: str, repository: str, elapsed: float
) -> Progress:
    """A :class:`Progress` from a ``backup``/``restore --json`` status message."""
    current = message.get("current_files")
    return Progress(
        command=command,
        repository=repository,
        # Our own clock, not restic's whole seconds_elapsed: a smoother rate.
        elapsed=elapsed,
        fraction=_float(message, "percent_done"),
        files_done=_int(message, "files_done", "files_restored"),
        files_total=_int(message, "total_files"),
        bytes_done=_int(message, "bytes_done", "bytes_restored"),
        bytes_total=_int(message, "total_bytes"),
        seconds_remaining=_float(message, "seconds_remaining"),
        current=str(current[0]) if isinstance(current, list) and current else "",
    )


def parse_line(line: str, command: str, repository: str, elapsed: float) -> Progress | None:
    """The progress in one stdout line of restic, or None when it holds none."""
    line = line.strip()
    if line.startswith("{"):
        try:
            message = json.loads(line)
        except ValueError:
            return None
        if isinstance(message, dict) and message.get("message_type") == "status":
            return from_status(message, command, repository, elapsed)
        return None
    match = _TEXT_STATUS.match(line)
    if match is None:
        return None
    hours, minutes, seconds, percent, done, total, unit = match.groups()
    shown = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    return Progress(
        command=command,
        repository=repository,
        elapsed=max(float(shown), elapsed),
        fraction=float(percent) / 100,
        items=f"{done}/{total} {unit}".strip(),
    )


def format_progress(progress: Progress, *, tick: int = 0, width: int | None = None) -> str:
    """One line: ``backup primary 42% 1234/5000 files 1.2 GiB/2.8 GiB 25.0 MiB/s ETA 0:31 /src/f``.

    Without a percent (restic prints no status for this command): a spinner and
    the elapsed time, ``forget primary ⠙ 0:12``. With *width*, a current file that
    does not fit loses its start (``…/www/big.iso``): its end says the most.
    """
    parts = [progress.command, progress.repository]
    if progress.percent is None and progress.bytes_done is None:
        parts += [_SPINNER[tick % len(_SPINNER)], format_duration(progress.elapsed)]
        return " ".join(parts)
    if progress.percent is not None:
        parts.append(f"{progress.percent}%")
    if progress.items:
        parts.append(progress.items)
    if progress.files_done is not None or progress.files_total:
        done = progress.files_done or 0
        files = f"{done}/{progress.files_total}" if progress.files_total else str(done)
        parts.append(f"{files} files")
    if progress.bytes_done is not None:
        done_text = format_bytes(progress.bytes_done)
        total = progress.bytes_total
        parts.append(f"{done_text}/{format_bytes(total)}" if total else done_text)
        if progress.elapsed > 0:
            parts.append(f"{format_bytes(progress.bytes_done / progress.elapsed)}/s")
    if progress.seconds_remaining is not None:
        parts.append(f"ETA {format_duration(progress.seconds_remaining)}")
    else:
        parts.append(format_duration(progress.elapsed))
    line = " ".join(parts)
    if progress.current:
        room = None if width is None else width - len(line) - 1
        current = progress.current
        if room is not None and len(current) > room:
            current = "…" + current[len(current) - room + 1:] if room > 10 else ""
        line = f"{line} {current}" if current else line
    return line


class ProgressSink(Protocol):
    """Receives the progress of running restic commands (maybe from several threads)."""

    def started(self, command: str, repository: str) -> object:
        """A command started; returns a token for the calls about it."""

    def update(self, token: object, progress: Progress) -> None:
        """restic reported how far it is."""

    def finished(self, token: object) -> None:
        """The command ended."""


class ProgressRunner:
    """A :class:`~resticm_core.restic.ResticRunner` that reports progress to a sink.

    Every call goes to *runner*; the commands of :data:`SHOWN_COMMANDS` also have
    their stdout read on the way (the caller's ``on_stdout`` still gets every line);
    those of :data:`TEXT_STATUS_COMMANDS` get ``RESTIC_PROGRESS_FPS``, unless the
    environment sets it already.
    """

    def __init__(
        self, runner: Any, sink: ProgressSink, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.runner = runner
        self.sink = sink
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        # installed(), password_provider, environ...: the wrapped runner's own.
        return getattr(self.runner, name)

    def version(self) -> tuple[int, int, int]:
        result: tuple[int, int, int] = self.runner.version()
        return result

    def execute(self, args: Sequence[str], repository: Any, **kwargs: Any) -> Any:
        command = next((str(a) for a in args if not str(a).startswith("-")), "")
        if command not in SHOWN_COMMANDS:
            return self.runner.execute(args, repository, **kwargs)
        name = getattr(repository, "name", str(repository))
        token = self.sink.started(command, name)
        started = self._clock()
        inner: Callable[[str], None] | None = kwargs.get("on_stdout")
        failed = False

        def tee(line: str) -> None:
            nonlocal failed
            if not failed:
                try:
                    found = parse_line(line, command, name, self._clock() - started)
                    if found is not None:
                        self.sink.update(token, found)
                except Exception:  # the display must never cost restic's output
                    failed = True
            if inner is not None:
                inner(line)

        kwargs["on_stdout"] = tee
        inherited = getattr(self.runner, "environ", {}) or {}
        if command in TEXT_STATUS_COMMANDS and "RESTIC_PROGRESS_FPS" not in inherited:
            kwargs["extra_env"] = {"RESTIC_PROGRESS_FPS": PROGRESS_FPS,
                                   **(kwargs.get("extra_env") or {})}
        try:
            return self.runner.execute(args, repository, **kwargs)
        finally:
            self.sink.finished(token)


@attrs.define
class _Shown:
    progress: Progress
    started: float


class TerminalProgress:
    """The progress line on a terminal, and the stream the console log writes through.

    :param stream: the terminal (stderr).
    :param delay: seconds before a command without status gets its spinner (a fast
        command shows nothing).
    :param interval: seconds between redraws of the spinner and the elapsed time.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        delay: float = 1.0,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.delay = delay
        self.interval = interval
        self._clock = clock
        self._lock = threading.RLock()
        self._active: dict[object, _Shown] = {}
        self._next = 0
        self._drawn = False
        self._tick = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the sink -----------------------------------------------------------------------

    def started(self, command: str, repository: str) -> object:
        with self._lock:
            self._next += 1
            token = self._next
            now = self._clock()
            self._active[token] = _Shown(Progress(command=command, repository=repository), now)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="resticm-progress", daemon=True
                )
                self._thread.start()
            return token

    def update(self, token: object, progress: Progress) -> None:
        with self._lock:
            shown = self._active.get(token)
            if shown is not None:
                shown.progress = progress
                self._draw()

    def finished(self, token: object) -> None:
        with self._lock:
            self._active.pop(token, None)
            self._draw()

    def close(self) -> None:
        """Stop redrawing and clear the line (call once the run is over)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            self._active.clear()
            self._clear()
            self.stream.flush()

    # -- the stream ---------------------------------------------------------------------

    def write(self, text: str) -> int:
        """A log line: clear the progress line, write, draw it again after a full line."""
        with self._lock:
            self._clear()
            written = self.stream.write(text)
            if text.endswith("\n"):
                self._draw()
            return written

    def flush(self) -> None:
        with self._lock:
            self.stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self.stream.fileno()

    # -- drawing ------------------------------------------------------------------------

    def line(self) -> str:
        """The text of the progress line now ("" when nothing is shown)."""
        now = self._clock()
        parts = []
        # Several commands at once (backend chains run in parallel) share the line.
        width = (self._width() - 1) // max(1, len(self._active)) - 3
        for shown in self._active.values():
            progress = shown.progress
            has_status = progress.fraction is not None or progress.bytes_done is not None
            if not has_status and now - shown.started < self.delay:
                continue
            if not has_status:
                progress = attrs.evolve(progress, elapsed=now - shown.started)
            parts.append(format_progress(progress, tick=self._tick, width=width))
        return " | ".join(parts)

    def _width(self) -> int:
        try:
            return shutil.get_terminal_size((100, 24)).columns
        except (OSError, ValueError):
            return 100

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = False

    def _draw(self) -> None:
        text = self.line()
        self._clear()
        if text:
            # One column short: a line the width of the terminal wraps on some terminals.
            self.stream.write(text[: max(10, self._width() - 1)])
            self._drawn = True
        self.stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._tick += 1
                if self._active:
                    self._draw()


__all__ = [
    "PROGRESS_FPS",
    "Progress",
    "ProgressRunner",
    "ProgressSink",
    "TerminalProgress",
    "format_progress",
    "parse_line",
]
