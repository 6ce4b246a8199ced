"""Fault injection: what a 3 a.m. run does when things break (issue 5).

Each case asserts the exit code, which hooks ran in which order, what was notified
(a webhook provider pointing at a real HTTP server on 127.0.0.1), that the lock is
free afterwards, that no secret leaked, and that ``restic check`` passes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from resticm_core.config import Repository
from resticm_core.locking import ProcessLock, lock_key
from resticm_core.restic import Restic, ResticErrorKind, SubprocessResticRunner
from resticm_core.testing import FakeRestic

from ..conftest import PASSWORD, CallLog, requires_restic, restic_env, snapshot_ids, write_script
from ..http_recorder import Recorder
from .conftest import (
    notified,
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


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text


def test_sigkill_of_the_restic_child(
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
    os.kill(restic_child(proc), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 1
    assert calls.tags() == ["pre_backup", "post_backup", "on_error", "finally"]
    assert calls.entry("post_backup")["BACKUP_STATUS"] == "failure"
    assert "SIGKILL" in calls.entry("on_error")["ERROR"]
    message = notified_once(recorder, "error")
    assert "restic backup failed on primary: killed (signal SIGKILL)" in message["body"]
    assert message["report"]["exit_code"] == 1
    assert_lock_free(cfg, repo)
    assert_no_secret(stderr, (tmp_path / "log" / "resticm.log").read_text(), recorder.all_text())
    check = restic_check(repo, Path(environ["RESTIC_CACHE_DIR"]))
    assert check.returncode == 0, check.stderr
    assert (
        "lock"
        not in subprocess.run(
            ["restic", "list", "locks", "--no-lock"],
            env=restic_env(tmp_path / "c2", repo),
            capture_output=True,
            text=True,
        ).stdout
    ), "the stale lock of the killed restic was removed"


def test_backup_timeout_from_config(
    tmp_path: Path,
    repo: Path,
    big_source: Path,
    environ: dict[str, str],
    calls: CallLog,
    recorder: Recorder,
) -> None:
    cfg = write_config(
        tmp_path,
        repo,
        [big_source],
        hooks=recording_hooks(tmp_path, calls),
        extra="timeouts:\n  backup: 1s\n",
        notify=recorder,
    )
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "backup", "-c", str(cfg), "--json"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert "timed out after 1s" in report["errors"][0]
    assert calls.tags() == ["pre_backup", "post_backup", "on_error", "finally"]
    assert "timed out" in calls.entry("post_backup")["BACKUP_ERROR"]
    assert "restic backup on primary timed out after 1s" in notified_once(recorder, "error")["body"]
    assert_no_secret(result.stdout, result.stderr, recorder.all_text())
    assert_lock_free(cfg, repo)
    assert restic_check(repo, Path(environ["RESTIC_CACHE_DIR"])).returncode == 0


def test_second_signal_skips_remaining_hooks_but_releases_the_lock(
    tmp_path: Path,
    repo: Path,
    big_source: Path,
    environ: dict[str, str],
    calls: CallLog,
    recorder: Recorder,
) -> None:
    started = tmp_path / "post-started"
    hooks = recording_hooks(tmp_path, calls, post_backup=f"touch {started}\nsleep 30\n")
    cfg = write_config(tmp_path, repo, [big_source], hooks=hooks, notify=recorder)
    proc = start_resticm("backup", "-c", str(cfg), env=environ)
    restic_child(proc)
    proc.send_signal(signal.SIGTERM)
    wait_for(started.exists, "post_backup start")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)

    assert proc.returncode == 128 + signal.SIGTERM
    assert calls.tags() == ["pre_backup", "post_backup"], "on_error and finally skipped"
    # Hooks are skipped; the notification is not: someone must hear of it.
    message = notified_once(recorder, "error")
    assert "interrupted by SIGTERM" in message["body"]
    assert message["report"]["exit_code"] == 128 + signal.SIGTERM
    assert_lock_free(cfg, repo)
    assert restic_check(repo, Path(environ["RESTIC_CACHE_DIR"])).returncode == 0


def test_two_runs_started_at_once(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str], recorder: Recorder
) -> None:
    pre = write_script(tmp_path / "hooks" / "pre.sh", "sleep 2\n")
    cfg = write_config(tmp_path, repo, [source], hooks={"pre_backup": str(pre)}, notify=recorder)
    first = start_resticm("backup", "-c", str(cfg), env=environ)
    second = start_resticm("backup", "-c", str(cfg), env=environ)
    outcomes = sorted([first.wait(timeout=120), second.wait(timeout=120)])
    assert outcomes == [0, 75]
    loser = first if first.returncode == 75 else second
    assert "another resticm run" in (loser.stderr.read() if loser.stderr else "")
    assert len(snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"]))) == 1
    # The winner reports its success, the loser its refusal (no hooks ran for it).
    by_status = {m["status"]: m for m in notified(recorder)}
    assert sorted(by_status) == ["error", "success"]
    assert "another resticm run" in by_status["error"]["body"]
    assert by_status["error"]["report"]["exit_code"] == 75
    assert_lock_free(cfg, repo)


def test_lock_of_a_killed_run_is_taken_over(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str], recorder: Recorder
) -> None:
    cfg = write_config(tmp_path, repo, [source], notify=recorder)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time\n"
                "from pathlib import Path\n"
                "from resticm_core.locking import ProcessLock, lock_key\n"
                f"lock = ProcessLock(lock_key(Path({str(cfg)!r}), {str(repo)!r}))\n"
                "lock.acquire()\nprint('held', flush=True)\ntime.sleep(300)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    blocked = subprocess.run(
        [sys.executable, "-m", "resticm_core", "backup", "-c", str(cfg)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert blocked.returncode == 75 and f"pid {holder.pid}" in blocked.stderr
    assert f"pid {holder.pid}" in notified_once(recorder, "error")["body"]
    recorder.requests.clear()
    holder.kill()
    holder.wait()
    taken = subprocess.run(
        [sys.executable, "-m", "resticm_core", "backup", "-c", str(cfg)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert taken.returncode == 0, taken.stderr
    assert notified_once(recorder, "success")["report"]["exit_code"] == 0
    assert_lock_free(cfg, repo)


def test_log_directory_not_writable(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str], recorder: Recorder
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log directory should be")
    cfg = write_config(
        tmp_path,
        repo,
        [source],
        extra=f"logging:\n  file: {blocker / 'resticm.log'}\n",
        notify=recorder,
    )
    text = cfg.read_text().replace(f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n", "")
    cfg.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "backup", "-c", str(cfg)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "cannot write log file" in result.stderr
    assert len(snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"]))) == 1
    # The backup and its notification do not depend on the log file.
    assert notified_once(recorder, "success")["report"]["exit_code"] == 0
    assert_lock_free(cfg, repo)


def test_huge_hook_output_keeps_memory_bounded(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str], recorder: Recorder
) -> None:
    hook = write_script(
        tmp_path / "hooks" / "flood.sh",
        # 256 MiB in 64 KiB lines, then a 64 MiB line without newline: generated
        # fast, since the bound, not the volume, is what this test pins.
        'line=$(head -c 65535 /dev/zero | tr "\\0" x)\n'
        'yes "$line" | head -n 4096\n'
        "head -c 67108864 /dev/zero | tr '\\0' y\n",
    )
    cfg = write_config(tmp_path, repo, [source], hooks={"pre_backup": str(hook)}, notify=recorder)
    proc = subprocess.Popen(
        [sys.executable, "-m", "resticm_core", "backup", "-c", str(cfg)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # resticm's own peak (VmHWM, monotonic), read until it exits. wait4's ru_maxrss
    # would be the largest of resticm *and its reaped children*: restic itself, whose
    # Go heap alone is ~55 MiB and grows past 100 MiB when the machine is loaded.
    peak_kib = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        with contextlib.suppress(OSError):  # gone between poll() and the read
            # A zombie's status has no VmHWM line any more.
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        time.sleep(0.01)
    assert proc.returncode == 0
    # Bound: 100 MiB, about 3x the interpreter with its imports (~35 MiB measured).
    assert 0 < peak_kib < 100 * 1024, f"peak RSS {peak_kib} KiB"
    log = (tmp_path / "log" / "resticm.log").read_text()
    # head + tail = 40 lines of at most 64 KiB each, whatever the hook printed.
    assert "lines omitted" in log and len(log) < 41 * 64 * 1024
    message = notified_once(recorder, "success")
    # The report carries the hook's output tail: 20 lines of at most 64 KiB each.
    [hook] = message["report"]["phases"][0]["hooks"]
    assert len(hook["output_tail"]) <= 20
    assert len(json.dumps(message)) < 21 * 64 * 1024, "bounded, whatever the hook printed"
    assert_lock_free(cfg, repo)


def test_retry_lock_waits_for_a_locked_repository(tmp_path: Path, repo: Path) -> None:
    """restic 0.14 has no --retry-lock: resticm retries itself, with backoff."""
    env = restic_env(tmp_path / "cache", repo)
    holder = subprocess.Popen(
        ["restic", "backup", "--stdin", "--stdin-filename", "x"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runner = SubprocessResticRunner(
        environ={"PATH": os.environ["PATH"], "RESTIC_CACHE_DIR": str(tmp_path / "cache")}
    )
    repository = Repository(name="primary", url=str(repo), password=PASSWORD)
    wait_for(lambda: Restic(runner).list_locks(repository), "the holder's lock")

    assert Restic(runner).prune(repository).error_kind is ResticErrorKind.LOCKED

    def release() -> None:
        time.sleep(1.5)
        assert holder.stdin is not None
        holder.stdin.close()

    threading.Thread(target=release, daemon=True).start()
    result = Restic(runner, retry_lock=60, retry_delay=0.3).prune(repository)
    holder.wait(timeout=60)
    assert result.ok, result.message


def test_retry_lock_uses_restics_own_flag_when_it_has_one(tmp_path: Path) -> None:
    fake = FakeRestic(version=(0, 16, 4))
    repository = Repository(name="primary", url=str(tmp_path), password="pw")
    Restic(fake, retry_lock=600).prune(repository)
    Restic(fake, retry_lock=600).cat_config(repository)
    assert fake.calls[0].args == ("prune", "--retry-lock", "600s")
    assert "--retry-lock" not in fake.calls[1].args, "--no-lock commands take no lock"
