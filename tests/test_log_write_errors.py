"""A log destination that fails mid-run (issue 13 point 5): one warning, then console only.

``/dev/full`` is a real file whose every write fails with ENOSPC, as on a full
disk; no mount or root-only trick is needed, and nothing is left behind.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from resticm_core.config import Logging
from resticm_core.logs import setup_logging
from resticm_core.secrets import Redactor

from .conftest import PASSWORD, requires_restic, write_script

DEV_FULL = Path("/dev/full")
requires_dev_full = pytest.mark.skipif(
    not (DEV_FULL.exists() and os.access(DEV_FULL, os.W_OK)), reason="no writable /dev/full"
)
FULL_WARNING = (
    "WARNING: cannot write log file /dev/full: No space left on device; "
    "logging to the console only for the rest of this run"
)


@pytest.fixture
def dev_full_mode() -> Iterator[int]:
    """/dev/full's permissions, put back whatever the run did (an old resticm chmods it 0600)."""
    mode = stat.S_IMODE(DEV_FULL.stat().st_mode)
    yield mode
    if stat.S_IMODE(DEV_FULL.stat().st_mode) != mode:
        DEV_FULL.chmod(mode)


def backup_with_log_on_dev_full(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str], logging_block: str
) -> subprocess.CompletedProcess[str]:
    hook = write_script(
        tmp_path / "hooks" / "pre.sh", 'for i in 1 2 3 4 5; do echo "hook line $i"; done\n'
    )
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"repository: {repo}\npassword: {PASSWORD}\ndirectories:\n  - {source}\n"
        f"logging:\n  file: {DEV_FULL}\n{logging_block}"
        f"hooks:\n  pre_backup: {hook}\n"
    )
    cfg.chmod(0o600)
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), "backup"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


@requires_restic
@requires_dev_full
@pytest.mark.restic
def test_a_full_log_disk_is_one_warning_and_the_backup_still_succeeds(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str], dev_full_mode: int
) -> None:
    result = backup_with_log_on_dev_full(tmp_path, repo, source, environ, "")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines.count(FULL_WARNING) == 1, result.stderr
    assert [line for line in lines if "/dev/full" in line] == [FULL_WARNING]
    assert "Logging error" not in result.stderr and "Traceback" not in result.stderr
    # The console keeps every message, before and after the file was dropped.
    assert "resticm backup started" in result.stderr
    assert "hook line 5" in result.stderr
    assert "resticm backup completed successfully (exit 0" in result.stderr
    assert stat.S_IMODE(DEV_FULL.stat().st_mode) == dev_full_mode, "a device is never chmodded"


@requires_restic
@requires_dev_full
@pytest.mark.restic
def test_a_full_log_disk_is_said_on_stderr_even_without_a_console_log(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str], dev_full_mode: int
) -> None:
    result = backup_with_log_on_dev_full(tmp_path, repo, source, environ, "  console: false\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines().count(FULL_WARNING) == 1, result.stderr
    assert "Logging error" not in result.stderr and "Traceback" not in result.stderr
    assert "hook line" not in result.stderr, "console: false still holds"


def test_a_syslog_socket_that_goes_away_is_one_warning(
    tmp_path: Path, restore_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log.sock"
    if len(str(path)) > 100:  # AF_UNIX path limit
        pytest.skip("tmp_path too long for a unix socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    console = io.StringIO()
    logger = setup_logging(
        Logging(file="syslog"), redactor=Redactor([]), stream=console, syslog_address=str(path)
    )
    logger.info("delivered")
    assert b"delivered" in server.recv(65536)
    server.close()
    path.unlink()  # syslogd stopped: sending and reconnecting both fail from now on
    for n in range(5):
        logger.info("record %d", n)
    warnings = [line for line in console.getvalue().splitlines() if "syslog" in line]
    assert len(warnings) == 1, console.getvalue()
    assert warnings[0].startswith(f"WARNING: cannot write to syslog at {path}: ")
    assert "record 4" in console.getvalue()
    assert "Logging error" not in capsys.readouterr().err


def test_a_record_that_cannot_be_encoded_is_not_a_write_error(
    tmp_path: Path, restore_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only OSError drops the file: other errors are shown as logging always shows
    them, and the file stays in use."""
    log_file = tmp_path / "resticm.log"
    console = io.StringIO()
    logger = setup_logging(
        Logging(file=str(log_file), console=False), redactor=Redactor([]), stream=console
    )
    logger.info("a lone surrogate \udc80 cannot be written as UTF-8")
    logger.info("still logged")
    for handler in logger.handlers:
        handler.flush()
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err and "cannot write log file" not in err
    assert "still logged" in log_file.read_text()
