"""The workflows: ``backup``, ``default`` (bare ``resticm``) and ``full``, over explicit phases.

    lock -> [preflight] -> pre_backup -> backup -> post_backup -> [forget -> prune -> check]
         -> on_success | on_error -> finally -> unlock

Every rule of DESIGN §3 is decided here, in one place, and each is a test row in
``tests/test_workflow_rules.py``. The functions below read top to bottom in the
order things happen; :class:`RunState` only holds the state they share.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from .builtins.python_callable import PythonHook
from .children import KnownChildren, set_subreaper
from .config import PRIMARY, Config, Repository
from .errors import LockHeldError, ResticmError, ResticNotFoundError, UsageError
from .hooks import Hook, HookContext, LoggingSink, OutputSink
from .locking import ProcessLock, lock_key
from .logcontext import capture_logs, log_context
from .notify.events import RunNotifications
from .phases import (
    BackupStatus,
    Command,
    Outcome,
    Phase,
    PhaseResult,
    RunReport,
    StepKind,
    StepResult,
)
from .plugin_manager import PluginRegistry
from .preflight import Probe, forget_record, probe
from .progress import ProgressRunner, ProgressSink
from .restic import Restic, ResticResult, ResticRunner, SubprocessResticRunner, backup_args
from .restic_options import verify_extra_args
from .run_state import COMMANDS, Interrupt, RunOptions, RunState
from .secrets import Redactor
from .snapshot_count import survey_snapshots
from .state import default_state_dir

log = logging.getLogger("resticm_core")

#: Marks the log record of a run's end (``extra``): the CLI, which prints its own
#: summary, keeps it off its console.
RUN_FINISHED = "resticm_run_finished"

#: Commands that only maintain repositories: no backup and no hooks (as the Go tool).
MAINTENANCE_COMMANDS = (Command.FORGET, Command.PRUNE, Command.CHECK, Command.COPY)
#: Signals that interrupt a run cleanly (the child is stopped, cleanup hooks run).
INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

HookLike = Hook | Callable[[HookContext], Any]


@contextmanager
def _signal_handlers(interrupt: Interrupt, install: bool) -> Iterator[None]:
    if not install or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, interrupt) for signum in INTERRUPT_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# -- the phases, in order -----------------------------------------------------------------------


def _check_restic(run: RunState) -> bool:
    """Is restic there at all? Checked before any hook stops a service.

    A ``PATH`` lookup, not a ``restic version`` process: raw restic starts no
    such process either (the version is read only when ``retry_lock`` needs it)."""
    try:
        run.restic.ensure_installed()
    except ResticNotFoundError as exc:
        run.error(str(exc))
        return False
    return True


def _preflight(run: RunState) -> bool:
    """One read-only probe before pre_backup hooks stop services (DESIGN §10)."""
    wanted = (
        run.config.preflight
        and not run.options.no_hooks
        and not run.options.dry_run
        and bool(run.hooks_for(Phase.PRE_BACKUP))
    )
    if not wanted:
        return True
    # The repository the backup will write to: the active backend when one is in use.
    repo = _backup_repository(run)
    answers: list[Probe] = []

    def action() -> ResticResult:
        # Cheap where a file or a TCP connect tells the truth, restic otherwise
        # (resticm_core.preflight says which, and why).
        answers.append(probe(run.restic, repo, state_dir=_state_dir(run), environ=run.environ))
        return answers[0].result

    step = run.restic_step(StepKind.PREFLIGHT, repo, ["--no-lock", "cat", "config"], action)
    if answers and answers[0].repository_id:
        run.repository_ids[repo.name] = answers[0].repository_id
    return not step.failed


def _state_dir(run: RunState) -> Path:
    return run.options.state_dir or default_state_dir(run.environ)


def _missing_sources(config: Config) -> list[str]:
    problems = []
    if not config.directories and not config.dumps:
        problems.append("no directories to back up: set 'directories' in the config")
    for directory in config.directories:
        path = Path(os.path.expanduser(directory))
        if not path.exists():
            problems.append(f"source directory {directory} does not exist")
    return problems


def _backup_repository(run: RunState) -> Repository:
    """The primary, or the active backend (``resticm backend use``) for ``backup``."""
    if run.options.command == "backup" and run.options.target:
        from .mirror import resolve_repository  # lazy: mirror imports lockcheck

        return resolve_repository(run.config, run.options.target)
    return run.config.primary_repository()


def _dump_steps(run: RunState) -> bool:
    """Each ``dumps:`` database streamed into its own snapshot (resticm_core.dumps).

    Returns False at the first failed dump: like a pre_backup failure, the file
    backup then does not run (DESIGN §3), and the dumps after it are not taken.
    """
    from .dump_stream import StreamRequest, backup_stdin_args, stream_dump
    from .dumps import DumpContext, DumpError, dump_environment, dump_name

    config = run.config
    repo = _backup_repository(run)
    ctx = DumpContext(
        env=dump_environment(run.environ),
        config_dir=config.config_dir,
        dry_run=run.options.dry_run,
        cancel=run.interrupt.stop,
    )
    tags = (*config.default_tags, *run.options.tags)

    def fail(subject: str, error: str, step: StepResult | None = None) -> bool:
        step = step or StepResult(
            kind=StepKind.DUMP,
            subject=subject,
            repository=repo.name,
            outcome=Outcome.FAILED,
            error=error,
        )
        run.record_step(step)
        run.error(f"{step} failed: {error}; backup skipped")
        return False

    for source in config.dumps:
        try:
            problems = source.check(ctx)
            targets = () if problems else source.targets(ctx)
        except DumpError as exc:
            return fail(source.label, str(exc))
        except Exception as exc:  # a plugin's bug fails the dump, never the whole run
            log.debug("dump source %s crashed", source.describe(), exc_info=True)
            return fail(source.label, f"dump type crashed: {type(exc).__name__}: {exc}")
        if problems:
            return fail(source.label, "; ".join(problems))
        for target in targets:
            request = StreamRequest(source=source, target=target, tags=tags, host=config.hostname)
            subject = dump_name(source, target.database)
            shown = (
                f"{target.command.shown()} | "
                f"{run.restic.describe(backup_stdin_args(request), repo)}"
            )
            if run.options.dry_run:
                log.info("[dry-run] would run: %s", shown)
                run.record_step(
                    StepResult(
                        kind=StepKind.DUMP,
                        subject=subject,
                        repository=repo.name,
                        outcome=Outcome.SKIPPED,
                        command=shown,
                    )
                )
                continue
            if run.interrupted:
                return fail(subject, f"not run: interrupted by {run.interrupt.name}")
            log.info("dumping %s into %s", dump_name(source, target.database), repo.name)
            outcome = stream_dump(
                run.restic,
                repo,
                request,
                env=ctx.env,
                cancel=run.interrupt.stop,
                on_line=functools.partial(run.output.hook_line, f"{StepKind.DUMP.value} {subject}"),
            )
            step = StepResult(
                kind=StepKind.DUMP,
                subject=subject,
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
                run.warn(f"{step} skipped: the database was dropped after it was listed")
                run.record_step(attrs.evolve(step, outcome=Outcome.SKIPPED))
                continue
            if not outcome.ok:
                return fail(subject, outcome.error, step)
            run.record_step(step)
    return True


def _backup_step(run: RunState) -> None:
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
            StepResult(
                kind=StepKind.BACKUP, repository=repo.name, outcome=Outcome.FAILED, error=error
            )
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

    step = run.restic_step(StepKind.BACKUP, repo, preview, action)
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


def _backup_sequence(run: RunState) -> bool:
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
    if run.backup_status is BackupStatus.FAILURE and not run.options.dry_run:
        # The key may have gone on the server (a remote record cannot see key files):
        # the next run's preflight asks restic again.
        forget_record(_state_dir(run), _backup_repository(run))
    if run.backup_started:
        post = run.run_phase(Phase.POST_BACKUP)
        if post.failed:
            run.warn(f"post_backup failed: {post.error}")
    return True


def _maintenance(run: RunState) -> None:
    """forget / prune / check on the primary, then copy + the same on each backend."""
    from .mirror import maintenance  # lazy: a plain ``backup`` needs no mirror

    maintenance(run)


def _result_hooks(run: RunState) -> None:
    """on_success or on_error, exactly once, after every step; then finally."""
    if run.interrupted and not any(run.interrupt.name in e for e in run.errors):
        run.error(f"interrupted by {run.interrupt.name}")
    result_phase = Phase.ON_ERROR if run.errors else Phase.ON_SUCCESS
    for phase in (result_phase, Phase.FINALLY):
        outcome = run.run_phase(phase)
        if outcome.failed:
            run.warn(f"{phase.value} failed: {outcome.error}")


def _workflow(run: RunState) -> None:
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
    subreaper: bool = False,
    progress: ProgressSink | None = None,
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
    :param subreaper: make this process a child subreaper for the run, so what a
        hook daemonised (``setsid``) is reparented to it and stopped when the hook
        ends. It changes the whole process (orphans of *any* of its children come
        to it), so it is opt-in: the CLI sets it.
    :param progress: receives the progress of each restic command as it runs
        (:class:`~resticm_core.progress.TerminalProgress` draws the CLI's line).
    :returns: a :class:`RunReport`; ``report.exit_code`` follows DESIGN §8. Expected
        failures are in the report, not raised; a held lock gives exit code 75.
        Bad arguments (an unknown command or hook phase) raise :class:`UsageError`;
        an ``extra_args`` flag the restic present refuses raises :class:`ConfigError`
        before the lock is taken (no hook runs).

    Runs in one process do not share anything: several may run at once in
    threads, each capturing only its own log records for its notifications.
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
    interrupt = Interrupt()
    children = KnownChildren()
    restic_runner = runner or SubprocessResticRunner(
        environ=environ,
        password_provider=registry.repository_password,
        on_command=(lambda line: log.info("$ %s", line)) if verbose else None,
        children=children,
    )
    if isinstance(restic_runner, SubprocessResticRunner):
        # Before the lock and any hook (issue 18): a flag this restic does not know
        # would fail the step after pre_backup stopped the services.
        verify_extra_args(config, environ=environ, binary=restic_runner.binary)
    if progress is not None:
        restic_runner = ProgressRunner(restic_runner, progress)
    restic = Restic(
        restic_runner,
        cancel=interrupt.stop,
        timeouts=config.timeouts.as_mapping(),
        retry_lock=config.retry_lock,
        retries=config.retries,
    )
    state = RunState(
        config=config,
        options=opts,
        registry=registry,
        restic=restic,
        extra_hooks=_normalise_hooks(hooks),
        output=output or LoggingSink(log),
        environ=environ,
        interrupt=interrupt,
        redactor=redactor,
        on_backup_status=on_backup_status,
        children=children,
    )
    # Notifications (never in a dry run) get this run's log tail: the records logged
    # in this run's context only (threads of other runs set their own), never a
    # handler of its own on the shared logger.
    notify = RunNotifications(
        config,
        opts.command,
        dry_run=opts.dry_run,
        notify_success=opts.notify_success,
        redactor=redactor,
    )
    key = lock_key(config.source_path, config.repository, config.job)
    lock = ProcessLock(key, lock_dir=lock_dir)
    with capture_logs(notify.log_tail):
        report = _locked_run(
            state, notify, lock, handle_signals=handle_signals, subreaper=subreaper
        )
    registry.run_finished(report, config)
    return report


def _locked_run(
    state: RunState,
    notify: RunNotifications,
    lock: ProcessLock,
    *,
    handle_signals: bool,
    subreaper: bool,
) -> RunReport:
    """lock -> the workflow -> notify -> unlock; a lock that cannot be taken is a report."""
    opts = state.options
    try:
        lock.acquire(wait=opts.lock_wait)
    except (LockHeldError, ResticmError, OSError) as exc:
        # No hooks: on_error could restart services the other run just stopped.
        if isinstance(exc, OSError):  # the lock directory or file is unusable
            state.error(f"cannot take the process lock {lock.path}: {exc.strerror or exc}")
        else:
            state.error(str(exc))
        report = state.report()
        if isinstance(exc, LockHeldError):
            report = attrs.evolve(report, exit_code=LockHeldError.exit_code)
        notify.finished(report)  # an early failure is notified too
        return report
    reaping = subreaper and set_subreaper(True)
    try:
        with _signal_handlers(state.interrupt, handle_signals), log_context(command=opts.command):
            log.info(
                "resticm %s started on %s%s",
                opts.command,
                state.config.hostname,
                " (dry run)" if opts.dry_run else "",
            )
            notify.started()
            _workflow(state)
            # Before the report: the webhook's report and the textfile both carry them.
            surveyed = survey_snapshots(
                state.restic,
                state.config,
                state.steps,
                dry_run=opts.dry_run,
                stopped=lambda: state.interrupted,
                redact=state.redactor.redact,
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
        if reaping:
            set_subreaper(False)
        lock.release()
    log.info(
        "resticm %s finished with exit code %d",
        opts.command,
        report.exit_code,
        # The CLI prints its summary instead on the console (one summary, not two).
        extra={"command": opts.command, RUN_FINISHED: True},
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
    state = RunState(
        config=config,
        options=RunOptions(command=Command.HOOKS, dry_run=dry_run),
        registry=registry,
        restic=Restic(SubprocessResticRunner()),
        output=output or LoggingSink(log),
        environ=dict(os.environ if environ is None else environ),
        redactor=Redactor(config.secrets()),
    )
    state.backup_status = backup_status
    if error:
        state.errors.append(error)
    return state.run_phase(phase)


__all__ = ["COMMANDS", "PRIMARY", "RunOptions", "RunState", "run", "run_phase_hooks"]
