"""Mirror sync: forget / prune / check on the primary, then copy + the same on each backend.

The maintenance half of the workflows (``default``, ``full``) and the
maintenance commands (``forget``, ``prune``, ``check``, ``copy``):

    primary:         forget -> prune -> check
    each backend:    copy -> forget -> prune -> check      (in parallel, copy_concurrency)

Every step is attempted: a failure is recorded and the rest continues, except
that a backend whose copy failed skips its own forget/prune/check (maintaining
a mirror that did not receive the new snapshots would only hide the problem).
Backend chains run in worker threads; their steps are recorded afterwards in
``copy_to_backends`` order, so a report reads the same every time.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import attrs

from .config import PRIMARY, Config, Repository
from .errors import UsageError
from .lockcheck import verify_locks
from .logcontext import log_context
from .phases import Outcome, StepKind, StepResult
from .policy import APPEND_ONLY, effective_policy, repository_steps
from .restic import ResticResult, check_args, forget_args, printable_command
from .restic_options import command_args
from .state import DeepCheckState, default_state_dir, repository_id

if TYPE_CHECKING:
    from .run_state import RunOptions, RunState

log = logging.getLogger("resticm_core")


@attrs.frozen(kw_only=True)
class Plan:
    """Which steps run where, decided from the command and its flags."""

    forget: bool = False
    #: ``forget --prune`` in one restic call (the ``forget --prune`` command).
    forget_prune: bool = False
    prune: bool = False
    check: bool = False
    #: The repository the non-copy chain runs on (primary or the active backend); None: none.
    main: Repository | None = None
    #: Backends that get a chain of their own.
    backends: tuple[str, ...] = ()
    #: Backend chains start with a copy from the primary.
    copy: bool = False
    forget_host: str | None = None
    copy_host: str | None = None


def resolve_repository(config: Config, name: str | None) -> Repository:
    """The primary (None, ``""`` or ``primary``) or the backend *name*; UsageError if unknown."""
    if not name or name == PRIMARY:
        return config.primary_repository()
    try:
        return config.repository_named(name)
    except KeyError:
        defined = ", ".join(config.backends) or "none"
        raise UsageError(f"backend {name!r} not found (defined: {defined})") from None


def make_plan(options: RunOptions, config: Config) -> Plan:
    """The steps of *options.command* (see the module docstring and docs/commands.md)."""
    host = config.hostname
    command = options.command
    wide = options.all_hosts
    if command in ("default", "full"):
        full = command == "full"
        return Plan(
            forget=full or not options.no_forget,
            prune=full or (options.prune and not options.no_prune),
            check=full or ((options.check or options.deep) and not options.no_check),
            main=config.primary_repository(),
            backends=() if options.no_copy else config.copy_to_backends,
            copy=True,
            forget_host=None if wide else host,
            copy_host=None if (wide or options.copy_all) else host,
        )
    if command == "copy":
        targets = options.copy_to or config.copy_to_backends
        for name in targets:
            resolve_repository(config, name)
        return Plan(
            backends=tuple(targets), copy=True, copy_host=None if options.copy_all else host
        )
    single = options.target not in (None, "", PRIMARY)
    backends = () if single or options.primary_only else config.copy_to_backends
    return Plan(
        forget=command == "forget",
        forget_prune=command == "forget" and options.prune,
        prune=command == "prune",
        check=command == "check",
        main=resolve_repository(config, options.target),
        backends=backends,
        forget_host=None if wide else host,
    )


#: The ``step(kind, preview, action, shown=None)`` closure of :func:`_chain`.
_StepFn = Callable[..., StepResult]


@attrs.define
class _Chain:
    """The steps of one repository, gathered by a worker and recorded by the main thread."""

    steps: list[StepResult] = attrs.field(factory=list)
    warnings: list[str] = attrs.field(factory=list)
    #: (repository id, name) of successful deep checks: written by the main thread,
    #: so parallel chains never race on the state file.
    deep_checks: list[tuple[str, str]] = attrs.field(factory=list)


def maintenance(run: RunState) -> None:
    """Run the plan of *run*'s command; record every step."""
    plan = make_plan(run.options, run.config)
    primary = run.config.primary_repository()
    backup = next((s for s in run.steps if s.kind is StepKind.BACKUP), None)
    if run.config.verify_no_locks and backup is not None and backup.exit_code is not None:
        # The backup ran (it is not a dry run): it must not have left a lock either.
        _record(
            run, _Chain(steps=[_lock_step(run, resolve_repository(run.config, backup.repository))])
        )
    if plan.main is not None:
        _record(run, _chain(run, plan, plan.main, source=None))
    if not plan.backends:
        return
    repositories = [resolve_repository(run.config, name) for name in plan.backends]
    source = primary if plan.copy else None
    workers = max(1, min(run.config.copy_concurrency, len(repositories)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="resticm-backend") as pool:
        # Each chain in a copy of this context: its log records stay this run's
        # (logcontext.capture_logs), and its repository field stays its own.
        futures = [
            pool.submit(contextvars.copy_context().run, _chain, run, plan, repo, source=source)
            for repo in repositories
        ]
        chains = [future.result() for future in futures]
    for chain in chains:
        _record(run, chain)
    copied = any(
        s.kind is StepKind.COPY and s.outcome is not Outcome.SKIPPED
        for c in chains
        for s in c.steps
    )
    if copied and run.config.verify_no_locks:
        # The copies read the primary: none of them may have left a lock there.
        step = _lock_step(run, primary)
        if step.failed:
            run.error(step.error)
        run.record_step(step)


def _record(run: RunState, chain: _Chain) -> None:
    if chain.deep_checks:
        state = DeepCheckState(run.options.state_dir or default_state_dir(run.environ))
        for repo_id, name in chain.deep_checks:
            try:
                state.record_deep_check(repo_id, name)
            except OSError as exc:
                chain.warnings.append(f"cannot record the deep check of {name}: {exc}")
    for warning in chain.warnings:
        run.warn(warning)
    for step in chain.steps:
        if step.failed:
            # Recorded here, after the worker ended: say which step it was (JSON logs).
            with log_context(phase=step.name, repository=step.repository):
                run.error(step.error)
        run.record_step(step)


def _chain(run: RunState, plan: Plan, repo: Repository, *, source: Repository | None) -> _Chain:
    """copy (backends) -> forget -> prune -> check on *repo*, unrecorded (thread-safe)."""
    chain = _Chain()

    def step(
        kind: StepKind,
        preview: Sequence[str],
        action: Callable[[], ResticResult],
        shown: str | None = None,
    ) -> StepResult:
        result = _named_interruption(
            run, run.execute_step(kind, repo, preview, action, shown=shown)
        )
        chain.steps.append(result)
        ran = result.outcome is not Outcome.SKIPPED
        if ran and run.config.verify_no_locks:
            chain.steps.append(_lock_step(run, repo))
        return result

    policy = effective_policy(run.config, repo.name)
    wanted = repository_steps(plan, run.options, policy)
    if wanted.refused:
        log.info(
            "%s: %s not run: the repository's policy says never (%s)",
            repo.name,
            ", ".join(wanted.refused),
            APPEND_ONLY if not policy.forget else "prune/check: false",
        )
    if source is not None:
        copy = _copy_step(run, plan, repo, source, step)
        if copy.failed:
            log.warning("copy to %s failed: skipping its forget/prune/check", repo.name)
            for kind, skipped in (
                (StepKind.FORGET, wanted.forget),
                (StepKind.PRUNE, wanted.prune),
                (StepKind.CHECK, wanted.check),
            ):
                if skipped:
                    chain.steps.append(
                        StepResult(
                            kind=kind,
                            repository=repo.name,
                            outcome=Outcome.SKIPPED,
                            error="not run: the copy to this backend failed",
                        )
                    )
            return chain
    if wanted.forget:
        retention = policy.retention
        if retention.empty:
            chain.warnings.append(
                f"retention policy is empty (every keep_* is 0): forget skipped on {repo.name}"
            )
        else:
            policy_args = retention.forget_args()
            host, prune = plan.forget_host, wanted.forget_prune
            step(
                StepKind.FORGET,
                [*forget_args(policy_args, host=host, prune=prune), "--json"],  # as Restic.forget
                lambda: run.restic.forget(repo, policy_args, host=host, prune=prune),
            )
    if wanted.prune:
        step(StepKind.PRUNE, ["prune"], lambda: run.restic.prune(repo))
    if wanted.check:
        _check_step(run, repo, chain, step, policy.deep_check_interval_days)
    return chain


def _named_interruption(run: RunState, step: StepResult) -> StepResult:
    """A step the signal stopped says which command on which repository it stopped.

    The run's error list (and notifications) shows each error alone; with several
    backend chains running, a bare ``interrupted by SIGTERM`` names none of them.
    """
    bare = f"interrupted by {run.interrupt.name}"
    if not step.failed or step.error != bare:
        return step
    return attrs.evolve(step, error=f"restic {step.name} on {step.repository} {bare}")


def _copy_step(
    run: RunState,
    plan: Plan,
    repo: Repository,
    source: Repository,
    step: _StepFn,
) -> StepResult:
    args = ["copy", *(["--host", plan.copy_host] if plan.copy_host else [])]
    destination = copy_destination(repo, source)
    # The source goes through RESTIC_FROM_REPOSITORY: show it in the command line.
    shown = printable_command(
        command_args(args, repo), repo, {"RESTIC_FROM_REPOSITORY": source.url}
    )
    return step(
        StepKind.COPY,
        args,
        lambda: run.restic.copy(destination, source, host=plan.copy_host),
        shown,
    )


def copy_destination(destination: Repository, source: Repository) -> Repository:
    """*destination* whose environment also reaches *source*'s storage.

    restic reads one set of provider variables (``AWS_*``, ``B2_*``...) for both
    sides of a copy. The source's fill in only what the destination does not set
    itself: the destination's credentials are never overwritten (the Go tool
    overwrote them with the primary's AWS keys).
    """
    offered = {k: v for k, v in source.storage_environment().items() if not k.startswith("RESTIC_")}
    own = set(destination.storage_environment())
    added = {k: v for k, v in offered.items() if k not in own}
    if not added:
        return destination
    return attrs.evolve(destination, env={**added, **destination.env})


def _check_step(
    run: RunState,
    repo: Repository,
    chain: _Chain,
    step: _StepFn,
    interval_days: int,
) -> None:
    options = run.options
    state = DeepCheckState(options.state_dir or default_state_dir(run.environ))
    auto = (
        options.command == "full"
        or options.auto
        or (options.command == "default" and options.check)
    )
    deep = options.deep
    repo_id: str | None = None
    if not deep and auto and interval_days > 0:
        if options.dry_run:
            log.info(
                "[dry-run] the deep-check state would decide whether %s reads all data", repo.name
            )
        else:
            repo_id = _repository_id(run, repo)
            if repo_id is None:
                chain.warnings.append(
                    f"cannot read the id of {repo.name}: deep-check state not consulted"
                )
            elif state.is_due(repo_id, interval_days):
                log.info("deep check interval elapsed for %s: reading all data", repo.name)
                deep = True
    subset = options.subset
    result = step(
        StepKind.CHECK,
        check_args(read_data=deep, subset=subset),
        lambda: run.restic.check(repo, read_data=deep, subset=subset),
    )
    if deep and result.outcome is Outcome.OK:
        repo_id = repo_id or _repository_id(run, repo)
        if repo_id is None:
            chain.warnings.append(f"cannot read the id of {repo.name}: deep check not recorded")
            return
        chain.deep_checks.append((repo_id, repo.name))


def _repository_id(run: RunState, repo: Repository) -> str | None:
    known = run.repository_ids.get(repo.name)
    if known is not None:  # the preflight (or a first call) already asked: not twice
        return known
    result = run.restic.cat_config(repo)
    found = repository_id(result.stdout) if result.ok else None
    if found is not None:
        run.repository_ids[repo.name] = found
    return found


def _lock_step(run: RunState, repo: Repository) -> StepResult:
    started = time.monotonic()
    report = verify_locks(run.restic, repo, run_started=run.started)
    for lock in report.foreign:
        log.info("%s holds a lock of another host: %s", repo.name, lock.describe())
    return StepResult(
        kind=StepKind.LOCKS,
        repository=repo.name,
        outcome=Outcome.OK if report.ok else Outcome.FAILED,
        duration=time.monotonic() - started,
        error=report.message(),
        command=run.restic.describe(["--no-lock", "list", "locks"], repo),
    )


__all__ = ["Plan", "maintenance", "make_plan", "resolve_repository"]
