"""The workflows: ``backup``, ``default`` (bare ``resticm``) and ``full``, over explicit phases.

    lock -> [preflight] -> pre_backup -> backup -> post_backup -> [forget -> prune -> check]
         -> on_success | on_error -> finally -> unlock

Every rule of DESIGN §3 is decided here, in one place, and each is a test row in
``tests/test_workflow_rules.py``. The functions below read top to bottom in the
order things happen; :class:`_Run` only holds the state they share.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import attrs

from .builtins.python_callable import PythonHook
from .config import PRIMARY, Config, Repository
from .errors import LockHeldError, ResticmError, ResticNotFoundError, UsageError
from .hooks import Hook, HookContext, LoggingSink, OutputSink, failed_result, hook_environment
from .locking import ProcessLock, lock_key
from .logcontext import log_context
from .notifiers import RunNotifications
from .phases import (
    BackupStatus,
    BackupSummary,
    HookResult,
    Outcome,
    Phase,
    PhaseResult,
    RunReport,
    StepResult,
)
from .plugin_manager import PluginRegistry
from .restic import (
    Restic,
    ResticErrorKind,
    ResticResult,
    ResticRunner,
    SubprocessResticRunner,
    backup_args,
)
from .secrets import Redactor, redact_url
from .snapshot_count import survey_snapshots

log = logging.getLogger("resticm_core")

#: Commands :func:`run` accepts.
COMMANDS = ("backup", "default", "full", "forget", "prune", "check", "copy")
#: Commands that only maintain repositories: no backup and no hooks (as the Go tool).
MAINTENANCE_COMMANDS = ("forget", "prune", "check", "copy")
#: Signals that interrupt a run cleanly (the child is stopped, cleanup hooks run).
INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

HookLike = Hook | Callable[[HookContext], Any]


@attrs.frozen(kw_only=True)
class RunOptions:
    """The flags of one run. Field names follow the CLI flags."""

    command: str = "backup"
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


class _Interrupt:
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


@contextmanager
def _signal_handlers(interrupt: _Interrupt, install: bool) -> Iterator[None]:
    if not install or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, interrupt) for signum in INTERRUPT_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Run:
    """The state one invocation builds up: results, errors, the backup's status."""

    def __init__(
        self,
        config: Config,
        options: RunOptions,
        *,
        registry: PluginRegistry,
        restic: Restic,
        extra_hooks: Mapping[Phase, Sequence[Hook]],
        output: OutputSink,
        environ: Mapping[str, str],
        interrupt: _Interrupt,
        redactor: Redactor,
        on_backup_status: Callable[[Mapping[str, Any]], None] | None,
    ) -> None:
        self.config = config
        self.options = options
        self.registry = registry
        self.restic = restic
        self.extra_hooks = extra_hooks
        self.output = output
        self.environ = environ
        self.interrupt = interrupt
        self.redactor = redactor
        self.on_backup_status = on_backup_status
        self.started = time.time()
        self.phases: list[PhaseResult] = []
        self.steps: list[StepResult] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.backup_status = BackupStatus.NOT_RUN
        self.backup_started = False
        self.summary: BackupSummary | None = None

    # -- recording ---------------------------------------------------------------

    def error(self, text: str) -> None:
        text = self.redactor.redact(text)
        self.errors.append(text)
        log.error("%s", text)

    def warn(self, text: str) -> None:
        text = self.redactor.redact(text)
        self.warnings.append(text)
        log.warning("%s", text)

    def record_step(self, step: StepResult) -> StepResult:
        step = attrs.evolve(step, error=self.redactor.redact(step.error))
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
            "RESTICM_COMMAND": self.options.command,
            "RESTICM_CONFIG": str(self.config.source_path or ""),
            "RESTICM_REPOSITORY": redact_url(self.config.repository),
            "RESTICM_DRY_RUN": "1" if self.options.dry_run else "0",
            "RESTICM_HOST": self.config.hostname,
        }
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
            f"{s.name.removeprefix('dump ')}={s.summary.snapshot_id}"
            for s in self.steps
            if s.name.startswith("dump ") and s.outcome is Outcome.OK and s.summary
        ]
        if dumps and phase is not Phase.PRE_BACKUP:
            # "postgresql:app=1bb9ed51 mariadb:shop=bacafe0a": the snapshot of each dump.
            variables["RESTICM_DUMP_SNAPSHOTS"] = " ".join(dumps)
        return variables

    def _backup_error(self) -> str:
        for step in reversed(self.steps):
            if step.name == "backup" and step.error:
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
        )
        results: list[HookResult] = []
        finished = getattr(self.output, "hook_finished", None)  # optional sink method
        for hook in hooks:
            with log_context(phase=phase.value, hook=hook.describe()):
                done = _run_one_hook(hook, ctx)
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
        name: str,
        repository: Repository,
        args_preview: Sequence[str],
        action: Callable[[], ResticResult],
    ) -> StepResult:
        """Run one restic step, or only show it in a dry run or after an interrupt."""
        with log_context(phase=name, repository=repository.name):
            step = self.execute_step(name, repository, args_preview, action)
            if step.failed:
                self.error(step.error)  # restic's message names the command and repository
        return self.record_step(step)

    def execute_step(
        self,
        name: str,
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
                name=name, repository=repository.name, outcome=Outcome.SKIPPED, command=command
            )
        if self.interrupted:
            return StepResult(
                name=name,
                repository=repository.name,
                outcome=Outcome.SKIPPED,
                command=command,
                error=f"not run: interrupted by {self.interrupt.name}",
            )
        # Set here too: backend chains run in worker threads, which start with no context.
        with log_context(command=self.options.command, phase=name, repository=repository.name):
            result = action()
        step = _step_from_result(name, repository.name, command, result)
        if step.failed and self.interrupt.stop.is_set():  # the signal came during the step
            step = attrs.evolve(step, error=f"interrupted by {self.interrupt.name}")
        return step

    # -- the report ---------------------------------------------------------------------------

    def report(self) -> RunReport:
        if self.interrupt.signum is not None:
            exit_code = 128 + self.interrupt.signum
        elif self.errors:
            exit_code = 1
        elif self.backup_status is BackupStatus.PARTIAL:
            exit_code = 3
        else:
            exit_code = 0
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
            exit_code=exit_code,
        )


def _run_one_hook(hook: Hook, ctx: HookContext) -> Sequence[HookResult]:
    try:
        return hook.run(ctx)
    except Exception as exc:  # a plugin's bug fails its hook, never the whole run
        log.debug("hook %s crashed", hook.describe(), exc_info=True)
        return [
            failed_result(
                name=hook.describe(),
                kind=hook.kind,
                phase=ctx.phase,
                error=f"hook crashed: {type(exc).__name__}: {exc}",
            )
        ]


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


def _step_from_result(name: str, repository: str, command: str, result: ResticResult) -> StepResult:
    if result.ok:
        outcome = Outcome.OK
    elif result.error_kind is ResticErrorKind.PARTIAL:
        outcome = Outcome.PARTIAL
    else:
        outcome = Outcome.FAILED
    return StepResult(
        name=name,
        repository=repository,
        outcome=outcome,
        duration=result.duration,
        error="" if result.ok else result.message,
        exit_code=result.exit_code,
        command=command,
    )


# -- the phases, in order -----------------------------------------------------------------------


def _check_restic(run: _Run) -> bool:
    """Is restic there at all? Checked before any hook stops a service.

    A ``PATH`` lookup, not a ``restic version`` process: raw restic starts no
    such process either (the version is read only when ``retry_lock`` needs it)."""
    try:
        run.restic.ensure_installed()
    except ResticNotFoundError as exc:
        run.error(str(exc))
        return False
    return True


def _preflight(run: _Run) -> bool:
    """One read-only probe before pre_backup hooks stop services (DESIGN §10)."""
    wanted = (
        run.config.preflight
        and not run.options.no_hooks
        and not run.options.dry_run
        and bool(run.hooks_for(Phase.PRE_BACKUP))
    )
    if not wanted:
        return True
    repo = run.config.primary_repository()
    step = run.restic_step(
        "preflight", repo, ["--no-lock", "cat", "config"], lambda: run.restic.cat_config(repo)
    )
    return not step.failed


def _missing_sources(config: Config) -> list[str]:
    problems = []
    if not config.directories and not config.dumps:
        problems.append("no directories to back up: set 'directories' in the config")
    for directory in config.directories:
        path = Path(os.path.expanduser(directory))
        if not path.exists():
            problems.append(f"source directory {directory} does not exist")
    return problems


def _backup_repository(run: _Run) -> Repository:
    """The primary, or the active backend (``resticm backend use``) for ``backup``."""
    if run.options.command == "backup" and run.options.target:
        from .mirror import resolve_repository  # lazy: mirror imports lockcheck

        return resolve_repository(run.config, run.options.target)
    return run.config.primary_repository()


def _dump_steps(run: _Run) -> bool:
    """Each ``dumps:`` database streamed into its own snapshot (resticm_core.dumps).

    Returns False at the first failed dump: like a pre_backup failure, the file
    backup then does not run (DESIGN §3), and the dumps after it are not taken.
    """
    from .dumps import (
        DumpContext,
        DumpError,
        StreamRequest,
        backup_stdin_args,
        dump_environment,
        dump_name,
        stream_dump,
    )

    config = run.config
    repo = _backup_repository(run)
    ctx = DumpContext(
        env=dump_environment(run.environ),
        config_dir=config.config_dir,
        dry_run=run.options.dry_run,
        cancel=run.interrupt.stop,
    )
    tags = (*config.default_tags, *run.options.tags)

    def fail(name: str, error: str, step: StepResult | None = None) -> bool:
        run.record_step(
            step or StepResult(name=name, repository=repo.name, outcome=Outcome.FAILED, error=error)
        )
        run.error(f"{name} failed: {error}; backup skipped")
        return False

    for source in config.dumps:
        try:
            problems = source.check(ctx)
            targets = () if problems else source.targets(ctx)
        except DumpError as exc:
            return fail(f"dump {source.label}", str(exc))
        except Exception as exc:  # a plugin's bug fails the dump, never the whole run
            log.debug("dump source %s crashed", source.describe(), exc_info=True)
            return fail(f"dump {source.label}", f"dump type crashed: {type(exc).__name__}: {exc}")
        if problems:
            return fail(f"dump {source.label}", "; ".join(problems))
        for target in targets:
            request = StreamRequest(source=source, target=target, tags=tags, host=config.hostname)
            name = f"dump {dump_name(source, target.database)}"
            shown = (
                f"{target.command.shown()} | "
                f"{run.restic.describe(backup_stdin_args(request), repo)}"
            )
            if run.options.dry_run:
                log.info("[dry-run] would run: %s", shown)
                run.record_step(
                    StepResult(
                        name=name, repository=repo.name, outcome=Outcome.SKIPPED, command=shown
                    )
                )
                continue
            if run.interrupted:
                return fail(name, f"not run: interrupted by {run.interrupt.name}")
            log.info("dumping %s into %s", dump_name(source, target.database), repo.name)
            outcome = stream_dump(
                run.restic,
                repo,
                request,
                env=ctx.env,
                cancel=run.interrupt.stop,
                on_line=functools.partial(run.output.hook_line, name),
            )
            step = StepResult(
                name=name,
                repository=repo.name,
                outcome=Outcome.OK if outcome.ok else Outcome.FAILED,
                duration=outcome.duration,
                error=outcome.error,
                exit_code=outcome.exit_code,
                command=shown,
                summary=outcome.summary,
            )
            if outcome.gone:
                # Listed by `all`, then dropped before its dump: nothing left to back up.
                run.warn(f"{name} skipped: the database was dropped after it was listed")
                run.record_step(attrs.evolve(step, outcome=Outcome.SKIPPED))
                continue
            if not outcome.ok:
                return fail(name, outcome.error, step)
            run.record_step(step)
    return True


def _backup_step(run: _Run) -> None:
    """The restic backup itself; sets the backup status the later hooks see."""
    config = run.config
    repo = _backup_repository(run)
    if not config.directories and config.dumps:
        # Only dumps to back up: they ran (and succeeded) just before.
        run.backup_started = True
        run.backup_status = BackupStatus.SUCCESS
        return
    problems = _missing_sources(config)
    if problems and run.options.dry_run:
        # A pre_backup hook may create the directory; a dry run runs no hook.
        for problem in problems:
            run.warn(f"{problem} (now; a pre_backup hook may create it)")
    elif problems:
        # restic 0.14 silently skips a missing directory when another exists: refuse.
        run.backup_started = True
        run.backup_status = BackupStatus.FAILURE
        error = "; ".join(problems)
        run.error(f"backup on {repo.name}: {error}")
        run.record_step(
            StepResult(name="backup", repository=repo.name, outcome=Outcome.FAILED, error=error)
        )
        return
    exclude_file = config.exclude_file or None
    if exclude_file and not Path(os.path.expanduser(exclude_file)).is_file():
        run.warn(f"exclude_file {exclude_file} does not exist; backing up without it")
        exclude_file = None
    tags = (*config.default_tags, *run.options.tags)
    paths = [os.path.expanduser(d) for d in config.directories]
    preview = backup_args(
        paths,
        tags=tags,
        excludes=config.exclude_patterns,
        exclude_file=exclude_file,
        host=config.hostname,
    )

    def action() -> ResticResult:
        run.backup_started = True
        outcome = run.restic.backup(
            repo,
            paths,
            tags=tags,
            excludes=config.exclude_patterns,
            exclude_file=exclude_file,
            host=config.hostname,
            on_status=run.on_backup_status,
        )
        run.summary = outcome.summary
        return outcome.result

    step = run.restic_step("backup", repo, preview, action)
    if step.outcome is Outcome.SKIPPED:
        # Show the rest of the path a real run would take (post_backup would run).
        run.backup_started = run.options.dry_run
        return
    if run.summary is not None:
        run.steps[-1] = step = attrs.evolve(step, summary=run.summary)
    if step.outcome is Outcome.OK:
        run.backup_status = BackupStatus.SUCCESS
    elif step.outcome is Outcome.PARTIAL:
        run.backup_status = BackupStatus.PARTIAL
        run.warn(f"backup on {repo.name} is partial: {step.error}")
    else:
        run.backup_status = BackupStatus.FAILURE


def _backup_sequence(run: _Run) -> bool:
    """pre_backup -> backup -> post_backup. Returns False when the run must stop here."""
    aborting_command = run.options.command in ("backup", "full")
    if not _preflight(run):
        run.backup_status = BackupStatus.FAILURE
        return not aborting_command
    pre = run.run_phase(Phase.PRE_BACKUP)
    if pre.failed:
        run.error(f"pre_backup failed: {pre.error}; backup skipped")
        return not aborting_command
    if pre.soft_skip:
        run.backup_status = BackupStatus.SKIPPED
        log.info("a pre_backup hook asked to skip this backup (exit 75): backup skipped")
        return True
    if run.interrupted:
        run.error(f"interrupted by {run.interrupt.name} before the backup")
        return False
    if run.config.dumps and not _dump_steps(run):
        run.backup_status = BackupStatus.FAILURE
        return not aborting_command
    _backup_step(run)
    if run.backup_started:
        post = run.run_phase(Phase.POST_BACKUP)
        if post.failed:
            run.warn(f"post_backup failed: {post.error}")
    return True


def _maintenance(run: _Run) -> None:
    """forget / prune / check on the primary, then copy + the same on each backend."""
    from .mirror import maintenance  # lazy: a plain ``backup`` needs no mirror

    maintenance(run)


def _result_hooks(run: _Run) -> None:
    """on_success or on_error, exactly once, after every step; then finally."""
    if run.interrupted and not any(run.interrupt.name in e for e in run.errors):
        run.error(f"interrupted by {run.interrupt.name}")
    result_phase = Phase.ON_ERROR if run.errors else Phase.ON_SUCCESS
    for phase in (result_phase, Phase.FINALLY):
        outcome = run.run_phase(phase)
        if outcome.failed:
            run.warn(f"{phase.value} failed: {outcome.error}")


def _workflow(run: _Run) -> None:
    if not _check_restic(run):
        _result_hooks(run)
        return
    wants_backup = run.options.command in ("backup", "full") or (
        run.options.command == "default" and not run.options.no_backup
    )
    if wants_backup and not _backup_sequence(run):
        _result_hooks(run)
        return
    if run.options.command in MAINTENANCE_COMMANDS:
        # As the Go tool: maintenance commands run no hook (notifications still see the report).
        _maintenance(run)
        return
    if run.options.command != "backup":
        _maintenance(run)
    _result_hooks(run)


# -- the public entry point ------------------------------------------------------------------


def _normalise_hooks(
    hooks: Mapping[Phase | str, Sequence[HookLike]] | None,
) -> dict[Phase, list[Hook]]:
    normalised: dict[Phase, list[Hook]] = {}
    for key, entries in (hooks or {}).items():
        try:
            phase = Phase(key)
        except ValueError:
            valid = ", ".join(p.value for p in Phase)
            raise UsageError(f"unknown hook phase {key!r} (phases: {valid})") from None
        for entry in entries:
            hook = entry if isinstance(entry, Hook) else PythonHook.from_function(entry)
            normalised.setdefault(phase, []).append(hook)
    return normalised


def run(
    config: Config,
    command: str = "backup",
    *,
    dry_run: bool = False,
    no_hooks: bool = False,
    tags: Sequence[str] = (),
    options: RunOptions | None = None,
    hooks: Mapping[Phase | str, Sequence[HookLike]] | None = None,
    plugins: Sequence[object] = (),
    registry: PluginRegistry | None = None,
    runner: ResticRunner | None = None,
    output: OutputSink | None = None,
    environ: Mapping[str, str] | None = None,
    handle_signals: bool = False,
    lock_dir: Path | None = None,
    on_backup_status: Callable[[Mapping[str, Any]], None] | None = None,
    verbose: bool = False,
) -> RunReport:
    """Run one resticm command and return what happened.

    :param config: from :func:`load_config` or :func:`config_from_dict`.
    :param command: ``"backup"``, ``"default"`` (the bare ``resticm``) or ``"full"``.
    :param options: every flag at once; *command*, *dry_run*, *no_hooks* and *tags*
        are shortcuts that override its fields.
    :param hooks: extra hooks for this run only, by phase: :class:`Hook` instances or
        plain functions taking a :class:`HookContext` (run after the configured ones).
    :param plugins: plugin modules/objects to register for this run.
    :param runner: the restic seam; default runs the real ``restic``.
    :param handle_signals: install SIGTERM/SIGINT/SIGHUP handlers (main thread only)
        so a signal stops the running child and the cleanup hooks still run.
    :returns: a :class:`RunReport`; ``report.exit_code`` follows DESIGN §8. Expected
        failures are in the report, not raised; a held lock gives exit code 75.
    """
    opts = attrs.evolve(
        options or RunOptions(),
        command=command,
        dry_run=dry_run or (options.dry_run if options else False),
        no_hooks=no_hooks or (options.no_hooks if options else False),
        tags=tuple(tags) or (options.tags if options else ()),
    )
    if opts.command not in COMMANDS:
        raise UsageError(f"unknown command {opts.command!r} (commands: {', '.join(COMMANDS)})")
    environ = dict(os.environ if environ is None else environ)
    if registry is not None and plugins:
        raise UsageError(
            "pass plugins= or registry=, not both (register the plugins in the registry)"
        )
    registry = registry or PluginRegistry.default(plugins=plugins)
    redactor = Redactor(
        [*config.secrets()],
        urls=[config.repository, *(b.repository for b in config.backends.values())],
    )
    interrupt = _Interrupt()
    restic_runner = runner or SubprocessResticRunner(
        environ=environ,
        password_provider=registry.repository_password,
        on_command=(lambda line: log.info("$ %s", line)) if verbose else None,
    )
    restic = Restic(
        restic_runner,
        cancel=interrupt.stop,
        timeouts=config.timeouts.as_mapping(),
        retry_lock=config.retry_lock,
        retries=config.retries,
    )
    state = _Run(
        config,
        opts,
        registry=registry,
        restic=restic,
        extra_hooks=_normalise_hooks(hooks),
        output=output or LoggingSink(log),
        environ=environ,
        interrupt=interrupt,
        redactor=redactor,
        on_backup_status=on_backup_status,
    )
    # Notifications (never in a dry run) capture the run's log tail from here on.
    notify = RunNotifications(
        config,
        opts.command,
        dry_run=opts.dry_run,
        notify_success=opts.notify_success,
        redactor=redactor,
        logger=log,
    )
    lock = ProcessLock(lock_key(config.source_path, config.repository), lock_dir=lock_dir)
    try:
        lock.acquire(wait=opts.lock_wait)
    except (LockHeldError, ResticmError) as exc:
        # No hooks: on_error could restart services the other run just stopped.
        state.error(str(exc))
        report = state.report()
        if isinstance(exc, LockHeldError):
            report = attrs.evolve(report, exit_code=LockHeldError.exit_code)
        notify.finished(report)  # an early failure is notified too
        notify.close()
        registry.run_finished(report, config)
        return report
    try:
        with _signal_handlers(interrupt, handle_signals), log_context(command=opts.command):
            log.info(
                "resticm %s started on %s%s",
                opts.command,
                config.hostname,
                " (dry run)" if opts.dry_run else "",
            )
            notify.started()
            _workflow(state)
            # Before the report: the webhook's report and the textfile both carry them.
            surveyed = survey_snapshots(
                restic,
                config,
                state.steps,
                dry_run=opts.dry_run,
                stopped=lambda: state.interrupted,
                redact=redactor.redact,
            )
        report = attrs.evolve(
            state.report(),
            snapshot_counts={name: found.count for name, found in surveyed.items()},
            snapshot_latest={
                name: found.newest_time
                for name, found in surveyed.items()
                if found.newest_time is not None
            },
        )
        notify.finished(report)  # DESIGN §3: ... finally -> notify -> unlock
    finally:
        notify.close()
        lock.release()
    registry.run_finished(report, config)
    log.info(
        "resticm %s finished with exit code %d",
        opts.command,
        report.exit_code,
        extra={"command": opts.command},
    )
    return report


def run_phase_hooks(
    config: Config,
    phase: Phase | str,
    *,
    backup_status: BackupStatus = BackupStatus.SUCCESS,
    error: str = "",
    registry: PluginRegistry | None = None,
    output: OutputSink | None = None,
    environ: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> PhaseResult:
    """Run one phase's hooks alone, with the environment they would get in a run.

    What ``resticm hooks run PHASE`` does: test hooks without running a backup.
    """
    try:
        phase = Phase(phase)
    except ValueError:
        valid = ", ".join(p.value for p in Phase)
        raise UsageError(f"unknown hook phase {phase!r} (phases: {valid})") from None
    registry = registry or PluginRegistry.default()
    state = _Run(
        config,
        RunOptions(command="hooks", dry_run=dry_run),
        registry=registry,
        restic=Restic(SubprocessResticRunner()),
        extra_hooks={},
        output=output or LoggingSink(log),
        environ=dict(os.environ if environ is None else environ),
        interrupt=_Interrupt(),
        redactor=Redactor(config.secrets()),
        on_backup_status=None,
    )
    state.backup_status = backup_status
    if error:
        state.errors.append(error)
    return state.run_phase(phase)


__all__ = ["COMMANDS", "PRIMARY", "RunOptions", "run", "run_phase_hooks"]
