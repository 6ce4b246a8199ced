"""What becomes of resticm's children when resticm dies, and of what they leave behind.

Two kernel mechanisms, no cgroups:

- **Death signal.** Every child is started as ``setpriv --pdeathsig KILL -- <argv>``
  (util-linux >= 2.33): the kernel KILLs it when the thread that started it ends,
  so a ``kill -9``/OOM of resticm no longer leaves a restic running beside the next
  run. The *thread* matters: a child started from a worker thread (mirror
  backends run in a thread pool) would be KILLed when that thread ends; every
  caller here waits for its child in the thread that started it (run_process
  returns only once the child is reaped), so no thread ends under a live child.
  Python's subprocess can only set it from a ``preexec_fn``, which is unsafe
  with threads; setpriv costs one more ``exec`` (about 2 ms). Where setpriv is
  missing or too old, children start without it (logged once at debug level). The
  signal reaches the direct child only: what a hook started itself is reached by
  the leftover sweep below while resticm lives, not after it was killed.
- **Leftovers.** After a hook exits, :func:`find_leftovers` lists what it left: the
  processes still in its session or process group, those holding its output pipes
  (a ``setsid`` daemon that inherited them), and, when resticm is a child
  subreaper (:func:`set_subreaper`, which only the CLI turns on), every process
  reparented to resticm that is not one of its known children. :func:`stop_leftovers`
  TERMs them, KILLs what is left after a grace period, and says which ones survived.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

import attrs

log = logging.getLogger("resticm_core")

#: ``prctl`` options (linux/prctl.h).
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
#: Where setpriv is looked for besides resticm's own PATH (cron's PATH is short).
SETPRIV_FALLBACK_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
#: How often a stopping leftover is checked.
POLL_SECONDS = 0.05


# -- the death signal -----------------------------------------------------------------------------


@functools.cache
def death_signal_prefix() -> tuple[str, ...]:
    """``(setpriv, --pdeathsig, KILL, --)``, or ``()`` where setpriv cannot set it.

    Checked once per process (a fact of the installed system): setpriv must exist
    and accept ``--pdeathsig`` (util-linux >= 2.33; busybox's setpriv does not).
    """
    path = os.pathsep.join(filter(None, [os.environ.get("PATH", ""), SETPRIV_FALLBACK_PATH]))
    setpriv = shutil.which("setpriv", path=path)
    if setpriv is None:
        log.debug("setpriv not found: children will not die with resticm (no death signal)")
        return ()
    prefix = (setpriv, "--pdeathsig", "KILL", "--")
    try:
        probe = subprocess.run(
            [*prefix, setpriv, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("setpriv --pdeathsig cannot run (%s): children get no death signal", exc)
        return ()
    if probe.returncode != 0:
        reason = probe.stderr.decode("utf-8", "replace").strip()[:200]
        log.debug("%s has no --pdeathsig (%s): children get no death signal", setpriv, reason)
        return ()
    return prefix


def resolve_executable(
    program: str, env: Mapping[str, str], cwd: str | os.PathLike[str] | None = None
) -> str:
    """The path ``exec`` would run for *program*, searched as subprocess searches it.

    Raises the :class:`OSError` subprocess would raise (ENOENT, EACCES), so a
    missing program is still a start error and not a wrapper's exit status 127.
    """
    if os.sep in program:
        path = program if cwd is None or os.path.isabs(program) else os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        return program if cwd is None or os.path.isabs(program) else os.path.abspath(path)
    denied = False
    for directory in os.get_exec_path(dict(env)):
        candidate = os.path.join(directory, program)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            denied = True
    code = errno.EACCES if denied else errno.ENOENT
    raise OSError(code, os.strerror(code), program)


def guarded_argv(
    argv: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike[str] | None = None
) -> list[str]:
    """*argv* prefixed so the child gets the death signal (see the module docstring).

    The program is resolved first (raising as subprocess would); without setpriv
    *argv* is returned unchanged.
    """
    prefix = death_signal_prefix()
    if not prefix:
        return list(argv)
    program = resolve_executable(argv[0], env, cwd)
    if not _plain_executable(program):
        # setpriv's execvp would run a file without "#!" through /bin/sh, where a
        # direct exec fails with "Exec format error": keep exec's verdict.
        return list(argv)
    return [*prefix, program, *argv[1:]]


#: What a file the kernel runs by itself starts with (binfmt_misc formats aside).
_EXEC_MAGIC = (b"#!", b"\x7fELF")


def _plain_executable(path: str) -> bool:
    """Does *path* start like a script or an ELF binary? True when it cannot be read
    (executable but unreadable: exec decides)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return True
    return head.startswith(_EXEC_MAGIC)


SETPRIV_EXEC_FAILURE = "setpriv: failed to execute "


# -- the subreaper --------------------------------------------------------------------------------


def _prctl(option: int, arg: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    result: int = libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0)
    if result != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


def set_subreaper(enabled: bool) -> bool:
    """Make this process a child subreaper (or stop being one); False where it cannot.

    A subreaper inherits the orphaned descendants of its children instead of
    init, so what a hook daemonised can be found (and stopped) after the hook
    ended. This changes how the *whole process* works (its ``waitpid``-less code
    collects zombies it never started): only the ``resticm`` CLI turns it on, an
    application embedding resticm_core opts in with ``run(subreaper=True)``.
    """
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1 if enabled else 0)
    except (OSError, AttributeError) as exc:
        log.debug("cannot set the child subreaper attribute: %s", exc)
        return False
    return True


def is_subreaper() -> bool:
    """Is this process a child subreaper (the kernel's answer, not a Python flag)?"""
    value = ctypes.c_int(0)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    return bool(value.value)


class KnownChildren:
    """The children the processes of one run started and still wait for.

    A leftover sweep must not take a restic started by a parallel mirror thread
    (our direct child too) for an orphan a hook left: children are registered
    under a lock held across ``fork``, so a sweep never sees one half-registered.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pids: set[int] = set()

    @contextlib.contextmanager
    def spawning(self) -> Iterator[Callable[[int], None]]:
        """Hold the lock while a child is started; call the yielded function with its pid."""
        with self._lock:
            yield self._pids.add

    def discard(self, pid: int) -> None:
        with self._lock:
            self._pids.discard(pid)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[frozenset[int]]:
        """The known pids, with no child being started until the block ends."""
        with self._lock:
            yield frozenset(self._pids)


# -- leftovers ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProcInfo:
    """One process as ``/proc/PID/stat`` shows it."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    starttime: int
    comm: str

    def describe(self) -> str:
        return f"pid {self.pid} ({self.comm})"


def _read_stat(pid: int) -> ProcInfo | None:
    # os.open/os.read, not Path.read_bytes: a leftover sweep reads every process's
    # stat after every hook, and pathlib's object per path was a third of its cost.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    # comm is in parentheses and may itself contain spaces or parentheses.
    head, _, rest = raw.rpartition(")")
    fields = rest.split()
    try:
        return ProcInfo(
            pid=pid,
            comm=head.partition("(")[2],
            state=fields[0],
            ppid=int(fields[1]),
            pgid=int(fields[2]),
            sid=int(fields[3]),
            starttime=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def _processes() -> dict[int, ProcInfo]:
    found: dict[int, ProcInfo] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                info = _read_stat(int(entry.name))
                if info is not None:
                    found[info.pid] = info
    return found


def _holds_pipe(pid: int, links: Collection[str]) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in links:
                return True
    return False


def pipe_inodes(*fds: int) -> tuple[int, ...]:
    """The inodes of the pipes behind *fds* (either end names the same pipe)."""
    return tuple(os.fstat(fd).st_ino for fd in fds)


def find_leftovers(
    origin: int,
    *,
    pipes: Collection[int] = (),
    known: Collection[int] = (),
    reaped_orphans: bool = False,
) -> list[ProcInfo]:
    """What the exited child *origin* (its own session and group leader) left running.

    Its session and group members; with *pipes* (inodes of its output pipes), the
    processes holding them; with *reaped_orphans* (this process is a subreaper),
    every child of ours that is not in *known*; then their descendants.
    Zombies are not leftovers.
    """
    me = os.getpid()
    procs = _processes()
    links = {f"pipe:[{inode}]" for inode in pipes}
    picked: dict[int, ProcInfo] = {}
    for info in procs.values():
        if info.pid in (me, origin) or info.pid in known:
            continue
        if info.state == "Z":
            if reaped_orphans and info.ppid == me:
                # An orphan that ended by itself: nobody else collects it in a subreaper.
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(info.pid, os.WNOHANG)
            continue
        if (
            info.sid == origin
            or info.pgid == origin
            or (reaped_orphans and info.ppid == me)
            or (links and _holds_pipe(info.pid, links))
        ):
            picked[info.pid] = info
    while True:  # and what they started, in their own sessions or not
        leaders = {p.pid for p in picked.values() if p.sid == p.pid or p.pgid == p.pid}
        more = {
            info.pid: info
            for info in procs.values()
            if info.pid not in picked
            and info.pid != me
            and info.pid not in known
            and info.state != "Z"
            and (info.ppid in picked or info.sid in leaders or info.pgid in leaders)
        }
        if not more:
            return sorted(picked.values(), key=lambda p: p.pid)
        picked.update(more)


def _running(info: ProcInfo) -> bool:
    """Still the same process (pid not reused), and not a zombie; reaps our zombies."""
    now = _read_stat(info.pid)
    if now is None or now.starttime != info.starttime:
        return False
    if now.state == "Z":
        if now.ppid == os.getpid():  # reparented to us (subreaper): collect it
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.pid, os.WNOHANG)
        return False
    return True


def _signal_all(procs: Sequence[ProcInfo], signum: int) -> None:
    for info in procs:
        if _running(info):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(info.pid, signum)


def _wait_gone(procs: Sequence[ProcInfo], seconds: float) -> list[ProcInfo]:
    deadline = time.monotonic() + seconds
    while True:
        alive = [info for info in procs if _running(info)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(POLL_SECONDS)


@attrs.frozen(kw_only=True)
class Leftovers:
    """What a child left running, and what became of it."""

    #: Stopped by resticm (``pid N (comm)``).
    stopped: tuple[str, ...] = ()
    #: Still running after TERM and KILL (another user's process, uninterruptible sleep).
    running: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.stopped or self.running)

    def __add__(self, other: Leftovers) -> Leftovers:
        return Leftovers(stopped=self.stopped + other.stopped, running=self.running + other.running)

    def describe(self) -> str:
        """One truthful sentence (empty when nothing was left)."""
        parts = []
        if self.stopped:
            parts.append(
                f"stopped {len(self.stopped)} background process(es) it left: "
                + ", ".join(self.stopped)
            )
        if self.running:
            parts.append("left running: " + ", ".join(self.running))
        return "; ".join(parts)


def stop_leftovers(procs: Sequence[ProcInfo], grace: float) -> Leftovers:
    """TERM *procs*, KILL what is left after *grace* seconds; say what survived."""
    if not procs:
        return Leftovers()
    _signal_all(procs, signal.SIGTERM)
    alive = _wait_gone(procs, grace)
    if alive:
        _signal_all(alive, signal.SIGKILL)
        alive = _wait_gone(alive, 2.0)
    survivors = {info.pid for info in alive}
    return Leftovers(
        stopped=tuple(p.describe() for p in procs if p.pid not in survivors),
        running=tuple(p.describe() for p in alive),
    )


def sweep(
    origin: int,
    *,
    grace: float,
    pipes: Collection[int] = (),
    known: KnownChildren | None = None,
) -> Leftovers:
    """Find and stop what the exited child *origin* left (see :func:`find_leftovers`).

    Repeated a few times: a leftover's own children are reparented (to us, or to
    init) when it dies, and one that forked meanwhile is caught the next round.
    """
    reaped_orphans = known is not None and is_subreaper()
    total = Leftovers()
    for _round in range(3):
        if known is not None:
            with known.frozen() as pids:
                procs = find_leftovers(
                    origin, pipes=pipes, known=pids, reaped_orphans=reaped_orphans
                )
        else:
            procs = find_leftovers(origin, pipes=pipes)
        seen = set(total.stopped) | set(total.running)
        procs = [p for p in procs if p.describe() not in seen]
        if not procs:
            break
        total = total + stop_leftovers(procs, grace)
    return total


__all__ = [
    "KnownChildren",
    "Leftovers",
    "ProcInfo",
    "death_signal_prefix",
    "find_leftovers",
    "guarded_argv",
    "is_subreaper",
    "pipe_inodes",
    "resolve_executable",
    "set_subreaper",
    "stop_leftovers",
    "sweep",
]
