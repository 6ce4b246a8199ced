"""The notifier contract: the :class:`Notifier` base class, the :class:`Event` it sends,
its :class:`NotifyContext` and the :class:`HttpClient` seam (``urllib`` by default).

A notifier is a frozen attrs class with a ``kind`` (the provider ``type`` in
``notifications.providers``), contributed by a plugin through
``resticm_notifier_types``. Its fields are its config keys; the common ones
(``url``, ``token``, ``channel``, ``options`` of the Go tool, plus ``on``,
``timeout``, ``retries``) live here. What a plugin author imports; nothing here
knows a run.
"""

from __future__ import annotations

import datetime
import enum
import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import attrs

from ..errors import ConfigValueError
from ..secrets import MIN_SECRET_LENGTH, secret_values

if TYPE_CHECKING:
    from ..phases import RunReport

log = logging.getLogger("resticm_core.notify")

USER_AGENT = "resticm"
#: Total seconds one dispatch may take, whatever the notifiers' timeouts and retries
#: (the default of ``notifications.timeout``).
DEFAULT_DEADLINE = 120.0


class EventStatus(enum.StrEnum):
    """What an event reports; also the values of a notifier's ``on:`` list."""

    SUCCESS = "success"
    ERROR = "error"
    #: Finished with warnings: a partial backup (restic exit 3).
    WARNING = "warning"
    #: The run started (heartbeat services: healthchecks ``/start``).
    START = "start"


@attrs.frozen(kw_only=True)
class Event:
    """One message to send. Every text in it is already redacted."""

    title: str
    body: str
    status: EventStatus
    #: Unix time of the event.
    timestamp: float
    host: str = ""
    command: str = ""
    #: Key/value facts in a fixed order (host, command, repository, duration...).
    details: Mapping[str, str] = attrs.field(factory=dict)
    #: The run's report, when the event is about a finished run.
    report: RunReport | None = None
    #: The last lines of the run's log (bounded, redacted), oldest first.
    log_tail: tuple[str, ...] = ()

    def local_time(self) -> datetime.datetime:
        """The timestamp in the local time zone (the Go tool used local offsets)."""
        return datetime.datetime.fromtimestamp(self.timestamp).astimezone()

    def text(self) -> str:
        """The body followed by the details, one ``key: value`` per line."""
        lines = [self.body, *(f"{k}: {v}" for k, v in self.details.items())]
        return "\n".join(lines)


class NotifyError(Exception):
    """A notifier could not deliver; the message says why (no secrets)."""


class HttpClient(Protocol):
    """The HTTP seam: one request, returns the status code.

    Raises :class:`NotifyError` when nothing came back (refused, timeout).
    Header values may be ``bytes`` to send raw UTF-8 (ntfy's ``Title``).
    """

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str | bytes],
        body: bytes | None,
        timeout: float,
    ) -> int: ...


class UrllibClient:
    """:class:`HttpClient` over ``urllib.request``; redirects followed."""

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str | bytes],
        body: bytes | None,
        timeout: float,
    ) -> int:
        import urllib.error  # lazy: urllib.request imports http.client and ssl (~20 ms)
        import urllib.request

        request = urllib.request.Request(url, data=body, method=method)
        for name, value in headers.items():
            # http.client sends bytes values as they are (raw UTF-8, as the Go tool).
            request.add_header(name, value)  # type: ignore[arg-type]
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(65536)
                status: int = response.status
                return status
        except urllib.error.HTTPError as exc:
            return exc.code
        except urllib.error.URLError as exc:
            raise NotifyError(f"cannot connect: {exc.reason}") from None
        except TimeoutError:
            raise NotifyError(f"no answer within {timeout:g}s") from None
        except OSError as exc:
            raise NotifyError(f"connection failed: {exc}") from None


@attrs.frozen(kw_only=True)
class NotifyContext:
    """What a notifier gets to send with: the HTTP seam and its timeout."""

    http: HttpClient = attrs.field(factory=UrllibClient)
    timeout: float = 30.0

    def _send(
        self, method: str, url: str, headers: Mapping[str, str | bytes], body: bytes | None
    ) -> None:
        status = self.http.request(
            method,
            url,
            headers={"User-Agent": USER_AGENT, **headers},
            body=body,
            timeout=self.timeout,
        )
        if status >= 400:
            raise NotifyError(f"HTTP {status}")

    def post_json(
        self, url: str, payload: object, headers: Mapping[str, str | bytes] | None = None
    ) -> None:
        """POST *payload* as JSON (keys in the order given); HTTP >= 400 raises."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        self._send("POST", url, {"Content-Type": "application/json", **(headers or {})}, body)

    def post(self, url: str, data: bytes, headers: Mapping[str, str | bytes] | None = None) -> None:
        """POST raw bytes; HTTP >= 400 raises."""
        self._send("POST", url, dict(headers or {}), data)

    def get(self, url: str, headers: Mapping[str, str | bytes] | None = None) -> None:
        """GET *url*; HTTP >= 400 raises."""
        self._send("GET", url, dict(headers or {}), None)


def _events_on(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    events = tuple(value)
    valid = [s.value for s in EventStatus]
    for event in events:
        if event not in valid:
            message = f"unknown event {event!r} (events: {', '.join(valid)})"
            raise ConfigValueError(message, subpath=("on",))
    return events


@attrs.frozen(kw_only=True)
class Notifier:
    """Base class of every notifier (``notifications.providers[]`` entry).

    Subclasses set ``kind`` (and optionally ``aliases``, other accepted ``type``
    spellings), add their own fields and implement :meth:`send`.
    """

    kind: ClassVar[str] = ""
    #: Other ``type:`` spellings accepted (matched case-insensitively, like ``kind``).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Events sent when neither ``on:`` nor the global switches say otherwise.
    default_events: ClassVar[tuple[str, ...]] = ("success", "error", "warning")

    #: Where to send (a webhook URL, a topic server, a ping URL). A secret.
    url: str = attrs.field(default="", repr=False)
    #: Go key; an access token where the service takes one (ntfy). A secret.
    token: str = attrs.field(default="", repr=False)
    #: Go key; the channel where the service takes one (slack).
    channel: str = ""
    #: Go key: provider options (ntfy ``topic``, webhook headers...).
    options: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    #: addition: the events this provider gets (error, success, warning, start);
    #: unset = the global ``notify_on_*`` switches decide.
    on: tuple[str, ...] | None = attrs.field(default=None, converter=_events_on)
    #: addition: seconds per HTTP request.
    timeout: float = 30.0
    #: addition: extra attempts after a failure, with exponential backoff.
    retries: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    #: addition: the name used in logs (default: the type).
    name: str = ""

    def send(self, event: Event, ctx: NotifyContext) -> None:
        """Deliver *event*; raise (any exception) when it could not be delivered."""
        raise NotImplementedError

    def describe(self) -> str:
        """The notifier's name in logs: ``name`` or its kind."""
        return self.name or self.kind

    def secrets(self) -> list[str]:
        """Values to redact wherever they could appear.

        What :func:`~resticm_core.secrets.find_secrets` finds in the notifier's keys
        (``token``, secret-named ``options`` such as an ``Authorization`` header,
        the tokens of a Slack, Discord, Google Chat... URL), plus the whole ``url``:
        a webhook URL is often a credential of no recognizable shape. A subclass
        with more secret keys extends this list.
        """
        values = [self.url, *secret_values(self)]
        return [v for v in values if v and len(v) >= MIN_SECRET_LENGTH]


_Kind = TypeVar("_Kind")


def find_type(types: Mapping[str, type[_Kind]], name: str) -> type[_Kind] | None:
    """The class for a ``type:`` value (notifier, dump source): case-insensitive, aliases too."""
    wanted = name.strip().lower()
    for kind, cls in types.items():
        spellings = {kind.lower(), *(a.lower() for a in getattr(cls, "aliases", ()))}
        if wanted in spellings:
            return cls
    return None


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for values in a report (enums, paths)."""
    return str(value)
