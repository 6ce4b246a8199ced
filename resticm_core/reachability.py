"""Is a remote repository's server there at all? One bounded TCP connect, no restic.

restic >= 0.17 retries a refused connection with backoff for up to 15 minutes
before it gives up: right for a backup that must not fail on a blip, wrong for
the commands that ask "which repository answers?" (``status``, the repository
fallback of ``restore``), which would hang as long. They ask this first: a
server that refuses the connection or does not answer within a few seconds is
unreachable now, whatever restic would do later.

Only URLs that name their server (``rest:http(s)://host:port/``,
``s3:http(s)://host:port/bucket``) are checked, and nothing is checked when a
proxy variable is set (restic would go through the proxy, we cannot tell).
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Mapping

#: Seconds one connect may take: a server that does not answer a TCP handshake in this
#: time is not going to serve a restic request either.
CONNECT_TIMEOUT = 5.0
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                    "all_proxy")
_SCHEMES = ("rest:", "s3:")


def server_of(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``rest:``/``s3:`` URL with ``http(s)://``; None otherwise."""
    prefix = next((p for p in _SCHEMES if url.startswith(p)), None)
    if prefix is None:
        return None
    parts = urllib.parse.urlsplit(url[len(prefix) :])
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number: restic will say so
        return None
    return parts.hostname, port


def unreachable(
    url: str,
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> str | None:
    """Why the server of *url* cannot be reached now ("cannot reach host:port: ..."), or
    None when it accepted a connection or cannot be checked this way."""
    env = os.environ if environ is None else environ
    server = server_of(url)
    if server is None or any(env.get(name) for name in _PROXY_VARIABLES):
        return None
    host, port = server
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror or exc}"
    except TimeoutError:
        return f"cannot reach {host}:{port}: no answer within {timeout:g}s"
    except OSError as exc:
        return f"cannot reach {host}:{port}: {(exc.strerror or str(exc)).lower()}"
    return None
