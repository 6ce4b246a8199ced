"""Transient backend failures are retried, boundedly, only where a retry is safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from resticm_core.config import Repository
from resticm_core.restic import (
    Restic,
    ResticErrorKind,
    ResticResult,
    SubprocessResticRunner,
    retryable_failure,
)
from resticm_core.testing import FakeRestic

from .conftest import PASSWORD, requires_restic, restic_gives_up_on_dead_backends
from .http_recorder import refused_url

# restic 0.14.0's own words (see the comment over restic._TRANSIENT_MARKERS).
REFUSED = (
    'Fatal: unable to open config file: Stat: Get "http://127.0.0.1:1/b/?location=": '
    "dial tcp 127.0.0.1:1: connect: connection refused",
    "Is there a repository at the following location?",
    "s3:http://127.0.0.1:1/b",
)
MID_BACKUP = ("Fatal: unable to save snapshot: Save: dial tcp 10.0.0.1:443: i/o timeout",)
REPO = Repository(name="s3", url="s3:http://127.0.0.1:1/b", password="pw")


def restic(fake: FakeRestic, retries: int = 2, **kwargs: Any) -> Restic:
    return Restic(fake, retries=retries, retry_backoff=0, **kwargs)


def test_a_read_only_command_is_retried_until_it_succeeds() -> None:
    fake = FakeRestic()
    fake.respond("snapshots", exit_code=1, stderr=REFUSED)
    fake.respond("snapshots", exit_code=1, stderr=REFUSED)
    fake.respond("snapshots", exit_code=0, stdout=["[]"])
    assert restic(fake).snapshots(REPO) == []
    assert fake.commands() == ["snapshots"] * 3


def test_attempts_are_bounded() -> None:
    fake = FakeRestic()
    fake.respond("check", exit_code=1, stderr=REFUSED)
    result = restic(fake, retries=2).check(REPO)
    assert not result.ok and "connection refused" in result.message
    assert fake.commands() == ["check"] * 3
    fake.calls.clear()
    assert not restic(fake, retries=0).check(REPO).ok
    assert fake.commands() == ["check"], "retries: 0 turns them off"


@pytest.mark.parametrize(
    ("args", "stderr", "retried"),
    [
        # Failed opening the repository: nothing was done, any command may run again.
        (["backup", "--json", "--", "/src"], REFUSED, True),
        (["prune"], REFUSED, True),
        (["forget", "--keep-last", "1", "--prune"], REFUSED, True),
        # Failed mid-way: only the read-only/idempotent commands run again.
        (["backup", "--json", "--", "/src"], MID_BACKUP, False),
        (["prune"], MID_BACKUP, False),
        (["forget", "--keep-last", "1", "--prune"], MID_BACKUP, False),
        (["forget", "--keep-last", "1"], MID_BACKUP, True),
        (["copy"], MID_BACKUP, True),
        (["check"], MID_BACKUP, True),
        # Never: a half-created repository, a streamed dump.
        (["init"], REFUSED, False),
        (["backup", "--stdin", "--stdin-filename", "db.sql"], REFUSED, False),
        # Not transient at all.
        (["snapshots"], ("Fatal: wrong password or no key found",), False),
        (
            ["snapshots"],
            ("Fatal: unable to open config file: stat /x/config: no such file",),
            False,
        ),
        (["snapshots"], ("Fatal: unable to open config file: Stat: 403 Forbidden",), False),
    ],
)
def test_which_failures_are_retried(
    args: list[str], stderr: tuple[str, ...], retried: bool
) -> None:
    result = ResticResult.from_exit(args, "s3", 1, stderr=stderr)
    assert retryable_failure(result) is retried


def test_timeouts_and_kills_are_never_retried() -> None:
    timed_out = ResticResult(
        args=("snapshots",),
        repository="s3",
        exit_code=-2,
        timed_out=True,
        stderr_tail=REFUSED,
        error_kind=ResticErrorKind.TIMEOUT,
    )
    assert not retryable_failure(timed_out)


def test_restic_5xx_wording_is_transient() -> None:
    for line in (
        "Fatal: unable to open config file: unexpected HTTP response (503): "
        "503 Service Unavailable",
        "Fatal: unable to open config file: Stat: 500 Internal Server Error",
    ):
        assert retryable_failure(ResticResult.from_exit(["cat", "config"], "r", 1, stderr=[line]))


def test_a_signal_during_the_backoff_stops_the_retries() -> None:
    fake = FakeRestic()
    fake.respond("snapshots", exit_code=1, stderr=REFUSED)
    cancel = threading.Event()
    facade = Restic(fake, retries=5, retry_backoff=30, cancel=cancel)
    threading.Timer(0.2, cancel.set).start()
    result = facade.run(["snapshots", "--json"], REPO)
    assert not result.ok
    assert fake.commands() == ["snapshots"], "no attempt after the signal"


# -- real restic ---------------------------------------------------------------------------------


@pytest.fixture
def unavailable() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 answering 503 to everything; records each request."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self) -> None:
            seen.append(f"{self.command} {self.path}")
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@requires_restic
@restic_gives_up_on_dead_backends
@pytest.mark.restic
def test_real_restic_against_a_503_backend_is_tried_three_times(
    tmp_path: Path, unavailable: tuple[str, list[str]]
) -> None:
    url, seen = unavailable
    runner = SubprocessResticRunner(
        environ={"PATH": os.environ["PATH"], "RESTIC_CACHE_DIR": str(tmp_path / "cache")}
    )
    repository = Repository(name="rest", url=f"rest:{url}/repo/", password=PASSWORD)
    result = Restic(runner, retries=2, retry_backoff=0.1).cat_config(repository)
    assert not result.ok
    assert "503 Service Unavailable" in result.message
    # restic 0.14's rest backend asks for the config once per run: one request per attempt.
    assert seen == ["HEAD /repo/config"] * 3


@requires_restic
@restic_gives_up_on_dead_backends
@pytest.mark.restic
def test_a_run_retries_an_unreachable_repository_as_configured(
    tmp_path: Path, source: Path, environ: dict[str, str]
) -> None:
    url = refused_url().replace("/refused", "/repo/")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"repository: rest:{url}\npassword: {PASSWORD}\nretries: 1\n"
        f"directories:\n  - {source}\nlogging:\n  file: ''\n"
    )
    cfg.chmod(0o600)
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "backup", "-c", str(cfg), "--json"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert "connection refused" in report["errors"][0]
    # One warning per extra attempt (retries: 1 -> two attempts of the backup).
    assert result.stderr.count("transient backend error") == 1
    assert "attempt 2 of 2 in 5s" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout


def test_a_timeout_names_the_backend_error_restic_was_retrying() -> None:
    retrying = (
        'Load(<data/1a2b3c>, 0, 0) returned error, retrying after 1.5s: Get "http://s3/b": '
        "dial tcp 127.0.0.1:9000: connect: connection refused"
    )
    stopped = ResticResult(
        args=("copy",),
        repository="s3",
        exit_code=-9,
        duration=25.2,
        timed_out=True,
        stderr_tail=("signal interrupt received, cleaning up", retrying),
        error_kind=ResticErrorKind.TIMEOUT,
    )
    assert stopped.message == (
        f"restic copy on s3 timed out after 25s and was stopped (last backend error: {retrying})"
    )
    quiet = ResticResult(
        args=("copy",),
        repository="s3",
        exit_code=130,
        duration=25.2,
        timed_out=True,
        stderr_tail=("signal interrupt received, cleaning up",),
        error_kind=ResticErrorKind.TIMEOUT,
    )
    assert quiet.message == "restic copy on s3 timed out after 25s and was stopped"


def test_a_restic_stopped_on_timeout_gets_its_stale_lock_removed_even_if_it_exited_itself(
    tmp_path: Path,
) -> None:
    """restic 0.14 can take its lock after the SIGINT cleanup ran, then exit 130 itself."""
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "restic"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$1" >> {calls}\n'
        '[ "$1" = unlock ] && exit 0\n'
        "trap 'exit 130' INT\n"
        "while :; do sleep 0.1; done\n"
    )
    fake.chmod(0o755)
    runner = SubprocessResticRunner(binary=str(fake), environ={"PATH": "/usr/bin:/bin"})
    result = runner.execute(["prune"], REPO, timeout=0.5)
    assert result.error_kind is ResticErrorKind.TIMEOUT and result.exit_code == 130
    assert calls.read_text().split() == ["prune", "unlock"]


@requires_restic
@restic_gives_up_on_dead_backends
@pytest.mark.restic
def test_repository_commands_retry_as_configured_too(
    tmp_path: Path, unavailable: tuple[str, list[str]], environ: dict[str, str]
) -> None:
    url, seen = unavailable
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"repository: rest:{url}/repo/\npassword: {PASSWORD}\nretries: 1\n"
        "logging:\n  file: ''\n"
    )
    cfg.chmod(0o600)
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "snapshots", "-c", str(cfg)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "503 Service Unavailable" in result.stderr
    assert seen == ["HEAD /repo/config"] * 2  # retries: 1 -> two attempts
    assert PASSWORD not in result.stderr + result.stdout
