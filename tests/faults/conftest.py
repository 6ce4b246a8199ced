"""Fixtures of the fault-injection suite: a slow source, a CLI runner, process lookup."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import PASSWORD, restic_env, write_script
from ..http_recorder import Recorder, serve

PHASES = ("pre_backup", "post_backup", "on_success", "on_error", "finally")


@pytest.fixture(scope="session")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Incompressible data restic needs several seconds for (made once per worker)."""
    src = tmp_path_factory.mktemp("big") / "data"
    src.mkdir()
    with open(src / "random.bin", "wb") as fh:
        for _ in range(40):
            fh.write(os.urandom(8 * 1024 * 1024))
    return src


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """The notification endpoint: a real HTTP server on 127.0.0.1 (a webhook provider)."""
    yield from serve()


def notifications_block(url: str) -> str:
    """Every event (errors, warnings, successes) to the recorder's ``/webhook``."""
    return (
        "notifications:\n  enabled: true\n  notify_on_error: true\n"
        "  notify_on_success: true\n  providers:\n"
        f"    - type: webhook\n      url: {url}/webhook\n"
    )


def notified(recorder: Recorder) -> list[dict[str, Any]]:
    """The webhook messages received: ``status``, ``body``, ``report``..."""
    return [request.json() for request in recorder.by_path("/webhook")]


def notified_once(recorder: Recorder, status: str) -> dict[str, Any]:
    """The one message of a run that ended with *status* (error, warning, success)."""
    messages = notified(recorder)
    assert [m["status"] for m in messages] == [status], messages
    return messages[0]


def write_config(
    tmp_path: Path,
    repo: Path,
    sources: list[Path | str],
    *,
    hooks: dict[str, str] | None = None,
    extra: str = "",
    notify: Recorder | None = None,
) -> Path:
    path = tmp_path / "config.yaml"
    text = (
        f"repository: {repo}\npassword: {PASSWORD}\n"
        + "directories:\n"
        + "".join(f"  - {s}\n" for s in sources)
        + f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n"
    )
    if hooks:
        text += "hooks:\n" + "".join(f"  {k}: {v}\n" for k, v in hooks.items())
    if notify is not None:
        text += notifications_block(notify.url)
    path.write_text(text + extra)
    path.chmod(0o600)
    return path


def recording_hooks(tmp_path: Path, calls: Any, **bodies: str) -> dict[str, str]:
    return {
        phase: str(
            write_script(
                tmp_path / "hooks" / f"{phase}.sh",
                calls.line(phase) + bodies.get(phase, "exit 0\n"),
            )
        )
        for phase in PHASES
    }


def start_resticm(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "resticm_core", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def children(pid: int) -> list[tuple[int, str]]:
    """Direct children of *pid* with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry.name), cmdline))
    return found


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll until *predicate* returns something truthy; a hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {timeout}s")


def restic_child(proc: subprocess.Popen[str]) -> int:
    def find() -> int | None:
        for pid, cmd in children(proc.pid):
            if "backup" in cmd and "--json" in cmd:
                return pid
        return None

    pid: int = wait_for(find, "restic backup")
    return pid


def restic_check(repo: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["restic", "check"],
        env=restic_env(cache, repo),
        capture_output=True,
        text=True,
        timeout=300,
    )
