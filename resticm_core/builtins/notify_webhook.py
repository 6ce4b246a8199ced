"""``type: webhook``: a JSON POST of the event and the whole run report.

    notifications:
      providers:
        - type: webhook
          url: https://hooks.example.org/backup
          options: {Authorization: "Bearer xyz"}     # every option is an HTTP header

``POST url``, ``Content-Type: application/json`` then each ``options`` entry as a
header (as the Go tool). Body: the Go tool's ``{"title", "body", "status",
"timestamp", "details"}`` plus ``host``, ``command`` and ``report`` (the
:meth:`RunReport.to_dict` of the run; absent for start and test events).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from resticm_core.hookspecs import hookimpl
from resticm_core.notify.api import Event, Notifier, NotifyContext


@attrs.frozen(kw_only=True)
class WebhookNotifier(Notifier):
    """Generic JSON webhook."""

    kind: ClassVar[str] = "webhook"

    def payload(self, event: Event) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "title": event.title,
            "body": event.body,
            "status": event.status.value,
            "timestamp": event.local_time().isoformat(timespec="microseconds"),
        }
        if event.details:
            payload["details"] = dict(event.details)
        payload["host"] = event.host
        payload["command"] = event.command
        if event.report is not None:
            payload["report"] = event.report.to_dict()
        return payload

    def send(self, event: Event, ctx: NotifyContext) -> None:
        headers: dict[str, str | bytes] = {
            "-".join(p.capitalize() for p in k.split("-")): v for k, v in self.options.items()
        }
        ctx.post_json(self.url, self.payload(event), headers)


@hookimpl
def resticm_notifier_types() -> list[type[Notifier]]:
    return [WebhookNotifier]
