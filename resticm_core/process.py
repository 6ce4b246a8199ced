"""Run a child process the way a backup tool must: bounded, killable, streamed.

One function serves restic and script hooks alike:

- the child gets its own process group, so a timeout or a signal stops the whole
  tree it spawned (TERM, then KILL after a grace period);
- stdout and stderr are read line by line as they come and handed to callbacks
  (console, log, JSON parser); only a bounded head and tail are kept in memory,
  whatever the child prints;
- a cancellation event (set by the signal handler) stops the child early;
- the child dies with resticm (a death signal, :mod:`resticm_core.children`), and
  what it left running when it exited (a daemon holding its output, or, in a
  subreaper, any orphan reparented to resticm) is stopped and reported.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import fcntl
import logging
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import attrs

from .children import (
    SETPRIV_EXEC_FAILURE,
    KnownChildren,
    Leftovers,
    guarded_argv,
    pipe_inodes,
    sweep,
)

#: A line longer than this is cut; the rest of it is dropped (memory stays bounded).
MAX_LINE_BYTES = 64 * 1024
#: How long to wait for the output pipes to close after the child exited, before
#: the rest of its process group (a grandchild holding our pipes) is stopped.
DRAIN_SECONDS = 5.0
#: How often a cancellation event is checked while a child runs.
CANCEL_CHECK_SECONDS = 0.05
#: Bytes read from a pipe at once (the pidfd wait): the whole pipe.
READ_SIZE = 1024 * 1024
#: The pipe size asked for (Linux's default /proc/sys/fs/pipe-max-size).
PIPE_SIZE = 1024 * 1024

LineCallback = Callable[[str], None]
#: Receives the complete lines of one read at once, joined by ``"\n"`` (no newline
#: at the end; each line as a :data:`LineCallback` would get it): a chatty child
#: costs one call per read, not one per line, and the text need not be cut up.
TextCallback = Callable[[str], None]
#: Lines of a read shorter than this many characters cannot be over-long in bytes (a
#: character, or what one U+FFFD replaces, is at most 4 bytes).
_SAFE_CHARS = MAX_LINE_BYTES // 4

log = logging.getLogger("resticm_core")


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

    def extend_text(self, text: str) -> None:
        """:meth:`add` for each line of *text* (lines joined by ``"\n"``), under one
        lock, cutting out only the lines it keeps."""
        count = text.count("\n") + 1
        keep = self.tail.maxlen or 0
        with self._lock:
            room = max(0, self._head_size - len(self.head))
            self.total += count
            if count <= room + keep:
                lines = text.split("\n")
                self.head.extend(lines[:room])
                self.tail.extend(lines[room:])
                return
            if room:
                self.head.extend(text.split("\n", room)[:room])
            if keep:
                self.tail.extend(text.rsplit("\n", keep)[-keep:])

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
    #: Set when grandchildren kept the output pipes open past the drain period.
    stray_children_stopped: bool = False
    #: What the child left running and what became of it (see :mod:`.children`).
    leftovers: Leftovers = attrs.field(factory=Leftovers)

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


def _reader(
    pipe: IO[bytes],
    sink: OutputTail,
    callback: LineCallback | None,
    batch: TextCallback | None = None,
) -> None:
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
        if batch is not None:
            batch(line)
        elif callback is not None:
            callback(line)
    pipe.close()


# -- process groups: every child runs in its own, so stopping it stops what it started --


def signal_group(pgid: int, signum: int) -> None:
    """*signum* to process group *pgid*; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def group_alive(pgid: int) -> bool:
    """Does any process of group *pgid* still exist?"""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_group(proc: subprocess.Popen[bytes], grace: float, first: int = signal.SIGTERM) -> None:
    """*first* (TERM) to the child's whole process group, KILL to whatever of the group
    is left after *grace* seconds; the child is reaped before this returns."""
    signal_group(proc.pid, first)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not group_alive(proc.pid):
            return
        time.sleep(0.05)
    signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


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
    on_stdout_text: TextCallback | None = None,
    on_stderr_text: TextCallback | None = None,
    head_lines: int = 20,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    known: KnownChildren | None = None,
    sweep_leftovers: bool = False,
) -> ProcessResult:
    """Run *argv* (no shell) and wait for it, streaming its output line by line.

    :param env: the child's complete environment (nothing is inherited implicitly).
    :param timeout: seconds before the process group is stopped; None waits forever.
    :param kill_grace: seconds between TERM and KILL when stopping it.
    :param stop_signal: the first signal sent to stop it (restic cleans up its
        repository lock on SIGINT, not on SIGTERM).
    :param on_stdout: called with each stdout line (without newline), in this thread
        (or, where the OS has no pidfd, in a reader thread).
    :param on_stderr: the same for stderr.
    :param on_stdout_text: instead of *on_stdout*: called with the complete lines of
        each read at once, joined by ``"\n"`` (a line cut by a read boundary waits
        for its end, so a consumer that redacts or matches whole lines sees whole
        lines).
    :param on_stderr_text: the same for stderr.
    :param cancel: when set, the child is stopped as on a timeout.
    :param known: the run's registry of live children: this child is registered in
        it, and in a subreaper the orphans reparented to us that are not in it count
        as this child's leftovers.
    :param sweep_leftovers: after the child exited, stop what it left running
        (its session and group, and with *known* in a subreaper, the orphans).
        Processes holding its output pipes past :data:`DRAIN_SECONDS` are
        stopped in any case.
    :returns: a :class:`ProcessResult`; never raises for a child that fails or cannot start.
    """
    argv = tuple(str(a) for a in argv)
    started = time.monotonic()
    try:
        spawn = guarded_argv(argv, env, cwd)
        with known.spawning() if known is not None else contextlib.nullcontext() as register:
            proc = subprocess.Popen(
                spawn,
                env=dict(env),
                cwd=cwd,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
            if register is not None:
                register(proc.pid)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return ProcessResult(
            argv=argv,
            returncode=None,
            duration=time.monotonic() - started,
            start_error=f"cannot execute {argv[0]}: {reason}",
        )
    out_tail, err_tail = OutputTail(head_lines, tail_lines), OutputTail(head_lines, tail_lines)
    assert proc.stdout is not None and proc.stderr is not None
    for pipe in (proc.stdout, proc.stderr):
        _widen_pipe(pipe.fileno())
    watch = _Watch(
        proc,
        deadline=None if timeout is None else started + timeout,
        kill_grace=kill_grace,
        stop_signal=stop_signal,
        cancel=cancel,
        # Orphans count as this child's leftovers only where the caller asked for
        # a sweep (hooks): a restic's stray pipes must not cost a dump tool started
        # outside run_process (not a known child) its life.
        known=known if sweep_leftovers else None,
        pipes=pipe_inodes(proc.stdout.fileno(), proc.stderr.fileno()),
    )
    out: Stream = (out_tail, on_stdout, on_stdout_text)
    err: Stream = (err_tail, on_stderr, on_stderr_text)
    try:
        pidfd = _open_pidfd(proc.pid)
        if pidfd is None:
            _wait_threaded(watch, out, err)
        else:
            _wait_pidfd(watch, pidfd, out, err)
        assert watch.returncode is not None
        if sweep_leftovers:
            # What left the session (setsid) without holding our pipes: found when
            # we are a subreaper; the session's own members in any case.
            watch.leftovers += sweep(proc.pid, grace=kill_grace, known=known)
    finally:
        if known is not None:
            known.discard(proc.pid)
    start_error = _wrapper_exec_failure(argv, watch.returncode, err_tail)
    return ProcessResult(
        argv=argv,
        returncode=None if start_error else watch.returncode,
        duration=time.monotonic() - started,
        timed_out=watch.timed_out,
        timeout=timeout,
        cancelled=watch.cancelled,
        start_error=start_error,
        stdout_tail=tuple(out_tail.lines()),
        stderr_tail=() if start_error else tuple(err_tail.lines()),
        stray_children_stopped=watch.stray,
        leftovers=watch.leftovers,
    )


def _widen_pipe(fd: int) -> None:
    """Ask for a :data:`PIPE_SIZE` pipe: a chatty child then fills it in fewer, larger
    writes and we wake up and read fewer times (Linux; elsewhere nothing changes)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):  # EPERM above /proc/sys/fs/pipe-max-size
            fcntl.fcntl(fd, set_size, PIPE_SIZE)


def _wrapper_exec_failure(argv: Sequence[str], returncode: int | None, err: OutputTail) -> str:
    """The start error when setpriv could not ``exec`` the program (ENOEXEC...), else "".

    The program was resolved before (ENOENT, EACCES are start errors already):
    what is left is a file the kernel refuses to run, which setpriv reports as
    ``setpriv: failed to execute <path>: <reason>`` with status 126 or 127.
    """
    if returncode not in (126, 127) or err.total != 1:
        return ""
    line = err.last(1)[0]
    if not line.startswith(SETPRIV_EXEC_FAILURE):
        return ""
    reason = line.rpartition(": ")[2]
    return f"cannot execute {argv[0]}: {reason}"


Stream = tuple[OutputTail, "LineCallback | None", "TextCallback | None"]


class _Watch:
    """One child being waited for: its limits, and how it ended."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        deadline: float | None,
        kill_grace: float,
        stop_signal: int,
        cancel: threading.Event | None,
        known: KnownChildren | None = None,
        pipes: tuple[int, ...] = (),
    ) -> None:
        self.proc = proc
        self.known = known
        #: The inodes of the child's output pipes: whoever holds them is its leftover.
        self.pipes = pipes
        self.leftovers = Leftovers()
        self.deadline = deadline
        self.kill_grace = kill_grace
        self.stop_signal = stop_signal
        self.cancel = cancel
        self.returncode: int | None = None
        self.timed_out = False
        self.cancelled = False
        self.stray = False

    def must_stop(self) -> bool:
        """Check the cancel event and the deadline; records which one fired."""
        if self.cancel is not None and self.cancel.is_set():
            self.cancelled = True
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.timed_out = True
            return True
        return False

    def stop_pipe_holders(self) -> None:
        """The child exited but its pipes stay open: stop whoever holds them.

        Found by the pipes themselves (``/proc/*/fd``), so a ``setsid`` daemon that
        left the process group is found too, and only what really holds them.
        """
        self.stray = True
        self.leftovers += sweep(
            self.proc.pid, grace=self.kill_grace, pipes=self.pipes, known=self.known
        )


# -- waiting with threads (any POSIX system) ------------------------------------------------------


def _wait_threaded(watch: _Watch, out: Stream, err: Stream) -> None:
    """Two reader threads, and this thread polls the child every 50 ms."""
    proc = watch.proc
    assert proc.stdout is not None and proc.stderr is not None
    # In copies of this context: the lines they log belong to the run that started
    # the child (resticm_core.logcontext), not to no run at all.
    readers = [
        threading.Thread(
            target=contextvars.copy_context().run,
            args=(_reader, proc.stdout, *out),
            daemon=True,
        ),
        threading.Thread(
            target=contextvars.copy_context().run,
            args=(_reader, proc.stderr, *err),
            daemon=True,
        ),
    ]
    for thread in readers:
        thread.start()
    try:
        while proc.poll() is None:
            if watch.must_stop():
                stop_group(proc, watch.kill_grace, watch.stop_signal)
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)
        watch.returncode = proc.wait()
    except BaseException:
        # Left by an exception (KeyboardInterrupt, a signal handler that raises): the
        # child runs in its own session, so no terminal signal reaches it; stop its
        # group here rather than leave it running unobserved.
        stop_group(proc, watch.kill_grace, watch.stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)
        raise

    drain_until = time.monotonic() + DRAIN_SECONDS
    for thread in readers:
        thread.join(max(0.0, drain_until - time.monotonic()))
    if any(t.is_alive() for t in readers):
        # A grandchild still holds our pipes: it belongs to this hook, stop it.
        watch.stop_pipe_holders()
        for thread in readers:
            thread.join(5.0)


# -- waiting on a pidfd (Linux >= 5.3) -----------------------------------------------------------


def _open_pidfd(pid: int) -> int | None:
    """A pidfd for *pid*, or None where the OS has none (the threaded wait is used then)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError:  # ENOSYS on kernels < 5.3, EPERM under some seccomp filters
        return None
    return fd


class _LineSplitter:
    """Cuts a byte stream into lines exactly as ``readline(MAX_LINE_BYTES)`` in
    :func:`_reader` does: an over-long line keeps its first MAX_LINE_BYTES bytes,
    marked, and its rest is dropped, so memory stays bounded whatever arrives."""

    def __init__(
        self,
        sink: OutputTail,
        callback: LineCallback | None,
        batch: TextCallback | None = None,
    ) -> None:
        self._sink = sink
        self._callback = callback
        self._batch = batch
        self._pending = b""
        #: Inside the rest of a line already cut: drop bytes up to its newline.
        self._dropping = False

    def feed(self, data: bytes) -> None:
        buffer = self._pending + data
        cut = buffer.rfind(b"\n")
        if cut >= 0 and not self._dropping and len(buffer) - cut - 1 < MAX_LINE_BYTES:
            # The common case: the read's complete lines decoded at once (the same as
            # line by line: a newline is never part of a UTF-8 sequence) and passed
            # on as one text, unless one of them may be over-long.
            text = buffer[:cut].decode("utf-8", errors="replace")
            if not _may_hold_long_line(text):
                self._pending = buffer[cut + 1 :]
                self._emit_text(_strip_cr(text) if "\r" in text else text)
                return
        lines = buffer.split(b"\n")
        self._pending = lines.pop()
        out: list[str] = []
        for raw in lines:
            if self._dropping:
                self._dropping = False
            elif len(raw) >= MAX_LINE_BYTES:  # with its newline it exceeds one read
                out.append(_decode(raw[:MAX_LINE_BYTES], truncated=True))
            else:
                out.append(_decode(raw))
        if len(self._pending) >= MAX_LINE_BYTES:
            if not self._dropping:
                out.append(_decode(self._pending[:MAX_LINE_BYTES], truncated=True))
                self._dropping = True
            self._pending = b""
        if out:
            self._emit_text("\n".join(out))

    def close(self) -> None:
        if self._pending and not self._dropping:
            self._emit_text(_decode(self._pending))
        self._pending = b""

    def _emit_text(self, text: str) -> None:
        """*text*: one or more complete lines joined by newlines."""
        self._sink.extend_text(text)
        try:
            if self._batch is not None:
                self._batch(text)
            elif self._callback is not None:
                for line in text.split("\n"):
                    self._callback(line)
        except Exception:
            # A broken callback (a closed console) must not stop the draining,
            # or the child would block on a full pipe.
            self._callback = self._batch = None
            log.warning("an output callback failed; its next lines are not shown", exc_info=True)


def _may_hold_long_line(text: str) -> bool:
    """Could a line of *text* be MAX_LINE_BYTES bytes or more? Cheap and conservative.

    Such a line has at least ``_SAFE_CHARS`` characters, so it holds a whole aligned
    block of ``_SAFE_CHARS // 2``: with a newline found in every aligned block (a
    memchr each, stopping at the first), there is none. True also for some shorter
    lines: the exact byte-wise way then decides.
    """
    block = _SAFE_CHARS // 2
    return any(text.find("\n", i, i + block) < 0 for i in range(0, len(text) - block + 1, block))


def _strip_cr(text: str) -> str:
    """The carriage returns that end each line of *text* removed (``rstrip("\r")``
    line by line; those inside a line stay)."""
    while "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return text.rstrip("\r")


def _decode(raw: bytes, *, truncated: bool = False) -> str:
    line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
    return line + " [line truncated]" if truncated else line


def _wait_pidfd(watch: _Watch, pidfd: int, out: Stream, err: Stream) -> None:
    """Wait for the child's exit and read both pipes in this one thread.

    ``poll`` wakes up the moment the child exits (its pidfd becomes readable) or
    writes, so no time is lost to a polling interval; the cancel event, which
    cannot be polled, is checked every 50 ms. The stop sequence (stop signal,
    KILL after the grace period, stray grandchildren) is the threaded wait's,
    run as deadlines of this loop so the pipes are drained all along.
    """
    proc = watch.proc
    assert proc.stdout is not None and proc.stderr is not None
    streams = {
        proc.stdout.fileno(): _LineSplitter(*out),
        proc.stderr.fileno(): _LineSplitter(*err),
    }
    poller = select.poll()
    for fd in (pidfd, *streams):
        poller.register(fd, select.POLLIN)
    stopping = False  # the stop signal was sent (timeout or cancel)
    kill_at: float | None = None  # a stop is under way: KILL the group then
    drain_until: float | None = None  # the child is gone: wait this long for the pipes
    stray_deadline: float | None = None  # strays were stopped: give up on the pipes then
    try:
        while True:
            now = time.monotonic()
            if watch.returncode is None and not stopping and watch.must_stop():
                stopping = True
                signal_group(proc.pid, watch.stop_signal)
                kill_at = now + watch.kill_grace
            if kill_at is not None:
                if watch.returncode is not None and not group_alive(proc.pid):
                    kill_at = None  # the whole group ended within the grace period
                elif now >= kill_at:
                    signal_group(proc.pid, signal.SIGKILL)
                    kill_at = None
            wake: list[float] = []  # when poll must return even if nothing happens
            if watch.returncode is None and not stopping:
                if watch.deadline is not None:
                    wake.append(watch.deadline)
                if watch.cancel is not None:
                    wake.append(now + CANCEL_CHECK_SECONDS)  # an Event cannot be polled
            elif kill_at is not None:
                wake.append(kill_at)
                if watch.returncode is not None:  # the group may end before kill_at
                    wake.append(now + CANCEL_CHECK_SECONDS)
            elif watch.returncode is None:
                pass  # KILLed: wait for the exit
            else:  # the child is reaped and its group stopped: drain the pipes
                if not streams:
                    break
                if drain_until is None:
                    drain_until = now + DRAIN_SECONDS
                if stray_deadline is None and now >= drain_until:
                    # A grandchild still holds our pipes: it belongs to this hook, stop it.
                    watch.stop_pipe_holders()
                    stray_deadline = time.monotonic() + 5.0
                    continue
                if stray_deadline is not None and now >= stray_deadline:
                    break
                wake.append(drain_until if stray_deadline is None else stray_deadline)
            timeout_ms = None if not wake else max(0, math.ceil((min(wake) - now) * 1000))
            for fd, _event in poller.poll(timeout_ms):
                if fd == pidfd:
                    poller.unregister(pidfd)
                    watch.returncode = proc.wait()  # exited: reaping does not block
                    continue
                data = os.read(fd, READ_SIZE)
                if data:
                    streams[fd].feed(data)
                else:
                    streams.pop(fd).close()
                    poller.unregister(fd)
    except BaseException:
        if watch.returncode is None:
            # Left by an exception (KeyboardInterrupt, a signal handler that raises): the
            # child runs in its own session, so no terminal signal reaches it; stop its
            # group here rather than leave it running unobserved. Our read ends are
            # closed first, so a child writing while it stops cannot block on a full pipe.
            proc.stdout.close()
            proc.stderr.close()
            stop_group(proc, watch.kill_grace, watch.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1.0)
        raise
    finally:
        os.close(pidfd)
        for splitter in streams.values():
            splitter.close()
        proc.stdout.close()
        proc.stderr.close()
