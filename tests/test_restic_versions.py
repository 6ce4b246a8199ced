"""Where restic 0.14 and restic >= 0.17 differ, resticm reads both the same way.

scripts/test.sh runs these (marker ``restic``) once per restic version in
RESTIC_VERSIONS; each test checks the behaviour of the restic on PATH.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from resticm_core.config import Repository
from resticm_core.restic import (
    Restic,
    ResticErrorKind,
    SubprocessResticRunner,
    classify,
    readable_stderr,
)

from .conftest import PASSWORD, requires_restic, restic_version

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret"}


@pytest.fixture
def moto() -> Iterator[str]:
    """An S3 endpoint (moto_server) on 127.0.0.1; yields its base URL."""
    if shutil.which("moto_server") is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60  # a hang guard only
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError("moto_server did not start") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def runner(tmp_path: Path, **extra: str) -> SubprocessResticRunner:
    return SubprocessResticRunner(
        environ={"PATH": os.environ["PATH"], "RESTIC_CACHE_DIR": str(tmp_path / "cache"), **extra}
    )


@requires_restic
def test_a_missing_s3_bucket_is_a_missing_repository_at_once(tmp_path: Path, moto: str) -> None:
    # restic 0.14 fails at once; restic >= 0.17 retries a missing bucket for minutes
    # (the 30 s timeout makes that a TIMEOUT): resticm stops it at the first retry.
    restic = Restic(runner(tmp_path, **S3_ENV), timeouts={"cat": 30})
    repository = Repository(
        name="s3", url=f"s3:{moto}/missing-{uuid.uuid4().hex[:8]}", password=PASSWORD
    )
    result = restic.cat_config(repository)
    assert result.error_kind is ResticErrorKind.REPOSITORY_MISSING, result.message
    assert "does not exist" in result.message and "resticm init" in result.message
    assert not result.timed_out and not result.cancelled


@requires_restic
def test_a_missing_s3_bucket_is_created_by_init(tmp_path: Path, moto: str) -> None:
    restic = Restic(runner(tmp_path, **S3_ENV), timeouts={"cat": 30})
    repository = Repository(
        name="s3", url=f"s3:{moto}/new-{uuid.uuid4().hex[:8]}", password=PASSWORD
    )
    assert restic.cat_config(repository).error_kind is ResticErrorKind.REPOSITORY_MISSING
    init = restic.init(repository)
    assert init.ok, init.message
    assert restic.cat_config(repository).ok


@requires_restic
def test_backup_json_fatal_error_is_named(tmp_path: Path, repo: Path) -> None:
    # restic >= 0.17 with --json prints its fatal error as {"message_type": "exit_error"}
    # (0.14: "Fatal: ..." text): either way the message names the cause.
    restic = Restic(runner(tmp_path))
    repository = Repository(name="primary", url=str(repo), password=PASSWORD)
    result = restic.backup(repository, [str(tmp_path / "nothing-here")]).result
    assert result.error_kind is ResticErrorKind.FAILED
    # 0.14: "all target directories/files do not exist", 0.18: "all source ..."
    assert "directories/files do not exist" in result.message, result.message
    assert result.message.endswith("(exit 1)")


@requires_restic
def test_backup_json_of_a_missing_repository(tmp_path: Path) -> None:
    restic = Restic(runner(tmp_path))
    repository = Repository(name="primary", url=str(tmp_path / "absent"), password=PASSWORD)
    result = restic.backup(repository, [str(tmp_path)]).result
    assert result.error_kind is ResticErrorKind.REPOSITORY_MISSING
    assert f"stat {tmp_path / 'absent' / 'config'}: no such file" in result.message
    assert "resticm init" in result.message


@requires_restic
@pytest.mark.parametrize(
    ("where", "password", "kind", "code"),
    [
        ("repo", "not-the-password", ResticErrorKind.WRONG_PASSWORD, 12),
        ("absent", PASSWORD, ResticErrorKind.REPOSITORY_MISSING, 10),
    ],
)
def test_exit_codes_of_restic_017_and_the_texts_of_014(
    tmp_path: Path, repo: Path, where: str, password: str, kind: ResticErrorKind, code: int
) -> None:
    # restic >= 0.17 exits 10 (no repository), 11 (locked), 12 (wrong password); 0.14 exits 1.
    restic = Restic(runner(tmp_path))
    repository = Repository(name="primary", url=str(tmp_path / where), password=password)
    result = restic.cat_config(repository)
    assert result.error_kind is kind, result.message
    assert result.exit_code == (code if restic_version() >= (0, 17, 0) else 1)


def test_exit_error_lines_are_read_as_restic_text() -> None:
    line = (
        '{"message_type":"exit_error","code":1,"message":"Fatal: unable to open config file:'
        " Stat: 503 Service Unavailable\\nIs there a repository at the following location?\\n"
        's3:http://127.0.0.1:1/b"}'
    )
    assert readable_stderr([line]) == [
        "Fatal: unable to open config file: Stat: 503 Service Unavailable",
        "Is there a repository at the following location?",
        "s3:http://127.0.0.1:1/b",
    ]
    locked = (
        '{"message_type":"exit_error","code":1,"message":"Fatal: repository is already locked"}'
    )
    assert classify(1, [locked]) is ResticErrorKind.LOCKED
    # A backed-up file named like a fatal error is not restic's own text.
    item = '{"message_type":"error","error":{"message":"repository is already locked"},"item":"/x"}'
    assert classify(1, [item]) is ResticErrorKind.FAILED
