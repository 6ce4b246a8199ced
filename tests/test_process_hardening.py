"""Children die with resticm, stale locks of killed restics are recovered, daemons a hook
leaves behind are stopped and reported (issue 13, points 3 and 6).

Real processes throughout: ``python -m resticm_core`` killed with SIGKILL, the real
restic holding and leaving real locks, hooks that really daemonise with ``setsid``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORD, hold_restic_lock, requires_restic, restic_env, write_script

pytestmark = [requires_restic, pytest.mark.restic]


# -- helpers --------------------------------------------------------------------------------------


def stat_of(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rpartition(")")[2].split()


def running(pid: int) -> bool:
    """Exists and is not a zombie (a zombie has ended; whoever reaps it is not our concern)."""
    fields = stat_of(pid)
    return fields is not None and fields[0] != "Z"


def children_of(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_of(int(entry.name))
        if fields is None or int(fields[1]) != pid:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found.append((int(entry.name), cmdline))
    return found


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll until *predicate* is truthy: a hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {timeout}s")


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """Pids a test may leave behind (what a killed resticm could not reach): killed at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def write_config(tmp_path: Path, repo: Path, source: Path, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    text = f"repository: {repo}\ndirectories:\n  - {source}\n"
    text += f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n"
    if "password_command" not in extra:
        text += f"password: {PASSWORD}\n"
    path.write_text(text + extra)
    path.chmod(0o600)
    return path


def resticm(cfg: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The timeout only keeps a hang from blocking the suite.
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_resticm(cfg: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def lock_ids(repo: Path, cache: Path) -> list[str]:
    out = subprocess.run(
        ["restic", "--no-lock", "list", "locks"],
        env=restic_env(cache, repo),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


# -- (a) children die with resticm ----------------------------------------------------------------


def test_restic_dies_when_resticm_is_killed(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str], reap: list[int]
) -> None:
    """restic blocks on its password command (deterministically running); SIGKILL resticm."""
    pw_pid = tmp_path / "pw.pid"
    password = write_script(
        tmp_path / "password.sh", f"echo $$ > {pw_pid}\nexec sleep 300\n"
    )
    cfg = write_config(tmp_path, repo, source, extra=f"password_command: {password}\n")
    proc = start_resticm(cfg, "backup", env=environ)

    def restic_child() -> int | None:
        for pid, cmd in children_of(proc.pid):
            if "restic" in cmd and "resticm_core" not in cmd:
                return pid
        return None

    restic = wait_for(restic_child, "restic started by resticm")
    reap.append(restic)
    wait_for(pw_pid.exists, "restic waiting for its password command")
    reap.append(int(wait_for(lambda: pw_pid.read_text().strip(), "the password pid")))
    assert running(restic)

    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Without a death signal restic waits for its password for the next 300 s.
    wait_for(lambda: not running(restic), "restic dying with resticm", timeout=30)


def test_hook_dies_when_resticm_is_killed(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str], reap: list[int]
) -> None:
    hook_pid = tmp_path / "hook.pid"
    hook = write_script(tmp_path / "hooks" / "pre.sh", f"echo $$ > {hook_pid}\nsleep 300\n")
    cfg = write_config(tmp_path, repo, source, extra=f"hooks:\n  pre_backup: {hook}\n")
    proc = start_resticm(cfg, "backup", env=environ)
    pid = int(wait_for(lambda: hook_pid.exists() and hook_pid.read_text().strip(), "the hook"))
    reap.append(pid)
    assert pid in [child for child, _cmd in children_of(proc.pid)]
    # The hook's own sleep is not reached once resticm is dead (documented): clean it up.
    sleep = wait_for(lambda: children_of(pid), "the hook's sleep")
    reap.extend(child for child, _cmd in sleep)

    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not running(pid), "the hook dying with resticm", timeout=30)


# -- (b) stale restic locks -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["prune", "check"])
def test_stale_lock_of_this_host_is_removed_and_the_command_retried(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str], command: str
) -> None:
    cache = Path(environ["RESTIC_CACHE_DIR"])
    holder = hold_restic_lock(repo, restic_env(cache, repo))
    holder.send_signal(signal.SIGKILL)  # a killed restic cannot remove its lock
    holder.wait()
    assert len(lock_ids(repo, cache)) == 1
    cfg = write_config(tmp_path, repo, source)

    result = resticm(cfg, command, env=environ)

    assert result.returncode == 0, result.stderr
    assert f"locked by PID {holder.pid} of this host" in result.stderr
    assert "removing the stale lock with restic unlock" in result.stderr
    assert lock_ids(repo, cache) == []


def _user_namespaces() -> bool:
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--uts", "true"], capture_output=True
    )
    return probe.returncode == 0


def hold_foreign_lock(repo: Path, env: dict[str, str], hostname: str) -> subprocess.Popen[bytes]:
    """A restic run as host *hostname* (its own UTS namespace) holding a lock on *repo*.

    restic writes os.Hostname() into its locks: the real mechanism, no file edited.
    """
    script = f"hostname {hostname} && exec restic backup --stdin --stdin-filename held"
    holder = subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "--uts", "sh", "-c", script],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def readable_lock() -> bool:
        for lock in (repo / "locks").glob("*") if (repo / "locks").is_dir() else ():
            cat = ["restic", "--no-lock", "cat", "lock", lock.name]
            out = subprocess.run(cat, env=env, capture_output=True, text=True)
            if out.returncode == 0 and json.loads(out.stdout)["hostname"] == hostname:
                return True
        assert holder.poll() is None, "the foreign lock holder exited"
        return False

    wait_for(readable_lock, "the foreign host's lock")
    return holder


@pytest.mark.skipif(not _user_namespaces(), reason="no user namespaces (unshare --user)")
def test_lock_of_another_host_is_not_removed_and_names_resticm_unlock(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cache = Path(environ["RESTIC_CACHE_DIR"])
    holder = hold_foreign_lock(repo, restic_env(cache, repo), "other-host")
    # Its PID is gone too: only the hostname says the lock is not ours to judge.
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    cfg = write_config(tmp_path, repo, source)

    result = resticm(cfg, "prune", env=environ)

    assert result.returncode == 1
    assert f"locked by PID {holder.pid} on other-host" in result.stderr
    assert "resticm unlock --restic" in result.stderr
    assert "removing the stale lock" not in result.stderr
    assert len(lock_ids(repo, cache)) == 1


# -- (c) daemons a hook leaves behind -------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect",
    [pytest.param("", id="holding-the-output"), pytest.param(">/dev/null 2>&1", id="detached")],
)
def test_setsid_daemon_of_a_hook_is_stopped_and_reported(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
    reap: list[int],
    redirect: str,
) -> None:
    pid_file = tmp_path / "daemon.pid"
    hook = write_script(
        tmp_path / "hooks" / "pre.sh",
        f"setsid sleep 300 {redirect} &\necho $! > {pid_file}\nexit 0\n",
    )
    cfg = write_config(tmp_path, repo, source, extra=f"hooks:\n  pre_backup: {hook}\n")
    started = time.monotonic()
    result = resticm(cfg, "backup", env=environ)
    took = time.monotonic() - started
    daemon = int(pid_file.read_text())
    reap.append(daemon)

    assert result.returncode == 0, result.stderr
    # Stopped before resticm went on (and reaped: resticm is its subreaper).
    assert not running(daemon)
    # (sleep), or (setsid) when the sweep came before setsid exec'd sleep.
    assert f"stopped 1 background process(es) it left: pid {daemon} (" in result.stderr
    assert "left running" not in result.stderr
    # Only a hang guard: the daemon would keep the hook's end waiting 300 s.
    assert took < 120


# -- known children are not leftovers -------------------------------------------------------------

_SUBREAPER_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    from resticm_core.children import KnownChildren, set_subreaper
    from resticm_core.process import run_process

    assert set_subreaper(True)
    known = KnownChildren()
    env = {"PATH": "/usr/bin:/bin"}
    pids = []
    # A parallel worker's child (a mirror thread's restic): our direct child too.
    worker = threading.Thread(
        target=run_process,
        args=(["sh", "-c", "echo $$; exec sleep 30"],),
        kwargs=dict(env=env, on_stdout=pids.append, known=known),
    )
    worker.start()
    while not pids:
        threading.Event().wait(0.05)
    hook = run_process(
        ["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 & echo $!"],
        env=env, known=known, sweep_leftovers=True, kill_grace=2,
    )
    import os
    print(json.dumps({
        "worker": int(pids[0]),
        "worker_alive": os.path.exists(f"/proc/{pids[0]}"),
        "daemon": int(hook.stdout_tail[0]),
        "stopped": list(hook.leftovers.stopped),
        "running": list(hook.leftovers.running),
    }))
    os.kill(int(pids[0]), 9)
    worker.join()
    """
)


def test_sweep_takes_orphans_not_a_parallel_workers_child(reap: list[int]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SUBREAPER_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    reap += [seen["worker"], seen["daemon"]]
    assert seen["worker_alive"], "the worker's child is a known child, not a leftover"
    # Caught before or after setsid exec'd sleep: either name is the daemon.
    assert [s.partition(" (")[0] for s in seen["stopped"]] == [f"pid {seen['daemon']}"]
    assert seen["running"] == []
    assert not running(seen["daemon"])
