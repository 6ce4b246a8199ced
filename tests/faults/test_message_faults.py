"""What the user reads when a repository cannot be written or a copy is stopped (issue 13, 8).

- A repository on a read-only file system (EROFS), or one whose files the run may
  not write (EACCES): the error says so in restic's words. restic 0.14 ends with a
  Go stack trace and a bare ``unable to create lock in backend``; the cause is a
  line above it. Made for real, leaving nothing behind: a read-only bind mount in
  a private mount namespace of the run alone (``unshare --mount``), and, for
  EACCES, files without write permission and a run without CAP_DAC_OVERRIDE
  (``setpriv``; a non-root user needs no help).
- SIGTERM during ``resticm copy``: the error names the backend whose copy stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import PASSWORD, requires_restic, restic_env, restic_version
from .conftest import children, restic_check, start_resticm, wait_for

pytestmark = [requires_restic, pytest.mark.restic]


def _works(argv: list[str]) -> bool:
    if shutil.which(argv[0]) is None:
        return False
    return subprocess.run([*argv, "true"], capture_output=True, check=False).returncode == 0


def read_only_mount(path: Path) -> list[str]:
    """A prefix that runs a command with *path* bind-mounted read-only onto itself,
    in a mount namespace of its own: the rest of the system never sees the mount."""
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(path)]


def without_write_override() -> list[str]:
    """A prefix under which file permissions apply to the command, root included."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override", "--"]


def config(tmp_path: Path, repo: Path, source: Path, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"repository: {repo}\npassword: {PASSWORD}\ndirectories:\n  - {source}\n"
        f"logging:\n  file: ''\n{extra}"
    )
    path.chmod(0o600)
    return path


def backup_json(
    prefix: list[str], cfg: Path, env: dict[str, str]
) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "resticm_core", "-c", str(cfg), "--json", "backup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # restic 0.14 retries a failing write for about 45 s first
    )
    return result.returncode, json.loads(result.stdout), result.stderr


@pytest.fixture
def unwritable(repo: Path) -> Iterator[Path]:
    """*repo* with no write permission anywhere; put back for restic check and cleanup."""
    for path in [repo, *repo.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    yield repo
    for path in [repo, *repo.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


@pytest.mark.skipif(
    restic_version() >= (0, 17, 0),
    reason="restic >= 0.17 retries creating its lock on a read-only file system for up to "
    "15 minutes before it fails (docs/operations.md#restic-versions); checked on 0.14",
)
def test_a_read_only_repository_says_read_only_file_system(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    prefix = read_only_mount(repo)
    if not _works(prefix[:4]):
        pytest.skip("no private mount namespace here (unshare --mount needs CAP_SYS_ADMIN)")
    code, report, stderr = backup_json(prefix, config(tmp_path, repo, source), environ)
    assert code == 1, stderr
    (error,) = report["errors"]
    assert error.startswith("restic backup failed on primary: unable to create lock in backend")
    assert f"open {repo}/locks/" in error and error.endswith(": read-only file system (exit 1)")
    assert "Traceback" not in stderr and "github.com/restic" not in error
    assert "read-only file system" in stderr
    # The mount was the run's alone: the repository is writable and intact here.
    assert os.access(repo / "locks", os.W_OK)
    assert restic_check(repo, Path(environ["RESTIC_CACHE_DIR"])).returncode == 0


def test_a_repository_the_run_may_not_write_says_permission_denied(
    tmp_path: Path, source: Path, environ: dict[str, str], unwritable: Path
) -> None:
    prefix = without_write_override()
    if prefix and not _works(prefix[:2]):
        pytest.skip("setpriv cannot drop CAP_DAC_OVERRIDE here")
    code, report, stderr = backup_json(prefix, config(tmp_path, unwritable, source), environ)
    assert code == 1, stderr
    (error,) = report["errors"]
    assert error.startswith("restic backup failed on primary: unable to create lock in backend")
    assert f"open {unwritable}/locks/" in error
    assert error.endswith(": permission denied (exit 1)")
    assert "Traceback" not in stderr


def test_sigterm_during_a_copy_names_the_backend(
    tmp_path: Path,
    repo: Path,
    big_source: Path,
    environ: dict[str, str],
    template_repo: Path,
) -> None:
    offsite = tmp_path / "offsite"
    shutil.copytree(template_repo, offsite)
    cache = Path(environ["RESTIC_CACHE_DIR"])
    # The primary's snapshot, made by restic directly: the copy has ~320 MiB to move.
    subprocess.run(
        ["restic", "backup", "-q", str(big_source)],
        env=restic_env(cache, repo),
        check=True,
        capture_output=True,
        timeout=600,
    )
    backends = (
        f"backends:\n  offsite:\n    repository: {offsite}\n    password: {PASSWORD}\n"
        "copy_to_backends: [offsite]\n"
    )
    cfg = config(tmp_path, repo, big_source, backends)
    proc = start_resticm("-c", str(cfg), "--json", "copy", env=environ)
    wait_for(lambda: any(" copy" in cmd for _, cmd in children(proc.pid)), "restic copy to start")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)

    assert proc.returncode == 128 + signal.SIGTERM, stderr
    report = json.loads(stdout)
    assert report["errors"] == ["restic copy on offsite interrupted by SIGTERM"]
    (copy,) = [s for s in report["steps"] if s["name"] == "copy"]
    assert (copy["repository"], copy["error"]) == (
        "offsite",
        "restic copy on offsite interrupted by SIGTERM",
    )
    assert "ERROR: restic copy on offsite interrupted by SIGTERM" in stderr
    assert restic_check(offsite, cache).returncode == 0
