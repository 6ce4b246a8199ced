"""What resticm must NOT do on its cold paths (issue 8), so it cannot creep back.

- ``import resticm_core`` and ``resticm --version`` import no heavy module;
- a plain ``resticm backup`` imports no HTTP client, no multiprocessing and none
  of the modules of other commands (mirror, lock check, drill, schedule, ansible);
- a backup starts no ``restic version`` process: only ``restic backup`` runs.
  The version is read only when ``retry_lock`` needs it.

Each check runs in a fresh interpreter: this test process has imported everything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PASSWORD, requires_restic, write_script

# Heavy for a cold start: each costs milliseconds to import.
NOT_FOR_VERSION = (
    "attr",
    "attrs",
    "cattrs",
    "ruamel.yaml",
    "pluggy",
    "importlib.metadata",
    "json",
    "logging",
    "subprocess",
    "resticm_core.config",
    "resticm_core.commands",
    "resticm_core.schedule",
    "resticm_core.workflow",
)
# Never needed by a backup without notifications, isolated hooks or maintenance.
NOT_FOR_BACKUP = (
    "urllib.request",
    "http.client",
    "ssl",
    "multiprocessing",
    "resticm_core.mirror",
    "resticm_core.lockcheck",
    "resticm_core.drill",
    "resticm_core.schedule",
    "resticm_core.ansible_module",
)

# The harness itself imports nothing beyond sys (json would count against the body).
MODULES_AFTER = """
import sys
out = sys.argv[1]
sys.argv = ["resticm", *sys.argv[2:]]
try:
    {body}
finally:
    with open(out, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
"""


def modules_after(
    tmp_path: Path, body: str, *argv: str, env: dict[str, str] | None = None
) -> set[str]:
    """The modules a fresh interpreter holds after running *body* (sys.argv[1:] = argv)."""
    out = tmp_path / "modules.json"
    code = MODULES_AFTER.format(body=body)
    subprocess.run(
        [sys.executable, "-c", code, str(out), *argv],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return set(out.read_text().split())


def test_import_resticm_core_is_light(tmp_path: Path) -> None:
    loaded = modules_after(tmp_path, "import resticm_core")
    assert "resticm_core" in loaded
    assert not loaded & set(NOT_FOR_VERSION)


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_is_light(tmp_path: Path, flag: str) -> None:
    body = "from resticm_core.cli import main\n    main()"
    loaded = modules_after(tmp_path, body, flag)
    assert "resticm_core.cli" in loaded
    assert not loaded & set(NOT_FOR_VERSION)


def test_version_output_and_exit_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    from resticm_core import __version__

    assert result.returncode == 0
    assert result.stdout == f"resticm {__version__}\n"


def _config(tmp_path: Path, repo: Path, source: Path, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"repository: {repo}\npassword: {PASSWORD}\ndirectories:\n  - {source}\n"
        f"logging:\n  file: ''\n{extra}"
    )
    path.chmod(0o600)
    return path


@requires_restic
def test_backup_imports_only_what_it_needs(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = _config(tmp_path, repo, source)
    body = "from resticm_core.cli import main\n    rc = main()\n    assert rc == 0, rc"
    loaded = modules_after(tmp_path, body, "-c", str(cfg), "backup", env=environ)
    assert "resticm_core.workflow" in loaded, "the backup did not run"
    assert not loaded & set(NOT_FOR_BACKUP)


def _recording_restic(tmp_path: Path, environ: dict[str, str]) -> tuple[dict[str, str], Path]:
    """A ``restic`` first on PATH that logs its command, then runs the real one."""
    real = subprocess.run(
        ["sh", "-c", "command -v restic"], capture_output=True, text=True, check=True
    ).stdout.strip()
    log = tmp_path / "restic-calls.log"
    bin_dir = tmp_path / "bin"
    write_script(bin_dir / "restic", f'echo "$1" >> {log}\nexec {real} "$@"\n')
    return {**environ, "PATH": f"{bin_dir}:{environ.get('PATH', '')}"}, log


@requires_restic
def test_backup_starts_restic_once(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    env, log = _recording_restic(tmp_path, environ)
    cfg = _config(tmp_path, repo, source)
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), "backup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().split() == ["backup"]  # no `restic version` probe


@requires_restic
def test_retry_lock_reads_the_version_when_needed(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    # retry_lock picks restic's --retry-lock (>= 0.16) or resticm's own retries,
    # so the version is read, once, before the first command that locks.
    env, log = _recording_restic(tmp_path, environ)
    cfg = _config(tmp_path, repo, source, extra="retry_lock: 10s\n")
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), "backup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().split() == ["version", "backup"]


def test_installed_check_is_a_path_lookup(tmp_path: Path) -> None:
    from resticm_core.errors import ResticNotFoundError
    from resticm_core.restic import NOT_INSTALLED_MESSAGE, Restic, SubprocessResticRunner

    empty = tmp_path / "empty-bin"
    empty.mkdir()
    missing = Restic(SubprocessResticRunner(environ={"PATH": str(empty)}))
    with pytest.raises(ResticNotFoundError) as raised:
        missing.ensure_installed()
    assert str(raised.value) == NOT_INSTALLED_MESSAGE  # the same text as before

    # A restic on PATH is found without being started (this one would log and fail).
    log = tmp_path / "started.log"
    write_script(tmp_path / "bin" / "restic", f"echo started >> {log}\nexit 1\n")
    present = Restic(SubprocessResticRunner(environ={"PATH": str(tmp_path / "bin")}))
    present.ensure_installed()
    assert not log.exists()
