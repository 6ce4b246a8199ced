"""Notification payloads field by field against the Go tool's (spec §2.3, §2.5, §5.4).

The Go payloads are written out here from reference/resticm-spec.md; resticm may add
fields (duration, exit_code...), never drop or change one of these.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORD, requires_restic
from .http_recorder import Recorder, serve

pytestmark = [requires_restic, pytest.mark.restic]

HOST = socket.gethostname()


@pytest.fixture
def server() -> Iterator[Recorder]:
    yield from serve()


def resticm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )


def go_config(tmp_path: Path, repo: Path, source: Path, url: str, copy: str) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f'repository: "{repo}"\n'
        f'password: "{PASSWORD}"\n'
        f"directories:\n  - {source}\n"
        "backends:\n"
        "  offsite:\n"
        f'    repository: "{tmp_path / "offsite"}"\n'
        f'    password: "{PASSWORD}"\n'
        "  spare:\n"
        f'    repository: "{tmp_path / "spare"}"\n'
        f'    password: "{PASSWORD}"\n'
        f"copy_to_backends: {copy}\n"
        "notifications:\n"
        "  enabled: true\n"
        "  notify_on_success: true\n"
        "  notify_on_error: true\n"
        "  providers:\n"
        "    - type: webhook\n"
        f'      url: "{url}/webhook"\n'
        f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n"
    )
    cfg.chmod(0o600)
    return cfg


@pytest.fixture
def env(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**environ, "HOME": str(tmp_path / "home")}


def payload(server: Recorder) -> dict[str, Any]:
    (request,) = server.by_path("/webhook")
    data: dict[str, Any] = request.json()
    return data


def assert_go_fields(data: dict[str, Any], go: dict[str, Any]) -> None:
    """Every field of the Go payload, with the Go value; extra fields allowed."""
    for key in ("title", "body", "status"):
        assert data[key] == go[key], key
    for key, value in go["details"].items():
        assert data["details"][key] == value, key


def test_full_success_counts_the_copy_backends(
    tmp_path: Path, repo: Path, source: Path, server: Recorder, env: dict[str, str]
) -> None:
    cfg = go_config(tmp_path, repo, source, server.url, "[offsite]")
    assert resticm("-c", str(cfg), "init", "--backend", "offsite", env=env).returncode == 0
    result = resticm("-c", str(cfg), "full", env=env)
    assert result.returncode == 0, result.stderr
    assert_go_fields(
        payload(server),
        {
            "title": "✅ Full Maintenance Completed",
            "body": f"resticm full completed successfully on {HOST}",
            "status": "success",
            # spec §2.5: backends = count of copy_to_backends + 1 (two are defined)
            "details": {"host": HOST, "repository": str(repo), "backends": "2"},
        },
    )


def test_check_failing_on_the_active_backend(
    tmp_path: Path, repo: Path, source: Path, server: Recorder, env: dict[str, str]
) -> None:
    cfg = go_config(tmp_path, repo, source, server.url, "[offsite]")
    # offsite is never initialised: its check fails
    assert resticm("-c", str(cfg), "backend", "use", "offsite", env=env).returncode == 0
    result = resticm("-c", str(cfg), "check", env=env)
    assert result.returncode == 1
    data = payload(server)
    assert_go_fields(
        data,
        {
            "title": "🚨 Repository Check FAILED",
            "body": f"CRITICAL: Repository integrity check failed on {HOST} backend 'offsite'",
            "status": "error",
            "details": {
                "host": HOST, "backend": "offsite", "repository": str(tmp_path / "offsite"),
            },
        },
    )
    assert data["details"]["error"]  # the Go payload's error key, with restic's reason
    assert "offsite" in data["details"]["error"] or "repository" in data["details"]["error"]


def test_backup_on_the_active_backend_names_it(
    tmp_path: Path, repo: Path, source: Path, server: Recorder, env: dict[str, str]
) -> None:
    cfg = go_config(tmp_path, repo, source, server.url, "[offsite]")
    assert resticm("-c", str(cfg), "init", "--backend", "offsite", env=env).returncode == 0
    assert resticm("-c", str(cfg), "backend", "use", "offsite", env=env).returncode == 0
    result = resticm("-c", str(cfg), "backup", env=env)
    assert result.returncode == 0, result.stderr
    assert_go_fields(
        payload(server),
        {
            "title": "✅ Backup Completed",
            "body": f"resticm backup completed successfully on {HOST}",
            "status": "success",
            "details": {"host": HOST, "repository": str(tmp_path / "offsite")},
        },
    )


def test_forget_failing_on_one_mirror_counts_it_and_joins_errors(
    tmp_path: Path, repo: Path, source: Path, server: Recorder, env: dict[str, str]
) -> None:
    cfg = go_config(tmp_path, repo, source, server.url, "[offsite, spare]")
    assert resticm("-c", str(cfg), "init", "--backend", "offsite", env=env).returncode == 0
    result = resticm("-c", str(cfg), "forget", env=env)  # spare is not initialised
    assert result.returncode == 1
    data = payload(server)
    assert_go_fields(
        data,
        {
            "title": "❌ Forget Failed",
            # mirror mode: counted even for one failed repository (spec §2.3)
            "body": f"resticm forget failed on {HOST} - 1 backend(s) affected",
            "status": "error",
            "details": {"host": HOST},
        },
    )
    assert "spare" in data["details"]["errors"] and "\n" not in data["details"]["errors"]
