"""The ``resticm`` command as a user runs it: a real process, real restic, real scripts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from resticm_core.locking import ProcessLock, lock_key

from .conftest import PASSWORD, CallLog, requires_restic, snapshot_ids, write_script

pytestmark = [requires_restic, pytest.mark.restic]


def write_config(
    tmp_path: Path, repo: Path, source: Path, hooks: str = "", extra: str = "", mode: int = 0o600
) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"repository: {repo}\n"
        f"password: {PASSWORD}\n"
        f"directories:\n  - {source}\n"
        f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n  console: true\n"
        + (f"hooks:\n{hooks}" if hooks else "")
        + extra
    )
    path.chmod(mode)
    return path


def resticm(*args: str, env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "{cfg}", "backup", "--dry-run"],
        ["--dry-run", "-c", "{cfg}", "backup"],
        ["backup", "-n", "-c", "{cfg}"],
        ["-n", "backup", "--config={cfg}"],
    ],
)
def test_global_flags_before_or_after_the_command(
    argv: list[str],
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
) -> None:
    cfg = write_config(tmp_path, repo, source)
    result = resticm(*[a.format(cfg=cfg) for a in argv], "--json", env=environ)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and report["command"] == "backup"
    assert snapshot_ids(repo, tmp_path / "cache") == []


def test_backup_json_report_and_verbose_command_line(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
) -> None:
    cfg = write_config(tmp_path, repo, source)
    result = resticm("backup", "-c", str(cfg), "-v", "--json", "-t", "manual", env=environ)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout is only the JSON report
    assert report["snapshot_id"] in snapshot_ids(repo, tmp_path / "cache")
    assert "$ restic" in result.stderr and "backup" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "--tag manual" in result.stderr
    log = (tmp_path / "log" / "resticm.log").read_text()
    assert "finished with exit code 0" in log and PASSWORD not in log


def test_config_error_is_located_exit_2_without_traceback(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
) -> None:
    cfg = write_config(
        tmp_path, repo, source, extra="verify_no_locks: no\nretention:\n  keep_dayly: 3\n"
    )
    result = resticm("backup", "-c", str(cfg), env=environ)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "config.yaml:" in result.stderr and "verify_no_locks" in result.stderr
    assert "retention.keep_dayly" in result.stderr


def test_config_validate(tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]) -> None:
    cfg = write_config(tmp_path, repo, source, hooks=f"  pre_backup: {tmp_path}/missing.sh\n")
    result = resticm("config", "validate", "-c", str(cfg), env=environ)
    # A missing hook fails every run: validate says so and exits 2 (issue 16).
    assert result.returncode == 2, result.stderr
    assert result.stdout.startswith("FAILED:")
    assert "  error: hooks.pre_backup[0]: hook" in result.stdout and "missing.sh" in result.stdout
    assert result.stdout.count("missing.sh") == 1 and "missing.sh" not in result.stderr


def test_world_readable_config_with_password_is_refused(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
) -> None:
    cfg = write_config(tmp_path, repo, source, mode=0o644)
    result = resticm("backup", "-c", str(cfg), env=environ)
    assert result.returncode == 2
    assert "chmod 600" in result.stderr and PASSWORD not in result.stderr


def test_hooks_run_one_phase_with_its_environment(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
    calls: CallLog,
) -> None:
    script = write_script(tmp_path / "hooks" / "err.sh", calls.line("on_error"))
    cfg = write_config(tmp_path, repo, source, hooks=f"  on_error: {script}\n")
    result = resticm(
        "hooks",
        "run",
        "on_error",
        "--status",
        "failure",
        "--error",
        "disk full",
        "-c",
        str(cfg),
        env=environ,
    )
    assert result.returncode == 0, result.stderr
    entry = calls.entry("on_error")
    assert entry["BACKUP_STATUS"] == "failure" and entry["ERROR"] == "disk full"
    post = write_script(tmp_path / "hooks" / "post.sh", calls.line("post_backup"))
    cfg.write_text(cfg.read_text().replace(f"  on_error: {script}", f"  post_backup: {post}"))
    result = resticm(
        "hooks",
        "run",
        "post_backup",
        "--status",
        "failure",
        "--error",
        "disk full",
        "-c",
        str(cfg),
        env=environ,
    )
    assert result.returncode == 0, result.stderr
    assert calls.entry("post_backup")["BACKUP_ERROR"] == "disk full"
    assert snapshot_ids(repo, tmp_path / "cache") == []


def test_version_and_plugins(environ: dict[str, str]) -> None:
    version = resticm("version", env=environ)
    assert version.returncode == 0 and "restic 0." in version.stdout
    plugins = resticm("plugins", "--json", env=environ)
    kinds = {k for p in json.loads(plugins.stdout) for k in p["hook_kinds"]}
    assert {"script", "directory", "python"} <= kinds
    blocked = resticm("plugins", "--json", env={**environ, "RESTICM_DISABLE_PLUGINS": "python"})
    kinds = {k for p in json.loads(blocked.stdout) for k in p["hook_kinds"]}
    assert "python" not in kinds and "script" in kinds


def test_lock_held_exits_75_and_runs_no_hook(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
    calls: CallLog,
) -> None:
    script = write_script(tmp_path / "hooks" / "err.sh", calls.line("on_error"))
    cfg = write_config(tmp_path, repo, source, hooks=f"  on_error: {script}\n")
    with ProcessLock(lock_key(cfg, str(repo))):
        result = resticm("backup", "-c", str(cfg), env=environ)
    assert result.returncode == 75
    assert "another resticm run" in result.stderr and f"pid {os.getpid()}" in result.stderr
    assert calls.tags() == []
    again = resticm("backup", "-c", str(cfg), env=environ)
    assert again.returncode == 0, "the lock is free once its holder let go"


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append((int(entry.name), cmdline))
    return found


def test_sigterm_during_backup_runs_cleanup_and_exits_143(
    tmp_path: Path,
    repo: Path,
    environ: dict[str, str],
    calls: CallLog,
) -> None:
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "random.bin", "wb") as fh:  # incompressible: restic needs a while
        for _ in range(48):
            fh.write(os.urandom(8 * 1024 * 1024))
    hooks = "".join(
        f"  {phase}: {write_script(tmp_path / 'hooks' / f'{phase}.sh', calls.line(phase))}\n"
        for phase in ("pre_backup", "post_backup", "on_success", "on_error", "finally")
    )
    cfg = write_config(tmp_path, repo, big, hooks=hooks)
    proc = subprocess.Popen(
        [sys.executable, "-m", "resticm_core", "backup", "-c", str(cfg)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any("restic backup" in cmd or "backup --json" in cmd for _, cmd in _children(proc.pid)):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("restic backup never started")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert calls.tags() == ["pre_backup", "post_backup", "on_error", "finally"]
    assert calls.entry("post_backup")["BACKUP_STATUS"] == "failure"
    assert "SIGTERM" in calls.entry("on_error")["ERROR"]
    # The lock is free and the repository is intact.
    with ProcessLock(lock_key(cfg, str(repo))):
        pass
    check = subprocess.run(
        ["restic", "check", "-q"],
        capture_output=True,
        text=True,
        env={**environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": PASSWORD},
    )
    assert check.returncode == 0, check.stderr


def test_missing_restic_is_reported_and_on_error_runs(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
    calls: CallLog,
) -> None:
    hooks = "".join(
        f"  {phase}: {write_script(tmp_path / 'hooks' / f'{phase}.sh', calls.line(phase))}\n"
        for phase in ("pre_backup", "on_error")
    )
    cfg = write_config(tmp_path, repo, source, hooks=hooks)
    bin_dir = tmp_path / "bin-without-restic"
    bin_dir.mkdir()
    for tool in ("head", "tr"):  # what the recording hooks use, and no restic
        (bin_dir / tool).symlink_to(f"/usr/bin/{tool}")
    env = {**environ, "PATH": str(bin_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "backup", "-c", str(cfg)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "restic is not installed" in result.stderr
    assert calls.tags() == ["on_error"], (
        "no pre_backup: nothing is stopped for a run that cannot back up"
    )


def test_init_then_already_initialized(
    tmp_path: Path, source: Path, environ: dict[str, str]
) -> None:
    fresh = tmp_path / "fresh-repo"
    cfg = write_config(tmp_path, fresh, source)
    first = resticm("init", "-c", str(cfg), env=environ)
    assert first.returncode == 0, first.stderr
    assert "initialized repository" in first.stdout and (fresh / "config").is_file()
    second = resticm("init", "-c", str(cfg), env=environ)
    assert second.returncode == 0 and "already initialized" in second.stdout
    backup = resticm("backup", "-c", str(cfg), env=environ)
    assert backup.returncode == 0, backup.stderr


def test_repository_not_initialised_says_so(
    tmp_path: Path, source: Path, environ: dict[str, str], calls: CallLog
) -> None:
    script = write_script(tmp_path / "hooks" / "pre.sh", calls.line("pre_backup"))
    cfg = write_config(
        tmp_path, tmp_path / "nothing-here", source, hooks=f"  pre_backup: {script}\n"
    )
    result = resticm("backup", "-c", str(cfg), env=environ)
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "resticm init" in result.stderr
    assert calls.tags() == [], "the preflight stops the run before pre_backup stops anything"


def test_wrong_password_is_reported_as_wrong_password(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, repo, source)
    cfg.write_text(cfg.read_text().replace(PASSWORD, "not-the-password"))
    result = resticm("backup", "-c", str(cfg), env=environ)
    assert result.returncode == 1
    assert "wrong password" in result.stderr
    assert "not initialized" not in result.stderr and "does not exist" not in result.stderr
    assert "not-the-password" not in result.stderr
    init = resticm("init", "-c", str(cfg), env=environ)
    assert init.returncode == 1 and "wrong password" in init.stderr


def test_progress_line_on_a_terminal(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    import pty

    # Enough data for restic to report progress at all: restic 0.18 sends no status line
    # for a backup that ends within its first tick (the tiny default tree does).
    for i in range(24):
        (source / f"big{i}.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    cfg = write_config(tmp_path, repo, source)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "resticm_core", "backup", "-c", str(cfg)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=secondary,
    )
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    assert proc.wait(timeout=60) == 0
    text = output.decode(errors="replace")
    assert "\r\x1b[K" in text, "the progress line is redrawn in place"
    assert "files" in text


def test_hook_output_streams_to_console_and_the_log_keeps_head_and_tail(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    script = write_script(tmp_path / "hooks" / "chatty.sh", "seq 1 1000\n")
    cfg = write_config(tmp_path, repo, source, hooks=f"  pre_backup: {script}\n")
    result = resticm("backup", "-c", str(cfg), env=environ)
    assert result.returncode == 0, result.stderr
    console = [line for line in result.stderr.splitlines() if line.startswith(f"[{script}]")]
    assert len(console) == 1000, "every line reaches the console, prefixed with the hook"
    log = (tmp_path / "log" / "resticm.log").read_text()
    logged = [line.split("] ", 2)[-1] for line in log.splitlines() if f"[{script}]" in line]
    assert logged[:20] == [str(n) for n in range(1, 21)]
    assert logged[20] == "... 960 lines omitted ..."
    assert logged[21:] == [str(n) for n in range(981, 1001)]
