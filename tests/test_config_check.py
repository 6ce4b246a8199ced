"""``config validate`` and ``schedule install`` refuse what fails every night (issue 16)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PASSWORD, write_script


def resticm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


def write_config(tmp_path: Path, body: str) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"repository: {tmp_path / 'repo'}\n"
        f"directories: [{tmp_path}]\n"
        f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n" + body
    )
    cfg.chmod(0o600)
    return cfg


def validate(cfg: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return resticm("-c", str(cfg), "config", "validate", env=env)


@pytest.fixture
def env(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**environ, "HOME": str(tmp_path / "home")}


def test_missing_not_executable_and_unsafe_hooks_fail(tmp_path: Path, env: dict[str, str]) -> None:
    lax = tmp_path / "lax"
    lax.mkdir()
    lax.chmod(0o777)
    write_script(tmp_path / "hooks" / "noexec.sh", "true\n", mode=0o600)
    write_script(lax / "open.sh", "true\n")
    cfg = write_config(
        tmp_path,
        f"password: {PASSWORD}\n"
        "hooks:\n"
        f"  pre_backup: {tmp_path}/hooks/missing.sh\n"
        f"  post_backup: {tmp_path}/hooks/noexec.sh\n"
        f"  on_error: {lax}/open.sh\n",
    )
    result = validate(cfg, env)
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout
    assert "error: hooks.pre_backup[0]: hook" in out and "does not exist" in out
    assert "error: hooks.post_backup[0]: hook" in out and "chmod u+x" in out
    assert "error: hooks.on_error[0]:" in out and f"chmod go-w {lax}" in out
    assert "Traceback" not in result.stderr


def test_password_file_and_command_that_cannot_work(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = write_config(
        tmp_path,
        f"password_file: {tmp_path}/nowhere.txt\n"
        "backends:\n"
        "  offsite:\n"
        f"    repository: {tmp_path / 'offsite'}\n"
        "    password_command: no-such-password-tool --get restic\n"
        "  spare:\n"
        f"    repository: {tmp_path / 'spare'}\n"
        "copy_to_backends: [offsite, spare]\n",
    )
    doc = json.loads(resticm("-c", str(cfg), "--json", "config", "validate", env=env).stdout)
    assert doc["ok"] is False
    assert f"password_file: {tmp_path}/nowhere.txt does not exist" in doc["errors"]
    assert (
        "backends.offsite.password_command: 'no-such-password-tool' is not an executable "
        "program on PATH" in doc["errors"]
    )
    assert any(e.startswith("backends.spare: no password") for e in doc["errors"])
    assert validate(cfg, env).returncode == 2


def test_a_backend_no_run_writes_to_is_a_warning(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = write_config(
        tmp_path,
        f"password: {PASSWORD}\n"
        f"exclude_file: {tmp_path}/excludes.txt\n"
        "backends:\n"
        "  old:\n"
        f"    repository: {tmp_path / 'old'}\n"
        f"    password_file: {tmp_path}/gone.txt\n",
    )
    result = validate(cfg, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK:") and "(2 warning(s))" in result.stdout
    # each warning printed once: not also as a log line on stderr
    assert result.stdout.count("gone.txt") == 1 and "gone.txt" not in result.stderr
    assert result.stdout.count("excludes.txt") == 1


def test_a_clean_config_is_ok(tmp_path: Path, env: dict[str, str]) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD)
    pw.chmod(0o600)
    cfg = write_config(tmp_path, f"password_file: {pw}\n")
    result = validate(cfg, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"OK: {cfg}"


def test_schedule_install_refuses_a_config_that_fails_every_night(
    tmp_path: Path, env: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, f"password: {PASSWORD}\nhooks:\n  pre_backup: {tmp_path}/no.sh\n")
    units = tmp_path / "units"
    result = resticm("schedule", "install", "--config", str(cfg), "--unit-dir", str(units), env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "hooks.pre_backup[0]" in result.stderr and "not scheduled" in result.stderr
    assert not units.exists() or not any(units.iterdir())
