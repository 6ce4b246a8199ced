"""plugins/resticm-apprise really pip-installed (into a private --target directory),
then found through its entry point by the real ``resticm`` CLI, and used to send."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .http_recorder import Recorder, serve

PLUGIN = Path(__file__).parent.parent / "plugins" / "resticm-apprise"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if pip.returncode != 0 or importlib.util.find_spec("hatchling") is None:
        pytest.skip("pip or hatchling missing: cannot build the plugin offline")
    base = tmp_path_factory.mktemp("apprise-plugin")
    source = shutil.copytree(
        PLUGIN, base / "src", ignore=shutil.ignore_patterns("__pycache__", "tests")
    )
    target = base / "site"
    argv = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--no-index",
            "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
            str(source)]  # fmt: skip
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore", "PIP_REQUIRE_VIRTUALENV": "0"}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return target


@pytest.fixture
def server() -> Iterator[Recorder]:
    yield from serve()


def resticm(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RESTICM_DISABLE_PLUGINS",)}
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_installed_plugin_is_listed_and_sends(site: Path, tmp_path: Path, server: Recorder) -> None:
    result = resticm(site, tmp_path, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["apprise"]["distribution"] == "resticm-apprise"
    assert plugins["apprise"]["notifier_kinds"] == ["apprise"]
    config = tmp_path / "config.yaml"
    address = server.url.removeprefix("http://")
    config.write_text(
        f"repository: /r\npassword: pw-secret\nlogging:\n  file: {tmp_path / 'r.log'}\n"
        "notifications:\n  providers:\n"
        f"    - type: apprise\n      urls: ['json://{address}/apprise']\n"
    )
    config.chmod(0o600)
    assert resticm(site, tmp_path, "-c", str(config), "config", "validate").returncode == 0
    if importlib.util.find_spec("apprise") is None:
        pytest.skip("apprise is not installed: listing checked, sending not")
    sent = resticm(site, tmp_path, "-c", str(config), "notify", "test")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    (request,) = server.by_path("/apprise")
    assert request.json()["title"] == "🔔 resticm test notification"
