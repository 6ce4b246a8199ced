"""Which processes a run starts (issue 8), asserted as behaviour, never as timing.

- a backup starts no ``restic version`` process: only ``restic backup`` runs.
  The version is read only when ``retry_lock`` needs it;
- a backup with a pre_backup hook and a preflight record starts only ``restic backup``;
- "is restic installed?" is a PATH lookup.

What a start costs (and which modules ``--version`` imports) is measured by the
start-up figures of ``bench/run.py`` (issue 19), not pinned here: see bench/README.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PASSWORD, requires_restic, write_script


def test_version_output_and_exit_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    from resticm_core import __version__

    assert result.returncode == 0
    assert result.stdout == f"resticm {__version__}\n"


def _config(tmp_path: Path, repo: Path, source: Path, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"repository: {repo}\npassword: {PASSWORD}\ndirectories:\n  - {source}\n"
        f"logging:\n  file: ''\n{extra}"
    )
    path.chmod(0o600)
    return path


def _recording_restic(tmp_path: Path, environ: dict[str, str]) -> tuple[dict[str, str], Path]:
    """A ``restic`` first on PATH that logs its command, then runs the real one."""
    real = subprocess.run(
        ["sh", "-c", "command -v restic"], capture_output=True, text=True, check=True
    ).stdout.strip()
    log = tmp_path / "restic-calls.log"
    bin_dir = tmp_path / "bin"
    write_script(bin_dir / "restic", f'echo "$1" >> {log}\nexec {real} "$@"\n')
    return {**environ, "PATH": f"{bin_dir}:{environ.get('PATH', '')}"}, log


@requires_restic
def test_backup_starts_restic_once(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    env, log = _recording_restic(tmp_path, environ)
    cfg = _config(tmp_path, repo, source)
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), "backup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().split() == ["backup"]  # no `restic version` probe


@requires_restic
def test_backup_with_a_hook_and_a_record_starts_restic_once(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    env, log = _recording_restic(tmp_path, environ)
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    cfg = _config(tmp_path, repo, source, extra="hooks:\n  pre_backup: [/bin/true]\n")
    cfg.write_text(cfg.read_text().replace(f"password: {PASSWORD}", f"password_file: {password}"))
    argv = [sys.executable, "-m", "resticm_core", "-c", str(cfg), "backup"]
    for _ in range(2):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                                check=False)
        assert result.returncode == 0, result.stderr
    # The first preflight asks restic (no record yet), the second the record.
    assert log.read_text().split() == ["--no-lock", "backup", "backup"]  # --no-lock cat config


@requires_restic
def test_retry_lock_reads_the_version_when_needed(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    # retry_lock picks restic's --retry-lock (>= 0.16) or resticm's own retries,
    # so the version is read, once, before the first command that locks.
    env, log = _recording_restic(tmp_path, environ)
    cfg = _config(tmp_path, repo, source, extra="retry_lock: 10s\n")
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), "backup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().split() == ["version", "backup"]


def test_installed_check_is_a_path_lookup(tmp_path: Path) -> None:
    from resticm_core.errors import ResticNotFoundError
    from resticm_core.restic import NOT_INSTALLED_MESSAGE, Restic, SubprocessResticRunner

    empty = tmp_path / "empty-bin"
    empty.mkdir()
    missing = Restic(SubprocessResticRunner(environ={"PATH": str(empty)}))
    with pytest.raises(ResticNotFoundError) as raised:
        missing.ensure_installed()
    assert str(raised.value) == NOT_INSTALLED_MESSAGE  # the same text as before

    # A restic on PATH is found without being started (this one would log and fail).
    log = tmp_path / "started.log"
    write_script(tmp_path / "bin" / "restic", f"echo started >> {log}\nexit 1\n")
    present = Restic(SubprocessResticRunner(environ={"PATH": str(tmp_path / "bin")}))
    present.ensure_installed()
    assert not log.exists()
