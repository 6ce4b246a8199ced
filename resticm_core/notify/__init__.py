"""Notifications, in layers (each module imports only those above it):

- :mod:`.api`: the contract a notifier plugin implements and uses: :class:`Notifier`,
  :class:`Event`, :class:`EventStatus`, :class:`NotifyContext`, the
  :class:`HttpClient` seam, :class:`NotifyError`.
- :mod:`.dispatch`: gating (:func:`wanted_events`) and :func:`dispatch`, concurrent
  and isolated, within a bounded total time; :func:`notify_run` for a config.
- :mod:`.events`: the events of a run (the Go tool's payloads), the run's log tail
  and :class:`RunNotifications`.

``resticm_core.notifiers`` re-exports the same names for plugins written against it.
"""

from .api import (
    DEFAULT_DEADLINE,
    USER_AGENT,
    Event,
    EventStatus,
    HttpClient,
    Notifier,
    NotifyContext,
    NotifyError,
    UrllibClient,
    find_type,
    json_default,
)
from .dispatch import Delivery, dispatch, notify_run, wanted_events, wants_start
from .events import (
    SILENT_COMMANDS,
    LogTail,
    RunNotifications,
    event_for_report,
    events_for_report,
    probe_event,
    report_details,
    restore_event,
    start_event,
)

__all__ = [
    "DEFAULT_DEADLINE",
    "SILENT_COMMANDS",
    "USER_AGENT",
    "Delivery",
    "Event",
    "EventStatus",
    "HttpClient",
    "LogTail",
    "Notifier",
    "NotifyContext",
    "NotifyError",
    "RunNotifications",
    "UrllibClient",
    "dispatch",
    "event_for_report",
    "events_for_report",
    "find_type",
    "json_default",
    "notify_run",
    "probe_event",
    "report_details",
    "restore_event",
    "start_event",
    "wanted_events",
    "wants_start",
]
