"""The user's hooks: the executor base class, the context a hook runs in, its environment.

A hook executor is a frozen attrs class that is both its config schema and its
behaviour. Builtin kinds (``script``, ``directory``, ``python``) and third-party
kinds implement the same three methods::

    @attrs.frozen(kw_only=True)
    class DockerStopHook(Hook):
        kind: ClassVar[str] = "docker-stop"
        containers: tuple[str, ...] = ()

        def describe(self) -> str: ...
        def check(self, ctx: HookContext) -> list[str]: ...      # static problems, never runs
        def run(self, ctx: HookContext) -> Sequence[HookResult]: ...

and are registered through the ``resticm_hook_types`` plugin hook.
"""

from __future__ import annotations

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

#: Seconds a hook may run before its process group is stopped (``timeout:`` overrides).
DEFAULT_HOOK_TIMEOUT = 3600.0
#: Seconds between TERM and KILL when a hook is stopped.
DEFAULT_KILL_GRACE = 10.0
#: The exit status a hook uses to ask for a soft skip of the backup (EX_TEMPFAIL).
EXIT_SKIP = 75

#: Variables that resticm sets per phase; inherited values are removed where they do not apply.
STATUS_VARIABLES = ("BACKUP_STATUS", "BACKUP_ERROR", "ERROR", "RESTICM_BACKUP_PARTIAL")
#: Prefixes of variables that must never reach a hook (repository passwords).
SECRET_VARIABLE_PREFIXES = ("RESTIC_PASSWORD", "RESTIC_FROM_PASSWORD")


class OutputSink(Protocol):
    """Where hook output and hook progress messages go (console and log).

    A sink may also define ``hook_finished(hook: str) -> None``: the workflow calls
    it when a hook (or a directory module) ended, e.g. to write the tail of its output.
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
        proc = run_process(
            argv,
            env=self.env,
            cwd=cwd,
            timeout=timeout,
            kill_grace=self.kill_grace,
            on_stdout=lambda line: self.output.hook_line(name, line),
            on_stderr=lambda line: self.output.hook_line(name, line),
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
        """Run the hook and return one result per unit run (a directory runs several)."""
        raise NotImplementedError(f"hook kind {self.kind!r} does not implement run()")

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


def failed_result(*, name: str, kind: str, phase: Phase, error: str) -> HookResult:
    """A hook that failed before running (missing file, bad permissions...)."""
    return HookResult(name=name, kind=kind, phase=phase, outcome=Outcome.FAILED, error=error)


def check_hook_file(path: Path, *, display: str | None = None) -> list[str]:
    """The safety checks DESIGN §10 asks of every hook file (scripts and ``.d`` modules).

    Refused, each with the fix in the message: missing, not a regular file, not
    executable, writable by group/others, owned by neither root nor the current
    user; the same for the directory that contains it.
    """
    shown = display or str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        hint = ""
        if " " in path.name:
            hint = " (the string form is a path only; put arguments in 'args:')"
        return [f"hook {shown} does not exist{hint}"]
    except OSError as exc:
        return [f"cannot access hook {shown}: {exc.strerror}"]
    problems: list[str] = []
    if not stat.S_ISREG(st.st_mode):
        return [f"hook {shown} is not a regular file"]
    if not st.st_mode & 0o111:
        problems.append(f"hook {shown} is not executable (fix: chmod u+x {path})")
    problems.extend(_ownership_problems(path, st, "hook"))
    try:
        parent = path.parent.stat()
    except OSError as exc:
        problems.append(f"cannot access the directory of hook {shown}: {exc.strerror}")
    else:
        problems.extend(_ownership_problems(path.parent, parent, "hook directory"))
    return problems


def _ownership_problems(path: Path, st: os.stat_result, what: str) -> list[str]:
    problems = []
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    # In a sticky directory (/tmp) others may add files but cannot replace ours.
    sticky_dir = what == "hook directory" and st.st_mode & stat.S_ISVTX
    if writable and not sticky_dir:
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
