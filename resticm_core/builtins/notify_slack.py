"""``type: slack``: a Slack incoming webhook, the Go tool's attachment payload.

    notifications:
      providers:
        - type: slack
          url: https://hooks.slack.com/services/T000/B000/XXXX
          channel: "#backups"        # optional: legacy webhooks may override the channel

``POST url`` with ``{"attachments": [{"color", "title", "text", "footer": "resticm",
"ts", "fields": [{"title", "value", "short": true}...]}]}``; fields in a fixed order.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from resticm_core.hookspecs import hookimpl
from resticm_core.notify.api import Event, Notifier, NotifyContext

COLORS = {"success": "#36a64f", "error": "#dc3545", "warning": "#ffc107", "start": "#439fe0"}


@attrs.frozen(kw_only=True)
class SlackNotifier(Notifier):
    """Slack incoming webhook."""

    kind: ClassVar[str] = "slack"

    def payload(self, event: Event) -> dict[str, Any]:
        fields = [{"title": k, "value": v, "short": True} for k, v in event.details.items()]
        attachment = {
            "color": COLORS[event.status.value],
            "title": event.title,
            "text": event.body,
            "footer": "resticm",
            "ts": int(event.timestamp),
            "fields": fields or None,  # the Go tool sends null without details
        }
        payload: dict[str, Any] = {"attachments": [attachment]}
        if self.channel:
            payload["channel"] = self.channel
        return payload

    def send(self, event: Event, ctx: NotifyContext) -> None:
        ctx.post_json(self.url, self.payload(event))


@hookimpl
def resticm_notifier_types() -> list[type[Notifier]]:
    return [SlackNotifier]
