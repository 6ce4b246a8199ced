"""Notifiers: the :class:`Notifier` base class, the :class:`Event` they send, and dispatch.

A notifier is a frozen attrs class with a ``kind`` (the provider ``type`` in
``notifications.providers``), contributed by a plugin through
``resticm_notifier_types``. Its fields are its config keys; the common ones
(``url``, ``token``, ``channel``, ``options`` of the Go tool, plus ``on``,
``timeout``, ``retries``) live here.

:func:`dispatch` sends events to every notifier concurrently, one thread each,
within a bounded total time. One notifier failing, refusing connections or
hanging never stops another and never changes the run's exit code: each failure
is logged with the notifier's name and the reason (redacted).

HTTP goes through the :class:`HttpClient` seam of :class:`NotifyContext`
(``urllib`` by default, no third-party dependency), so a notifier is testable
against a recording server or a fake.
"""

from __future__ import annotations

import collections
import contextvars
import datetime
import enum
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import attrs

from .secrets import MIN_SECRET_LENGTH, Redactor, redact_url, secret_values

if TYPE_CHECKING:
    from .config import Config
    from .phases import RunReport

log = logging.getLogger("resticm_core.notify")

USER_AGENT = "resticm"
#: Total seconds one dispatch may take, whatever the notifiers' timeouts and retries
#: (the default of ``notifications.timeout``).
DEFAULT_DEADLINE = 120.0


class EventStatus(enum.StrEnum):
    """What an event reports; also the values of a notifier's ``on:`` list."""

    SUCCESS = "success"
    ERROR = "error"
    #: Finished with warnings: a partial backup (restic exit 3).
    WARNING = "warning"
    #: The run started (heartbeat services: healthchecks ``/start``).
    START = "start"


@attrs.frozen(kw_only=True)
class Event:
    """One message to send. Every text in it is already redacted."""

    title: str
    body: str
    status: EventStatus
    #: Unix time of the event.
    timestamp: float
    host: str = ""
    command: str = ""
    #: Key/value facts in a fixed order (host, command, repository, duration...).
    details: Mapping[str, str] = attrs.field(factory=dict)
    #: The run's report, when the event is about a finished run.
    report: RunReport | None = None
    #: The last lines of the run's log (bounded, redacted), oldest first.
    log_tail: tuple[str, ...] = ()

    def local_time(self) -> datetime.datetime:
        """The timestamp in the local time zone (the Go tool used local offsets)."""
        return datetime.datetime.fromtimestamp(self.timestamp).astimezone()

    def text(self) -> str:
        """The body followed by the details, one ``key: value`` per line."""
        lines = [self.body, *(f"{k}: {v}" for k, v in self.details.items())]
        return "\n".join(lines)


class NotifyError(Exception):
    """A notifier could not deliver; the message says why (no secrets)."""


class HttpClient(Protocol):
    """The HTTP seam: one request, returns the status code.

    Raises :class:`NotifyError` when nothing came back (refused, timeout).
    Header values may be ``bytes`` to send raw UTF-8 (ntfy's ``Title``).
    """

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str | bytes],
        body: bytes | None,
        timeout: float,
    ) -> int: ...


class UrllibClient:
    """:class:`HttpClient` over ``urllib.request``; redirects followed."""

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str | bytes],
        body: bytes | None,
        timeout: float,
    ) -> int:
        import urllib.error  # lazy: urllib.request imports http.client and ssl (~20 ms)
        import urllib.request

        request = urllib.request.Request(url, data=body, method=method)
        for name, value in headers.items():
            # http.client sends bytes values as they are (raw UTF-8, as the Go tool).
            request.add_header(name, value)  # type: ignore[arg-type]
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(65536)
                status: int = response.status
                return status
        except urllib.error.HTTPError as exc:
            return exc.code
        except urllib.error.URLError as exc:
            raise NotifyError(f"cannot connect: {exc.reason}") from None
        except TimeoutError:
            raise NotifyError(f"no answer within {timeout:g}s") from None
        except OSError as exc:
            raise NotifyError(f"connection failed: {exc}") from None


@attrs.frozen(kw_only=True)
class NotifyContext:
    """What a notifier gets to send with: the HTTP seam and its timeout."""

    http: HttpClient = attrs.field(factory=UrllibClient)
    timeout: float = 30.0

    def _send(
        self, method: str, url: str, headers: Mapping[str, str | bytes], body: bytes | None
    ) -> None:
        status = self.http.request(
            method,
            url,
            headers={"User-Agent": USER_AGENT, **headers},
            body=body,
            timeout=self.timeout,
        )
        if status >= 400:
            raise NotifyError(f"HTTP {status}")

    def post_json(
        self, url: str, payload: object, headers: Mapping[str, str | bytes] | None = None
    ) -> None:
        """POST *payload* as JSON (keys in the order given); HTTP >= 400 raises."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        self._send("POST", url, {"Content-Type": "application/json", **(headers or {})}, body)

    def post(self, url: str, data: bytes, headers: Mapping[str, str | bytes] | None = None) -> None:
        """POST raw bytes; HTTP >= 400 raises."""
        self._send("POST", url, dict(headers or {}), data)

    def get(self, url: str, headers: Mapping[str, str | bytes] | None = None) -> None:
        """GET *url*; HTTP >= 400 raises."""
        self._send("GET", url, dict(headers or {}), None)


def _events_on(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    events = tuple(value)
    valid = [s.value for s in EventStatus]
    for event in events:
        if event not in valid:
            from .converter import ConfigValueError  # lazy: the converter imports this module

            message = f"unknown event {event!r} (events: {', '.join(valid)})"
            raise ConfigValueError(message, subpath=("on",))
    return events


@attrs.frozen(kw_only=True)
class Notifier:
    """Base class of every notifier (``notifications.providers[]`` entry).

    Subclasses set ``kind`` (and optionally ``aliases``, other accepted ``type``
    spellings), add their own fields and implement :meth:`send`.
    """

    kind: ClassVar[str] = ""
    #: Other ``type:`` spellings accepted (matched case-insensitively, like ``kind``).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Events sent when neither ``on:`` nor the global switches say otherwise.
    default_events: ClassVar[tuple[str, ...]] = ("success", "error", "warning")

    #: Where to send (a webhook URL, a topic server, a ping URL). A secret.
    url: str = attrs.field(default="", repr=False)
    #: Go key; an access token where the service takes one (ntfy). A secret.
    token: str = attrs.field(default="", repr=False)
    #: Go key; the channel where the service takes one (slack).
    channel: str = ""
    #: Go key: provider options (ntfy ``topic``, webhook headers...).
    options: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    #: addition: the events this provider gets (error, success, warning, start);
    #: unset = the global ``notify_on_*`` switches decide.
    on: tuple[str, ...] | None = attrs.field(default=None, converter=_events_on)
    #: addition: seconds per HTTP request.
    timeout: float = 30.0
    #: addition: extra attempts after a failure, with exponential backoff.
    retries: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    #: addition: the name used in logs (default: the type).
    name: str = ""

    def send(self, event: Event, ctx: NotifyContext) -> None:
        """Deliver *event*; raise (any exception) when it could not be delivered."""
        raise NotImplementedError

    def describe(self) -> str:
        """The notifier's name in logs: ``name`` or its kind."""
        return self.name or self.kind

    def secrets(self) -> list[str]:
        """Values to redact wherever they could appear.

        What :func:`~resticm_core.secrets.find_secrets` finds in the notifier's keys
        (``token``, secret-named ``options`` such as an ``Authorization`` header,
        the tokens of a Slack, Discord, Google Chat... URL), plus the whole ``url``:
        a webhook URL is often a credential of no recognizable shape. A subclass
        with more secret keys extends this list.
        """
        values = [self.url, *secret_values(self)]
        return [v for v in values if v and len(v) >= MIN_SECRET_LENGTH]


# -- gating ----------------------------------------------------------------------------------


def wanted_events(
    notifier: Notifier, *, on_success: bool, on_error: bool, extra_success: bool = False
) -> frozenset[str]:
    """The events *notifier* gets: its ``on:`` list, else the global switches.

    ``on_success``/``on_error`` are ``notify_on_success``/``notify_on_error``;
    *extra_success* is ``--notify-success``, which adds success to every provider.
    """
    if notifier.on is not None:
        events = set(notifier.on)
    else:
        events = set()
        if on_error:
            events |= {"error", "warning"}
        if on_success:
            events.add("success")
        if events and "start" in notifier.default_events:
            events.add("start")
        events &= set(notifier.default_events)
    if extra_success:
        events.add("success")
    return frozenset(events)


# -- dispatch --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Delivery:
    """What happened to one event at one notifier."""

    notifier: str
    status: EventStatus
    ok: bool
    error: str = ""
    attempts: int = 0


def dispatch(
    events: Sequence[Event],
    notifiers: Sequence[Notifier],
    *,
    wanted: Callable[[Notifier], Iterable[str]] | None = None,
    http: HttpClient | None = None,
    redactor: Redactor | None = None,
    deadline: float = DEFAULT_DEADLINE,
    backoff: float = 1.0,
) -> list[Delivery]:
    """Send *events* to *notifiers*, concurrently, within *deadline* seconds in total.

    Each notifier gets the events whose status it wants, in order, in its own
    thread; a failed send is retried ``notifier.retries`` times after
    ``backoff * 2**n`` seconds. Never raises: every failure (exception, HTTP
    >= 400, timeout, a notifier still busy at the deadline) is logged with the
    notifier's name and returned as a :class:`Delivery` with ``ok=False``.
    """
    redactor = redactor or Redactor()
    client = http or UrllibClient()
    results: list[Delivery] = []
    lock = threading.Lock()
    threads: list[tuple[Notifier, threading.Thread, list[EventStatus]]] = []
    ends = time.monotonic() + deadline
    # Set once dispatch has returned: an abandoned thread then stays silent (it was
    # already reported as abandoned, and the caller may have closed its log handlers).
    over = threading.Event()
    for notifier in notifiers:
        accepted = set(wanted(notifier)) if wanted else {s.value for s in EventStatus}
        mine = [e for e in events if e.status.value in accepted]
        if not mine:
            continue
        pending = [e.status for e in mine]
        ctx = NotifyContext(http=client, timeout=notifier.timeout)

        def work(n: Notifier = notifier, todo: list[Event] = mine, c: NotifyContext = ctx) -> None:
            for event in todo:
                if over.is_set():
                    return
                delivery = _deliver(n, event, c, redactor, backoff, ends, over)
                with lock:
                    results.append(delivery)
                    if delivery.status in pending_of[id(n)]:
                        pending_of[id(n)].remove(delivery.status)

        thread = threading.Thread(
            target=contextvars.copy_context().run,  # its log lines stay the run's
            args=(work,),
            name=f"notify-{notifier.describe()}",
            daemon=True,
        )
        threads.append((notifier, thread, pending))
    pending_of = {id(n): p for n, _, p in threads}
    for _, thread, _ in threads:
        thread.start()
    for notifier, thread, _ in threads:
        thread.join(max(0.0, ends - time.monotonic()))
        if thread.is_alive():
            # A hung notifier is abandoned (daemon thread): the run must end.
            with lock:
                left = list(pending_of[id(notifier)])
                pending_of[id(notifier)].clear()
                for status in left:
                    reason = f"still not done after {deadline:g}s; abandoned"
                    log.warning("notifier %s failed: %s", notifier.describe(), reason)
                    results.append(
                        Delivery(
                            notifier=notifier.describe(), status=status, ok=False, error=reason
                        )
                    )
    with lock:
        over.set()
        return list(results)


def _deliver(
    notifier: Notifier,
    event: Event,
    ctx: NotifyContext,
    redactor: Redactor,
    backoff: float,
    ends: float,
    over: threading.Event,
) -> Delivery:
    name = notifier.describe()
    attempts = 0
    error = ""
    for attempt in range(notifier.retries + 1):
        attempts = attempt + 1
        try:
            notifier.send(event, ctx)
        except NotifyError as exc:
            error = redactor.redact(str(exc))
        except Exception as exc:  # a plugin's bug must not escape its thread
            error = redactor.redact(f"{type(exc).__name__}: {exc}")
        else:
            if not over.is_set():
                log.debug("notifier %s sent the %s event", name, event.status.value)
            return Delivery(notifier=name, status=event.status, ok=True, attempts=attempts)
        if over.is_set():  # abandoned: reported already, say nothing more
            return Delivery(notifier=name, status=event.status, ok=False, error=error)
        if attempt < notifier.retries:
            pause = backoff * 2**attempt
            if time.monotonic() + pause >= ends:
                break
            log.info("notifier %s failed (%s); retrying in %gs", name, error, pause)
            time.sleep(pause)
    log.warning(
        "notifier %s failed to send the %s event after %d attempt(s): %s",
        name,
        event.status.value,
        attempts,
        error,
    )
    return Delivery(notifier=name, status=event.status, ok=False, error=error, attempts=attempts)


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
    from .phases import StepKind

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
    from .phases import StepKind

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
    # Issue 17: which snapshots forget removed, per repository ("primary: 1a2b3c4d 5e6f7a8b").
    removed = [f"{s.repository}: {' '.join(r.id for r in s.forget.removed)}"
               for s in report.steps if s.forget is not None and s.forget.removed]
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
    from .phases import Phase

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


def notify_run(
    events: Sequence[Event],
    config: Config,
    *,
    notify_success: bool = False,
    http: HttpClient | None = None,
    redactor: Redactor | None = None,
    deadline: float | None = None,
    backoff: float = 1.0,
) -> list[Delivery]:
    """Send *events* to the configured providers, gated as the config says.

    Nothing is sent unless ``notifications.enabled``. Each provider gets the
    events :func:`wanted_events` allows, within *deadline* seconds in total
    (default: ``notifications.timeout``). Never raises.
    """
    settings = config.notifications
    if not settings.enabled or not settings.providers:
        return []

    def wanted(notifier: Notifier) -> frozenset[str]:
        return wanted_events(
            notifier,
            on_success=settings.notify_on_success,
            on_error=settings.notify_on_error,
            extra_success=notify_success,
        )

    return dispatch(
        events,
        settings.providers,
        wanted=wanted,
        http=http,
        redactor=redactor,
        deadline=settings.timeout if deadline is None else deadline,
        backoff=backoff,
    )


def wants_start(config: Config, *, notify_success: bool = False) -> bool:
    """Does any provider want the ``start`` event? (Avoids building it for nothing.)"""
    settings = config.notifications
    return settings.enabled and any(
        "start"
        in wanted_events(
            n,
            on_success=settings.notify_on_success,
            on_error=settings.notify_on_error,
            extra_success=notify_success,
        )
        for n in settings.providers
    )


_Kind = TypeVar("_Kind")


def find_type(types: Mapping[str, type[_Kind]], name: str) -> type[_Kind] | None:
    """The class for a ``type:`` value (notifier, dump source): case-insensitive, aliases too."""
    wanted = name.strip().lower()
    for kind, cls in types.items():
        spellings = {kind.lower(), *(a.lower() for a in getattr(cls, "aliases", ()))}
        if wanted in spellings:
            return cls
    return None


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for values in a report (enums, paths)."""
    return str(value)


__all__ = [
    "Delivery",
    "Event",
    "EventStatus",
    "HttpClient",
    "LogTail",
    "Notifier",
    "NotifyContext",
    "NotifyError",
    "RunNotifications",
    "dispatch",
    "event_for_report",
    "events_for_report",
    "find_type",
    "notify_run",
    "probe_event",
    "restore_event",
    "start_event",
    "wanted_events",
]


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
