"""A repository password from ``$CREDENTIALS_DIRECTORY`` (systemd credentials, issue 18):
it works for a real backup and is never seen in logs, restic's argv, a hook's
environment, ``-v`` output or ``--json``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PASSWORD, requires_restic, snapshot_ids, write_script

pytestmark = [requires_restic, pytest.mark.restic]


def test_a_password_from_credentials_directory_works_and_never_leaks(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "restic").write_text(PASSWORD + "\n")
    (credentials / "restic").chmod(0o400)
    # restic as found on PATH: a script that records its own /proc/PID/cmdline and
    # whether the password reached it through the environment, then runs restic.
    real_restic = subprocess.run(
        ["sh", "-c", "command -v restic"], capture_output=True, text=True, check=True
    ).stdout.strip()
    argv_log, env_log = tmp_path / "restic-argv.log", tmp_path / "hook-env.log"
    bin_dir = tmp_path / "bin"
    write_script(
        bin_dir / "restic",
        f"""
        tr '\\0' ' ' < /proc/$$/cmdline >> {argv_log}; echo >> {argv_log}
        [ "$RESTIC_PASSWORD" = "{PASSWORD}" ] && echo "password via environment" >> {argv_log}
        exec {real_restic} "$@"
        """,
    )
    hook = write_script(tmp_path / "hooks" / "pre.sh", f"env > {env_log}\n")
    log_file = tmp_path / "log" / "resticm.log"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"repository: {repo}\n"
        "password: ${credential:restic}\n"
        f"directories: [{source}]\n"
        f"logging:\n  file: {log_file}\n  level: debug\n"
        f"hooks:\n  pre_backup: {hook}\n"
    )
    # readable by others: it holds a reference, no secret
    cfg.chmod(0o644)
    env = {
        **environ,
        "CREDENTIALS_DIRECTORY": str(credentials),
        "PATH": f"{bin_dir}:{environ['PATH']}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-v", "--json", "-c", str(cfg), "backup"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backup_status"] == "success"
    assert len(snapshot_ids(repo, tmp_path / "cache")) == 1
    argv = argv_log.read_text()
    assert " backup " in argv and "password via environment" in argv
    assert "restic -r" in result.stderr  # -v printed the command lines
    seen = {
        "restic argv": argv.replace("password via environment", ""),
        "hook environment": env_log.read_text(),
        "log file": log_file.read_text(),
        "stderr (-v)": result.stderr,
        "--json": result.stdout,
    }
    for where, text in seen.items():
        assert text, where
        assert PASSWORD not in text, f"the password leaked into the {where}"
    # without the credential the config cannot load: a located error, exit 2
    missing = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), "backup"],
        env={**env, "CREDENTIALS_DIRECTORY": str(tmp_path / "empty")},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert f"{cfg}:2: password: ${{credential:restic}}: no credential restic" in missing.stderr
