"""The apprise notifier, end to end: config -> resticm dispatch -> apprise json:// -> a
real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("apprise")

import resticm_apprise

from resticm_core import Event, EventStatus, config_from_dict
from resticm_core.notifiers import dispatch
from resticm_core.plugin_manager import PluginRegistry


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
            status = 500 if self.path.startswith("/fail") else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", received
    finally:
        httpd.shutdown()
        httpd.server_close()


def load(urls: list[str]) -> Any:
    registry = PluginRegistry.default(plugins=[resticm_apprise])
    assert registry.notifier_types["apprise"] is resticm_apprise.AppriseNotifier
    return config_from_dict(
        {
            "repository": "/r",
            "password": "pw",
            "notifications": {"providers": [{"type": "apprise", "urls": urls}]},
        },
        registry=registry,
    )


def test_error_event_reaches_the_json_endpoint(server: tuple[str, list[Any]]) -> None:
    address, received = server
    config = load([f"json://{address}/hook"])
    event = Event(
        title="❌ Backup Failed",
        body="resticm backup failed on web1: boom",
        status=EventStatus.ERROR,
        timestamp=0.0,
        details={"host": "web1"},
    )
    (delivery,) = dispatch([event], config.notifications.providers)
    assert delivery.ok, delivery.error
    (request,) = received
    assert request["path"] == "/hook"
    assert request["body"]["title"] == "❌ Backup Failed"
    assert request["body"]["message"] == "resticm backup failed on web1: boom\nhost: web1"
    assert request["body"]["type"] == "failure"


def test_failure_is_reported_not_raised(server: tuple[str, list[Any]]) -> None:
    address, _ = server
    config = load([f"json://{address}/fail"])
    event = Event(title="t", body="b", status=EventStatus.SUCCESS, timestamp=0.0)
    (delivery,) = dispatch([event], config.notifications.providers)
    assert not delivery.ok and "could not deliver" in delivery.error
