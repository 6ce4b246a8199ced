"""The preflight probe (resticm_core.preflight): cheap where a file or a connect tells the
truth, restic otherwise, and always before a pre_backup hook runs.

Every run here uses the real restic and counts the restic commands through the
runner's ``on_command``: "the probe was cheap" means no ``cat config`` was started.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resticm_core import RunReport, config_from_dict, run
from resticm_core.phases import BackupStatus
from resticm_core.preflight import (
    PasswordRecord,
    local_path,
    password_file_of,
    sftp_server,
)
from resticm_core.restic import SubprocessResticRunner

from .conftest import PASSWORD, CallLog, requires_restic, restic_env, write_script


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def calls(tmp_path: Path) -> CallLog:
    return CallLog(tmp_path / "calls.log")


def _config(tmp_path: Path, repository: str, password_file: Path, calls: CallLog,
            **extra: Any) -> Any:
    hook = write_script(tmp_path / "hooks" / "pre.sh", calls.line("pre_backup"))
    data = {
        "repository": repository,
        "password_file": str(password_file),
        "directories": [str(tmp_path / "src")],
        "hooks": {"pre_backup": [str(hook)]},
        "logging": {"file": "", "console": False},
        **extra,
    }
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "a.txt").write_text("alpha\n")
    return config_from_dict(data, base_dir=tmp_path)


@pytest.fixture
def go(environ: dict[str, str], lock_dir: Path) -> Callable[..., tuple[RunReport, list[str]]]:
    def do(config: Any, command: str = "backup", **kwargs: Any) -> tuple[RunReport, list[str]]:
        commands: list[str] = []
        runner = SubprocessResticRunner(environ=environ, on_command=commands.append)
        report = run(config, command, environ=environ, lock_dir=lock_dir, runner=runner,
                     **kwargs)
        return report, commands

    return do


def _cats(commands: list[str]) -> int:
    return sum(" cat config" in c for c in commands)


def _records(environ: dict[str, str]) -> list[Path]:
    return sorted((Path(environ["RESTICM_STATE_DIR"]) / "preflight").glob("*.json"))


@requires_restic
def test_second_backup_skips_the_restic_probe_and_the_record_holds_no_secret(
    tmp_path: Path, repo: Path, password_file: Path, calls: CallLog,
    environ: dict[str, str], go: Callable[..., tuple[RunReport, list[str]]],
) -> None:
    config = _config(tmp_path, str(repo), password_file, calls)
    first, commands = go(config)
    assert first.exit_code == 0, first.errors
    assert _cats(commands) == 1, "no record yet: restic is asked"
    [record] = _records(environ)
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    text = record.read_text()
    assert PASSWORD not in text and "password" in text  # the file's identity, not its content
    second, commands = go(config)
    assert second.exit_code == 0, second.errors
    assert _cats(commands) == 0, "the record and the repository files answered"
    assert [s.name for s in second.steps] == ["preflight", "backup"]
    assert calls.tags() == ["pre_backup", "pre_backup"]


@requires_restic
def test_wrong_password_fails_before_pre_backup_even_with_a_record(
    tmp_path: Path, repo: Path, password_file: Path, calls: CallLog,
    go: Callable[..., tuple[RunReport, list[str]]],
) -> None:
    config = _config(tmp_path, str(repo), password_file, calls)
    assert go(config)[0].exit_code == 0
    calls.path.unlink()
    password_file.write_text("not the password\n")  # the file changes: ctime moves
    report, commands = go(config)
    assert _cats(commands) == 1, "a changed password file is checked by restic"
    assert report.exit_code == 1 and report.backup_status is BackupStatus.FAILURE
    assert [s.name for s in report.steps] == ["preflight"]
    assert "password" in report.errors[0].lower()
    assert not calls.path.exists(), "no pre_backup hook ran"
    # The record was dropped: putting the right password back asks restic again.
    password_file.write_text(PASSWORD + "\n")
    assert _cats(go(config)[1]) == 1


@requires_restic
def test_wrong_password_without_a_record_fails_before_pre_backup(
    tmp_path: Path, repo: Path, calls: CallLog,
    go: Callable[..., tuple[RunReport, list[str]]],
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    report, _ = go(_config(tmp_path, str(repo), wrong, calls))
    assert report.exit_code == 1 and [s.name for s in report.steps] == ["preflight"]
    assert "password" in report.errors[0].lower()
    assert not calls.path.exists()


@requires_restic
def test_a_key_change_is_verified_by_restic(
    tmp_path: Path, repo: Path, password_file: Path, calls: CallLog,
    go: Callable[..., tuple[RunReport, list[str]]],
) -> None:
    config = _config(tmp_path, str(repo), password_file, calls)
    assert go(config)[0].exit_code == 0
    # Another key is added, then ours removed (restic key passwd): same file, new keys.
    env = restic_env(tmp_path / "cache2", repo)
    new = tmp_path / "new-password"
    new.write_text("another password\n")
    subprocess.run(["restic", "key", "passwd", "--new-password-file", str(new)],
                   env=env, check=True, capture_output=True)
    report, commands = go(config)
    assert _cats(commands) == 1, "the key files changed: restic must say"
    assert report.exit_code == 1 and "password" in report.errors[0].lower()
    assert calls.tags() == ["pre_backup"], "only the first run's hook ran"


@requires_restic
def test_a_missing_local_repository_fails_before_pre_backup(
    tmp_path: Path, password_file: Path, calls: CallLog,
    go: Callable[..., tuple[RunReport, list[str]]],
) -> None:
    report, commands = go(_config(tmp_path, str(tmp_path / "nothing"), password_file, calls))
    assert _cats(commands) == 1, "restic names what is wrong, in its own words"
    assert report.exit_code == 1 and [s.name for s in report.steps] == ["preflight"]
    assert not calls.path.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@requires_restic
@pytest.mark.parametrize("scheme", ["rest:http://127.0.0.1:{port}/repo",
                                    "s3:http://127.0.0.1:{port}/bucket"])
def test_an_unreachable_server_fails_before_pre_backup_without_restic(
    scheme: str, tmp_path: Path, password_file: Path, calls: CallLog,
    go: Callable[..., tuple[RunReport, list[str]]],
) -> None:
    url = scheme.format(port=_closed_port())
    report, commands = go(_config(tmp_path, url, password_file, calls))
    assert commands == [], "a refused connect is the answer: restic would retry for minutes"
    assert report.exit_code == 1 and [s.name for s in report.steps] == ["preflight"]
    assert "unreachable" in report.errors[0] and "127.0.0.1" in report.errors[0]
    assert not calls.path.exists()


@requires_restic
def test_full_with_auto_check_probes_each_repository_once(
    tmp_path: Path, repo: Path, password_file: Path, calls: CallLog,
    go: Callable[..., tuple[RunReport, list[str]]],
) -> None:
    config = _config(tmp_path, str(repo), password_file, calls, deep_check_interval_days=1)
    report, commands = go(config, "full")
    assert report.exit_code == 0, report.errors
    assert _cats(commands) == 1, "the check reuses the preflight's repository id"
    report, commands = go(config, "full")
    assert report.exit_code == 0, report.errors
    assert _cats(commands) == 0, "the record also holds the id"


@requires_restic
def test_a_failed_backup_drops_the_record(
    tmp_path: Path, repo: Path, password_file: Path, calls: CallLog,
    environ: dict[str, str], go: Callable[..., tuple[RunReport, list[str]]],
) -> None:
    config = _config(tmp_path, str(repo), password_file, calls)
    assert go(config)[0].exit_code == 0 and len(_records(environ)) == 1
    (tmp_path / "src" / "a.txt").unlink()
    (tmp_path / "src").rmdir()
    report, _ = go(config)
    assert report.exit_code != 0
    assert _records(environ) == []


def test_a_foreign_or_group_writable_record_is_ignored(tmp_path: Path) -> None:
    records = PasswordRecord(tmp_path)
    records.save("/r", {"keys": [["k", 1, 2]]})
    assert records.load("/r") == {**json.loads(next(tmp_path.glob("preflight/*.json"))
                                             .read_text())}
    path = next((tmp_path / "preflight").glob("*.json"))
    os.chmod(path, 0o664)
    assert records.load("/r") is None
    os.chmod(path, 0o600)
    assert records.load("/other") is None, "a record answers for its own URL only"
    url = "rest:http://user:s3cret-pass@127.0.0.1:8000/repo"
    records.save(url, {"keys": []})
    assert records.load(url) is not None
    assert all("s3cret-pass" not in p.read_text() for p in (tmp_path / "preflight").iterdir())


def test_locations_and_password_sources(tmp_path: Path) -> None:
    assert local_path("/srv/repo") == Path("/srv/repo")
    assert local_path("local:/srv/repo") == Path("/srv/repo")
    assert local_path("rest:http://h/") is None and local_path("b2:bucket") is None
    assert sftp_server("sftp:user@host:/srv") == ("host", 22)
    assert sftp_server("sftp://user@host:2222/srv") == ("host", 2222)
    assert sftp_server("/srv") is None
    config = config_from_dict({"repository": "/r", "password": "p", "directories": ["/"]},
                              base_dir=tmp_path)
    repository = config.primary_repository()
    assert password_file_of(repository, {}, False) is None, "a value: restic checks it"
    inherited = config_from_dict({"repository": "/r", "directories": ["/"]}, base_dir=tmp_path,
                                 environ={"RESTIC_PASSWORD": "x"}).primary_repository()
    assert password_file_of(inherited, {"RESTIC_PASSWORD_FILE": "/pw"}, False) == "/pw"
    assert password_file_of(inherited, {"RESTIC_PASSWORD_FILE": "/pw"}, True) is None
    assert password_file_of(inherited, {"RESTIC_PASSWORD": "x",
                                        "RESTIC_PASSWORD_FILE": "/pw"}, False) is None
