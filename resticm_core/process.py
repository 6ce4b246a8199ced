"""Run a child process the way a backup tool must: bounded, killable, streamed.

One function serves restic and script hooks alike:

- the child gets its own process group, so a timeout or a signal stops the whole
  tree it spawned (TERM, then KILL after a grace period);
- stdout and stderr are read line by line as they come and handed to callbacks
  (console, log, JSON parser); only a bounded head and tail are kept in memory,
  whatever the child prints;
- a cancellation event (set by the signal handler) stops the child early.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import attrs

#: A line longer than this is cut; the rest of it is dropped (memory stays bounded).
MAX_LINE_BYTES = 64 * 1024
#: How long to wait for the output pipes to close after the child exited, before
#: the rest of its process group (a grandchild holding our pipes) is stopped.
DRAIN_SECONDS = 5.0

LineCallback = Callable[[str], None]


class OutputTail:
    """Keeps the first ``head`` and last ``tail`` lines of a stream and counts the rest."""

    def __init__(self, head: int = 20, tail: int = 50) -> None:
        self._head_size = head
        self.head: list[str] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=tail)
        self.total = 0
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        with self._lock:
            self.total += 1
            if len(self.head) < self._head_size:
                self.head.append(line)
            else:
                self.tail.append(line)

    @property
    def omitted(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def lines(self) -> list[str]:
        """Head, an ``... N lines omitted ...`` marker if needed, then tail."""
        with self._lock:
            out = list(self.head)
            if self.omitted:
                out.append(f"... {self.omitted} lines omitted ...")
            out.extend(self.tail)
            return out

    def last(self, n: int) -> list[str]:
        """The last *n* lines seen (from the tail, or the head for short outputs)."""
        with self._lock:
            merged = list(self.head) + list(self.tail)
            return merged[-n:] if n else []


@attrs.frozen(kw_only=True)
class ProcessResult:
    """How a child process ended."""

    argv: tuple[str, ...]
    #: The exit status; negative when killed by a signal; None when it never started.
    returncode: int | None
    duration: float
    timed_out: bool = False
    #: The timeout the process was given, in seconds (None: none).
    timeout: float | None = None
    #: Stopped because the run was cancelled (resticm received a signal).
    cancelled: bool = False
    #: Why the process could not be started (ENOENT, EACCES...), else empty.
    start_error: str = ""
    stdout_tail: tuple[str, ...] = ()
    stderr_tail: tuple[str, ...] = ()
    #: Set when grandchildren kept the output pipes open and were stopped.
    stray_children_stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.cancelled

    @property
    def killed_by(self) -> int | None:
        """The signal number that ended the child, if one did."""
        if self.returncode is not None and self.returncode < 0:
            return -self.returncode
        return None

    def describe_failure(self) -> str:
        """One line saying how the process failed ('' when it succeeded)."""
        if self.start_error:
            return self.start_error
        if self.timed_out:
            limit = self.timeout if self.timeout is not None else self.duration
            return f"timed out after {limit:g}s and was stopped"
        if self.cancelled:
            return "stopped because resticm was interrupted"
        if self.killed_by is not None:
            return f"killed by signal {_signal_name(self.killed_by)}"
        if self.returncode:
            return f"exited with status {self.returncode}"
        return ""


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _reader(pipe: IO[bytes], sink: OutputTail, callback: LineCallback | None) -> None:
    truncated = False
    while True:
        raw = pipe.readline(MAX_LINE_BYTES)
        if not raw:
            break
        complete = raw.endswith(b"\n")
        if truncated:
            # The continuation of an over-long line: drop it, bounded memory first.
            truncated = not complete
            continue
        line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        if not complete and len(raw) >= MAX_LINE_BYTES:
            truncated = True
            line += " [line truncated]"
        sink.add(line)
        if callback is not None:
            callback(line)
    pipe.close()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _stop_group(proc: subprocess.Popen[bytes], grace: float, first: int = signal.SIGTERM) -> None:
    """TERM the whole process group, then KILL whatever is left after *grace*."""
    _signal_group(proc.pid, first)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(proc.pid):
            return
        time.sleep(0.05)
    _signal_group(proc.pid, signal.SIGKILL)


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | Path | None = None,
    timeout: float | None = None,
    kill_grace: float = 10.0,
    stop_signal: int = signal.SIGTERM,
    on_stdout: LineCallback | None = None,
    on_stderr: LineCallback | None = None,
    cancel: threading.Event | None = None,
    tail_lines: int = 50,
    head_lines: int = 20,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
) -> ProcessResult:
    """Run *argv* (no shell) and wait for it, streaming its output line by line.

    :param env: the child's complete environment (nothing is inherited implicitly).
    :param timeout: seconds before the process group is stopped; None waits forever.
    :param kill_grace: seconds between TERM and KILL when stopping it.
    :param stop_signal: the first signal sent to stop it (restic cleans up its
        repository lock on SIGINT, not on SIGTERM).
    :param on_stdout: called with each stdout line (without newline), in a reader thread.
    :param on_stderr: the same for stderr.
    :param cancel: when set, the child is stopped as on a timeout.
    :returns: a :class:`ProcessResult`; never raises for a child that fails or cannot start.
    """
    argv = tuple(str(a) for a in argv)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return ProcessResult(
            argv=argv,
            returncode=None,
            duration=time.monotonic() - started,
            start_error=f"cannot execute {argv[0]}: {reason}",
        )
    assert proc.stdout is not None and proc.stderr is not None
    out_tail, err_tail = OutputTail(head_lines, tail_lines), OutputTail(head_lines, tail_lines)
    readers = [
        threading.Thread(target=_reader, args=(proc.stdout, out_tail, on_stdout), daemon=True),
        threading.Thread(target=_reader, args=(proc.stderr, err_tail, on_stderr), daemon=True),
    ]
    for thread in readers:
        thread.start()

    deadline = None if timeout is None else started + timeout
    timed_out = cancelled = False
    try:
        while proc.poll() is None:
            if cancel is not None and cancel.is_set():
                cancelled = True
                _stop_group(proc, kill_grace, stop_signal)
                break
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = True
                _stop_group(proc, kill_grace, stop_signal)
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)
        returncode = proc.wait()
    except BaseException:
        # Left by an exception (KeyboardInterrupt, a signal handler that raises): the
        # child runs in its own session, so no terminal signal reaches it; stop its
        # group here rather than leave it running unobserved.
        _stop_group(proc, kill_grace, stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)
        raise

    stray = False
    drain_until = time.monotonic() + DRAIN_SECONDS
    for thread in readers:
        thread.join(max(0.0, drain_until - time.monotonic()))
    if any(t.is_alive() for t in readers):
        # A grandchild still holds our pipes: it belongs to this hook, stop it.
        stray = True
        _stop_group(proc, min(kill_grace, 2.0))
        for thread in readers:
            thread.join(5.0)
    return ProcessResult(
        argv=argv,
        returncode=returncode,
        duration=time.monotonic() - started,
        timed_out=timed_out,
        timeout=timeout,
        cancelled=cancelled,
        stdout_tail=tuple(out_tail.lines()),
        stderr_tail=tuple(err_tail.lines()),
        stray_children_stopped=stray,
    )
