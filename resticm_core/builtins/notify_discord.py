"""``type: discord``: a Discord webhook, the Go tool's embed plus the details.

    notifications:
      providers:
        - type: discord
          url: https://discord.com/api/webhooks/123/abc

``POST url`` with ``{"embeds": [{"title", "description", "color", "footer": {"text":
"resticm"}, "timestamp", "fields": [{"name", "value", "inline": true}...]}]}``.
The Go tool dropped the details; they are the embed's ``fields`` here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from resticm_core.hookspecs import hookimpl
from resticm_core.notify.api import Event, Notifier, NotifyContext

#: 0x36a64f, 0xdc3545, 0xffc107, 0x439fe0
COLORS = {"success": 3581519, "error": 14431557, "warning": 16761095, "start": 4431840}
#: Discord refuses a field value longer than this.
MAX_FIELD = 1024


@attrs.frozen(kw_only=True)
class DiscordNotifier(Notifier):
    """Discord webhook."""

    kind: ClassVar[str] = "discord"

    def payload(self, event: Event) -> dict[str, Any]:
        embed: dict[str, Any] = {
            "title": event.title,
            "description": event.body,
            "color": COLORS[event.status.value],
            "footer": {"text": "resticm"},
            "timestamp": event.local_time().isoformat(timespec="seconds"),
        }
        if event.details:
            embed["fields"] = [
                {"name": k, "value": v[:MAX_FIELD] or "-", "inline": True}
                for k, v in event.details.items()
            ]
        return {"embeds": [embed]}

    def send(self, event: Event, ctx: NotifyContext) -> None:
        ctx.post_json(self.url, self.payload(event))


@hookimpl
def resticm_notifier_types() -> list[type[Notifier]]:
    return [DiscordNotifier]
