"""restic as the engine: the runner against the real restic binary, the facade, parsing.

Tests marked ``restic`` run the installed restic (0.14 in CI) on local
repositories in tmp_path. Stub scripts stand in for restic only where the real
one cannot produce a case (exit codes 10/11/12 of restic >= 0.17).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from resticm_core.config import Repository
from resticm_core.display import format_bytes, format_duration
from resticm_core.errors import ResticmError, ResticNotFoundError
from resticm_core.restic import (
    NOT_INSTALLED_MESSAGE,
    BackupOutcome,
    Restic,
    ResticCommandError,
    ResticErrorKind,
    ResticResult,
    SubprocessResticRunner,
    child_environment,
    classify,
    parse_version,
    printable_command,
    readable_stderr,
)
from resticm_core.restic import runner as restic_runner

from .conftest import (
    PASSWORD,
    hold_restic_lock,
    requires_restic,
    restic_env,
    restic_version,
    write_script,
)

WRONG = "not the password"


def primary(url: str | Path, **kwargs: Any) -> Repository:
    return Repository(name="primary", url=str(url), **kwargs)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- version ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("restic 0.14.0 compiled with go1.19.8 on linux/amd64", (0, 14, 0)),
        ("restic 0.17.3 compiled with go1.23.3 on linux/arm64\n", (0, 17, 3)),
        ("restic 0.16.0-dev (compiled manually) compiled with go1.20", (0, 16, 0)),
        ("something else", None),
        ("", None),
    ],
)
def test_parse_version(text: str, expected: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == expected


@requires_restic
@pytest.mark.restic
def test_version_of_the_installed_restic_is_detected_once(environ: dict[str, str]) -> None:
    runner = SubprocessResticRunner(environ=environ)
    version = runner.version()
    assert version >= (0, 14, 0)
    assert version == parse_version(
        subprocess.run(["restic", "version"], capture_output=True, text=True, check=True).stdout
    )
    runner.binary = "/nonexistent/restic"  # cached per instance: not run again
    assert runner.version() == version
    assert Restic(runner).version() == version


def test_version_without_restic_raises_not_found(environ: dict[str, str]) -> None:
    runner = SubprocessResticRunner("/nonexistent/restic", environ=environ)
    with pytest.raises(ResticNotFoundError, match="not installed"):
        runner.version()


def test_version_with_unparsable_output_is_an_error(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    stub = write_script(tmp_path / "restic", 'echo "hello"\n')
    with pytest.raises(ResticmError, match="cannot determine the version"):
        SubprocessResticRunner(str(stub), environ=environ).version()


# -- error kinds ------------------------------------------------------------------------------

RESTIC_014_MISSING = [
    "Fatal: unable to open config file: stat /x/config: no such file or directory",
    "Is there a repository at the following location?",
    "/x",
]
RESTIC_014_REFUSED = [
    'Fatal: unable to open config file: client.Head: Head "http://u:***@127.0.0.1:1/config": '
    "dial tcp 127.0.0.1:1: connect: connection refused",
    "Is there a repository at the following location?",
    "rest:http://u:***@127.0.0.1:1/",
]
RESTIC_014_LOCKED = [
    "unable to create lock in backend: repository is already locked by PID 6039 on vm by root "
    "(UID 0, GID 0)",
    "lock was created at 2026-11-27 18:49:06 (2.889480591s ago)",
    "storage ID d4658a7a",
    "the `unlock` command can be used to remove stale locks",
]


@pytest.mark.parametrize(
    ("exit_code", "stderr", "expected"),
    [
        (0, [], ResticErrorKind.NONE),
        (1, [], ResticErrorKind.FAILED),
        (3, ["Warning: at least one source file could not be read"], ResticErrorKind.PARTIAL),
        (10, [], ResticErrorKind.REPOSITORY_MISSING),
        (11, [], ResticErrorKind.LOCKED),
        (12, [], ResticErrorKind.WRONG_PASSWORD),
        (130, [], ResticErrorKind.INTERRUPTED),
        (-signal.SIGTERM, [], ResticErrorKind.INTERRUPTED),
        (-signal.SIGKILL, [], ResticErrorKind.FAILED),
        (2, ["panic: something"], ResticErrorKind.FAILED),
        (None, [], ResticErrorKind.FAILED),
        # restic 0.14: everything is exit 1, the text says why.
        (1, ["Fatal: wrong password or no key found"], ResticErrorKind.WRONG_PASSWORD),
        (1, RESTIC_014_MISSING, ResticErrorKind.REPOSITORY_MISSING),
        (1, RESTIC_014_LOCKED, ResticErrorKind.LOCKED),
        (
            1,
            [
                "Fatal: unable to open config file: <config/> does not exist",
                "Is there a repository at the following location?",
            ],
            ResticErrorKind.REPOSITORY_MISSING,
        ),
        # The same hint follows a refused connection: that is not a missing repository.
        (1, RESTIC_014_REFUSED, ResticErrorKind.FAILED),
        # A file named like an error message, reported as JSON, changes nothing.
        (
            1,
            ['{"message_type":"error","error":{"message":"wrong password or no key found"}}'],
            ResticErrorKind.FAILED,
        ),
    ],
)
def test_classify(exit_code: int | None, stderr: list[str], expected: ResticErrorKind) -> None:
    assert classify(exit_code, stderr) is expected


def test_classify_timeout_and_cancel_win_over_the_exit_code() -> None:
    assert classify(-signal.SIGTERM, timed_out=True) is ResticErrorKind.TIMEOUT
    assert classify(0, cancelled=True) is ResticErrorKind.INTERRUPTED


def result(exit_code: int | None, stderr: Sequence[str] = (), **kwargs: Any) -> ResticResult:
    fields: dict[str, Any] = {
        "args": ("backup", "--json", "--", "/srv"),
        "repository": "primary",
        "exit_code": exit_code,
        "stderr_tail": tuple(stderr),
        "error_kind": classify(exit_code, stderr),
    }
    fields.update(kwargs)
    return ResticResult(**fields)


@pytest.mark.parametrize(
    ("res", "message"),
    [
        (result(0), ""),
        (
            result(1, ["", "Fatal: wrong password or no key found", ""]),
            "restic backup failed on primary: wrong password or no key found (exit 1)",
        ),
        (
            result(12, ["Fatal: wrong password or no key found"]),
            "restic backup failed on primary: wrong password or no key found (exit 12)",
        ),
        (
            result(1, RESTIC_014_MISSING),
            "restic backup failed on primary: repository does not exist: unable to open config "
            "file: stat /x/config: no such file or directory (create it with 'resticm init') "
            "(exit 1)",
        ),
        (
            result(1, RESTIC_014_LOCKED),
            "restic backup failed on primary: unable to create lock in backend: repository is "
            "already locked by PID 6039 on vm by root (UID 0, GID 0) (exit 1)",
        ),
        (
            result(
                3,
                [
                    '{"message_type":"error","error":{"Op":"open","Path":"x","Err":13},'
                    '"during":"archival","item":"/srv/x"}',
                    "Warning: at least one source file could not be read",
                ],
            ),
            "restic backup finished with warnings on primary: could not read /srv/x: open: "
            "permission denied (exit 3)",
        ),
        (
            result(1, ["[0:01] 10.00%  1 / 10 packs", "Fatal: nothing to backup", "\x1b[2K"]),
            "restic backup failed on primary: nothing to backup (exit 1)",
        ),
        (result(1), "restic backup failed on primary: no error message (exit 1)"),
        (result(-signal.SIGKILL), "restic backup failed on primary: killed (signal SIGKILL)"),
        (
            result(130, ["signal interrupt received, cleaning up"]),
            "restic backup on primary was interrupted (exit 130)",
        ),
        (result(None, error_kind=ResticErrorKind.NOT_INSTALLED), NOT_INSTALLED_MESSAGE),
        (
            result(-15, timed_out=True, duration=300.2, error_kind=ResticErrorKind.TIMEOUT),
            "restic backup on primary timed out after 300s and was stopped",
        ),
        (
            result(-15, cancelled=True, error_kind=ResticErrorKind.INTERRUPTED),
            "restic backup on primary was stopped because resticm was interrupted",
        ),
    ],
)
def test_message(res: ResticResult, message: str) -> None:
    assert res.message == message
    assert res.ok is (message == "")


def test_message_counts_further_unreadable_files() -> None:
    errors = [
        f'{{"message_type":"error","error":{{"message":"boom"}},"item":"/srv/{n}"}}'
        for n in range(3)
    ]
    assert "could not read /srv/0: boom (and 2 more)" in result(3, errors).message


def test_command_line_is_shell_quoted_without_credentials() -> None:
    res = result(0, args=("--no-lock", "cat", "config", "a b"))
    assert res.command == "cat"
    assert res.command_line == "restic --no-lock cat config 'a b'"
    res = result(0, args=("copy", "rest:https://u:pw12345@h/r"))
    assert "pw12345" not in res.command_line


def test_readable_stderr_renders_json_errors_of_old_and_new_restic() -> None:
    lines = [
        '{"message_type":"error","error":{"Op":"read","Path":"/p","Err":5},"item":"/p"}',
        '{"message_type":"error","error":{"message":"open /q: permission denied"},"item":"/q"}',
        '{"message_type":"status","percent_done":0.5}',
        "not json {",
    ]
    assert readable_stderr(lines) == [
        "/p: read: input/output error",
        "/q: open /q: permission denied",
        "not json {",
    ]


def test_result_from_exit_classifies() -> None:
    res = ResticResult.from_exit(["prune"], "b2", 11)
    assert res.error_kind is ResticErrorKind.LOCKED
    assert res.message == (
        "restic prune failed on b2: repository is already locked by another process (exit 11)"
    )


# -- exit codes of restic >= 0.17, with a stub script ----------------------------------------


@pytest.mark.parametrize(
    ("code", "stderr", "kind", "detail"),
    [
        (
            10,
            "Fatal: repository does not exist: unable to open config file: stat /r/config: "
            "no such file or directory",
            ResticErrorKind.REPOSITORY_MISSING,
            "repository does not exist: unable to open config file: stat /r/config: no such file "
            "or directory (create it with 'resticm init') (exit 10)",
        ),
        (
            11,
            "Fatal: unable to create lock in backend: repository is already locked exclusively "
            "by PID 7 on h by u (UID 0, GID 0)",
            ResticErrorKind.LOCKED,
            "unable to create lock in backend: repository is already locked exclusively by PID 7 "
            "on h by u (UID 0, GID 0) (exit 11)",
        ),
        (
            12,
            "Fatal: wrong password or no key found",
            ResticErrorKind.WRONG_PASSWORD,
            "wrong password or no key found (exit 12)",
        ),
        (
            3,
            "Warning: at least one source file could not be read",
            ResticErrorKind.PARTIAL,
            "at least one source file could not be read",
        ),
    ],
)
def test_exit_codes_of_new_restic(
    tmp_path: Path,
    environ: dict[str, str],
    code: int,
    stderr: str,
    kind: ResticErrorKind,
    detail: str,
) -> None:
    stub = write_script(tmp_path / "restic", f"echo '{stderr}' >&2\nexit {code}\n")
    res = Restic(SubprocessResticRunner(str(stub), environ=environ)).prune(primary("/r"))
    assert res.error_kind is kind
    assert res.exit_code == code
    assert detail in res.message


def test_partial_backup_keeps_its_summary_with_a_stub(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    summary = (
        '{"message_type":"summary","files_new":2,"data_added":10,'
        '"snapshot_id":"abcd1234","total_duration":0.5}'
    )
    stub = write_script(
        tmp_path / "restic",
        f"""\
        echo '{{"message_type":"status","percent_done":0.5}}'
        echo '{summary}'
        echo 'Warning: at least one source file could not be read' >&2
        exit 3
    """,
    )
    outcome = Restic(SubprocessResticRunner(str(stub), environ=environ)).backup(
        primary("/r"), ["/srv"]
    )
    assert outcome.partial and not outcome.ok
    assert outcome.summary is not None
    assert outcome.summary.snapshot_id == "abcd1234"
    assert outcome.summary.files_new == 2
    assert outcome.summary.total_duration == 0.5


def test_stderr_is_redacted_with_the_repository_secrets(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    stub = write_script(
        tmp_path / "restic",
        """\
        echo "token $MY_TOKEN key $AWS_SECRET_ACCESS_KEY pw $RESTIC_PASSWORD" >&2
        echo "Fatal: cannot reach $RESTIC_REPOSITORY" >&2
        exit 1
    """,
    )
    repo = primary(
        "rest:https://user:url-secret@host/r",
        password="repo-password",
        aws_access_key_id="AKIA",
        aws_secret_access_key="aws-secret-1",
        env={"MY_TOKEN": "token-secret-1"},
    )
    res = Restic(SubprocessResticRunner(str(stub), environ=environ)).snapshots
    with pytest.raises(ResticCommandError) as caught:
        res(repo)
    text = " ".join(caught.value.result.stderr_tail) + str(caught.value)
    for secret in ("url-secret", "repo-password", "aws-secret-1", "token-secret-1"):
        assert secret not in text
    assert "rest:https://user:***@host/r" in str(caught.value)


def test_binary_missing_is_not_installed(environ: dict[str, str]) -> None:
    commands: list[str] = []
    runner = SubprocessResticRunner(
        "/nonexistent/restic", environ=environ, on_command=commands.append
    )
    res = Restic(runner).backup(primary("/r"), ["/srv"]).result
    assert res.error_kind is ResticErrorKind.NOT_INSTALLED
    assert res.exit_code is None
    assert res.message == NOT_INSTALLED_MESSAGE
    assert commands == []  # nothing ran, nothing claimed to run


def test_restic_looked_up_in_the_childs_path(tmp_path: Path, environ: dict[str, str]) -> None:
    write_script(tmp_path / "bin" / "restic", "echo from-stub\n")
    runner = SubprocessResticRunner(environ={**environ, "PATH": str(tmp_path / "bin")})
    res = runner.execute(["snapshots"], primary("/r"), capture_stdout=True)
    assert res.ok and res.stdout == "from-stub\n"
    empty = SubprocessResticRunner(environ={**environ, "PATH": str(tmp_path / "nothing")})
    assert empty.execute(["snapshots"], primary("/r")).error_kind is ResticErrorKind.NOT_INSTALLED


def test_a_failing_password_plugin_is_a_failed_result(environ: dict[str, str]) -> None:
    def vault(repository: Repository) -> str | None:
        raise RuntimeError("vault sealed")

    runner = SubprocessResticRunner(environ=environ, password_provider=vault)
    res = runner.execute(["snapshots"], primary("/r"))
    assert res.error_kind is ResticErrorKind.FAILED
    assert "vault sealed" in res.message


def test_captured_output_is_bounded(
    tmp_path: Path, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restic_runner, "MAX_CAPTURE_CHARS", 1000)
    stub = write_script(tmp_path / "restic", "seq 1 2000\n")
    res = SubprocessResticRunner(str(stub), environ=environ).execute(
        ["snapshots", "--json"], primary("/r"), capture_stdout=True
    )
    assert res.exit_code == 0
    assert res.error_kind is ResticErrorKind.FAILED
    assert res.stdout == ""
    assert "output refused" in res.message


def test_a_failing_output_callback_neither_hangs_nor_loses_the_output(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    # 200k lines: far more than a pipe buffer, so a dead reader would block the child.
    stub = write_script(tmp_path / "restic", "seq 1 200000\n")
    seen: list[str] = []

    def broken(line: str) -> None:
        seen.append(line)
        raise ValueError("display broke")

    res = SubprocessResticRunner(str(stub), environ=environ).execute(
        ["snapshots"], primary("/r"), on_stdout=broken, capture_stdout=True, timeout=60
    )
    assert res.ok
    assert seen == ["1"]
    assert res.stdout.splitlines()[-1] == "200000"


def test_a_failing_status_callback_does_not_lose_the_summary(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    stub = write_script(
        tmp_path / "restic",
        """\
        echo '{"message_type":"status","percent_done":0.1}'
        echo '{"message_type":"status","percent_done":0.2}'
        echo '{"message_type":"summary","files_new":1,"snapshot_id":"s1"}'
    """,
    )
    calls: list[float] = []

    def broken(status: Mapping[str, Any]) -> None:
        calls.append(status["percent_done"])
        raise KeyError("oops")

    outcome = Restic(SubprocessResticRunner(str(stub), environ=environ)).backup(
        primary("/r"), ["/srv"], on_status=broken
    )
    assert outcome.ok and outcome.summary is not None and outcome.summary.snapshot_id == "s1"
    assert calls == [0.1]


# -- the child environment --------------------------------------------------------------------

INHERITED = {
    "PATH": "/usr/bin",
    "HOME": "/root",
    "RESTIC_REPOSITORY": "/elsewhere",
    "RESTIC_REPOSITORY_FILE": "/etc/elsewhere",
    "RESTIC_PASSWORD": "inherited-pw",
    "RESTIC_PASSWORD_FILE": "/etc/inherited-pw",
    "RESTIC_PASSWORD_COMMAND": "pass show inherited",
    "RESTIC_KEY_HINT": "deadbeef",
    "RESTIC_FROM_REPOSITORY": "/from-elsewhere",
    "RESTIC_FROM_PASSWORD": "from-pw",
    "RESTIC_CACHE_DIR": "/var/cache/restic",
    "AWS_ACCESS_KEY_ID": "inherited-id",
    "AWS_SECRET_ACCESS_KEY": "inherited-aws",
}
PASSWORD_VARS = ("RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND")


def password_vars(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k in PASSWORD_VARS}


@pytest.mark.parametrize(
    ("repo_fields", "provided", "inherited", "expected"),
    [
        ({"password": "cfg-pw"}, "vault-pw", INHERITED, {"RESTIC_PASSWORD": "cfg-pw"}),
        (
            {"password_file": "~/pw"},
            None,
            INHERITED,
            {"RESTIC_PASSWORD_FILE": os.path.expanduser("~/pw")},
        ),
        (
            {"password_command": "pass show x"},
            None,
            INHERITED,
            {"RESTIC_PASSWORD_COMMAND": "pass show x"},
        ),
        (
            {"password": "cfg-pw", "password_file": "/f"},
            None,
            INHERITED,
            {"RESTIC_PASSWORD": "cfg-pw"},
        ),
        ({}, "vault-pw", INHERITED, {"RESTIC_PASSWORD": "vault-pw"}),
        ({}, None, INHERITED, {"RESTIC_PASSWORD": "inherited-pw"}),
        ({"password": ""}, None, INHERITED, {"RESTIC_PASSWORD": "inherited-pw"}),
        (
            {},
            None,
            {"RESTIC_PASSWORD_FILE": "/f", "RESTIC_PASSWORD_COMMAND": "c"},
            {"RESTIC_PASSWORD_FILE": "/f"},
        ),
        ({}, None, {"RESTIC_PASSWORD_COMMAND": "c"}, {"RESTIC_PASSWORD_COMMAND": "c"}),
        ({}, None, {}, {}),
    ],
)
def test_exactly_one_password_source_config_first(
    repo_fields: dict[str, str],
    provided: str | None,
    inherited: dict[str, str],
    expected: dict[str, str],
) -> None:
    env, _ = child_environment(
        primary("/repo", **repo_fields), inherited, password_provider=lambda r: provided
    )
    assert password_vars(env) == expected


def test_child_environment_scrubs_inherited_repository_variables() -> None:
    repo = primary("/repo", password="cfg-pw", env={"B2_ACCOUNT_KEY": "b2-secret"})
    env, secrets = child_environment(repo, INHERITED, extra_env={"RESTIC_FROM_PASSWORD": "src"})
    assert env["RESTIC_REPOSITORY"] == "/repo"
    for name in ("RESTIC_REPOSITORY_FILE", "RESTIC_KEY_HINT", "RESTIC_FROM_REPOSITORY"):
        assert name not in env
    assert env["RESTIC_FROM_PASSWORD"] == "src"
    assert env["RESTIC_CACHE_DIR"] == "/var/cache/restic"  # settings, not credentials, stay
    assert env["B2_ACCOUNT_KEY"] == "b2-secret"
    assert env["AWS_SECRET_ACCESS_KEY"] == "inherited-aws"  # the repository sets none
    assert set(secrets) >= {"cfg-pw", "b2-secret", "src"}


def test_repository_aws_keys_and_env_override_inherited_ones() -> None:
    repo = primary(
        "s3:host/bucket",
        aws_access_key_id="repo-id",
        aws_secret_access_key="repo-secret",
        env={"AWS_DEFAULT_REGION": "eu-west-1"},
    )
    env, _ = child_environment(repo, INHERITED, extra_env={"AWS_DEFAULT_REGION": "us-east-1"})
    assert env["AWS_ACCESS_KEY_ID"] == "repo-id"
    assert env["AWS_SECRET_ACCESS_KEY"] == "repo-secret"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"  # extra_env is applied last


def test_copy_source_without_password_falls_back_on_the_inherited_one() -> None:
    env, _ = child_environment(
        primary("/dest", password="dest-pw"),
        {"RESTIC_PASSWORD_FILE": "/pw"},
        extra_env={"RESTIC_FROM_REPOSITORY": "/src"},
    )
    assert env["RESTIC_FROM_PASSWORD_FILE"] == "/pw"
    assert env["RESTIC_PASSWORD"] == "dest-pw"


def test_printable_command_hides_url_passwords() -> None:
    repo = primary("rest:https://u:pw-12345@host/r")
    line = printable_command(
        ["init", "--copy-chunker-params"],
        repo,
        {"RESTIC_FROM_REPOSITORY": "rest:https://v:src-pw-1@host/s"},
    )
    assert line == (
        "RESTIC_FROM_REPOSITORY='rest:https://v:***@host/s' "
        "restic -r 'rest:https://u:***@host/r' init --copy-chunker-params"
    )


# -- the facade over a fake runner ------------------------------------------------------------


@attrs.define
class Call:
    args: tuple[str, ...]
    repository: Repository
    timeout: float | None
    capture_stdout: bool
    cancel: threading.Event | None
    extra_env: Mapping[str, str] | None


class FakeRunner:
    """Records calls; answers with canned stdout lines and an exit code."""

    def __init__(self, stdout: Sequence[str] = (), exit_code: int = 0) -> None:
        self.calls: list[Call] = []
        self.stdout = list(stdout)
        self.exit_code = exit_code

    def execute(
        self,
        args: Sequence[str],
        repository: Repository,
        *,
        timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
        capture_stdout: bool = False,
        cancel: threading.Event | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> ResticResult:
        self.calls.append(Call(tuple(args), repository, timeout, capture_stdout, cancel, extra_env))
        for line in self.stdout:
            if on_stdout is not None:
                on_stdout(line)
        text = "".join(f"{line}\n" for line in self.stdout) if capture_stdout else ""
        return ResticResult.from_exit(args, repository.name, self.exit_code, stdout=text)

    def version(self) -> tuple[int, int, int]:
        return (0, 14, 0)


def test_backup_arguments_and_summary() -> None:
    runner = FakeRunner(
        [
            '{"message_type":"status","percent_done":0.5,"files_done":3}',
            "some stray text",
            '{"message_type":"verbose_status","action":"new"}',
            '{"message_type":"summary","files_new":3,"files_changed":1,"files_unmodified":2,'
            '"dirs_new":1,"dirs_changed":0,"dirs_unmodified":4,"data_added":1402,'
            '"total_files_processed":6,"total_bytes_processed":21,"total_duration":0.2,'
            '"snapshot_id":"3f842c54"}',
        ]
    )
    statuses: list[Mapping[str, Any]] = []
    outcome = Restic(runner).backup(
        primary("/r"),
        ["/srv/a", "-odd"],
        tags=("t1", "t2"),
        excludes=("*.tmp",),
        exclude_file="/etc/ex",
        host="h1",
        on_status=statuses.append,
    )
    assert isinstance(outcome, BackupOutcome) and outcome.ok
    assert runner.calls[0].args == (
        "backup",
        "--json",
        "--tag",
        "t1",
        "--tag",
        "t2",
        "--exclude",
        "*.tmp",
        "--exclude-file",
        "/etc/ex",
        "--host",
        "h1",
        "--",
        "/srv/a",
        "-odd",
    )
    assert [s["files_done"] for s in statuses] == [3]
    summary = outcome.summary
    assert summary is not None
    assert (summary.snapshot_id, summary.files_new, summary.files_changed) == ("3f842c54", 3, 1)
    assert (summary.files_unmodified, summary.dirs_unmodified, summary.data_added) == (2, 4, 1402)
    assert (summary.total_files_processed, summary.total_bytes_processed) == (6, 21)
    assert summary.total_duration == pytest.approx(0.2)


def test_backup_without_optional_flags_and_odd_summary_values() -> None:
    runner = FakeRunner(['{"message_type":"summary","files_new":"x","data_added":null}'])
    outcome = Restic(runner).backup(primary("/r"), ["/srv"])
    assert runner.calls[0].args == ("backup", "--json", "--", "/srv")
    assert outcome.summary is not None
    assert outcome.summary.files_new == 0 and outcome.summary.snapshot_id is None


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"host": "h"}, ("forget", "--keep-daily", "7", "--host", "h")),
        ({"host": None, "prune": True}, ("forget", "--keep-daily", "7", "--prune")),
        (
            {"host": "h", "dry_run": True},
            ("forget", "--keep-daily", "7", "--host", "h", "--dry-run"),
        ),
    ],
)
def test_forget_arguments(kwargs: dict[str, Any], expected: tuple[str, ...]) -> None:
    runner = FakeRunner()
    Restic(runner).forget(primary("/r"), ["--keep-daily", "7"], **kwargs)
    # --json last: the removed and kept snapshots are the step's summary.
    assert runner.calls[0].args == (*expected, "--json")
    assert runner.calls[0].capture_stdout


def test_check_prune_unlock_arguments() -> None:
    runner = FakeRunner()
    restic = Restic(runner)
    repo = primary("/r")
    restic.check(repo)
    restic.check(repo, subset="1/10")
    restic.check(repo, read_data=True, subset="1/10")
    restic.prune(repo)
    restic.unlock(repo)
    assert [c.args for c in runner.calls] == [
        ("check",),
        ("check", "--read-data-subset", "1/10"),
        ("check", "--read-data"),
        ("prune",),
        ("unlock",),
    ]


def test_timeouts_per_command_and_cancel_are_passed() -> None:
    runner = FakeRunner(["[]"])
    stop = threading.Event()
    restic = Restic(runner, cancel=stop, timeouts={"backup": 7200, "cat": 10})
    repo = primary("/r")
    restic.backup(repo, ["/srv"])
    restic.cat_config(repo)
    restic.snapshots(repo)
    restic.prune(repo)
    assert [c.timeout for c in runner.calls] == [7200, 10, 300, None]
    assert all(c.cancel is stop for c in runner.calls)
    assert runner.calls[1].args == ("--no-lock", "cat", "config")
    assert runner.calls[1].capture_stdout


def test_init_and_copy_pass_the_source_through_the_environment() -> None:
    runner = FakeRunner()
    restic = Restic(runner, password_provider=lambda r: "vault-pw")
    dest = primary("/dest")
    source = Repository(name="src", url="rest:https://u:url-pw@h/s", password_file="~/src-pw")
    restic.init(dest)
    restic.init(dest, copy_chunker_params_from=source)
    restic.copy(dest, source, host="h1")
    restic.copy(dest, Repository(name="vaulted", url="/v"), snapshot_ids=["abc"])
    init, init_from, copy, copy_vaulted = runner.calls
    assert init.args == ("init",) and init.extra_env is None
    assert init_from.args == ("init", "--copy-chunker-params")
    assert copy.args == ("copy", "--host", "h1")
    for call in (init_from, copy):
        assert call.extra_env == {
            "RESTIC_FROM_REPOSITORY": source.url,
            "RESTIC_FROM_PASSWORD_FILE": os.path.expanduser("~/src-pw"),
        }
        assert not any("url-pw" in a for a in call.args)  # URL secrets never in argv
    assert copy_vaulted.args == ("copy", "abc")
    assert copy_vaulted.extra_env == {
        "RESTIC_FROM_REPOSITORY": "/v",
        "RESTIC_FROM_PASSWORD": "vault-pw",
    }


def test_the_facade_uses_the_runners_password_provider_by_default(environ: dict[str, str]) -> None:
    runner = SubprocessResticRunner(environ=environ, password_provider=lambda r: "from-plugin")
    env = Restic(runner).source_env(Repository(name="src", url="/s"))
    assert env["RESTIC_FROM_PASSWORD"] == "from-plugin"


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [(["[]"], []), (["null"], []), ([], []), (['[{"short_id":"a"}]'], [{"short_id": "a"}])],
)
def test_snapshots_parsing(stdout: list[str], expected: list[dict[str, str]]) -> None:
    runner = FakeRunner(stdout)
    assert Restic(runner).snapshots(primary("/r"), host="h", tags=("a", "b"), latest=1) == expected
    assert runner.calls[0].args == (
        "snapshots",
        "--json",
        "--host",
        "h",
        "--tag",
        "a",
        "--tag",
        "b",
        "--latest",
        "1",
    )


@pytest.mark.parametrize("stdout", [["{oops"], ['{"a": 1}'], ["[1, 2]"]])
def test_snapshots_refuses_what_is_not_a_snapshot_list(stdout: list[str]) -> None:
    with pytest.raises(ResticCommandError, match="snapshots"):
        Restic(FakeRunner(stdout)).snapshots(primary("/r"))


def test_snapshots_failure_raises_with_the_result() -> None:
    with pytest.raises(ResticCommandError) as caught:
        Restic(FakeRunner(exit_code=12)).snapshots(primary("/r"))
    assert caught.value.result.error_kind is ResticErrorKind.WRONG_PASSWORD


def test_list_locks_parses_ids() -> None:
    lock = "ea1fc3846c9f9ecc6d28d8a005e7bced2689bc5434076c21f3c593b09dec5bae"
    runner = FakeRunner([lock, "", "noise"])
    assert Restic(runner).list_locks(primary("/r")) == [lock]
    assert runner.calls[0].args == ("--no-lock", "list", "locks")


def test_describe() -> None:
    repo = primary("rest:https://u:secret-1@h/r")
    assert Restic(FakeRunner()).describe(["prune"], repo) == (
        "restic -r 'rest:https://u:***@h/r' prune"  # quoted: '*' is special to a shell
    )


# -- progress ---------------------------------------------------------------------------------


def test_format_bytes_and_duration() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(5 * 1024**5 * 1024) == "5120.0 PiB"
    assert format_duration(0) == "0:00"
    assert format_duration(59.9) == "0:59"
    assert format_duration(3600) == "1:00:00"


# -- the real restic --------------------------------------------------------------------------


@pytest.fixture
def runner(environ: dict[str, str]) -> SubprocessResticRunner:
    return SubprocessResticRunner(environ=environ, kill_grace=5)


@pytest.fixture
def big_source(tmp_path: Path) -> Path:
    """A tree restic needs minutes to read: one huge sparse file (no disk used)."""
    src = tmp_path / "big"
    src.mkdir()
    with open(src / "sparse", "wb") as handle:
        handle.truncate(64 * 1024**3)
    return src


def file_count(tree: Path) -> int:
    return sum(1 for p in tree.rglob("*") if p.is_file())


@requires_restic
@pytest.mark.restic
def test_init_creates_a_repository_once(tmp_path: Path, runner: SubprocessResticRunner) -> None:
    restic = Restic(runner)
    repo = primary(tmp_path / "new", password=PASSWORD)
    missing = restic.cat_config(repo)
    assert missing.error_kind is ResticErrorKind.REPOSITORY_MISSING
    assert "repository does not exist" in missing.message
    assert restic.init(repo).ok
    config = restic.cat_config(repo)
    assert config.ok and '"chunker_polynomial"' in config.stdout
    again = restic.init(repo)
    assert again.error_kind is ResticErrorKind.FAILED
    assert "already exists" in again.message


@requires_restic
@pytest.mark.restic
def test_backup_summary_then_incremental(
    repo: Path, source: Path, runner: SubprocessResticRunner
) -> None:
    restic = Restic(runner)
    repository = primary(repo, password=PASSWORD)
    statuses: list[Mapping[str, Any]] = []
    first = restic.backup(
        repository, [str(source)], tags=["t1"], host="testhost", on_status=statuses.append
    )
    assert first.ok, first.result.message
    assert first.summary is not None and first.summary.snapshot_id
    assert first.summary.files_new == file_count(source) == 2
    assert first.summary.data_added > 0

    second = restic.backup(repository, [str(source)], tags=["t1"], host="testhost")
    assert second.ok and second.summary is not None
    assert second.summary.files_unmodified == 2 and second.summary.files_new == 0

    snapshots = restic.snapshots(repository, host="testhost", tags=["t1"])
    assert len(snapshots) == 2
    assert snapshots[0]["id"].startswith(first.summary.snapshot_id)
    latest = restic.snapshots(repository, host="testhost", latest=1)
    assert second.summary.snapshot_id is not None
    assert [s["short_id"] for s in latest] == [second.summary.snapshot_id[:8]]
    assert restic.snapshots(repository, host="otherhost") == []

    assert restic.forget(repository, ["--keep-last", "1"], host="testhost").ok
    assert len(restic.snapshots(repository)) == 1
    no_policy = restic.forget(repository, [], host="testhost")
    if restic_version() < (0, 17, 0):
        assert no_policy.ok  # no policy: restic 0.14 keeps all
    else:  # restic >= 0.17 refuses (resticm never runs forget without a policy)
        assert not no_policy.ok and "no policy was specified" in no_policy.message
    assert restic.prune(repository).ok
    assert restic.check(repository, read_data=True).ok
    assert restic.list_locks(repository) == []


@pytest.fixture
def unreadable_binary(tmp_path: Path) -> str:
    """restic, unable to read a chmod 000 file even when the tests run as root."""
    restic_path = shutil.which("restic")
    assert restic_path is not None
    if os.geteuid() != 0:
        return restic_path
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    # Without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH root obeys file modes.
    wrapper = write_script(
        tmp_path / "restic-without-dac",
        f'exec {setpriv} --bounding-set -dac_override,-dac_read_search {restic_path} "$@"\n',
    )
    return str(wrapper)


@requires_restic
@pytest.mark.restic
def test_unreadable_file_is_a_partial_backup_with_a_snapshot(
    repo: Path, source: Path, environ: dict[str, str], unreadable_binary: str
) -> None:
    locked = source / "sub" / "locked.db"
    locked.write_text("secret data")
    locked.chmod(0)
    runner = SubprocessResticRunner(unreadable_binary, environ=environ)
    outcome = Restic(runner).backup(primary(repo, password=PASSWORD), [str(source)])
    assert outcome.result.exit_code == 3
    assert outcome.partial
    assert outcome.result.error_kind is ResticErrorKind.PARTIAL
    assert outcome.summary is not None and outcome.summary.snapshot_id
    assert outcome.summary.files_new == 2
    message = outcome.result.message
    assert message.startswith("restic backup finished with warnings on primary: could not read")
    assert str(locked) in message and "permission denied" in message


@requires_restic
@pytest.mark.restic
def test_wrong_password(repo: Path, runner: SubprocessResticRunner) -> None:
    res = Restic(runner).cat_config(primary(repo, password=WRONG))
    assert res.error_kind is ResticErrorKind.WRONG_PASSWORD
    assert (
        res.message == "restic cat failed on primary: wrong password or no key found (exit 1)"
        or res.message.endswith("wrong password or no key found (exit 12)")
    )


@requires_restic
@pytest.mark.restic
def test_unreachable_server_is_not_a_missing_repository(runner: SubprocessResticRunner) -> None:
    # restic 0.14 fails at once; restic >= 0.18 retries for minutes: the timeout stops it,
    # and the message still names the backend's error.
    res = Restic(runner, timeouts={"cat": 10}).cat_config(
        primary("rest:http://user:pw-1234@127.0.0.1:1/repo", password=PASSWORD)
    )
    assert res.error_kind in (ResticErrorKind.FAILED, ResticErrorKind.TIMEOUT)
    assert "connection refused" in res.message
    assert "pw-1234" not in res.message and "user:***@" in res.message


@requires_restic
@pytest.mark.restic
def test_stale_lock_of_this_host_is_removed_before_prune(
    repo: Path, tmp_path: Path, runner: SubprocessResticRunner, caplog: pytest.LogCaptureFixture
) -> None:
    holder = hold_restic_lock(repo, restic_env(tmp_path / "cache", repo))
    holder.kill()  # SIGKILL: restic cannot remove its lock
    holder.wait()
    restic = Restic(runner)
    repository = primary(repo, password=PASSWORD)
    [lock_id] = restic.list_locks(repository)
    lock = restic.cat_lock(repository, lock_id)
    assert lock["pid"] == holder.pid and lock["exclusive"] is False
    assert restic.list_locks(repository) == [lock_id]  # listing and cat took no lock
    with caplog.at_level(logging.INFO):
        res = restic.prune(repository)
    # The lock's process is gone and it is this host's: restic unlock, then prune again.
    assert res.ok, res.message
    assert f"locked by PID {holder.pid} of this host" in caplog.text
    assert "removing the stale lock with restic unlock" in caplog.text
    assert restic.list_locks(repository) == []


@requires_restic
@pytest.mark.restic
def test_binary_missing_with_the_real_facade(repo: Path, environ: dict[str, str]) -> None:
    restic = Restic(SubprocessResticRunner("/nonexistent/restic", environ=environ))
    assert restic.cat_config(primary(repo, password=PASSWORD)).error_kind is (
        ResticErrorKind.NOT_INSTALLED
    )
    with pytest.raises(ResticNotFoundError):
        restic.version()


# -- passwords and the inherited environment, with the real restic --------------------------


@requires_restic
@pytest.mark.restic
@pytest.mark.parametrize(
    ("repo_fields", "inherited"),
    [
        # The Go tool's bug: an inherited RESTIC_PASSWORD_FILE beat the configured password.
        ({"password": PASSWORD}, {"RESTIC_PASSWORD_FILE": "wrong-file"}),
        ({"password": PASSWORD}, {"RESTIC_PASSWORD": WRONG}),
        ({"password": PASSWORD}, {"RESTIC_PASSWORD_COMMAND": f"echo {WRONG}"}),
        # RESTIC_REPOSITORY_FILE beside RESTIC_REPOSITORY made restic 0.14 abort.
        ({"password": PASSWORD}, {"RESTIC_REPOSITORY_FILE": "repo-file"}),
        ({"password_file": "right-file"}, {"RESTIC_PASSWORD": WRONG}),
        ({"password_command": f"echo {PASSWORD}"}, {"RESTIC_PASSWORD_FILE": "wrong-file"}),
        ({}, {"RESTIC_PASSWORD": PASSWORD}),
        ({}, {"RESTIC_PASSWORD_FILE": "right-file"}),
    ],
)
def test_configured_password_wins_inherited_one_is_the_fallback(
    repo: Path,
    tmp_path: Path,
    environ: dict[str, str],
    repo_fields: dict[str, str],
    inherited: dict[str, str],
) -> None:
    files = {"wrong-file": WRONG, "right-file": PASSWORD, "repo-file": str(tmp_path / "nowhere")}
    for name, content in files.items():
        (tmp_path / name).write_text(content + "\n")

    def resolve(value: str) -> str:
        return str(tmp_path / value) if value in files else value

    fields = {k: resolve(v) for k, v in repo_fields.items()}
    env = {**environ, **{k: resolve(v) for k, v in inherited.items()}}
    res = Restic(SubprocessResticRunner(environ=env)).cat_config(primary(repo, **fields))
    assert res.ok, res.message


@requires_restic
@pytest.mark.restic
def test_password_plugin_is_used_when_the_config_names_none(
    repo: Path, environ: dict[str, str]
) -> None:
    asked: list[str] = []

    def vault(repository: Repository) -> str | None:
        asked.append(repository.name)
        return PASSWORD

    env = {**environ, "RESTIC_PASSWORD": WRONG}
    runner = SubprocessResticRunner(environ=env, password_provider=vault)
    assert Restic(runner).cat_config(primary(repo)).ok
    assert asked == ["primary"]
    assert Restic(runner).cat_config(primary(repo, password=PASSWORD)).ok
    assert asked == ["primary"]  # not asked when the config names a password


@requires_restic
@pytest.mark.restic
def test_no_password_anywhere_fails_clearly(repo: Path, runner: SubprocessResticRunner) -> None:
    res = Restic(runner).cat_config(primary(repo))
    assert not res.ok
    assert "empty password" in res.message  # restic read stdin, which is /dev/null


def restic_children() -> Iterator[int]:
    """PIDs of this process's children whose command is restic."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and b"restic" in cmdline:
            yield int(entry.name)


@requires_restic
@pytest.mark.restic
def test_password_is_never_in_argv_and_cancel_stops_restic(
    repo: Path, big_source: Path, environ: dict[str, str]
) -> None:
    commands: list[str] = []
    runner = SubprocessResticRunner(environ=environ, on_command=commands.append, kill_grace=5)
    stop = threading.Event()
    seen: dict[int, bytes] = {}

    def on_status(status: Mapping[str, Any]) -> None:
        if stop.is_set():
            return
        for pid in restic_children():
            seen[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
            seen[-pid] = Path(f"/proc/{pid}/environ").read_bytes()
        stop.set()

    restic = Restic(runner, cancel=stop)
    repository = primary(repo, password=PASSWORD)
    outcome = restic.backup(repository, [str(big_source)], on_status=on_status)
    cmdlines = [v for k, v in seen.items() if k > 0]
    assert cmdlines, "no restic child found while the backup ran"
    for cmdline in cmdlines:
        assert b"backup" in cmdline
        assert PASSWORD.encode() not in cmdline
    # The password is in the child's environment, where only root and its owner can read it.
    assert any(PASSWORD.encode() in v for k, v in seen.items() if k < 0)
    assert all(PASSWORD not in c for c in commands)
    assert commands == [f"restic -r {repo} backup --json -- {big_source}"]

    res = outcome.result
    assert res.cancelled and res.error_kind is ResticErrorKind.INTERRUPTED
    assert res.message == "restic backup on primary was stopped because resticm was interrupted"
    assert outcome.summary is None
    # restic 0.14 leaves its lock when stopped by TERM: the runner removed it.
    stop.clear()
    assert restic.list_locks(repository) == []


@requires_restic
@pytest.mark.restic
def test_timeout_stops_restic_and_removes_its_lock(
    repo: Path, big_source: Path, runner: SubprocessResticRunner
) -> None:
    restic = Restic(runner, timeouts={"backup": 1.0})
    repository = primary(repo, password=PASSWORD)
    started = time.monotonic()
    outcome = restic.backup(repository, [str(big_source)])
    res = outcome.result
    assert res.timed_out and res.error_kind is ResticErrorKind.TIMEOUT
    # Stopped with SIGINT first, restic cleans up its lock and exits itself: 130 (0.14);
    # restic 0.18 also exits 1 ("context canceled") when stopped in the middle of its work.
    stopped = {130} if restic_version() < (0, 18, 0) else {130, 1}
    assert res.exit_code in stopped or (res.exit_code is not None and res.exit_code < 0)
    assert res.message == "restic backup on primary timed out after 1s and was stopped"
    assert time.monotonic() - started < 60  # generous: catches a hang only
    assert restic.list_locks(repository) == []
    assert restic.prune(repository).ok  # nothing left blocks an exclusive lock


@requires_restic
@pytest.mark.restic
def test_copy_to_a_target_initialised_with_the_sources_chunker(
    repo: Path, tmp_path: Path, source: Path, runner: SubprocessResticRunner
) -> None:
    restic = Restic(runner)
    src = primary(repo, password=PASSWORD)
    dest = Repository(name="offsite", url=str(tmp_path / "offsite"), password="other-password")
    assert restic.backup(src, [str(source)], host="h").ok
    init = restic.init(dest, copy_chunker_params_from=src)
    assert init.ok, init.message
    copy = restic.copy(dest, src, host="h")
    assert copy.ok, copy.message
    assert len(restic.snapshots(dest, host="h")) == 1
    # A wrong source password is reported as such.
    wrong_source = attrs.evolve(src, password=WRONG)
    failed = restic.copy(dest, wrong_source)
    assert failed.error_kind is ResticErrorKind.WRONG_PASSWORD
