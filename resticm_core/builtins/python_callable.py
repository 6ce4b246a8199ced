"""``kind: python``: call ``module:function`` in-process with a HookContext.

    hooks:
      on_error: "python:mycompany.backup_hooks:alert"       # short form
      pre_backup:
        - {kind: python, callable: hooks:dump_databases, timeout: 600, isolate: true}
        - {kind: python, callable: hooks:check_disk, env: {MIN_FREE_GB: "20"}}

A hook function takes the :class:`~resticm_core.hooks.HookContext` as its one
positional argument::

    # /etc/resticm/hooks.py, beside config.yaml
    from resticm_core import SkipBackup

    def dump_databases(ctx):
        if ctx.env.get("MAINTENANCE") == "1":
            raise SkipBackup("maintenance window")       # soft skip, like exit 75
        proc = ctx.run_command(["pg_dumpall", "-f", "/var/backups/all.sql"],
                               name="pg_dumpall", timeout=600)
        return proc.ok                                   # False fails the hook

Behaviour (DESIGN §4 and §10 "Python-callable hooks"):

- ``callable`` is resolved with :func:`pkgutil.resolve_name`. The module is
  imported from ``sys.path`` plus the config file's directory, which is appended
  *for the duration of the import only* (and only when not already there), so a
  ``hooks.py`` beside ``config.yaml`` just works. Consequences: an import the
  function itself does later, at call time, does not see that directory (import
  siblings at the top of ``hooks.py``); and modules are cached in ``sys.modules``
  by name, so two configs with a ``hooks.py`` each in one process share the first.
  An unresolvable target fails the hook and is reported by :meth:`PythonHook.check`
  (which imports the module, running its top-level code).
- ``ctx.env`` holds the full hook environment (``BACKUP_STATUS``, ``ERROR``... plus
  the hook's ``env:``); resticm's ``os.environ`` is never modified here. An
  in-process call shares the process environment: the ``resticm`` CLI and the
  Ansible module have removed the passwords from it at start-up
  (:func:`~resticm_core.secrets.scrub_environment`); an application embedding
  ``run()`` calls that itself, or uses ``isolate: true``. In an isolated child,
  ``os.environ`` *is* the hook environment (``ctx.env``), so a ``subprocess.run()``
  without ``env=`` sees what a script hook sees and never a password.
- Returning anything but ``False`` succeeds. Returning ``False`` or raising fails
  the hook with ``ExceptionType: message`` (the traceback is logged at DEBUG).
  Raising :class:`~resticm_core.errors.SkipBackup` is the soft skip in
  ``pre_backup`` and a success in any other phase. ``sys.exit()`` in a hook fails
  the hook, it does not end resticm.
- In-process calls run in a daemon thread. Python cannot stop a thread, so on a
  timeout — or when resticm is interrupted (``ctx.cancel``) — the hook is marked
  failed and the call is *abandoned*: it may keep running in the background until
  it returns or resticm exits. Use ``isolate: true`` for anything that may hang.
- ``isolate: true`` runs the call in a forked child process (in its own process
  group) and gets the result back through a pipe; a timeout or an interruption
  stops the whole group (TERM, then KILL after the grace period). Calls the
  function makes on ``ctx.output`` then happen in the child's copy of the sink
  (a logging sink still writes to the same files); processes it starts with
  ``ctx.run_command`` are in their own group and are stopped when the child
  receives TERM.
- Registered from code with :meth:`PythonHook.from_function`.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import logging
import os
import pkgutil
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import attrs

from ..errors import SkipBackup
from ..hooks import Hook, HookContext, failed_result
from ..hookspecs import hookimpl
from ..phases import HookResult, Outcome, Phase
from ..process import group_alive, signal_group
from .script import not_started_result, report_result

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

HookFunction = Callable[[HookContext], Any]

#: Seconds between checks of the result, the timeout and ``ctx.cancel``.
_POLL_SECONDS = 0.05

_Status = Literal["ok", "false", "skip", "error", "timeout", "interrupted", "died"]


class HookTargetError(Exception):
    """The ``callable`` of a python hook cannot be resolved; the message says why."""


@attrs.frozen
class _CallEnd:
    """How a call ended. Crosses the pipe from an isolated child: plain values only."""

    status: _Status
    error: str = ""
    traceback: str = ""


@attrs.frozen(kw_only=True)
class PythonHook(Hook):
    kind: ClassVar[str] = "python"

    #: ``package.module:function`` (``pkgutil.resolve_name`` syntax).
    callable: str
    #: Run in a forked child that a timeout can kill, instead of in-process.
    isolate: bool = False
    #: A function given from code (``PythonHook.from_function``); not a config key.
    function: Callable[[HookContext], Any] | None = attrs.field(
        default=None, eq=False, repr=False, metadata={"yaml": False}
    )

    @classmethod
    def from_function(
        cls,
        func: HookFunction,
        *,
        name: str | None = None,
        timeout: float | None = None,
        isolate: bool = False,
    ) -> Self:
        """A hook that calls *func*, for configurations built in code.

        *name* (default ``module:qualname`` of *func*) is what messages and
        results show, after ``python:``.
        """
        if name is None:
            module = getattr(func, "__module__", None) or "?"
            qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
            name = f"{module}:{qualname}"
        return cls(callable=name, function=func, timeout=timeout, isolate=isolate)

    def describe(self) -> str:
        return f"python:{self.callable}"

    def check(self, ctx: HookContext) -> list[str]:
        try:
            self._target(ctx)
        except HookTargetError as exc:
            return [str(exc)]
        return []

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        name = self.describe()
        try:
            func = self._target(ctx)
        except HookTargetError as exc:
            result = failed_result(name=name, kind=self.kind, phase=ctx.phase, error=str(exc))
            report_result(ctx, result)
            return [result]
        if ctx.cancel.is_set():
            return [not_started_result(ctx, name=name, kind=self.kind)]
        ctx.output.message(logging.INFO, f"running hook {name}")
        hook_ctx = ctx.with_env(self.env)
        timeout = self.effective_timeout(ctx)
        started = time.monotonic()
        if self.isolate:
            end = _call_in_child(func, hook_ctx, timeout=timeout)
        else:
            end = _call_in_thread(func, hook_ctx, timeout=timeout)
        result = self._result(ctx, end, duration=time.monotonic() - started)
        report_result(ctx, result)
        return [result]

    def _target(self, ctx: HookContext) -> HookFunction:
        if self.function is not None:
            return self.function
        return resolve_target(self.callable, ctx.config_dir)

    def _result(self, ctx: HookContext, end: _CallEnd, *, duration: float) -> HookResult:
        name = self.describe()
        if end.traceback:
            ctx.output.message(logging.DEBUG, f"hook {name} raised:\n{end.traceback}")
        if end.status == "skip" and ctx.phase is not Phase.PRE_BACKUP:
            ctx.output.message(
                logging.INFO,
                f"hook {name} raised SkipBackup outside pre_backup; counted as success",
            )
        return HookResult(
            name=name,
            kind=self.kind,
            phase=ctx.phase,
            outcome=_outcome(end.status, ctx.phase),
            duration=duration,
            error=end.error,
            timed_out=end.status == "timeout",
        )


def _outcome(status: _Status, phase: Phase) -> Outcome:
    if status == "ok":
        return Outcome.OK
    if status == "skip":
        return Outcome.SOFT_SKIP if phase is Phase.PRE_BACKUP else Outcome.OK
    return Outcome.FAILED


# --- resolving ``module:function`` ---------------------------------------------------


def resolve_target(target: str, config_dir: Path) -> HookFunction:
    """Import and return the function named by *target*; :class:`HookTargetError` if not."""
    hook = f"python:{target}"
    module = target.split(":", 1)[0]
    try:
        with _importable_from(config_dir):
            obj = pkgutil.resolve_name(target)
    except ValueError as exc:
        raise HookTargetError(
            f"invalid callable {target!r} for hook {hook}: expected "
            f"'package.module:function' ({exc})"
        ) from None
    except ImportError as exc:
        # exc.name is the module that is missing: maybe one the hook module imports.
        missing = exc.name or module
        raise HookTargetError(f"cannot import {missing!r} for hook {hook}: {exc}") from None
    except AttributeError as exc:
        raise HookTargetError(f"cannot resolve hook {hook}: {exc}") from None
    except Exception as exc:  # the module's own code failed (SyntaxError, NameError...)
        raise HookTargetError(
            f"cannot import {module!r} for hook {hook}: {_describe_exception(exc)}"
        ) from None
    if not callable(obj):
        raise HookTargetError(f"hook {hook} names {type(obj).__name__} object, not a function")
    function: HookFunction = obj
    return function


@contextlib.contextmanager
def _importable_from(directory: Path) -> Iterator[None]:
    """Make *directory* importable (appended to ``sys.path``) while the block runs."""
    entry = str(directory)
    added = entry not in sys.path
    if added:
        sys.path.append(entry)
        # A finder cached from an earlier listing of this directory would miss a
        # module file written since (tests, a config just deployed).
        importlib.invalidate_caches()
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


# --- calling -------------------------------------------------------------------------


def _call(func: HookFunction, ctx: HookContext) -> _CallEnd:
    """Call *func* and say how it ended; never raises."""
    try:
        value = func(ctx)
    except SkipBackup:
        return _CallEnd("skip")
    except BaseException as exc:
        # BaseException too: sys.exit() in a hook must fail the hook, and in a
        # thread it would otherwise vanish silently and look like a hang.
        return _CallEnd("error", _describe_exception(exc), _format_traceback(exc))
    if value is False:
        return _CallEnd("false", "returned False")
    return _CallEnd("ok")


def _format_traceback(exc: BaseException) -> str:
    # Start below _call's own frame: the user's code is what the reader wants.
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


def _describe_exception(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not break the report
        message = ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _call_in_thread(func: HookFunction, ctx: HookContext, *, timeout: float) -> _CallEnd:
    """Call *func* in a daemon thread; abandon it on timeout or ``ctx.cancel``."""
    ends: queue.SimpleQueue[_CallEnd] = queue.SimpleQueue()
    # A copy of this context: what the function logs belongs to this run.
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=lambda: ends.put(context.run(_call, func, ctx)),
        name="resticm-python-hook",
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(queue.Empty):
            return ends.get(timeout=_POLL_SECONDS)
        if ctx.cancel.is_set():
            return _CallEnd(
                "interrupted", "interrupted: resticm received a signal; the call was abandoned"
            )
        if time.monotonic() >= deadline:
            return _CallEnd(
                "timeout",
                f"timed out after {timeout:g}s; the call was abandoned and may still be "
                "running (isolate: true runs it in a process that can be stopped)",
            )


def _call_in_child(func: HookFunction, ctx: HookContext, *, timeout: float) -> _CallEnd:
    """Call *func* in a forked child; stop the child's group on timeout or ``ctx.cancel``."""
    import multiprocessing  # lazy: only an isolated hook needs it

    mp = multiprocessing.get_context("fork")
    # fork: func and ctx are inherited as they are, nothing needs to be picklable.
    # Out of processes or descriptors is a failure of this hook, not of resticm.
    try:
        receiver, sender = mp.Pipe(duplex=False)
    except OSError as exc:
        return _start_failure(exc)
    child = mp.Process(
        target=_child_main, args=(func, ctx, sender), name="resticm-python-hook", daemon=True
    )
    try:
        child.start()
    except OSError as exc:
        receiver.close()
        sender.close()
        return _start_failure(exc)
    if child.pid is not None:
        # Both sides set the group, so it exists whichever runs first.
        with contextlib.suppress(OSError):
            os.setpgid(child.pid, child.pid)
    sender.close()  # ours: the child's death then shows as EOF on the receiver
    try:
        return _await_child(child, receiver, ctx, timeout=timeout)
    finally:
        receiver.close()


def _start_failure(exc: OSError) -> _CallEnd:
    return _CallEnd("died", f"cannot start the hook process: {exc.strerror or exc}")


def _await_child(
    child: BaseProcess, receiver: Connection, ctx: HookContext, *, timeout: float
) -> _CallEnd:
    deadline = time.monotonic() + timeout
    while True:
        if receiver.poll(_POLL_SECONDS):
            try:
                end: _CallEnd = receiver.recv()
            except EOFError:
                child.join(ctx.kill_grace)
                return _CallEnd("died", _describe_death(child.exitcode))
            # It has answered; let it exit, and stop it if it lingers (non-daemon threads).
            child.join(ctx.kill_grace)
            if child.is_alive():
                _stop_child(child, ctx.kill_grace)
            return end
        if ctx.cancel.is_set():
            _stop_child(child, ctx.kill_grace)
            return _CallEnd(
                "interrupted",
                "interrupted: resticm received a signal; the hook process was stopped",
            )
        if time.monotonic() >= deadline:
            _stop_child(child, ctx.kill_grace)
            return _CallEnd(
                "timeout", f"timed out after {timeout:g}s and the hook process was stopped"
            )


def _child_main(func: HookFunction, ctx: HookContext, sender: Connection) -> None:
    """The isolated child: call *func*, send how it ended, exit."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    # The child's own copy of the process environment becomes the hook's: a
    # password or config secret the parent still has in os.environ (a library
    # caller that did not scrub it) must not reach subprocess.run() in the hook.
    os.environ.clear()
    os.environ.update(ctx.env)
    # Replace whatever handler the parent had (the CLI's sets a flag and carries
    # on): TERM must end the call, unwinding it so ``finally`` blocks run and
    # ctx.run_command stops its children.
    signal.signal(signal.SIGTERM, _exit_on_term)
    end = _call(func, ctx)
    with contextlib.suppress(OSError):
        sender.send(end)
    sender.close()


def _exit_on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _stop_child(child: BaseProcess, grace: float) -> None:
    """TERM the child's process group, KILL what is left after *grace*, reap the child."""
    pgid = child.pid
    if pgid is None:
        return
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        child.join(_POLL_SECONDS)
        if not child.is_alive() and not group_alive(pgid):
            return
    signal_group(pgid, signal.SIGKILL)
    if child.is_alive():  # not a group leader after all (setpgid failed on both sides)
        child.kill()
    child.join(1.0)


def _describe_death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            how = f"was killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-exitcode}"
    else:
        how = f"exited with status {exitcode}"
    return f"the hook process {how} without returning a result"


@hookimpl
def resticm_hook_types() -> Iterable[type[Hook]]:
    return [PythonHook]
