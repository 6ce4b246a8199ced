"""The events of a run: a :class:`~resticm_core.phases.RunReport` turned into the
Go tool's titles, bodies and details, the start/restore/probe events, the run's
log tail, and :class:`RunNotifications` (one run's start and result).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..phases import Phase, StepKind
from ..secrets import Redactor, redact_url
from .api import Event, EventStatus, HttpClient
from .dispatch import Delivery, notify_run, wants_start

if TYPE_CHECKING:
    from ..config import Config
    from ..phases import RunReport


log = logging.getLogger("resticm_core.notify")

# -- the run's log tail ------------------------------------------------------------------------


class LogTail(logging.Handler):
    """Keeps the last log lines of a run, up to *max_bytes*, redacted."""

    def __init__(self, redactor: Redactor, max_bytes: int = 100_000) -> None:
        super().__init__(logging.INFO)
        self.redactor = redactor
        self.max_bytes = max_bytes
        self._lines: collections.deque[str] = collections.deque()
        self._size = 0
        self.dropped = False
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.redactor.redact(self.format(record))
        except Exception:  # logging must never break the run
            return
        self._lines.append(line)
        self._size += len(line) + 1
        while self._size > self.max_bytes and self._lines:
            self._size -= len(self._lines.popleft()) + 1
            self.dropped = True

    def lines(self) -> tuple[str, ...]:
        return (("...",) if self.dropped else ()) + tuple(self._lines)


# -- events from a run -------------------------------------------------------------------------

_TITLES = {
    # command: (success title, success body verb phrase, failure title)
    "default": ("✅ Backup Successful", "Resticm backup", "❌ Backup Failed"),
    "backup": ("✅ Backup Completed", "resticm backup", "❌ Backup Failed"),
    "full": ("✅ Full Maintenance Completed", "resticm full", "❌ Full Maintenance Failed"),
}


def _duration(seconds: float) -> str:
    return f"{seconds:.1f}s"


def _used_repository(report: RunReport, config: Config) -> str:
    """The URL of the repository the run wrote to or checked (redacted): the active
    backend when the run used one (the Go tool's payloads name it), else the primary."""
    writes = (StepKind.BACKUP, StepKind.PREFLIGHT)
    names = {s.repository for s in report.steps if s.kind in writes}
    names = names or {s.repository for s in report.steps}
    if len(names) == 1:
        (name,) = names
        if name in config.backends:
            return redact_url(config.backends[name].repository)
    return redact_url(config.repository)


def _single_backend(report: RunReport) -> str | None:
    """The backend a maintenance command ran on alone (the Go tool's single-backend mode:
    an active backend other than the primary), else None (mirror mode)."""
    names = {s.repository for s in report.steps}
    if len(names) == 1:
        (name,) = names
        if name != "primary":
            return name
    return None


def report_details(report: RunReport, config: Config) -> dict[str, str]:
    """The facts of a run, in a fixed order, for every event about it."""
    details = {
        "host": report.host,
        "command": report.command,
        "repository": _used_repository(report, config),
        "duration": _duration(report.duration),
        "exit_code": str(report.exit_code),
    }
    if report.snapshot_id:
        details["snapshot"] = report.snapshot_id
    for step in report.steps:
        if step.summary is not None and step.kind is StepKind.BACKUP:
            details["files_new"] = str(step.summary.files_new)
            details["files_changed"] = str(step.summary.files_changed)
            details["data_added"] = str(step.summary.data_added)
            if step.summary.data_added_packed is not None:
                details["data_stored"] = str(step.summary.data_added_packed)
    # Which snapshots forget removed, per repository ("primary: 1a2b3c4d 5e6f7a8b").
    removed = [
        f"{s.repository}: {' '.join(r.id for r in s.forget.removed)}"
        for s in report.steps
        if s.forget is not None and s.forget.removed
    ]
    if removed:
        details["snapshots_removed"] = "; ".join(removed)
    failed = [s for s in report.steps if s.failed]
    for step in failed:
        details[f"{step.name}@{step.repository}"] = f"failed: {step.error}"
    # "; " as the Go tool joins them: one line in every chat message and header.
    if report.errors:
        details["errors"] = "; ".join(report.errors)
    if report.warnings:
        details["warnings"] = "; ".join(report.warnings)
    return details


def _pre_backup_failed(report: RunReport) -> bool:
    pre = report.phase(Phase.PRE_BACKUP)
    return pre is not None and pre.failed


def event_for_report(report: RunReport, config: Config, *, log_tail: Sequence[str] = ()) -> Event:
    """The event for a finished run, with the Go tool's titles and bodies (spec §5.4).

    A failure is ``error``, a partial backup (exit 3) ``warning``, else ``success``.
    """
    host = report.host
    titles = _TITLES.get(report.command, _TITLES["backup"])
    success_title, subject, failure_title = titles
    details = report_details(report, config)
    n = len(report.errors)
    if report.exit_code == 0:
        status = EventStatus.SUCCESS
        title, body = success_title, f"{subject} completed successfully on {host}"
        if report.command == "full":
            # The Go tool: the primary and each copy backend (not every defined backend).
            details["backends"] = str(len(config.copy_to_backends) + 1)
    elif report.exit_code == 3:
        status = EventStatus.WARNING
        title = "⚠️ Backup Completed with Warnings"
        warning = report.warnings[0] if report.warnings else "partial backup"
        body = f"{subject} completed with warnings on {host}: {warning}"
    else:
        status = EventStatus.ERROR
        first = report.errors[0] if report.errors else f"exit code {report.exit_code}"
        if _pre_backup_failed(report) and report.command in ("backup", "full"):
            title = "❌ Pre-Backup Hook Failed"
            body = f"resticm pre-backup hook failed on {host}: {first}"
        elif report.command == "backup":
            title, body = failure_title, f"resticm backup failed on {host}: {first}"
        else:
            title, body = failure_title, f"{subject} failed on {host} with {n} error(s)"
        if n == 1:
            details["error"] = first
    return Event(
        title=title,
        body=body,
        status=status,
        timestamp=report.finished_at,
        host=host,
        command=report.command,
        details=details,
        report=report,
        log_tail=tuple(log_tail),
    )


def start_event(command: str, config: Config, started: float) -> Event:
    """The ``start`` event (healthchecks ``/start`` ping)."""
    host = config.hostname
    return Event(
        title="▶️ Backup Started",
        body=f"resticm {command} started on {host}",
        status=EventStatus.START,
        timestamp=started,
        host=host,
        command=command,
        details={"host": host, "command": command, "repository": redact_url(config.repository)},
    )


def restore_event(report: Any, config: Config) -> Event:
    """The ``restore`` event of ``resticm restore`` (*report*: a ``RestoreReport``)."""
    host = config.hostname
    details = {
        "host": host,
        "command": "restore",
        "repository": f"{report.repository} ({report.repository_url})"
        if report.repository
        else "none",
        "snapshot": report.snapshot_id[:8],
        "target": report.target,
        "files_restored": str(report.files_restored),
        "bytes_restored": str(report.bytes_restored),
        "duration": _duration(report.finished_at - report.started_at),
        "exit_code": str(report.exit_code),
    }
    skipped = [f"{s.name}: {s.reason}" for s in report.skipped_repositories]
    if skipped:
        details["skipped"] = "\n".join(skipped)
    if report.errors:
        details["errors"] = "\n".join(report.errors)
    if report.ok:
        title, status = "✅ Restore Completed", EventStatus.SUCCESS
        body = f"resticm restore completed on {host} from {report.repository}"
    else:
        title, status = "❌ Restore Failed", EventStatus.ERROR
        first = report.errors[0] if report.errors else f"exit code {report.exit_code}"
        body = f"resticm restore failed on {host}: {first}"
    return Event(
        title=title,
        body=body,
        status=status,
        timestamp=report.finished_at,
        host=host,
        command="restore",
        details=details,
    )


def probe_event(config: Config) -> Event:
    """What ``resticm notify test`` sends."""
    host = config.hostname
    return Event(
        title="🔔 resticm test notification",
        body=f"resticm test notification from {host}",
        status=EventStatus.SUCCESS,
        timestamp=time.time(),
        host=host,
        command="notify test",
        details={"host": host, "repository": redact_url(config.repository)},
    )


# -- one run's notifications -------------------------------------------------------------------

#: Maintenance commands: (failure title, subject, critical wording); never a success message.
_MAINTENANCE = {
    "forget": ("❌ Forget Failed", "resticm forget failed"),
    "prune": ("❌ Prune Failed", "resticm prune failed"),
    "check": ("🚨 Repository Check FAILED", "CRITICAL: Repository integrity check failed"),
}
#: Commands that notify nothing at all (as the Go tool).
SILENT_COMMANDS = ("copy", "init", "snapshots", "stats", "unlock", "run", "env", "hooks")


def events_for_report(
    report: RunReport, config: Config, *, log_tail: Sequence[str] = ()
) -> list[Event]:
    """The events a finished run sends (spec §5.4): one, or none for silent commands."""
    if report.command in SILENT_COMMANDS:
        return []
    if report.command in _MAINTENANCE:
        if report.exit_code in (0, 3):
            return []  # the Go tool never sent success for these commands
        title, subject = _MAINTENANCE[report.command]
        failed = sorted({s.repository for s in report.steps if s.failed})
        details = report_details(report, config)
        single = _single_backend(report)
        if single is not None:
            # Single-backend mode (an active backend): the Go payload's backend and error.
            body = f"{subject} on {report.host} backend '{single}'"
            details["backend"] = single
            errors = [s.error for s in report.steps if s.failed and s.error] or list(report.errors)
            details["error"] = errors[0] if errors else f"exit code {report.exit_code}"
        else:
            # Mirror mode (the primary, then each copy backend): counted, even for one.
            body = f"{subject} on {report.host} - {len(failed) or 1} backend(s) affected"
        return [
            Event(
                title=title,
                body=body,
                status=EventStatus.ERROR,
                timestamp=report.finished_at,
                host=report.host,
                command=report.command,
                details=details,
                report=report,
                log_tail=tuple(log_tail),
            )
        ]
    return [event_for_report(report, config, log_tail=log_tail)]


class RunNotifications:
    """The notifications of one :func:`resticm_core.run`: start, then the result.

    Keeps the run's log (bounded, redacted) in :attr:`log_tail` for providers
    that send it (healthchecks): the run feeds it the records logged in its own
    context (:func:`resticm_core.logcontext.capture_logs`), so another run in the
    same process never reaches it. Does nothing in a dry run or when
    notifications are off; never raises.
    """

    def __init__(
        self,
        config: Config,
        command: str,
        *,
        dry_run: bool = False,
        notify_success: bool = False,
        redactor: Redactor | None = None,
        http: HttpClient | None = None,
    ) -> None:
        self.config = config
        self.command = command
        self.notify_success = notify_success
        self.redactor = redactor or Redactor(config.secrets())
        self.http = http
        self.active = (
            not dry_run and config.notifications.enabled and bool(config.notifications.providers)
        )
        self.deliveries: list[Delivery] = []
        #: This run's log lines; None when nothing will be sent.
        self.log_tail: LogTail | None = LogTail(self.redactor) if self.active else None

    def _send(self, events: Sequence[Event]) -> None:
        try:
            self.deliveries += notify_run(
                events,
                self.config,
                notify_success=self.notify_success,
                http=self.http,
                redactor=self.redactor,
            )
        except Exception as exc:  # notifications never change the outcome
            log.warning("notifications failed: %s", self.redactor.redact(str(exc)))

    def started(self) -> None:
        """Send the ``start`` event to the providers that want it."""
        if not self.active or self.command in SILENT_COMMANDS:
            return
        if wants_start(self.config, notify_success=self.notify_success):
            self._send([start_event(self.command, self.config, time.time())])

    def finished(self, report: RunReport) -> None:
        """Send the run's result event."""
        if not self.active:
            return
        tail = self.log_tail.lines() if self.log_tail is not None else ()
        try:
            events = events_for_report(report, self.config, log_tail=tail)
        except Exception as exc:
            log.warning("cannot build the notification: %s", exc)
            return
        self._send(events)

    def close(self) -> None:
        """Nothing to undo: the tail is fed by the run's context, not a logger handler.

        Kept so callers written for the handler-based tail still work.
        """
