"""A real HTTP server on 127.0.0.1 (port 0) that records every request.

Paths decide the answer: ``/status/500/...`` answers 500, ``/hang/...`` never
answers (until the server stops), anything else 200 with an empty JSON object.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs


@attrs.frozen
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """A header value; raw UTF-8 values (ntfy's Title) decoded as UTF-8."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                try:
                    return value.encode("latin-1").decode("utf-8")
                except (UnicodeEncodeError, UnicodeDecodeError):
                    return value
        return None

    def raw(self) -> str:
        """Everything that went over the wire, for secret checks."""
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"{self.method} {self.path}?{self.query}\n{head}\n" + self.body.decode(
            "utf-8", "replace"
        )


class Recorder:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                with recorder.lock:
                    recorder.requests.append(
                        Request(
                            method=self.command,
                            path=parts.path,
                            query=parse_qs(parts.query),
                            headers=dict(self.headers.items()),
                            body=body,
                        )
                    )
                if parts.path.startswith("/hang"):
                    recorder.stop.wait(60)
                    return
                status = 200
                if parts.path.startswith("/status/"):
                    status = int(parts.path.split("/")[2])
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_PUT = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def by_path(self, prefix: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def all_text(self) -> str:
        with self.lock:
            return "\n".join(r.raw() for r in self.requests)


def serve() -> Iterator[Recorder]:
    recorder = Recorder()
    recorder.thread.start()
    try:
        yield recorder
    finally:
        recorder.stop.set()
        recorder.server.shutdown()
        recorder.server.server_close()


def refused_url() -> str:
    """A loopback URL nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/refused"
