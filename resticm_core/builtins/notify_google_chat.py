"""``type: google_chat`` (also ``google``, ``googlechat``): a Google Chat webhook.

    notifications:
      providers:
        - type: google_chat
          url: https://chat.googleapis.com/v1/spaces/AAA/messages?key=K&token=T

``POST url`` with the Go tool's legacy card: ``{"cards": [{"header": {"title",
"subtitle": "resticm backup"}, "sections": [{"widgets": [{"textParagraph": {"text":
body}}, {"keyValue": {"topLabel": key, "content": value}}...]}]}]}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from resticm_core.hookspecs import hookimpl
from resticm_core.notify.api import Event, Notifier, NotifyContext


@attrs.frozen(kw_only=True)
class GoogleChatNotifier(Notifier):
    """Google Chat incoming webhook (card format)."""

    kind: ClassVar[str] = "google_chat"
    aliases: ClassVar[tuple[str, ...]] = ("google", "googlechat")

    def payload(self, event: Event) -> dict[str, Any]:
        widgets: list[dict[str, Any]] = [{"textParagraph": {"text": event.body}}]
        widgets += [{"keyValue": {"topLabel": k, "content": v}} for k, v in event.details.items()]
        header = {"title": event.title, "subtitle": "resticm backup"}
        return {"cards": [{"header": header, "sections": [{"widgets": widgets}]}]}

    def send(self, event: Event, ctx: NotifyContext) -> None:
        ctx.post_json(self.url, self.payload(event))


@hookimpl
def resticm_notifier_types() -> list[type[Notifier]]:
    return [GoogleChatNotifier]
