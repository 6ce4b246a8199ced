"""Fault injection, cases 1, 3, 4 and 8 of issue 5, each as a whole ``resticm`` run.

1. SIGTERM to resticm during the backup; 3. a hook that ignores SIGTERM past its
timeout; 4. a hook that leaves a grandchild running; 8. a source file restic
cannot read (restic exit 3).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resticm_core.locking import ProcessLock, lock_key

from ..conftest import PASSWORD, CallLog, requires_restic, snapshot_ids
from ..http_recorder import Recorder
from .conftest import (
    notified_once,
    recording_hooks,
    restic_check,
    restic_child,
    start_resticm,
    wait_for,
    write_config,
)

pytestmark = [requires_restic, pytest.mark.restic]


def assert_lock_free(cfg: Path, repo: Path) -> None:
    with ProcessLock(lock_key(cfg, str(repo))):
        pass


def run_backup(cfg: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", "backup", "-c", str(cfg)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_to_resticm_during_the_backup(
    tmp_path: Path,
    repo: Path,
    big_source: Path,
    environ: dict[str, str],
    calls: CallLog,
    recorder: Recorder,
) -> None:
    cfg = write_config(
        tmp_path, repo, [big_source], hooks=recording_hooks(tmp_path, calls), notify=recorder
    )
    proc = start_resticm("backup", "-c", str(cfg), env=environ)
    child = restic_child(proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert not alive(child), "restic was stopped with resticm"
    assert calls.tags() == ["pre_backup", "post_backup", "on_error", "finally"]
    assert calls.entry("post_backup")["BACKUP_STATUS"] == "failure"
    assert "SIGTERM" in calls.entry("post_backup")["BACKUP_ERROR"]
    message = notified_once(recorder, "error")
    assert any("SIGTERM" in e for e in message["report"]["errors"])
    assert message["report"]["exit_code"] == 143
    assert_lock_free(cfg, repo)
    assert PASSWORD not in stderr + recorder.all_text()
    check = restic_check(repo, Path(environ["RESTIC_CACHE_DIR"]))
    assert check.returncode == 0, check.stderr


def test_hook_ignoring_sigterm_past_its_timeout(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str], recorder: Recorder
) -> None:
    calls = CallLog(tmp_path / "calls.log")
    pid_file = tmp_path / "hook.pid"
    hooks = recording_hooks(
        tmp_path, calls, pre_backup=f"echo $$ > {pid_file}\ntrap '' TERM\nsleep 60\n"
    )
    # hooks.timeout: 1 s; the hook then gets TERM, ignores it, and KILL after the grace
    # (hooks.kill_grace: 2 s instead of the default 10 s).
    cfg = write_config(
        tmp_path,
        repo,
        [source],
        hooks={**hooks, "timeout": "1", "kill_grace": "2s"},
        notify=recorder,
    )
    result = run_backup(cfg, environ)

    assert result.returncode == 1, result.stderr
    assert calls.tags() == ["pre_backup", "on_error", "finally"], "no backup, no post_backup"
    assert "timed out" in calls.entry("on_error")["ERROR"]
    assert not alive(int(pid_file.read_text())), "killed after the grace period"
    message = notified_once(recorder, "error")
    assert any("timed out" in e and "backup skipped" in e for e in message["report"]["errors"])
    assert_lock_free(cfg, repo)
    assert snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"])) == []
    assert restic_check(repo, Path(environ["RESTIC_CACHE_DIR"])).returncode == 0


def test_hook_leaving_a_grandchild_running(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
    calls: CallLog,
    recorder: Recorder,
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    hooks = recording_hooks(
        tmp_path, calls, post_backup=f"sleep 300 &\necho $! > {pid_file}\nexit 0\n"
    )
    cfg = write_config(tmp_path, repo, [source], hooks=hooks, notify=recorder)
    result = run_backup(cfg, environ)

    assert result.returncode == 0, result.stderr
    assert calls.tags() == ["pre_backup", "post_backup", "on_success", "finally"]
    assert "background processes" in result.stderr
    grandchild = int(pid_file.read_text())
    wait_for(lambda: not alive(grandchild), "the grandchild stopped with its hook's group")
    assert notified_once(recorder, "success")["report"]["exit_code"] == 0
    assert_lock_free(cfg, repo)
    assert len(snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"]))) == 1
    assert restic_check(repo, Path(environ["RESTIC_CACHE_DIR"])).returncode == 0


def test_source_unreadable_in_part(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
    calls: CallLog,
    recorder: Recorder,
    sleeper: int,
) -> None:
    # /proc/<pid>/mem of a live process cannot be read by restic, even as root.
    cfg = write_config(
        tmp_path,
        repo,
        [source, f"/proc/{sleeper}/mem"],
        hooks=recording_hooks(tmp_path, calls),
        notify=recorder,
    )
    started = time.monotonic()
    result = run_backup(cfg, environ)
    assert time.monotonic() - started < 120  # hang guard

    assert result.returncode == 3, result.stderr
    assert calls.tags() == ["pre_backup", "post_backup", "on_success", "finally"]
    assert calls.entry("post_backup")["RESTICM_BACKUP_PARTIAL"] == "1"
    message = notified_once(recorder, "warning")
    assert message["report"]["exit_code"] == 3
    assert any(f"/proc/{sleeper}/mem" in w for w in message["report"]["warnings"])
    assert_lock_free(cfg, repo)
    assert len(snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"]))) == 1, "snapshot written"
    assert PASSWORD not in result.stderr + recorder.all_text()
    assert restic_check(repo, Path(environ["RESTIC_CACHE_DIR"])).returncode == 0
    assert os.path.exists(f"/proc/{sleeper}")
