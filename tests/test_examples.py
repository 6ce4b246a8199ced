"""examples/quickstart, run for real: run.sh, the real resticm CLI, the real restic.

run.sh is run as a user runs it (in a work directory of its own), and what it
claims is checked in the repository and on disk: the snapshots, the dump inside
them, the dumps cleaned after a success and kept after a failure, the "app"
paused by a pre_backup module and resumed by the finally hook on every path.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from resticm_core import load_config

from .conftest import requires_restic

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
RUN_SH = EXAMPLE / "run.sh"
HOOKS = EXAMPLE / "hooks"
SHELL_SCRIPTS = sorted([RUN_SH, *HOOKS.rglob("*.sh")])

#: The hooks that run, in order, in each kind of run (as recorded in hooks.log).
SUCCESS_TRAIL = ["10-pause-app.sh", "20-dump-app.sh", "post-backup.sh", "on-success.sh",
                 "finally.sh"]
FAILURE_TRAIL = ["10-pause-app.sh", "20-dump-app.sh", "on-error.sh", "finally.sh"]
SKIP_TRAIL = ["00-maintenance-window.sh", "on-success.sh", "finally.sh"]


class Quickstart:
    """One work directory of the quickstart, and the means to look into it."""

    def __init__(self, tmp_path: Path) -> None:
        self.work = tmp_path / "quickstart"
        self.cache = tmp_path / "restic-cache"
        self.env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("RESTIC_", "QUICKSTART_", "RESTICM"))
        }
        self.env.update(
            RESTICM_QUICKSTART_DIR=str(self.work),
            RESTIC_CACHE_DIR=str(self.cache),
            # Split into words by run.sh on purpose: works whether or not the
            # `resticm` console script of this interpreter is on PATH.
            RESTICM=f"{sys.executable} -m resticm_core",
            # The suite's private lock directory (conftest): the RESTICM* filter above
            # dropped it, and root's default is /run/resticm.
            RESTICM_LOCK_DIR=os.environ["RESTICM_LOCK_DIR"],
        )

    def run(self, **extra_env: str) -> subprocess.CompletedProcess[str]:
        hooks_log = self.work / "hooks.log"
        if hooks_log.exists():
            hooks_log.unlink()  # one trail per run
        return subprocess.run(
            ["sh", str(RUN_SH)], env={**self.env, **extra_env}, capture_output=True,
            text=True, timeout=300, check=False,
        )

    def restic(self, *args: str) -> str:
        env = {k: v for k, v in self.env.items() if not k.startswith("RESTIC_")}
        env.update(RESTIC_REPOSITORY=str(self.work / "repo"),
                   RESTIC_PASSWORD_FILE=str(self.work / "password"),
                   RESTIC_CACHE_DIR=str(self.cache))
        out = subprocess.run(["restic", "--no-lock", *args], env=env, capture_output=True,
                             text=True, timeout=120, check=True)
        return out.stdout

    def snapshots(self) -> list[dict[str, Any]]:
        snapshots: list[dict[str, Any]] = json.loads(self.restic("snapshots", "--json") or "[]")
        return snapshots

    def trail(self) -> list[str]:
        """The hooks of the last run, in order: the second field of each hooks.log line."""
        names: list[str] = []
        for line in (self.work / "hooks.log").read_text().splitlines():
            name = line.split(" ")[2].rstrip(":")
            if not names or names[-1] != name:
                names.append(name)
        return names

    def service_events(self) -> list[str]:
        path = self.work / "service.log"
        return [line.split()[-1] for line in path.read_text().splitlines()] if path.exists() else []

    @property
    def dump(self) -> Path:
        return self.work / "dumps" / "app-db.sql"

    @property
    def paused(self) -> Path:
        return self.work / "app.paused"


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


# -- the example as shipped ---------------------------------------------------------------------

@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(EXAMPLE)))
def test_scripts_are_executable_posix_sh(script: Path) -> None:
    mode = script.stat().st_mode
    assert mode & stat.S_IXUSR, f"{script} must be executable (chmod 755)"
    assert not mode & (stat.S_IWGRP | stat.S_IWOTH), "resticm refuses hooks others can change"
    assert script.read_text().startswith("#!/bin/sh\n")
    shell = shutil.which("dash") or "sh"
    check = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def test_hook_directories_are_not_writable_by_others() -> None:
    for directory in (HOOKS, HOOKS / "pre-backup.d"):
        assert not directory.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH), directory


def test_config_example_loads(tmp_path: Path) -> None:
    """Every hook form of config.example.yaml is valid syntax for the loader."""
    config_file = tmp_path / "config.yaml"
    shutil.copy(EXAMPLE / "config.example.yaml", config_file)
    config_file.chmod(0o600)
    config = load_config(config_file, environ={"HOME": str(tmp_path)})

    hooks = config.hooks
    assert [h.kind for h in hooks.pre_backup] == ["directory"]
    assert [h.kind for h in hooks.post_backup] == ["script"]
    assert [h.kind for h in hooks.on_error] == ["python"]
    kinds = [h.kind for h in hooks.on_success]
    assert kinds == ["script", "python", "directory"]
    assert hooks.on_success[0].args == ("--status", "ok")  # type: ignore[attr-defined]
    assert hooks.on_success[0].timeout == 60
    assert dict(hooks.on_success[0].env) == {"REPORT_TO": "ops@example.org"}
    assert hooks.on_success[1].isolate is True  # type: ignore[attr-defined]
    assert [h.kind for h in hooks.finally_] == ["script"]
    assert hooks.timeout == 1800
    assert dict(hooks.environment) == {"BACKUP_SITE": "main", "DUMP_DIR": "/var/backups/databases"}


# -- run.sh, for real ---------------------------------------------------------------------------

@requires_restic
@pytest.mark.restic
def test_quickstart_twice(tmp_path: Path) -> None:
    qs = Quickstart(tmp_path)

    first = qs.run()
    assert first.returncode == 0, explain(first)
    assert "initialized repository" in first.stdout
    assert qs.trail() == SUCCESS_TRAIL

    second = qs.run()
    assert second.returncode == 0, explain(second)
    assert "already initialized" in second.stdout
    assert qs.trail() == SUCCESS_TRAIL
    assert "resticm exited with 0" in second.stdout

    snapshots = qs.snapshots()
    assert len(snapshots) == 2
    assert snapshots[-1]["tags"] == ["quickstart"]
    assert sorted(snapshots[-1]["paths"]) == [str(qs.work / "data"), str(qs.work / "dumps")]

    # The dump the pre_backup module wrote is in the snapshot, with the app's rows...
    assert str(qs.dump) in qs.restic("ls", "latest").splitlines()
    assert str(qs.dump) in second.stdout, "run.sh shows `restic ls latest`"
    dumped = qs.restic("dump", "latest", str(qs.dump))
    assert "INSERT INTO customers VALUES ('1','Ada');" in dumped
    assert dumped.count("INSERT INTO orders") == 2, "one order per run"
    # ...and post-backup.sh removed it after the successful backup.
    assert not qs.dump.exists()
    assert list((qs.work / "dumps").iterdir()) == []

    # The app was paused during each backup, resumed by post_backup right after
    # it; finally, the safety net, found nothing left to do.
    assert not qs.paused.exists()
    assert qs.service_events() == ["stopped", "started"] * 2
    hooks_log = (qs.work / "hooks.log").read_text()
    assert "post-backup.sh: app resumed" in hooks_log
    assert "finally.sh: the app is running: nothing to resume" in hooks_log

    # Private files: the config names programs that run, the password opens the repo.
    for private in ("config.yaml", "password"):
        assert stat.S_IMODE((qs.work / private).stat().st_mode) == 0o600, private
    assert str(HOOKS) in (qs.work / "config.yaml").read_text()


@requires_restic
@pytest.mark.restic
def test_quickstart_dump_failure(tmp_path: Path) -> None:
    qs = Quickstart(tmp_path)
    result = qs.run(QUICKSTART_FAIL_DUMP="1")

    assert result.returncode == 1, explain(result)
    assert "resticm exited with 1" in result.stdout
    assert "(no snapshot yet)" in result.stdout
    assert qs.snapshots() == [], "no snapshot: the backup was skipped"
    # post_backup did not run, on_error and finally did, in this order.
    assert qs.trail() == FAILURE_TRAIL
    error = (qs.work / "last-error.txt").read_text()
    assert "pre_backup failed" in error and "20-dump-app.sh" in error
    assert "database dump failed" in error, "ERROR carries the module's last output line"
    # The app, paused by module 10 before module 20 failed, was resumed by finally.
    assert qs.service_events() == ["stopped", "started"]
    assert not qs.paused.exists()
    assert "finally.sh: app resumed by the safety net (BACKUP_STATUS=not_run)" in (
        qs.work / "hooks.log").read_text()

    # Fixed, the next run backs up again.
    again = qs.run()
    assert again.returncode == 0, explain(again)
    assert len(qs.snapshots()) == 1
    assert qs.service_events() == ["stopped", "started"] * 2


@requires_restic
@pytest.mark.restic
def test_quickstart_soft_skip(tmp_path: Path) -> None:
    qs = Quickstart(tmp_path)
    result = qs.run(QUICKSTART_SKIP="1")

    assert result.returncode == 0, explain(result)
    assert qs.snapshots() == []
    assert qs.trail() == SKIP_TRAIL, "the modules after the 75 do not run, nor post_backup"
    assert "asked to skip it (exit 75)" in (qs.work / "hooks.log").read_text()
    assert "BACKUP_STATUS=skipped" in (qs.work / "hooks.log").read_text()
    assert qs.service_events() == [], "the app was never paused"
