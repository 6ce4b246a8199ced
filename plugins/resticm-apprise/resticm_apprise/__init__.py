"""``type: apprise``: send resticm notifications through Apprise (100+ services).

    notifications:
      enabled: true
      notify_on_error: true
      providers:
        - type: apprise
          urls: ["mailto://user:pass@example.org", "tgram://bottoken/ChatID"]
          on: [error, warning]

This package is the template for a third-party notifier: a frozen attrs
subclass of :class:`resticm_core.Notifier` with a ``kind``, its
config keys as fields, a ``send`` that raises when delivery failed, and one
``resticm_notifier_types`` hook implementation registered through the
``resticm`` entry-point group (see pyproject.toml).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from resticm_core import Event, Notifier, NotifyContext, NotifyError, hookimpl

__version__ = "0.1.0"

#: resticm event status -> Apprise notify type.
NOTIFY_TYPES = {"success": "success", "error": "failure", "warning": "warning", "start": "info"}


@attrs.frozen(kw_only=True)
class AppriseNotifier(Notifier):
    """Every Apprise URL in ``urls`` (plus ``url``, the Go-style single key)."""

    kind: ClassVar[str] = "apprise"

    #: Apprise URLs; secrets inside them are redacted in resticm's logs.
    urls: tuple[str, ...] = attrs.field(default=(), repr=False)

    def targets(self) -> list[str]:
        return [u for u in (self.url, *self.urls) if u]

    def secrets(self) -> list[str]:
        return [*super().secrets(), *self.urls]

    def send(self, event: Event, ctx: NotifyContext) -> None:
        import apprise  # lazy: `resticm --help` must not pay for it

        sender: Any = apprise.Apprise()
        for url in self.targets():
            if not sender.add(url):
                raise NotifyError("Apprise does not understand one of the configured URLs")
        if not sender.notify(
            title=event.title, body=event.text(), notify_type=NOTIFY_TYPES[event.status.value]
        ):
            raise NotifyError("Apprise could not deliver to every URL")


@hookimpl
def resticm_notifier_types() -> list[type[Notifier]]:
    return [AppriseNotifier]
