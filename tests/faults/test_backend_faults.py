"""Fault injection on the copy backends (issue 5, cases 5 and 9).

A default run (backup, forget, copies to two backends) where one backend breaks:
the S3 server dies in the middle of the copy, or the backend's password is wrong.
The primary and the other backend must complete, the broken one be named.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resticm_core.locking import ProcessLock, lock_key

from ..conftest import PASSWORD, CallLog, exit_suffix, requires_restic, restic_env
from ..http_recorder import Recorder
from .conftest import (
    children,
    notified_once,
    recording_hooks,
    restic_check,
    start_resticm,
    wait_for,
    write_config,
)

pytestmark = [requires_restic, pytest.mark.restic]

S3_KEY_ID = "fault-key-id"
S3_SECRET = "fault-s3-secret-value"
S3_PASSWORD = "s3 backend password"
WRONG_PASSWORD = "not the backend's password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def moto() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A moto_server of this test alone (the test kills it); yields its URL and process."""
    if shutil.which("moto_server") is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen(
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            assert proc.poll() is None, "moto_server exited"
            return False
        return True

    wait_for(listening, "moto_server start")
    yield f"http://127.0.0.1:{port}", proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def backend_block(backends: dict[str, dict[str, object]]) -> str:
    text = "backends:\n"
    for name, keys in backends.items():
        text += f"  {name}:\n" + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in keys.items())
    return text + "copy_to_backends:\n" + "".join(f"  - {n}\n" for n in backends)


def ready_local(tmp_path: Path, template_repo: Path, name: str) -> Path:
    """An initialised local backend (a copy of the session's template, password PASSWORD)."""
    target = tmp_path / name
    shutil.copytree(template_repo, target)
    return target


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(
        item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
    )


def copy_child_for(proc: subprocess.Popen[str], url_prefix: str) -> int:
    def find() -> int | None:
        for pid, cmd in children(proc.pid):
            if " copy" in cmd and environ_of(pid).get("RESTIC_REPOSITORY", "").startswith(
                url_prefix
            ):
                return pid
        return None

    pid: int = wait_for(find, f"restic copy to {url_prefix}", timeout=120)
    return pid


def s3_objects(endpoint: str, bucket: str, prefix: str) -> int:
    import boto3  # moto's own dependency

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    count: int = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0)
    return count


def assert_lock_free(cfg: Path, repo: Path) -> None:
    with ProcessLock(lock_key(cfg, str(repo))):
        pass


def steps(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(s["name"], s["repository"], s["outcome"]) for s in report["steps"]]


def test_s3_backend_killed_in_the_middle_of_a_copy(
    tmp_path: Path,
    repo: Path,
    template_repo: Path,
    environ: dict[str, str],
    calls: CallLog,
    recorder: Recorder,
    moto: tuple[str, subprocess.Popen[bytes]],
) -> None:
    endpoint, moto_proc = moto
    bucket = f"fault-{uuid.uuid4().hex[:12]}"
    s3_url = f"s3:{endpoint}/{bucket}"
    s3_env = {"AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    init = subprocess.run(
        ["restic", "init", "-q"],
        env={**restic_env(tmp_path / "c-init", password=S3_PASSWORD), "RESTIC_REPOSITORY": s3_url}
        | s3_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    # Incompressible data of a few restic packs: the copy uploads several objects.
    src = tmp_path / "src"
    src.mkdir()
    (src / "random.bin").write_bytes(os.urandom(48 * 1024 * 1024))
    local = ready_local(tmp_path, template_repo, "local")
    cfg = write_config(
        tmp_path,
        repo,
        [src],
        hooks=recording_hooks(tmp_path, calls),
        notify=recorder,
        # restic retries a dead S3 for ~5 minutes; the copy timeout bounds that.
        extra=backend_block(
            {
                "local": {"repository": str(local), "password": PASSWORD},
                "s3": {
                    "repository": s3_url,
                    "password": S3_PASSWORD,
                    "aws_access_key_id": S3_KEY_ID,
                    "aws_secret_access_key": S3_SECRET,
                },
            }
        )
        + "timeouts:\n  copy: 15s\n",
    )
    proc = start_resticm("-c", str(cfg), "--json", env=environ)
    copier = copy_child_for(proc, "s3:")
    # Step the copy in small slices, looking at the bucket while restic is frozen:
    # moto dies once data packs arrived, and before the copy could have finished.
    while True:
        os.kill(copier, signal.SIGSTOP)
        if s3_objects(endpoint, bucket, "data/"):
            break
        os.kill(copier, signal.SIGCONT)
        time.sleep(0.05)
    assert s3_objects(endpoint, bucket, "snapshots/") == 0, "the copy was not finished"
    moto_proc.kill()
    moto_proc.wait(timeout=30)
    os.kill(copier, signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=300)

    assert proc.returncode == 1, stderr
    report = json.loads(stdout)
    [error] = report["errors"]
    # The time includes restic's grace to clean up after the stop signal.
    assert re.match(r"restic copy on s3 timed out after \d+s and was stopped", error), error
    assert "connection refused" in error, "the cause restic was retrying is named"
    assert ("backup", "primary", "ok") in steps(report)
    assert ("forget", "primary", "ok") in steps(report)
    assert ("copy", "local", "ok") in steps(report)
    assert ("forget", "local", "ok") in steps(report)
    assert ("copy", "s3", "failed") in steps(report)
    assert ("forget", "s3", "skipped") in steps(report)
    assert calls.tags() == ["pre_backup", "post_backup", "on_error", "finally"]
    assert "restic copy on s3 timed out" in calls.entry("on_error")["ERROR"]
    message = notified_once(recorder, "error")
    assert message["report"]["errors"] == report["errors"]
    assert "1 error" in message["body"]
    assert_lock_free(cfg, repo)
    for text in (
        stdout,
        stderr,
        (tmp_path / "log" / "resticm.log").read_text(),
        recorder.all_text(),
    ):
        for secret in (PASSWORD, S3_PASSWORD, S3_SECRET):
            assert secret not in text
    cache = Path(environ["RESTIC_CACHE_DIR"])
    for repository in (repo, local):
        check = restic_check(repository, cache)
        assert check.returncode == 0, check.stderr
    # moto keeps its buckets in memory: the S3 side died with it and cannot be checked.


def test_wrong_password_on_one_backend(
    tmp_path: Path,
    repo: Path,
    template_repo: Path,
    source: Path,
    environ: dict[str, str],
    calls: CallLog,
    recorder: Recorder,
) -> None:
    good = ready_local(tmp_path, template_repo, "good")
    locked_out = ready_local(tmp_path, template_repo, "locked-out")
    cfg = write_config(
        tmp_path,
        repo,
        [source],
        hooks=recording_hooks(tmp_path, calls),
        notify=recorder,
        extra=backend_block(
            {
                "good": {"repository": str(good), "password": PASSWORD},
                "offsite": {"repository": str(locked_out), "password": WRONG_PASSWORD},
            }
        ),
    )
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), "--json"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == [
        "restic copy failed on offsite: wrong password or no key found" + exit_suffix(12)
    ]
    assert [s for s in steps(report) if s[2] != "ok"] == [
        ("copy", "offsite", "failed"),
        ("forget", "offsite", "skipped"),
    ], "nothing else failed"
    assert ("copy", "good", "ok") in steps(report)
    assert calls.tags() == ["pre_backup", "post_backup", "on_error", "finally"]
    assert calls.entry("post_backup")["BACKUP_STATUS"] == "success"
    message = notified_once(recorder, "error")
    assert message["report"]["errors"] == report["errors"]
    assert "1 error" in message["body"]
    assert_lock_free(cfg, repo)
    log = (tmp_path / "log" / "resticm.log").read_text()
    for text in (result.stdout, result.stderr, log, recorder.all_text(), calls.path.read_text()):
        assert WRONG_PASSWORD not in text and PASSWORD not in text
    cache = Path(environ["RESTIC_CACHE_DIR"])
    for repository in (repo, good, locked_out):
        check = restic_check(repository, cache)
        assert check.returncode == 0, check.stderr
    # The backend's own password still opens it: nothing was written with the wrong one.
    snaps = subprocess.run(
        ["restic", "snapshots", "--json", "--no-lock"],
        env=restic_env(cache, locked_out),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(snaps.stdout or "[]") in ([], None)
