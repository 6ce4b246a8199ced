"""A config and command lines written for the Go resticm keep working (issue 16).

Each test runs the real ``resticm`` on a config in the Go tool's own format
(reference/resticm-spec.md §3): the flat keys, string hooks, ``backends:``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PASSWORD, requires_restic, snapshot_ids, write_script


def resticm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def go_config(tmp_path: Path, repo: Path, source: Path, extra: str = "") -> Path:
    """The shape of the Go tool's config.example.yaml: empty strings mean "no hook"."""
    path = tmp_path / "config.yaml"
    path.write_text(
        f'repository: "{repo}"\n'
        f'password: "{PASSWORD}"\n'
        f"directories:\n  - {source}\n"
        "hooks:\n"
        '  pre_backup: ""\n'
        '  post_backup: ""\n'
        '  on_error: ""\n'
        '  on_success: ""\n'
        "backends:\n"
        "  offsite:\n"
        f'    repository: "{tmp_path / "offsite"}"\n'
        '    password: ""\n'
        f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n"
        + extra
    )
    path.chmod(0o600)
    return path


@requires_restic
@pytest.mark.restic
def test_empty_hook_strings_mean_no_hook(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = go_config(tmp_path, repo, source)
    validate = resticm("-c", str(cfg), "config", "validate", env=environ)
    assert validate.returncode == 0, validate.stderr
    backup = resticm("-c", str(cfg), "backup", env=environ)
    assert backup.returncode == 0, backup.stderr
    assert len(snapshot_ids(repo, tmp_path / "cache")) == 1


def test_unlock_force_is_accepted(tmp_path: Path, source: Path, environ: dict[str, str]) -> None:
    cfg = go_config(tmp_path, tmp_path / "repo", source)
    env = environ
    for flag in ("-f", "--force"):
        result = resticm("-c", str(cfg), "unlock", flag, env=env)
        assert result.returncode == 0, result.stderr
        assert "resticm lock: free" in result.stdout


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["verify", "--sample", "0"], "argument --sample: must be at least 1, got 0"),
        (["check", "--subset", "abc"], "argument --subset: expected N/M"),
        (["check", "--subset", "3/2"], "N/M needs 1 <= N <= M"),
        (["check", "--subset", "0%"], "a percentage must be above 0"),
        (["--lock-wait", "-5", "backup"], "argument --lock-wait: must be 0 or more seconds"),
        (["backup", "--lock-wait", "soon"], "expected a number of seconds, got 'soon'"),
        (["backup", "--deep"], "unrecognized arguments: --deep"),
        (["backup", "--all-hosts"], "unrecognized arguments: --all-hosts"),
    ],
)
def test_usage_errors_exit_2_before_anything_runs(
    tmp_path: Path, source: Path, environ: dict[str, str], argv: list[str], complaint: str
) -> None:
    cfg = go_config(tmp_path, tmp_path / "repo", source)
    result = resticm("-c", str(cfg), *argv, env=environ)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


def test_full_keeps_deep_and_all_hosts(
    tmp_path: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = go_config(tmp_path, tmp_path / "repo", source)
    result = resticm("-c", str(cfg), "-n", "full", "--deep", "--all-hosts", env=environ)
    assert "unrecognized arguments" not in result.stderr


def test_env_for_a_backend_without_password_is_an_error(
    tmp_path: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = go_config(tmp_path, tmp_path / "repo", source)
    result = resticm("-c", str(cfg), "env", "-b", "offsite", env=environ)
    assert result.returncode == 2
    assert "password not configured for backend 'offsite'" in result.stderr
    assert "password, password_file or password_command" in result.stderr
    assert "backends.offsite" in result.stderr
    assert result.stdout == ""
    primary = resticm("-c", str(cfg), "env", env=environ)
    assert primary.returncode == 0, primary.stderr
    assert f"export RESTIC_PASSWORD='{PASSWORD}'" in primary.stdout


def test_json_failures_print_an_error_object_on_stdout(
    tmp_path: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = go_config(tmp_path, tmp_path / "repo", source, extra="verify_no_locks: yes\n")
    result = resticm("-c", str(cfg), "--json", "backup", env=environ)
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["error"].startswith("configuration error")
    assert doc["errors"] == [
        {"file": str(cfg), "line": 16, "path": "verify_no_locks",
         "message": "expected true or false, got 'yes'"},
    ]
    assert "verify_no_locks: expected true or false" in result.stderr  # the text as well
    usage = resticm("-c", str(cfg), "verify", "--sample", "0", "--json", env=environ)
    assert usage.returncode == 2
    error = json.loads(usage.stdout)["error"]
    assert error.endswith("argument --sample: must be at least 1, got 0")
    assert "usage: resticm verify" in usage.stderr
    missing = resticm("-c", str(tmp_path / "nope.yaml"), "--json", "snapshots", env=environ)
    assert missing.returncode == 2
    assert json.loads(missing.stdout)["errors"][0]["message"].startswith("config file not found")


@requires_restic
@pytest.mark.restic
def test_backup_into_the_active_backend_probes_it_not_the_primary(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    # The primary is gone; the active backend is fine: the backup must go ahead.
    offsite = tmp_path / "offsite"
    shutil.copytree(repo, offsite)
    seen = tmp_path / "seen.txt"
    hook = write_script(tmp_path / "hooks" / "pre.sh", f'echo "$RESTICM_REPOSITORY" > {seen}\n')
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f'repository: "{tmp_path / "gone"}"\n'
        f'password: "{PASSWORD}"\n'
        f"directories:\n  - {source}\n"
        f"hooks:\n  pre_backup: {hook}\n"
        f'backends:\n  offsite:\n    repository: "{offsite}"\n    password: "{PASSWORD}"\n'
        f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n"
    )
    cfg.chmod(0o600)
    env = {**environ, "HOME": str(tmp_path / "home")}
    assert resticm("-c", str(cfg), "backend", "use", "offsite", env=env).returncode == 0
    result = resticm("-c", str(cfg), "-v", "backup", env=env)
    assert result.returncode == 0, result.stderr
    assert f"RESTIC_REPOSITORY={offsite}" in result.stderr or str(offsite) in result.stderr
    assert seen.read_text().strip() == str(offsite)  # RESTICM_REPOSITORY: where it went
    assert len(snapshot_ids(offsite, tmp_path / "cache")) == 1


@requires_restic
@pytest.mark.restic
def test_run_with_the_config_after_run_as_the_go_tool_spells_it(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = go_config(tmp_path, repo, source)
    assert resticm("-c", str(cfg), "backup", env=environ).returncode == 0
    result = resticm("run", "-c", str(cfg), "snapshots", "--json", env=environ)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 1
