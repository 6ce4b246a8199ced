"""The notifier API from the top-level package, and the configurable dispatch bound
(``notifications.timeout``), against a real HTTP server on 127.0.0.1 and the real restic."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from resticm_core import (
    ConfigError,
    Event,
    EventStatus,
    Notifier,
    NotifyContext,
    NotifyError,
    PluginRegistry,
    RunReport,
    config_from_dict,
    hookimpl,
    load_config,
    run,
)
from resticm_core.cli import main

from .conftest import PASSWORD, requires_restic, write_script
from .http_recorder import Recorder, serve

HOST = "web1"


@pytest.fixture
def server() -> Iterator[Recorder]:
    yield from serve()


@pytest.fixture
def do_run(environ: dict[str, str], lock_dir: Path) -> Callable[..., RunReport]:
    def go(config: Any, command: str = "backup", **kwargs: Any) -> RunReport:
        return run(config, command, environ=environ, lock_dir=lock_dir, **kwargs)

    return go


def test_import_resticm_core_stays_cheap() -> None:
    code = (
        "import sys, resticm_core\n"
        "assert 'resticm_core.notifiers' not in sys.modules, 'imported eagerly'\n"
        "from resticm_core import Event, EventStatus, Notifier, NotifyContext, NotifyError\n"
        "import resticm_core.notifiers as n\n"
        "assert (Event, EventStatus, Notifier, NotifyContext, NotifyError) == "
        "(n.Event, n.EventStatus, n.Notifier, n.NotifyContext, n.NotifyError)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- a notifier written against the public API, used through a plugin ---------------------------


@attrs.frozen(kw_only=True)
class PagerNotifier(Notifier):
    """What a third party writes: only ``resticm_core`` top-level names."""

    kind: ClassVar[str] = "pager_api_test"
    default_events: ClassVar[tuple[str, ...]] = ("error",)

    routing_key: str = attrs.field(default="", repr=False)

    def secrets(self) -> list[str]:
        return [*super().secrets(), self.routing_key]

    def send(self, event: Event, ctx: NotifyContext) -> None:
        if event.status is not EventStatus.ERROR:
            raise NotifyError(f"unexpected {event.status.value} event")
        ctx.post_json(
            self.url,
            {
                "routing_key": self.routing_key,
                "summary": event.title,
                "host": event.host,
                "body": event.body,
            },
        )


class PagerPlugin:
    @hookimpl
    def resticm_notifier_types(self) -> list[type[Notifier]]:
        return [PagerNotifier]


@pytest.mark.restic  # the preflight probe runs the real restic
def test_a_plugin_notifier_from_the_public_api(
    tmp_path: Path, server: Recorder, do_run: Callable[..., RunReport]
) -> None:
    registry = PluginRegistry.default(plugins=[PagerPlugin()])
    marker = tmp_path / "pre-ran"
    hook = write_script(tmp_path / "pre.sh", f"touch {marker}\n")
    config = config_from_dict(
        {
            "repository": str(tmp_path / "no-repo"),
            "hooks": {"pre_backup": str(hook)},
            "password": PASSWORD,
            "directories": [str(tmp_path)],
            "host": HOST,
            "logging": {"file": "", "console": False},
            "notifications": {
                "enabled": True,
                "notify_on_error": True,
                "notify_on_success": True,
                "providers": [
                    {"type": "pager_api_test", "url": f"{server.url}/pager", "routing_key": "RK1"}
                ],
            },
        },
        registry=registry,
    )
    (provider,) = config.notifications.providers
    assert isinstance(provider, PagerNotifier)
    # An early failure: the real restic finds no repository there (the preflight
    # probe, before pre_backup hooks would stop anything).
    report = do_run(config, registry=registry)
    assert report.exit_code == 1
    assert [s.name for s in report.steps] == ["preflight"] and not marker.exists()
    (request,) = server.requests  # default_events: error only (no start, no success)
    assert request.path == "/pager"
    payload = request.json()
    assert payload == {
        "routing_key": "RK1",
        "summary": "❌ Backup Failed",
        "host": HOST,
        "body": f"resticm backup failed on {HOST}: {report.errors[0]}",
    }
    assert "primary" in payload["body"]


# -- notifications.timeout: the whole dispatch's bound --------------------------------------------


def test_timeout_is_a_validated_duration(tmp_path: Path) -> None:
    base = {"repository": "/r", "password": PASSWORD}
    config = config_from_dict({**base, "notifications": {"timeout": "2m"}})
    assert config.notifications.timeout == 120.0
    assert config_from_dict(base).notifications.timeout == 120.0  # the default
    path = tmp_path / "config.yaml"
    path.write_text("repository: /r\npassword: x\nnotifications:\n  timeout: 0\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "config.yaml:4: notifications.timeout: must be greater than 0" in str(caught.value)
    with pytest.raises(ConfigError, match=r"notifications\.timeout: expected a number of seconds"):
        config_from_dict({**base, "notifications": {"timeout": "soon"}})


@requires_restic
def test_a_hanging_provider_is_abandoned_after_the_configured_total(
    tmp_path: Path,
    repo: Path,
    source: Path,
    server: Recorder,
    do_run: Callable[..., RunReport],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = config_from_dict(
        {
            "repository": str(repo),
            "password": PASSWORD,
            "directories": [str(source)],
            "host": HOST,
            "logging": {"file": "", "console": False},
            "notifications": {
                "enabled": True,
                "notify_on_success": True,
                "timeout": "2s",
                "providers": [
                    # Its own timeout (and retries) would keep it busy for minutes.
                    {"type": "webhook", "url": f"{server.url}/hang", "timeout": 60, "retries": 3},
                    {"type": "webhook", "url": f"{server.url}/ok"},
                ],
            },
        }
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="resticm_core"):
        report = do_run(config)
    elapsed = time.monotonic() - started
    assert report.exit_code == 0 and report.snapshot_id
    assert elapsed < 45  # a hang guard only: the provider alone would take minutes
    assert len(server.by_path("/hang")) == 1
    assert server.by_path("/ok")[0].json()["status"] == "success"
    assert "notifier webhook failed: still not done after 2s; abandoned" in caplog.text


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
def test_notify_test_honours_the_total_timeout(
    tmp_path: Path, server: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""repository: /r
password: pw-secret
logging: {{file: "{tmp_path / 'resticm.log'}"}}
notifications:
  timeout: 1s
  providers:
    - {{type: webhook, name: stuck, url: "{server.url}/hang", timeout: 1m}}
    - {{type: webhook, name: fine, url: "{server.url}/ok"}}
"""
    )
    path.chmod(0o600)
    started = time.monotonic()
    assert main(["-c", str(path), "notify", "test"], environ={}) == 1
    assert time.monotonic() - started < 30  # hang guard
    out = capsys.readouterr().out
    assert "still not done after 1s" in out
    assert any(line.startswith("fine") and line.endswith("ok") for line in out.splitlines())
