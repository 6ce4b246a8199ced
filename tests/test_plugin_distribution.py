"""A third-party plugin really installed with pip, then used through the real ``resticm`` CLI.

The distribution is ``tests/fixtures/resticm-hello-plugin`` (the template plugin authors
copy). It is installed once per test session (per xdist worker) into a private
``--target`` directory that only the subprocesses see (``PYTHONPATH``): the test
process never discovers it through its entry point.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from .conftest import PASSWORD, requires_restic, snapshot_ids

FIXTURE = Path(__file__).parent / "fixtures" / "resticm-hello-plugin"


@attrs.frozen
class Installed:
    """The fixture distribution, pip-installed into ``site``."""

    site: Path
    source: Path
    version: str


@pytest.fixture(scope="session")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if pip.returncode != 0:
        pytest.skip(f"pip is not available for {sys.executable}: cannot install a plugin")
    base = tmp_path_factory.mktemp("hello-plugin")
    # Built from a copy: parallel workers never write into the same source tree.
    source = shutil.copytree(FIXTURE, base / "src", ignore=shutil.ignore_patterns("__pycache__"))
    site = base / "site"
    argv = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input",
            "--disable-pip-version-check", "--target", str(site), str(source)]
    if importlib.util.find_spec("hatchling") is not None:
        # The build backend is installed: build offline, exactly with what is here.
        argv += ["--no-build-isolation", "--no-index"]
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore", "PIP_REQUIRE_VIRTUALENV": "0"}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    assert (site / "resticm_hello.py").is_file()
    version = tomllib.loads((FIXTURE / "pyproject.toml").read_text())["project"]["version"]
    return Installed(site=site, source=source, version=version)


@pytest.fixture
def env(environ: dict[str, str], hello: Installed, tmp_path: Path) -> dict[str, str]:
    """The environment of a user who installed resticm-hello beside resticm."""
    env = {k: v for k, v in environ.items() if k not in ("RESTICM_DISABLE_PLUGINS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(hello.site)
    env["HELLO_RUN_LOG"] = str(tmp_path / "runs.log")
    return env


def resticm(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resticm_core", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def listed(env: dict[str, str], cwd: Path) -> dict[str, dict[str, Any]]:
    result = resticm("plugins", "--json", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def write_config(tmp_path: Path, repo: Path, source: Path, out: Path) -> tuple[Path, int]:
    """A 0600 config whose pre_backup runs ``kind: hello``; returns it and the entry's line."""
    lines = [
        f"repository: {repo}",
        f"password: {PASSWORD}",
        "directories:",
        f"  - {source}",
        "logging:",
        f"  file: {tmp_path / 'log' / 'resticm.log'}",
        "hooks:",
        "  pre_backup:",
        f"    - {{kind: hello, message: hi, file: {out}}}",
    ]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path, len(lines)


def test_plugins_lists_the_installed_distribution(
    hello: Installed, env: dict[str, str], tmp_path: Path
) -> None:
    """`resticm plugins` shows the entry-point name, the distribution, its version and kinds."""
    plugins = listed(env, tmp_path)
    assert plugins["hello"] == {
        "name": "hello", "module": "resticm_hello", "distribution": "resticm-hello",
        "version": hello.version, "hook_kinds": ["hello"], "notifier_kinds": [], "dump_kinds": [],
    }
    assert {"script", "directory", "python"} <= plugins.keys()
    text = resticm("plugins", env=env, cwd=tmp_path)
    line = next(ln for ln in text.stdout.splitlines() if ln.startswith("hello "))
    assert "resticm-hello" in line and hello.version in line and "hook:hello" in line


@requires_restic
def test_backup_runs_the_plugin_hook(
    env: dict[str, str], tmp_path: Path, repo: Path, source: Path
) -> None:
    """`kind: hello` loads from the config, runs in pre_backup; the observer sees the run end."""
    out = tmp_path / "hello.txt"
    cfg, _ = write_config(tmp_path, repo, source, out)
    result = resticm("backup", "-c", str(cfg), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == ["hi", "BACKUP_STATUS=", "RESTICM_PHASE=pre_backup"]
    assert len(snapshot_ids(repo, Path(env["RESTIC_CACHE_DIR"]))) == 1
    assert Path(env["HELLO_RUN_LOG"]).read_text() == "0\n"


@requires_restic
def test_disabled_plugin_kind_is_a_located_config_error(
    env: dict[str, str], tmp_path: Path, repo: Path, source: Path
) -> None:
    """RESTICM_DISABLE_PLUGINS=hello: the kind is unknown (exit 2) and the plugin is not listed."""
    out = tmp_path / "hello.txt"
    cfg, line = write_config(tmp_path, repo, source, out)
    env["RESTICM_DISABLE_PLUGINS"] = "hello"
    result = resticm("backup", "-c", str(cfg), env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    error = next(ln.strip() for ln in result.stderr.splitlines() if "unknown hook kind" in ln)
    assert error.startswith(f"{cfg}:{line}: hooks.pre_backup[0]"), error
    installed = error.split("unknown hook kind 'hello' (installed: ", 1)[1]
    assert "script" in installed and "hello" not in installed
    assert "Traceback" not in result.stderr
    assert not out.exists() and not Path(env["HELLO_RUN_LOG"]).exists()
    assert snapshot_ids(repo, Path(env["RESTIC_CACHE_DIR"])) == []
    assert "hello" not in listed(env, tmp_path)
    text = resticm("plugins", env=env, cwd=tmp_path).stdout
    assert "resticm-hello" not in text and "blocked" in text


def test_check_reports_a_missing_target_directory(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The plugin's check() runs at load: `resticm config validate` refuses what would
    fail the hook every run (exit 2), and nothing is written."""
    out = tmp_path / "missing" / "hello.txt"
    cfg, _ = write_config(tmp_path, tmp_path / "repo", tmp_path, out)
    result = resticm("config", "validate", "-c", str(cfg), env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"hooks.pre_backup[0]: hello: directory {out.parent} does not exist" in result.stdout
    assert not out.parent.exists()


@pytest.fixture
def hello_module(hello: Installed, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``import resticm_hello`` from its source tree, as its author's own tests do."""
    monkeypatch.syspath_prepend(str(hello.source))
    yield importlib.import_module("resticm_hello")
    sys.modules.pop("resticm_hello", None)


@requires_restic
def test_plugin_author_tests_in_process(
    hello_module: Any, environ: dict[str, str], tmp_path: Path, repo: Path, source: Path,
    lock_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pattern docs/plugins.md recommends: an explicit registry, a real run, real restic."""
    import resticm_core

    registry = resticm_core.PluginRegistry.default(plugins=[hello_module], entry_points=False)
    out = tmp_path / "hello.txt"
    config = resticm_core.config_from_dict({
        "repository": str(repo), "password": PASSWORD, "directories": [str(source)],
        "hooks": {"on_success": [{"kind": "hello", "message": "done", "file": str(out)}]},
    }, registry=registry, environ=environ)
    monkeypatch.setenv("HELLO_RUN_LOG", str(tmp_path / "runs.log"))
    report = resticm_core.run(config, "backup", registry=registry, environ=environ,
                              lock_dir=lock_dir)
    assert report.exit_code == 0, report.errors
    assert out.read_text().splitlines() == ["done", "BACKUP_STATUS=success",
                                            "RESTICM_PHASE=on_success"]
    on_success = report.phase(resticm_core.Phase.ON_SUCCESS)
    assert on_success is not None
    (hook,) = on_success.hooks
    assert (hook.kind, hook.outcome, hook.name) == ("hello", "ok", f"hello:{out}")
    assert (tmp_path / "runs.log").read_text() == "0\n"
