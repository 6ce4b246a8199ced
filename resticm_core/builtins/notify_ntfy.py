"""``type: ntfy``: an ntfy topic (ntfy.sh or self-hosted).

    notifications:
      providers:
        - type: ntfy
          url: https://ntfy.sh
          options: {topic: backups}
          token: tk_xxxxxxxx          # optional: Authorization: Bearer (addition)
          priority: urgent            # optional: overrides the per-event priority
          tags: [floppy_disk]         # optional: added to the per-event tag

``POST url/topic``, the message as plain text (body, then the details one per
line; the Go tool dropped them), headers ``Title`` (raw UTF-8, as the Go tool),
``Priority`` (``high`` for errors, ``default`` otherwise), ``Tags``.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from resticm_core.hookspecs import hookimpl
from resticm_core.notify.api import Event, Notifier, NotifyContext

PRIORITIES = {"success": "default", "error": "high", "warning": "default", "start": "low"}
TAGS = {"success": "white_check_mark", "error": "x", "warning": "warning", "start": "hourglass"}


@attrs.frozen(kw_only=True)
class NtfyNotifier(Notifier):
    """ntfy publish."""

    kind: ClassVar[str] = "ntfy"

    #: addition: fixed priority (min, low, default, high, urgent or 1-5).
    priority: str = ""
    #: addition: tags (emoji short codes) added to every message.
    tags: tuple[str, ...] = ()

    def target(self) -> str:
        return self.url.rstrip("/") + "/" + self.options.get("topic", "")

    def headers(self, event: Event) -> dict[str, str | bytes]:
        status = event.status.value
        headers: dict[str, str | bytes] = {
            "Title": event.title.encode(),
            "Priority": self.priority or PRIORITIES[status],
            "Tags": ",".join((TAGS[status], *self.tags)),
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def send(self, event: Event, ctx: NotifyContext) -> None:
        ctx.post(self.target(), event.text().encode(), self.headers(event))


@hookimpl
def resticm_notifier_types() -> list[type[Notifier]]:
    return [NtfyNotifier]
