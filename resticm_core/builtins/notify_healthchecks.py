"""``type: healthchecks``: Healthchecks.io (or self-hosted) start / success / fail pings.

    notifications:
      providers:
        - type: healthchecks
          url: https://hc-ping.com/0f3b...-uuid
          # on: [start, success, error, warning]        # the default for this type

``POST url/start`` when the run starts, ``POST url`` on success and on a warning
(a partial backup still wrote a snapshot), ``POST url/fail`` on an error. The body
is the message, its details and the tail of the run's log (at most
``max_body`` bytes, 100 000 by default: Healthchecks' own limit).

Unlike the chat providers, healthchecks gets start pings and success pings by
default as soon as notifications are enabled and either ``notify_on_*`` switch is
on: a heartbeat that only hears about failures goes "down" on every success.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from resticm_core.hookspecs import hookimpl
from resticm_core.notify.api import Event, Notifier, NotifyContext

SUFFIX = {"start": "/start", "success": "", "warning": "", "error": "/fail"}


@attrs.frozen(kw_only=True)
class HealthchecksNotifier(Notifier):
    """Healthchecks ping URL."""

    kind: ClassVar[str] = "healthchecks"
    default_events: ClassVar[tuple[str, ...]] = ("start", "success", "error", "warning")

    #: addition: the body's size cap in bytes.
    max_body: int = 100_000

    def target(self, event: Event) -> str:
        return self.url.rstrip("/") + SUFFIX[event.status.value]

    def body(self, event: Event) -> bytes:
        text = event.title + "\n" + event.text()
        if event.log_tail:
            text += "\n\nlog:\n" + "\n".join(event.log_tail)
        data = text.encode()
        if len(data) > self.max_body:
            data = b"...\n" + data[-(self.max_body - 4) :]
        return data

    def send(self, event: Event, ctx: NotifyContext) -> None:
        ctx.post(
            self.target(event), self.body(event), {"Content-Type": "text/plain; charset=utf-8"}
        )


@hookimpl
def resticm_notifier_types() -> list[type[Notifier]]:
    return [HealthchecksNotifier]
