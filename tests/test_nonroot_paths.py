"""Without root, the Go tool's /var/log default falls back to XDG (issue 16/17)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import resticm_core
from resticm_core.logs import effective_log_file

from .conftest import PASSWORD, requires_restic

NOBODY = 65534
DEFAULT = "/var/log/resticm/resticm.log"


def test_fallback_rule(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)}
    no = lambda _p: False  # noqa: E731
    assert effective_log_file(DEFAULT, euid=1000, environ=env, writable=no) == (
        tmp_path / "state" / "resticm" / "resticm.log", True,
    )
    # root, a writable /var/log, or any other path: used as written
    assert effective_log_file(DEFAULT, euid=0, environ=env, writable=no) == (Path(DEFAULT), False)
    yes = lambda _p: True  # noqa: E731
    assert effective_log_file(DEFAULT, euid=1000, environ=env, writable=yes)[1] is False
    other = str(tmp_path / "logs" / "r.log")
    assert effective_log_file(other, euid=1000, environ=env, writable=no) == (Path(other), False)
    home_only = {"HOME": str(tmp_path)}
    assert effective_log_file(DEFAULT, euid=1000, environ=home_only, writable=no)[0] == (
        tmp_path / ".local" / "state" / "resticm" / "resticm.log"
    )


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory uid 65534 owns (pytest's own tmp_path is root's 0700 tree)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a second, unprivileged user")
    if shutil.which("setpriv") is None or not Path("/usr/bin/python3").exists():
        pytest.skip("needs setpriv and the system python3")
    path = Path(tempfile.mkdtemp(prefix="resticm-nobody-"))
    os.chown(path, NOBODY, NOBODY)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def site_packages() -> str:
    import attrs

    return str(Path(attrs.__file__).parent.parent)


@requires_restic
def test_a_user_logs_under_xdg_and_is_told_once(nobody_dir: Path) -> None:
    source = nobody_dir / "src"
    source.mkdir()
    (source / "a.txt").write_text("alpha\n")
    cfg = nobody_dir / "config.yaml"
    # No logging section: the Go tool's default, /var/log/resticm/resticm.log.
    cfg.write_text(f"repository: {nobody_dir / 'repo'}\npassword: {PASSWORD}\n"
                   f"directories: [{source}]\n")
    cfg.chmod(0o600)
    for path in (source, source / "a.txt", cfg):
        os.chown(path, NOBODY, NOBODY)
    checkout = Path(resticm_core.__file__).parent.parent
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(nobody_dir / "home"),
        "PYTHONPATH": f"{checkout}{os.pathsep}{site_packages()}",
        "RESTIC_CACHE_DIR": str(nobody_dir / "cache"),
    }

    def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             "/usr/bin/python3", "-m", "resticm_core", "-c", str(cfg), *args],
            env=env, capture_output=True, text=True, timeout=120, cwd=nobody_dir,
        )

    init = as_nobody("init")
    assert init.returncode == 0, init.stdout + init.stderr
    log = nobody_dir / "home" / ".local" / "state" / "resticm" / "resticm.log"
    assert f"logging to {log}" in init.stderr and "shown once" in init.stderr
    backup = as_nobody("backup")
    assert backup.returncode == 0, backup.stderr
    assert "logging to" not in backup.stderr and "cannot write log file" not in backup.stderr
    text = log.read_text()
    assert "resticm backup started" in text
    assert log.stat().st_uid == NOBODY and log.stat().st_mode & 0o077 == 0
    assert not Path(DEFAULT).exists() or Path(DEFAULT).stat().st_uid != NOBODY
