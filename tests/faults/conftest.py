"""Fixtures of the fault-injection suite: a slow source, a CLI runner, process lookup."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..conftest import PASSWORD, restic_env, write_script

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


def write_config(
    tmp_path: Path,
    repo: Path,
    sources: list[Path | str],
    *,
    hooks: dict[str, str] | None = None,
    extra: str = "",
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
