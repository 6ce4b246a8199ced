"""Notifiers against a real HTTP server on 127.0.0.1: every provider's request, for a
success run and an error run of the real restic, and the isolation of failures.
"""

from __future__ import annotations

import datetime
import logging
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from resticm_core import RunReport, config_from_dict, run
from resticm_core.cli import main
from resticm_core.locking import ProcessLock, lock_key
from resticm_core.notifiers import Event, EventStatus, dispatch
from resticm_core.testing import FakeRestic

from .conftest import PASSWORD, requires_restic, write_script
from .http_recorder import Recorder, refused_url, serve

HOST = "web1"


@pytest.fixture
def server() -> Iterator[Recorder]:
    yield from serve()


def providers(url: str, **common: Any) -> list[dict[str, Any]]:
    """One provider of each builtin type, each on its own path of the recorder."""
    return [
        {"type": "slack", "url": f"{url}/slack", "channel": "#ops", **common},
        {"type": "discord", "url": f"{url}/discord", **common},
        {
            "type": "ntfy",
            "url": f"{url}/ntfy/",
            "options": {"topic": "backups"},
            "token": "tk_notifytoken",
            "tags": ["floppy_disk"],
            **common,
        },
        {"type": "Google", "url": f"{url}/gchat", **common},
        {"type": "uptime-kuma", "url": f"{url}/kuma?x=1", **common},
        {"type": "webhook", "url": f"{url}/webhook", "options": {"x-custom": "yes"}, **common},
        {"type": "healthchecks", "url": f"{url}/hc", **common},
    ]


def make_config(tmp_path: Path, repository: str, sources: list[Path], **extra: Any) -> Any:
    data = {
        "repository": repository,
        "password": PASSWORD,
        "directories": [str(s) for s in sources],
        "host": HOST,
        "logging": {"file": "", "console": False},
        **extra,
    }
    return config_from_dict(data, base_dir=tmp_path)


def notifications(url: str, **common: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "notify_on_success": True,
        "notify_on_error": True,
        "providers": providers(url, **common),
    }


@pytest.fixture
def do_run(environ: dict[str, str], lock_dir: Path) -> Callable[..., RunReport]:
    def go(config: Any, command: str = "backup", **kwargs: Any) -> RunReport:
        return run(config, command, environ=environ, lock_dir=lock_dir, **kwargs)

    return go


def one(server: Recorder, prefix: str) -> Any:
    found = server.by_path(prefix)
    assert len(found) == 1, [r.path for r in server.requests]
    return found[0]


# -- real restic: success and error, every provider ----------------------------------------


@requires_restic
def test_every_provider_on_a_successful_backup(
    tmp_path: Path, repo: Path, source: Path, server: Recorder, do_run: Callable[..., RunReport]
) -> None:
    config = make_config(tmp_path, str(repo), [source], notifications=notifications(server.url))
    report = do_run(config)
    assert report.exit_code == 0
    snapshot = report.snapshot_id
    assert snapshot
    title, body = "✅ Backup Completed", f"resticm backup completed successfully on {HOST}"

    slack = one(server, "/slack")
    assert slack.method == "POST" and slack.header("Content-Type") == "application/json"
    payload = slack.json()
    assert payload["channel"] == "#ops"
    (attachment,) = payload["attachments"]
    assert list(attachment) == ["color", "title", "text", "footer", "ts", "fields"]
    assert attachment["color"] == "#36a64f"
    assert (attachment["title"], attachment["text"], attachment["footer"]) == (
        title,
        body,
        "resticm",
    )
    assert isinstance(attachment["ts"], int) and abs(attachment["ts"] - report.finished_at) < 2
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert [f["title"] for f in attachment["fields"]][:3] == ["host", "command", "repository"]
    assert fields["host"] == HOST and fields["command"] == "backup"
    assert fields["snapshot"] == snapshot and fields["exit_code"] == "0"
    assert all(f["short"] is True for f in attachment["fields"])

    (embed,) = one(server, "/discord").json()["embeds"]
    assert embed["title"] == title and embed["description"] == body
    assert embed["color"] == 3581519 and embed["footer"] == {"text": "resticm"}
    stamp = datetime.datetime.fromisoformat(embed["timestamp"])
    assert stamp.utcoffset() is not None and abs(stamp.timestamp() - report.finished_at) < 2
    assert {"name": "snapshot", "value": snapshot, "inline": True} in embed["fields"]

    ntfy = one(server, "/ntfy")
    assert ntfy.method == "POST" and ntfy.path == "/ntfy/backups"
    assert ntfy.header("Title") == title
    assert ntfy.header("Priority") == "default"
    assert ntfy.header("Tags") == "white_check_mark,floppy_disk"
    assert ntfy.header("Authorization") == "Bearer tk_notifytoken"
    text = ntfy.body.decode()
    assert text.startswith(body + "\n") and f"snapshot: {snapshot}" in text

    (card,) = one(server, "/gchat").json()["cards"]
    assert card["header"] == {"title": title, "subtitle": "resticm backup"}
    widgets = card["sections"][0]["widgets"]
    assert widgets[0] == {"textParagraph": {"text": body}}
    assert {"keyValue": {"topLabel": "snapshot", "content": snapshot}} in widgets

    kuma = one(server, "/kuma")
    assert kuma.method == "GET" and kuma.query == {"x": ["1"], "status": ["up"], "msg": ["OK"]}

    hook = one(server, "/webhook")
    assert hook.header("X-Custom") == "yes"
    data = hook.json()
    assert list(data)[:5] == ["title", "body", "status", "timestamp", "details"]
    assert (data["title"], data["body"], data["status"]) == (title, body, "success")
    assert data["report"]["exit_code"] == 0 and data["report"]["snapshot_id"] == snapshot
    assert data["report"]["steps"][0]["name"] == "backup"

    start, done = server.by_path("/hc")
    assert (start.method, start.path) == ("POST", "/hc/start")
    assert (done.method, done.path) == ("POST", "/hc")
    assert done.body.decode().startswith(title + "\n" + body)


@requires_restic
def test_every_provider_on_a_failed_pre_backup(
    tmp_path: Path, repo: Path, source: Path, server: Recorder, do_run: Callable[..., RunReport]
) -> None:
    hook = write_script(tmp_path / "pre.sh", "echo 'dump failed: disk full' >&2\nexit 4\n")
    config = make_config(
        tmp_path,
        str(repo),
        [source],
        hooks={"pre_backup": str(hook)},
        notifications=notifications(server.url),
    )
    report = do_run(config)
    assert report.exit_code == 1
    title = "❌ Pre-Backup Hook Failed"
    body = f"resticm pre-backup hook failed on {HOST}: {report.errors[0]}"

    (attachment,) = one(server, "/slack").json()["attachments"]
    assert (attachment["color"], attachment["title"], attachment["text"]) == (
        "#dc3545",
        title,
        body,
    )
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert "pre_backup failed" in fields["error"] and "snapshot" not in fields

    (embed,) = one(server, "/discord").json()["embeds"]
    assert (embed["color"], embed["title"], embed["description"]) == (14431557, title, body)

    ntfy = one(server, "/ntfy")
    assert (ntfy.header("Priority"), ntfy.header("Tags")) == ("high", "x,floppy_disk")
    assert "error: pre_backup failed" in ntfy.body.decode()

    assert one(server, "/gchat").json()["cards"][0]["header"]["title"] == title

    kuma = one(server, "/kuma")
    assert kuma.query["status"] == ["down"] and kuma.query["msg"] == [body]

    data = one(server, "/webhook").json()
    assert data["status"] == "error" and data["report"]["exit_code"] == 1
    assert data["details"]["error"] == report.errors[0]

    start, fail = server.by_path("/hc")
    assert (start.path, fail.path) == ("/hc/start", "/hc/fail")
    text = fail.body.decode()
    assert "log:" in text and "pre_backup failed" in text


# -- isolation ---------------------------------------------------------------------------------


def test_failing_hanging_and_refusing_providers_change_nothing(
    tmp_path: Path,
    server: Recorder,
    do_run: Callable[..., RunReport],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeRestic()
    fake.respond("backup", stdout=[FakeRestic.summary_line("abcd1234")])
    broken = [
        {"type": "webhook", "url": f"{server.url}/status/500/a", "name": "five-hundred"},
        {"type": "webhook", "url": f"{server.url}/hang/b", "name": "hanging", "timeout": 1},
        {"type": "slack", "url": refused_url(), "name": "refused", "retries": 1},
    ]
    settings = notifications(server.url)
    settings["providers"] = [*broken, {"type": "webhook", "url": f"{server.url}/ok"}]
    config = make_config(tmp_path, "/nonexistent/repo", [tmp_path], notifications=settings)
    with caplog.at_level(logging.WARNING, logger="resticm_core"):
        report = do_run(config, runner=fake)
    assert report.exit_code == 0
    assert one(server, "/ok").json()["status"] == "success"
    assert len(server.by_path("/status/500")) == 1 and len(server.by_path("/hang")) == 1
    failures = [r.getMessage() for r in caplog.records if "failed to send" in r.getMessage()]
    assert any(m.startswith("notifier five-hundred") and "HTTP 500" in m for m in failures)
    assert any(m.startswith("notifier hanging") for m in failures)
    assert any(m.startswith("notifier refused") and "2 attempt(s)" in m for m in failures)


def test_dispatch_deadline_abandons_a_hung_notifier(server: Recorder) -> None:
    config = config_from_dict(
        {
            "repository": "/r",
            "password": PASSWORD,
            "notifications": {
                "providers": [
                    {"type": "webhook", "url": f"{server.url}/hang", "timeout": 30},
                    {"type": "webhook", "url": f"{server.url}/ok"},
                ]
            },
        }
    )
    event = Event(title="t", body="b", status=EventStatus.ERROR, timestamp=0.0)
    deliveries = dispatch([event], config.notifications.providers, deadline=1.0)
    assert sorted((d.ok, d.error[:14]) for d in deliveries) == [
        (False, "still not done"),
        (True, ""),
    ]


# -- secrets -----------------------------------------------------------------------------------


def test_no_secret_in_any_request_or_log(
    tmp_path: Path,
    server: Recorder,
    do_run: Callable[..., RunReport],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "rest:https://backup:s3cr3t-in-url@rest.example.org/repo"
    fake = FakeRestic()
    fake.respond(
        "backup",
        exit_code=1,
        stderr=[f"Fatal: unable to open {url}: wrong password {PASSWORD}"],
    )
    config = make_config(
        tmp_path, url, [tmp_path], notifications=notifications(server.url, retries=0)
    )
    with caplog.at_level(logging.DEBUG, logger="resticm_core"):
        report = do_run(config, runner=fake)
    assert report.exit_code == 1
    assert len(server.requests) == 8  # 7 providers + the healthchecks start ping
    captured = server.all_text() + "\n" + caplog.text
    assert "backup:***@rest.example.org" in captured  # the URL is there, redacted
    assert "s3cr3t-in-url" not in captured
    assert PASSWORD not in captured
    assert "tk_notifytoken" not in caplog.text


# -- gating ------------------------------------------------------------------------------------


def test_gating_flags_on_lists_and_dry_run(
    tmp_path: Path, server: Recorder, do_run: Callable[..., RunReport]
) -> None:
    fake = FakeRestic()
    settings = {
        "enabled": True,
        "notify_on_error": True,  # success off: only --notify-success or on: sends it
        "providers": [
            {"type": "webhook", "url": f"{server.url}/default"},
            {"type": "webhook", "url": f"{server.url}/explicit", "on": ["success"]},
            {"type": "webhook", "url": f"{server.url}/erroronly", "on": ["error"]},
        ],
    }
    config = make_config(tmp_path, "/r", [tmp_path], notifications=settings)
    assert do_run(config, runner=fake, dry_run=True).exit_code == 0
    assert server.requests == []  # dry run: nothing notified
    do_run(config, runner=fake)
    assert [r.path for r in server.requests] == ["/explicit"]
    do_run(config, runner=fake, options=_options(notify_success=True))
    assert sorted(r.path for r in server.requests) == [
        "/default",
        "/erroronly",
        "/explicit",
        "/explicit",
    ]
    disabled = make_config(tmp_path, "/r", [tmp_path], notifications={**settings, "enabled": False})
    do_run(disabled, runner=fake, options=_options(notify_success=True))
    assert len(server.requests) == 4


def _options(**kwargs: Any) -> Any:
    from resticm_core.workflow import RunOptions

    return RunOptions(**kwargs)


def test_partial_backup_is_a_warning(
    tmp_path: Path, server: Recorder, do_run: Callable[..., RunReport]
) -> None:
    fake = FakeRestic()
    fake.respond(
        "backup",
        exit_code=3,
        stdout=[FakeRestic.summary_line("feed1234")],
        stderr=["error: open /x: permission denied"],
    )
    config = make_config(tmp_path, "/r", [tmp_path], notifications=notifications(server.url))
    report = do_run(config, runner=fake)
    assert report.exit_code == 3
    data = one(server, "/webhook").json()
    assert data["status"] == "warning" and data["title"].startswith("⚠️")
    assert one(server, "/kuma").query["status"] == ["up"]
    assert one(server, "/slack").json()["attachments"][0]["color"] == "#ffc107"
    assert [r.path for r in server.by_path("/hc")] == ["/hc/start", "/hc"]


def test_early_failures_are_notified(
    tmp_path: Path, server: Recorder, do_run: Callable[..., RunReport], lock_dir: Path
) -> None:
    settings = {
        "enabled": True,
        "notify_on_error": True,
        "providers": [{"type": "webhook", "url": f"{server.url}/hook"}],
    }
    config = make_config(tmp_path, "/r", [tmp_path], notifications=settings)
    # restic missing
    report = do_run(config, runner=FakeRestic(installed=False))
    assert report.exit_code == 1
    data = one(server, "/hook").json()
    assert data["status"] == "error" and "restic" in data["details"]["error"]
    # the lock is held by another run
    other = ProcessLock(lock_key(config.source_path, config.repository), lock_dir=lock_dir)
    other.acquire()
    try:
        report = do_run(config, runner=FakeRestic())
    finally:
        other.release()
    assert report.exit_code == 75
    held = server.by_path("/hook")[1].json()
    assert held["status"] == "error" and held["report"]["exit_code"] == 75


# -- resticm notify test -----------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """main() in-process installs handlers on resticm_core (propagate off): undo it."""
    logger = logging.getLogger("resticm_core")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    for handler in list(logger.handlers):
        if handler not in saved[0]:
            logger.removeHandler(handler)
            handler.close()
    logger.propagate, logger.level = saved[1], saved[2]


@pytest.mark.usefixtures("restore_logging")
def test_cli_notify_test(
    tmp_path: Path, server: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""repository: /r
password: pw-secret
logging: {{file: "{tmp_path / 'resticm.log'}"}}
notifications:
  providers:
    - type: ntfy
      url: {server.url}/ntfy
      options: {{topic: t}}
    - type: webhook
      name: broken
      url: {server.url}/status/404
"""
    )
    path.chmod(0o600)
    assert main(["-c", str(path), "notify", "test", "--provider", "ntfy"], environ={}) == 0
    assert [r.path for r in server.requests] == ["/ntfy/t"]
    assert server.requests[0].header("Title") == "🔔 resticm test notification"
    assert main(["-c", str(path), "notify", "test"], environ={}) == 1
    out = capsys.readouterr().out
    assert "broken" in out and "FAILED: HTTP 404" in out
    assert main(["-c", str(path), "notify", "test", "--provider", "nope"], environ={}) == 2


def test_uptime_kuma_message_is_url_encoded() -> None:
    from resticm_core.builtins.notify_uptime_kuma import UptimeKumaNotifier

    event = Event(title="t", body="a b&c=d\n✅", status=EventStatus.ERROR, timestamp=0.0)
    target = UptimeKumaNotifier(url="https://k/api/push/X").target(event)
    assert target == "https://k/api/push/X?status=down&msg=a%20b%26c%3Dd%0A%E2%9C%85"
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)["msg"] == [event.body]
