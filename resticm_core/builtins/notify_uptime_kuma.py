"""``type: uptime_kuma`` (also ``uptimekuma``, ``uptime-kuma``): an Uptime Kuma push monitor.

    notifications:
      providers:
        - type: uptime_kuma
          url: https://kuma.example.org/api/push/AbCdEf

``GET url?status=up&msg=OK`` on success, ``status=down&msg=<body>`` on an error and
``status=up&msg=<body>`` on a warning; the message is URL-encoded (the Go tool
did not encode it, so its "down" pushes were malformed), and ``&`` is used when
the URL already has a query.
"""

from __future__ import annotations

import urllib.parse
from typing import ClassVar

import attrs

from resticm_core.hookspecs import hookimpl
from resticm_core.notify.api import Event, Notifier, NotifyContext


@attrs.frozen(kw_only=True)
class UptimeKumaNotifier(Notifier):
    """Uptime Kuma push URL."""

    kind: ClassVar[str] = "uptime_kuma"
    aliases: ClassVar[tuple[str, ...]] = ("uptimekuma", "uptime-kuma")

    def target(self, event: Event) -> str:
        status = event.status.value
        if status == "success":
            query = {"status": "up", "msg": "OK"}
        else:
            up = status in ("warning", "start")
            query = {"status": "up" if up else "down", "msg": event.body}
        separator = "&" if "?" in self.url else "?"
        return self.url + separator + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)

    def send(self, event: Event, ctx: NotifyContext) -> None:
        ctx.get(self.target(event))


@hookimpl
def resticm_notifier_types() -> list[type[Notifier]]:
    return [UptimeKumaNotifier]
