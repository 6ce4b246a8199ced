"""Sending events: which events a notifier wants (gating), and :func:`dispatch`, which
sends them to every notifier concurrently, one thread each, within a bounded total
time. One notifier failing, refusing connections or hanging never stops another and
never changes the run's exit code: each failure is logged with the notifier's name
and the reason (redacted).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

from ..backoff import Backoff, pause
from ..secrets import Redactor
from .api import (
    DEFAULT_DEADLINE,
    Event,
    EventStatus,
    HttpClient,
    Notifier,
    NotifyContext,
    NotifyError,
    UrllibClient,
)

if TYPE_CHECKING:
    from ..config import Config


log = logging.getLogger("resticm_core.notify")


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
    waits = Backoff(backoff)
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
            wait = waits.delay(attempt)
            if time.monotonic() + wait >= ends:
                break
            log.info("notifier %s failed (%s); retrying in %gs", name, error, wait)
            pause(wait)
    log.warning(
        "notifier %s failed to send the %s event after %d attempt(s): %s",
        name,
        event.status.value,
        attempts,
        error,
    )
    return Delivery(notifier=name, status=event.status, ok=False, error=error, attempts=attempts)


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
