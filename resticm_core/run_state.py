"""The state of one run, as a value: :class:`RunOptions` in, :class:`RunState` built up.

:func:`resticm_core.run` creates one :class:`RunState` per invocation and hands it
to the phases in order (``workflow.py``), to mirror sync (``mirror.py``) and to
the notifications; nothing about a run lives anywhere else (no module state, no
handler on a global logger), so two runs in one process never see each other.

A :class:`RunState` records results through its methods (:meth:`~RunState.error`,
:meth:`~RunState.warn`, :meth:`~RunState.record_step`, :meth:`~RunState.run_phase`),
which redact every text with the run's :class:`~resticm_core.secrets.Redactor`
before it is kept, and builds the :class:`~resticm_core.phases.RunReport` at the end.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import attrs

from .children import KnownChildren
from .config import Config, Repository
from .errors import UsageError
from .hook_lifecycle import run_hook
from .hooks import Hook, HookContext, OutputSink, hook_environment
from .logcontext import log_context
from .notify.events import LogTail
from .phases import (
    BackupStatus,
    BackupSummary,
    Command,
    HookResult,
    Outcome,
    Phase,
    PhaseResult,
    RunReport,
    StepKind,
    StepResult,
)
from .plugin_manager import PluginRegistry
from .restic import Restic, ResticErrorKind, ResticResult
from .secrets import Redactor, redact_url

log = logging.getLogger("resticm_core")

#: Marks the log record of an error the run recorded (``extra``; see :meth:`RunState.error`).
RUN_ERROR = "resticm_run_error"

#: Commands :func:`resticm_core.run` accepts (``hooks`` is ``run_phase_hooks``'s own).
COMMANDS = tuple(c.value for c in Command if c is not Command.HOOKS)


def _command(value: str) -> Command:
    try:
        return Command(value)
    except ValueError:
        raise UsageError(f"unknown command {value!r} (commands: {', '.join(COMMANDS)})") from None


@attrs.frozen(kw_only=True)
class RunOptions:
    """The flags of one run. Field names follow the CLI flags."""

    command: Command = attrs.field(default=Command.BACKUP, converter=_command)
    dry_run: bool = False
    no_hooks: bool = False
    #: Extra tags for this backup (``-t``), after ``default_tags``.
    tags: tuple[str, ...] = ()
    # Default workflow (bare ``resticm``) switches.
    no_backup: bool = False
    no_forget: bool = False
    prune: bool = False
    no_prune: bool = False
    check: bool = False
    deep: bool = False
    no_check: bool = False
    #: Forget without the ``--host`` filter.
    all_hosts: bool = False
    #: ``--notify-success``: send success notifications even if notify_on_success is off.
    notify_success: bool = False
    #: Seconds to wait for another run's lock before giving up (exit 75).
    lock_wait: float = 0.0
    # Repository lifecycle (issue 3).
    #: Skip the copies to ``copy_to_backends`` (default workflow).
    no_copy: bool = False
    #: Copy the snapshots of every host, not only this one's.
    copy_all: bool = False
    #: forget/prune/check: the primary only, not the copy backends.
    primary_only: bool = False
    #: The active backend (``resticm backend use``): backup/forget/prune/check
    #: then work on that repository only. None or ``primary``: the primary.
    target: str | None = None
    #: ``copy --to``: these backends instead of ``copy_to_backends``.
    copy_to: tuple[str, ...] = ()
    #: ``check --auto``: deep when ``deep_check_interval_days`` elapsed.
    auto: bool = False
    #: ``check --subset N/M``: restic's ``--read-data-subset``.
    subset: str | None = None
    #: Where the deep-check state lives; None: the user's state directory.
    state_dir: Path | None = None


class Interrupt:
    """What the signal handler records. First signal: stop the running step;
    second signal: also skip the remaining hooks (the lock is still released)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.abort = threading.Event()
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            log.warning("received %s: stopping the current step", signal.Signals(signum).name)
            self.stop.set()
        else:
            log.warning(
                "received %s again: skipping the remaining hooks", signal.Signals(signum).name
            )
            self.abort.set()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@attrs.define(kw_only=True, eq=False)
class RunState:
    """The state one invocation builds up: results, errors, the backup's status.

    Built by :func:`resticm_core.run` (and ``run_phase_hooks``); read by the phases,
    mirror sync and the notifications. The recording methods are for the main
    thread; :meth:`execute_step` is safe from a worker thread (it records nothing).
    """

    config: Config
    options: RunOptions
    registry: PluginRegistry
    restic: Restic
    output: OutputSink
    environ: Mapping[str, str]
    redactor: Redactor
    #: Hooks given to this run only (``run(hooks=...)``), after the configured ones.
    extra_hooks: Mapping[Phase, Sequence[Hook]] = attrs.field(factory=dict)
    interrupt: Interrupt = attrs.field(factory=Interrupt)
    on_backup_status: Callable[[Mapping[str, Any]], None] | None = None
    #: This run's own log lines (bounded, redacted) for the notifications; None: not kept.
    log_tail: LogTail | None = None
    #: The children this run waits for (hooks' leftover sweeps leave them alone).
    children: KnownChildren | None = None
    started: float = attrs.field(factory=time.time)
    phases: list[PhaseResult] = attrs.field(factory=list)
    steps: list[StepResult] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)
    warnings: list[str] = attrs.field(factory=list)
    backup_status: BackupStatus = BackupStatus.NOT_RUN
    backup_started: bool = False
    summary: BackupSummary | None = None
    #: Repository ids learnt this run (repository name -> id): the preflight's answer
    #: is reused by ``check --auto``, so no repository is probed twice.
    repository_ids: dict[str, str] = attrs.field(factory=dict)

    @property
    def command(self) -> Command:
        return self.options.command

    def backup_repository_url(self) -> str:
        """The repository this run backs up into: the active backend (``backend use``)
        for ``backup``, else the primary. Hooks see it as ``RESTICM_REPOSITORY``."""
        target = self.options.target
        if self.command is Command.BACKUP and target and target in self.config.backends:
            return self.config.backends[target].repository
        return self.config.repository

    # -- recording ---------------------------------------------------------------

    def error(self, text: str) -> None:
        text = self.redactor.redact(text)
        self.errors.append(text)
        # Flagged: the CLI's summary prints every recorded error, so its console skips
        # this line (each error once); the log file and --json runs keep it.
        log.error("%s", text, extra={RUN_ERROR: True})

    def warn(self, text: str) -> None:
        text = self.redactor.redact(text)
        self.warnings.append(text)
        log.warning("%s", text)

    def record_step(self, step: StepResult) -> StepResult:
        # Errors carry restic's and the dump tools' own words; the command line a
        # plugin's dump command shows is not ours either.
        redact = self.redactor.redact
        step = attrs.evolve(step, error=redact(step.error), command=redact(step.command))
        self.steps.append(step)
        self.registry.phase_finished(step, self.config)
        return step

    @property
    def interrupted(self) -> bool:
        return self.interrupt.stop.is_set()

    # -- hooks ---------------------------------------------------------------------

    def hooks_for(self, phase: Phase) -> tuple[Hook, ...]:
        return (*self.config.hooks.for_phase(phase.value), *self.extra_hooks.get(phase, ()))

    def variables(self, phase: Phase) -> dict[str, str]:
        """The resticm variables of DESIGN §3 for *phase*, given what happened so far."""
        variables = {
            "RESTICM_PHASE": phase.value,
            "RESTICM_COMMAND": self.options.command.value,
            "RESTICM_CONFIG": str(self.config.source_path or ""),
            "RESTICM_REPOSITORY": redact_url(self.backup_repository_url()),
            "RESTICM_DRY_RUN": "1" if self.options.dry_run else "0",
            "RESTICM_HOST": self.config.hostname,
        }
        if self.config.job is not None:  # issue 18: one hook script may serve several jobs
            variables["RESTICM_JOB"] = self.config.job
        status = self.backup_status
        if phase is Phase.POST_BACKUP:
            # The guide's two values: a partial backup is a success with a marker.
            ok = status in (BackupStatus.SUCCESS, BackupStatus.PARTIAL)
            variables["BACKUP_STATUS"] = "success" if ok else "failure"
            if not ok:
                variables["BACKUP_ERROR"] = self._backup_error()
        elif phase is not Phase.PRE_BACKUP:
            variables["BACKUP_STATUS"] = status.value
            if self.errors:
                variables["ERROR"] = "\n".join(self.errors)
        if status is BackupStatus.PARTIAL and phase is not Phase.PRE_BACKUP:
            variables["RESTICM_BACKUP_PARTIAL"] = "1"
        if self.summary is not None and phase is not Phase.PRE_BACKUP:
            variables.update(_summary_variables(self.summary))
        dumps = [
            f"{s.subject}={s.summary.snapshot_id}"
            for s in self.steps
            if s.kind is StepKind.DUMP and s.outcome is Outcome.OK and s.summary
        ]
        if dumps and phase is not Phase.PRE_BACKUP:
            # "postgresql:app=1bb9ed51 mariadb:shop=bacafe0a": the snapshot of each dump.
            variables["RESTICM_DUMP_SNAPSHOTS"] = " ".join(dumps)
        return variables

    def _backup_error(self) -> str:
        for step in reversed(self.steps):
            if step.kind is StepKind.BACKUP and step.error:
                return step.error
        # `resticm hooks run post_backup --error TEXT` has no backup step.
        return self.errors[-1] if self.errors else "backup failed"

    def run_phase(self, phase: Phase) -> PhaseResult:
        hooks = self.hooks_for(phase)
        if not hooks:
            return PhaseResult(phase=phase)
        if self.options.no_hooks:
            return self._record_phase(PhaseResult(phase=phase, skipped_reason="--no-hooks"))
        if self.interrupt.abort.is_set():
            reason = f"skipped: {self.interrupt.name} received twice"
            log.warning("%s hooks %s", phase.value, reason)
            return self._record_phase(PhaseResult(phase=phase, skipped_reason=reason))
        variables = self.variables(phase)
        env = hook_environment(
            self.environ,
            variables=variables,
            configured=self.config.hooks.environment,
            secrets=self.config.secrets(),
        )
        # Cleanup phases must survive the first signal; only a second one stops them.
        cleanup = phase in (Phase.POST_BACKUP, Phase.ON_SUCCESS, Phase.ON_ERROR, Phase.FINALLY)
        ctx = HookContext(
            phase=phase,
            command=self.options.command,
            env=env,
            variables=variables,
            config_dir=self.config.config_dir,
            default_timeout=self.config.hooks.timeout,
            kill_grace=self.config.hooks.kill_grace,
            dry_run=self.options.dry_run,
            cancel=self.interrupt.abort if cleanup else self.interrupt.stop,
            output=self.output,
            children=self.children,
        )
        results: list[HookResult] = []
        finished = getattr(self.output, "hook_finished", None)  # optional sink method
        for hook in hooks:
            with log_context(phase=phase.value, hook=hook.describe()):
                done = run_hook(hook, ctx, redact=self.redactor.redact)
            if finished is not None:
                for result in done:
                    finished(result.name)
            results.extend(done)
            if any(r.failed or r.outcome is Outcome.SOFT_SKIP for r in results):
                break
        return self._record_phase(PhaseResult(phase=phase, hooks=tuple(results)))

    def _record_phase(self, result: PhaseResult) -> PhaseResult:
        self.phases.append(result)
        self.registry.phase_finished(result, self.config)
        return result

    # -- restic steps -------------------------------------------------------------------

    def restic_step(
        self,
        kind: StepKind,
        repository: Repository,
        args_preview: Sequence[str],
        action: Callable[[], ResticResult],
    ) -> StepResult:
        """Run one restic step, or only show it in a dry run or after an interrupt."""
        with log_context(phase=kind.value, repository=repository.name):
            step = self.execute_step(kind, repository, args_preview, action)
            if step.failed:
                self.error(step.error)  # restic's message names the command and repository
        return self.record_step(step)

    def execute_step(
        self,
        kind: StepKind,
        repository: Repository,
        args_preview: Sequence[str],
        action: Callable[[], ResticResult],
        *,
        shown: str | None = None,
    ) -> StepResult:
        """:meth:`restic_step` without recording: safe from a worker thread.

        :param shown: the printable command line, when the default would hide part of it.
        """
        command = shown or self.restic.describe(args_preview, repository)
        if self.options.dry_run:
            log.info("[dry-run] would run: %s", command)
            return StepResult(
                kind=kind, repository=repository.name, outcome=Outcome.SKIPPED, command=command
            )
        if self.interrupted:
            return StepResult(
                kind=kind,
                repository=repository.name,
                outcome=Outcome.SKIPPED,
                command=command,
                error=f"not run: interrupted by {self.interrupt.name}",
            )
        # Set here too: backend chains run in worker threads, which start with no context.
        with log_context(
            command=self.options.command, phase=kind.value, repository=repository.name
        ):
            result = action()
        step = attrs.evolve(
            _step_from_result(kind, repository.name, command, result),
            repository_url=redact_url(repository.url),
        )
        if step.failed and self.interrupt.stop.is_set():  # the signal came during the step
            step = attrs.evolve(step, error=f"interrupted by {self.interrupt.name}")
        # Redacted here too: a worker's step reaches the report through record_step,
        # but its error is read (copy failed? skip the chain) before that.
        return attrs.evolve(step, error=self.redactor.redact(step.error))

    # -- the report ---------------------------------------------------------------------------

    def exit_code(self) -> int:
        """DESIGN §8: signal (128+n) > failure (1) > partial (3) > 0."""
        if self.interrupt.signum is not None:
            return 128 + self.interrupt.signum
        if self.errors:
            return 1
        if self.backup_status is BackupStatus.PARTIAL:
            return 3
        return 0

    def report(self) -> RunReport:
        return RunReport(
            command=self.options.command,
            host=self.config.hostname,
            started_at=self.started,
            finished_at=time.time(),
            dry_run=self.options.dry_run,
            backup_status=self.backup_status,
            phases=tuple(self.phases),
            steps=tuple(self.steps),
            errors=tuple(self.errors),
            warnings=tuple(self.warnings),
            signal=self.interrupt.signum,
            exit_code=self.exit_code(),
        )


def _summary_variables(summary: BackupSummary) -> dict[str, str]:
    variables = {
        "RESTICM_FILES_NEW": str(summary.files_new),
        "RESTICM_FILES_CHANGED": str(summary.files_changed),
        "RESTICM_FILES_UNMODIFIED": str(summary.files_unmodified),
        "RESTICM_DIRS_NEW": str(summary.dirs_new),
        "RESTICM_DIRS_CHANGED": str(summary.dirs_changed),
        "RESTICM_DATA_ADDED": str(summary.data_added),
        "RESTICM_TOTAL_FILES_PROCESSED": str(summary.total_files_processed),
        "RESTICM_TOTAL_BYTES_PROCESSED": str(summary.total_bytes_processed),
        "RESTICM_BACKUP_DURATION": f"{summary.total_duration:.3f}",
    }
    if summary.snapshot_id:
        variables["RESTICM_SNAPSHOT_ID"] = summary.snapshot_id
    return variables


def _step_from_result(
    kind: StepKind, repository: str, command: str, result: ResticResult
) -> StepResult:
    if result.ok:
        outcome = Outcome.OK
    elif result.error_kind is ResticErrorKind.PARTIAL:
        outcome = Outcome.PARTIAL
    else:
        outcome = Outcome.FAILED
    return StepResult(
        kind=kind,
        repository=repository,
        outcome=outcome,
        duration=result.duration,
        error="" if result.ok else result.message,
        exit_code=result.exit_code,
        command=command,
        **_step_details(kind, result),
    )


def _step_details(kind: StepKind, result: ResticResult) -> dict[str, Any]:
    """What restic said the step did (removed snapshots, copies, what check read)."""
    from .restic.summaries import check_summary, parse_copy, parse_forget

    if kind is StepKind.FORGET and result.stdout:
        return {"forget": parse_forget(result.stdout)}
    if kind is StepKind.COPY and result.exit_code is not None:
        # A failed copy may still have copied some snapshots before it stopped.
        return {"copy": parse_copy(result.stdout)}
    if kind is StepKind.CHECK and result.exit_code is not None:
        return {"check": check_summary(result.args)}
    return {}


__all__ = ["COMMANDS", "RUN_ERROR", "Interrupt", "RunOptions", "RunState"]
