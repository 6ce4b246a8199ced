"""The user's hooks: the executor base class, the context a hook runs in, its environment.

A hook executor is a frozen attrs class that is both its config schema and its
behaviour. Builtin kinds (``script``, ``directory``, ``python``) and third-party
kinds implement the same methods (``check`` and ``describe`` have defaults)::

    @attrs.frozen(kw_only=True)
    class DockerStopHook(Hook):
        kind: ClassVar[str] = "docker-stop"
        containers: tuple[str, ...] = ()

        def describe(self) -> str: ...
        def check(self, ctx: HookContext) -> list[str]: ...      # static problems, never runs
        def run(self, ctx: HookContext) -> Sequence[HookResult]: ...

and are registered through the ``resticm_hook_types`` plugin hook.

The engine owns the lifecycle (:func:`resticm_core.hook_lifecycle.run_hook`):
cancellation, then ``check()``, then ``dry_run()`` in a dry run or ``run()``
otherwise. ``run()`` is never called in a dry run unless the class says it is
safe (:attr:`Hook.dry_run_safe`).
"""

from __future__ import annotations

import functools
import logging
import os
import stat
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Protocol

import attrs

from .children import KnownChildren
from .phases import HookResult, Outcome, Phase
from .process import ProcessResult, run_process
from .secrets import PASSWORD_VARIABLE_PREFIXES
from .trusted_path import Unsafe, describe_unsafe, open_trusted

#: Seconds a hook may run before its process group is stopped (``timeout:`` overrides).
DEFAULT_HOOK_TIMEOUT = 3600.0
#: Seconds between TERM and KILL when a hook is stopped.
DEFAULT_KILL_GRACE = 10.0
#: The exit status a hook uses to ask for a soft skip of the backup (EX_TEMPFAIL).
EXIT_SKIP = 75

#: Variables that resticm sets per phase; inherited values are removed where they do not apply.
STATUS_VARIABLES = ("BACKUP_STATUS", "BACKUP_ERROR", "ERROR", "RESTICM_BACKUP_PARTIAL")
#: Prefixes of variables that must never reach a hook (repository passwords).
SECRET_VARIABLE_PREFIXES = PASSWORD_VARIABLE_PREFIXES


class OutputSink(Protocol):
    """Where hook output and hook progress messages go (console and log).

    A sink may also define ``hook_finished(hook: str) -> None``: the workflow calls
    it when a hook (or a directory module) ended, e.g. to write the tail of its output;
    and ``hook_text(hook: str, text: str) -> None``: then a hook process's output
    comes a read at a time (its complete lines, joined by ``"\n"``) instead of line
    by line.
    """

    def hook_line(self, hook: str, line: str) -> None:
        """One line the hook printed (stdout or stderr)."""

    def message(self, level: int, text: str) -> None:
        """A message of resticm about hooks (executing, skipped, failed...)."""


class LoggingSink:
    """An :class:`OutputSink` that writes everything to a :class:`logging.Logger`."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("resticm_core.hooks")

    def hook_line(self, hook: str, line: str) -> None:
        self.logger.info("[%s] %s", hook, line)

    def message(self, level: int, text: str) -> None:
        self.logger.log(level, "%s", text)


@attrs.frozen(kw_only=True)
class HookContext:
    """Everything a hook executor needs to run one hook, and nothing global.

    Python-callable hooks receive it as their one argument.
    """

    #: The phase being run.
    phase: Phase
    #: The resticm command (``backup``, ``default``, ``full``, ``hooks``).
    command: str
    #: The complete environment for the hook: inherited environment, minus secrets,
    #: plus ``hooks.environment``, plus the resticm variables (BACKUP_STATUS...).
    env: Mapping[str, str]
    #: Only the variables resticm adds for this phase.
    variables: Mapping[str, str] = attrs.field(factory=dict)
    #: Directory relative hook paths are resolved against (the config file's).
    config_dir: Path = attrs.field(factory=Path.cwd)
    #: Timeout for hooks that set none.
    default_timeout: float = DEFAULT_HOOK_TIMEOUT
    kill_grace: float = DEFAULT_KILL_GRACE
    dry_run: bool = False
    #: Set when resticm is interrupted: running children are stopped.
    cancel: threading.Event = attrs.field(factory=threading.Event)
    output: OutputSink = attrs.field(factory=LoggingSink)
    #: The run's live children: in a subreaper, the orphans reparented to resticm
    #: that are not among them are taken for what the ending hook left behind.
    children: KnownChildren | None = None

    def resolve_path(self, path: str | os.PathLike[str]) -> Path:
        """``~`` expanded; relative paths taken against :attr:`config_dir`."""
        expanded = Path(os.path.expanduser(os.fspath(path)))
        return expanded if expanded.is_absolute() else self.config_dir / expanded

    def with_env(self, extra: Mapping[str, str]) -> HookContext:
        """The same context with *extra* variables added (a hook's own ``env:``)."""
        if not extra:
            return self
        return attrs.evolve(self, env={**self.env, **extra})

    def run_command(
        self,
        argv: Sequence[str],
        *,
        name: str,
        timeout: float | None,
        cwd: Path | None = None,
    ) -> ProcessResult:
        """Run a hook process: own process group, output streamed with *name* as prefix.

        This is the seam every process-based executor uses, so output handling,
        timeouts, cancellation and the stopping of what the hook left running
        (``ProcessResult.leftovers``) are the same for all of them.
        """
        # A sink with ``hook_text`` takes each read's lines at once: a hook printing
        # millions of lines then costs one console write per read, not one per line.
        hook_text = getattr(self.output, "hook_text", None)
        batch = None if hook_text is None else functools.partial(hook_text, name)
        proc = run_process(
            argv,
            env=self.env,
            cwd=cwd,
            timeout=timeout,
            kill_grace=self.kill_grace,
            on_stdout=lambda line: self.output.hook_line(name, line),
            on_stderr=lambda line: self.output.hook_line(name, line),
            on_stdout_text=batch,
            on_stderr_text=batch,
            cancel=self.cancel,
            known=self.children,
            sweep_leftovers=True,
        )
        if proc.leftovers or proc.stray_children_stopped:
            what = proc.leftovers.describe() or "no process holding it could be found"
            held = " (some held its output open)" if proc.stray_children_stopped else ""
            self.output.message(
                logging.WARNING,
                f"hook {name} left background processes running{held}: {what} "
                "(start services with systemctl or docker, not from a hook)",
            )
        return proc


@attrs.frozen(kw_only=True)
class Hook:
    """Base class of hook executors. Subclasses set :attr:`kind` and add their fields."""

    #: The ``kind:`` this class handles in the config. Unique across plugins.
    kind: ClassVar[str] = ""
    #: True: :meth:`run` may be called in a dry run (``ctx.dry_run`` set) because it
    #: then changes nothing itself. False (the default): a dry run calls :meth:`dry_run`
    #: instead, so a kind that forgets about dry runs can never act under ``--dry-run``.
    dry_run_safe: ClassVar[bool] = False
    #: True: :meth:`run` checks each of its units at its turn (the ``directory`` kind:
    #: a bad module fails when its turn comes, the modules before it run), so the
    #: engine does not call :meth:`check` first. :meth:`check` still lists every
    #: problem for ``resticm config validate``.
    checks_itself: ClassVar[bool] = False

    #: Seconds before the hook is stopped; None means the configured default.
    timeout: float | None = None
    #: Extra environment variables for this hook only.
    env: Mapping[str, str] = attrs.field(factory=dict)

    def describe(self) -> str:
        """A short human name for messages (the path, the callable...)."""
        return self.kind

    def check(self, ctx: HookContext) -> list[str]:
        """Problems found without running anything (missing file, permissions).

        Run before the hook in every mode, in dry runs, and by
        ``resticm config validate``. An empty list means the hook can run.
        """
        return []

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        """Run the hook and return one result per unit run (a directory runs several).

        Called only after :meth:`check` found nothing and never in a dry run
        (unless :attr:`dry_run_safe`); the engine has already looked at ``ctx.cancel``.
        """
        raise NotImplementedError(f"hook kind {self.kind!r} does not implement run()")

    def dry_run(self, ctx: HookContext) -> Sequence[HookResult]:
        """What ``--dry-run`` does instead of :meth:`run`: say what would run, do nothing.

        Called after :meth:`check` found nothing. Override it only to say more
        (never to act); the default names the hook by :meth:`describe`.
        """
        return [preview_result(ctx, name=self.describe(), kind=self.kind)]

    def effective_timeout(self, ctx: HookContext) -> float:
        return ctx.default_timeout if self.timeout is None else self.timeout


def result_from_process(
    *, name: str, kind: str, phase: Phase, proc: ProcessResult, skip_allowed: bool
) -> HookResult:
    """Turn a finished hook process into a :class:`HookResult`.

    Exit 75 is a soft skip where *skip_allowed* (pre_backup), success elsewhere.
    """
    tail = tuple(proc.stdout_tail[-20:]) + tuple(proc.stderr_tail[-20:])
    if proc.returncode == EXIT_SKIP and not proc.timed_out and not proc.cancelled:
        outcome = Outcome.SOFT_SKIP if skip_allowed else Outcome.OK
        return HookResult(
            name=name,
            kind=kind,
            phase=phase,
            outcome=outcome,
            exit_code=proc.returncode,
            duration=proc.duration,
            output_tail=tail,
        )
    if proc.ok:
        return HookResult(
            name=name,
            kind=kind,
            phase=phase,
            outcome=Outcome.OK,
            exit_code=0,
            duration=proc.duration,
            output_tail=tail,
        )
    error = proc.describe_failure()
    # What a failing hook says on stderr explains it best; else its last stdout line.
    said = [line for line in proc.stderr_tail if line.strip()] or [
        line for line in proc.stdout_tail if line.strip()
    ]
    if said and not proc.start_error:
        error += f" (last output: {said[-1].strip()[:300]})"
    return HookResult(
        name=name,
        kind=kind,
        phase=phase,
        outcome=Outcome.FAILED,
        exit_code=proc.returncode,
        duration=proc.duration,
        error=error,
        timed_out=proc.timed_out,
        output_tail=tail,
    )


def preview_result(ctx: HookContext, *, name: str, kind: str) -> HookResult:
    """A unit a dry run did not execute (its static checks passed), said on ``ctx.output``."""
    ctx.output.message(logging.INFO, f"[dry-run] would run {kind} hook {name}")
    return HookResult(name=name, kind=kind, phase=ctx.phase, outcome=Outcome.SKIPPED)


def failed_result(*, name: str, kind: str, phase: Phase, error: str) -> HookResult:
    """A hook that failed before running (missing file, bad permissions...)."""
    return HookResult(name=name, kind=kind, phase=phase, outcome=Outcome.FAILED, error=error)


def check_hook_file(path: Path, *, display: str | None = None) -> list[str]:
    """The safety checks every hook file gets (scripts and ``.d`` modules), DESIGN §10
    as tightened by issue 13: empty when the file may run.

    Refused, each with the fix in the message: missing, not a regular file, not
    executable, writable by group/others, owned by neither root nor the current
    user; and anything on the way to it that someone else could swap
    (:func:`~resticm_core.trusted_path.open_trusted`): every directory of the
    resolved path up to ``/`` and of the path as written, and every symlink
    followed. When nothing is refused, no one but root and the current user can
    change what *path* resolves to or what the file holds, so executing *path*
    afterwards runs the very file checked here (no check/use race), and ``$0``
    stays the path as configured.
    """
    shown = display or str(path)
    try:
        with open_trusted(path, owners=trusted_owners()) as opened:
            st, real, unsafe = opened.st, opened.path, opened.unsafe
    except FileNotFoundError:
        hint = ""
        if " " in path.name:
            hint = " (the string form is a path only; put arguments in 'args:')"
        return [f"hook {shown} does not exist{hint}"]
    except OSError as exc:
        return [f"cannot access hook {shown}: {exc.strerror}"]
    if not stat.S_ISREG(st.st_mode):
        return [f"hook {shown} is not a regular file"]
    problems: list[str] = []
    if not st.st_mode & 0o111:
        problems.append(f"hook {shown} is not executable (fix: chmod u+x {path})")
    problems.extend(_ownership_problems(path, st, "hook"))
    problems.extend(path_problems(unsafe, subject=f"hook {shown}", parent=real.parent))
    if not problems and not _kernel_agrees(path, st):
        # Only possible if the walk and the kernel resolved differently, or something
        # changed meanwhile: never run a file other than the one checked.
        problems.append(f"hook {shown} changed while it was being checked; not running it")
    return problems


def _kernel_agrees(path: Path, st: os.stat_result) -> bool:
    """The kernel's own resolution of *path* reaches the inode the walk checked."""
    try:
        now = path.stat()
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def path_problems(unsafe: Iterable[Unsafe], *, subject: str, parent: Path | None) -> list[str]:
    """Messages for what :func:`open_trusted` found unsafe on the way to a hook.

    *parent* (the directory holding the resolved file) is called ``hook directory``
    as before; further directories and symlinks are named ``directory ... (on the
    way to ...)`` so the message says which one to fix.
    """
    runs_as = _whoami()
    messages: list[str] = []
    for part in unsafe:
        if part.path == parent and not part.symlink:
            label, where = "hook directory", ""
        else:
            label = "symlink" if part.symlink else "directory"
            where = f" (on the way to {subject})"
        messages.extend(
            describe_unsafe(part, subject=subject, label=label, runs_as=runs_as, where=where)
        )
    return messages


def trusted_owners() -> frozenset[int]:
    """Whose files, directories and symlinks a hook may go through: root and us."""
    return frozenset({0, os.geteuid()})


def _ownership_problems(path: Path, st: os.stat_result, what: str) -> list[str]:
    problems = []
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(
            f"{what} {path} is writable by group or others, so anyone could change "
            f"what runs as {_whoami()} (fix: chmod go-w {path})"
        )
    if st.st_uid not in (0, os.geteuid()):
        problems.append(
            f"{what} {path} is owned by uid {st.st_uid}, neither root nor the current "
            f"user (fix: chown {_whoami()} {path})"
        )
    return problems


def _whoami() -> str:
    return "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"


def hook_environment(
    base: Mapping[str, str],
    *,
    variables: Mapping[str, str],
    configured: Mapping[str, str] = {},
    secrets: Iterable[str] = (),
) -> dict[str, str]:
    """The environment a hook process gets.

    Inherited *base* without repository passwords, without any variable whose
    value is a secret of the config, and without stale status variables; then
    ``hooks.environment`` (*configured*); then resticm's *variables*, which win.
    """
    secret_values = {s for s in secrets if s}
    env = {
        key: value
        for key, value in base.items()
        if not key.startswith(SECRET_VARIABLE_PREFIXES)
        and key not in STATUS_VARIABLES
        and value not in secret_values
    }
    env.update(configured)
    env.update(variables)
    return env
