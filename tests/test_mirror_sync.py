"""Mirror sync and the repository lifecycle commands, with real restic and moto's S3.

A primary plus copy backends (local directories and an S3 bucket on
``moto_server`` at 127.0.0.1); every test drives the real ``resticm`` process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    PASSWORD,
    hold_restic_lock,
    json_config,
    requires_restic,
    restic_env,
    run_config,
)

pytestmark = [requires_restic, pytest.mark.restic]

KEEP_LAST_ONE = {
    "keep_last": 1,
    "keep_within": "",
    "keep_hourly": 0,
    "keep_daily": 0,
    "keep_weekly": 0,
    "keep_monthly": 0,
    "keep_yearly": 0,
}
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """An S3 endpoint (moto_server) on 127.0.0.1; yields its base URL."""
    if shutil.which("moto_server") is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen(
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60  # generous: a hang guard only
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


def write_config(tmp_path: Path, source: Path, **extra: Any) -> Path:
    return json_config(tmp_path, source, host="mirror-host", **extra)


def local_backend(tmp_path: Path, name: str, password: str = "backend-password") -> dict[str, Any]:
    return {"repository": str(tmp_path / name), "password": password}


def ready_backend(tmp_path: Path, template: Path, name: str) -> dict[str, Any]:
    """An initialised backend: a copy of the session's template (init costs a key derivation)."""
    shutil.copytree(template, tmp_path / name)
    return local_backend(tmp_path, name, password=PASSWORD)


def resticm(cfg: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_config(cfg, *args, env=env)


def snapshots(url: str, password: str, cache: Path, **extra_env: str) -> list[dict[str, Any]]:
    env = restic_env(cache, password=password)
    env.update(RESTIC_REPOSITORY=url, **extra_env)
    out = subprocess.run(
        ["restic", "--no-lock", "snapshots", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found: list[dict[str, Any]] = json.loads(out.stdout or "[]") or []
    return found


def originals(snaps: list[dict[str, Any]]) -> set[str]:
    """The primary's snapshot ids a repository holds (a copy keeps its source's as ``original``)."""
    return {s.get("original") or s["id"] for s in snaps}


def tree_bytes(*roots: Path) -> dict[str, str]:
    """Every file under *roots* by path, as a content hash (to prove nothing changed)."""
    seen = {}
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file():
                seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


def steps(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(s["name"], s["repository"], s["outcome"]) for s in report["steps"]]


# -- mirror sync ---------------------------------------------------------------------------------


def test_default_workflow_mirrors_snapshots_and_retention_to_local_and_s3(
    tmp_path: Path, source: Path, environ: dict[str, str], moto: str
) -> None:
    s3_url = f"s3:{moto}/mirror-{uuid.uuid4().hex[:12]}"
    cfg = write_config(
        tmp_path,
        source,
        retention=KEEP_LAST_ONE,
        backends={
            "local": local_backend(tmp_path, "local"),
            "s3": {"repository": s3_url, "password": "s3-password", "env": S3_ENV},
        },
        copy_to_backends=["local", "s3"],
    )
    init = resticm(cfg, "init", "--all", env=environ)
    assert init.returncode == 0, init.stderr
    assert "local" in init.stdout and "with the primary's chunker parameters" in init.stdout

    first = resticm(cfg, "--json", env=environ)
    assert first.returncode == 0, first.stderr
    (source / "a.txt").write_text("alpha, changed\n")
    second = resticm(cfg, "--json", env=environ)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)  # stdout is one clean JSON document
    assert [s for s in steps(report) if s[0] in ("copy", "forget")] == [
        ("forget", "primary", "ok"),
        ("copy", "local", "ok"),
        ("forget", "local", "ok"),
        ("copy", "s3", "ok"),
        ("forget", "s3", "ok"),
    ]
    cache = tmp_path / "cache"
    primary = snapshots(str(tmp_path / "repo"), PASSWORD, cache)
    local = snapshots(str(tmp_path / "local"), "backend-password", cache)
    s3 = snapshots(s3_url, "s3-password", cache, **S3_ENV)
    # Same retention result everywhere: keep_last 1 left the newest snapshot only.
    assert len(primary) == 1 and primary[0]["id"].startswith(report["snapshot_id"])
    assert originals(local) == originals(s3) == {primary[0]["id"]}

    # The same view through resticm: one JSON document for every repository.
    listed = resticm(cfg, "snapshots", "--all-backends", "--json", env=environ)
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    assert set(document) == {"primary", "local", "s3"}
    assert {s["original"] for s in document["s3"]} == {primary[0]["id"]}


def test_one_unreachable_backend_the_others_complete(
    tmp_path: Path, repo: Path, template_repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = write_config(
        tmp_path,
        source,
        backends={
            "gone": local_backend(tmp_path, "never-initialised"),
            "good": ready_backend(tmp_path, template_repo, "good"),
        },
        copy_to_backends=["gone", "good"],
    )
    result = resticm(cfg, "--check", "--json", env=environ)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    outcomes = {(n, r): o for n, r, o in steps(report)}
    assert outcomes[("copy", "gone")] == "failed"
    # A backend whose copy failed skips its own maintenance; the other one completes.
    assert outcomes[("forget", "gone")] == outcomes[("check", "gone")] == "skipped"
    assert outcomes[("copy", "good")] == outcomes[("forget", "good")] == "ok"
    assert outcomes[("check", "good")] == "ok"
    assert len(report["errors"]) == 1 and "gone" in report["errors"][0]
    assert "restic copy failed on gone" in report["errors"][0]
    good = snapshots(str(tmp_path / "good"), PASSWORD, tmp_path / "cache")
    primary = snapshots(str(repo), PASSWORD, tmp_path / "cache")
    assert originals(good) == {s["id"] for s in primary} and len(good) == 1


def test_no_copy_no_forget_and_primary_only_change_exactly_what_they_say(
    tmp_path: Path, repo: Path, template_repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = write_config(
        tmp_path,
        source,
        retention=KEEP_LAST_ONE,
        backends={"b": ready_backend(tmp_path, template_repo, "b")},
        copy_to_backends=["b"],
    )
    cache = tmp_path / "cache"

    no_copy = resticm(cfg, "--no-copy", "--json", env=environ)
    assert no_copy.returncode == 0, no_copy.stderr
    assert {r for _, r, _ in steps(json.loads(no_copy.stdout))} == {"primary"}
    assert snapshots(str(tmp_path / "b"), PASSWORD, cache) == []

    # --no-forget: no forget anywhere, backends included (the Go tool forgot there anyway).
    (source / "a.txt").write_text("second\n")
    no_forget = resticm(cfg, "--no-forget", "--json", env=environ)
    assert no_forget.returncode == 0, no_forget.stderr
    names = [n for n, _, _ in steps(json.loads(no_forget.stdout))]
    assert "forget" not in names and names.count("copy") == 1
    assert len(snapshots(str(tmp_path / "repo"), PASSWORD, cache)) == 2
    assert len(snapshots(str(tmp_path / "b"), PASSWORD, cache)) == 2

    # forget --primary-only: the backend keeps both snapshots.
    before = tree_bytes(tmp_path / "b")
    forget = resticm(cfg, "forget", "--primary-only", "--json", env=environ)
    assert forget.returncode == 0, forget.stderr
    assert steps(json.loads(forget.stdout)) == [("forget", "primary", "ok")]
    assert len(snapshots(str(tmp_path / "repo"), PASSWORD, cache)) == 1
    assert tree_bytes(tmp_path / "b") == before

    # Without --primary-only the backend follows.
    assert resticm(cfg, "forget", env=environ).returncode == 0
    assert len(snapshots(str(tmp_path / "b"), PASSWORD, cache)) == 1


# -- init ----------------------------------------------------------------------------------------


def test_init_refuses_an_existing_repository_and_names_a_wrong_password(
    tmp_path: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, source, backends={"b": local_backend(tmp_path, "b")})
    assert resticm(cfg, "init", "--backend", "b", env=environ).returncode == 0
    config_before = tree_bytes(tmp_path / "b")
    again = resticm(cfg, "init", "--backend", "b", env=environ)
    assert "already initialized: refusing" in again.stdout
    assert tree_bytes(tmp_path / "b") == config_before

    wrong = write_config(
        tmp_path, source, backends={"b": local_backend(tmp_path, "b", password="not-the-one")}
    )
    result = resticm(wrong, "init", "--backend", "b", env=environ)
    assert result.returncode == 1
    assert "wrong password" in result.stderr and "Traceback" not in result.stderr
    unknown = resticm(wrong, "init", "--backend", "nope", env=environ)
    assert unknown.returncode == 2 and "backend 'nope' not found" in unknown.stderr


# -- verify_no_locks -----------------------------------------------------------------------------


def test_verify_no_locks_reports_the_stale_lock_of_a_killed_restic(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, source, verify_no_locks=True)
    holder = hold_restic_lock(repo, restic_env(tmp_path / "cache", repo))
    holder.send_signal(signal.SIGKILL)  # restic cannot remove its lock
    holder.wait()

    result = resticm(cfg, "--no-forget", "--json", env=environ)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert ("backup", "primary", "ok") in steps(report)
    [locks] = [s for s in report["steps"] if s["name"] == "locks"]
    assert locks["outcome"] == "failed"
    assert "stale lock from this host on primary" in locks["error"]
    assert f"PID {holder.pid}" in locks["error"]
    assert any("stale lock" in e for e in report["errors"])

    # unlock --restic removes the stale lock; the next run is clean.
    unlock = resticm(cfg, "unlock", "--restic", env=environ)
    assert unlock.returncode == 0, unlock.stderr
    clean = resticm(cfg, "--no-forget", "--json", env=environ)
    assert clean.returncode == 0, clean.stderr


# -- the restore drill ---------------------------------------------------------------------------


def test_verify_restores_a_sample_and_finds_a_tampered_file(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, source)
    assert resticm(cfg, "backup", env=environ).returncode == 0
    ok = resticm(cfg, "verify", "--json", env=environ)
    assert ok.returncode == 0, ok.stderr
    drill = json.loads(ok.stdout)
    assert drill["mismatches"] == [] and len(drill["matches"]) == 2

    # Same size, same mtime, other bytes: only a restore comparison can tell.
    target = source / "a.txt"
    st = target.stat()
    target.write_text("ALPHA\n")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    bad = resticm(cfg, "verify", "--sample", "5", env=environ)
    assert bad.returncode == 1
    assert f"MISMATCH {target}" in bad.stdout
    assert "1 match(es), 1 mismatch(es)" in bad.stdout
    leftovers = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("resticm-drill-*")]
    assert not any(str(source) in str(p) for p in leftovers)


# -- dry run -------------------------------------------------------------------------------------


def test_dry_run_touches_no_repository(
    tmp_path: Path, repo: Path, template_repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = write_config(
        tmp_path,
        source,
        backends={
            "b": ready_backend(tmp_path, template_repo, "b"),
            "fresh": local_backend(tmp_path, "fresh"),
        },
        copy_to_backends=["b"],
    )
    assert resticm(cfg, "--no-copy", env=environ).returncode == 0
    roots = (tmp_path / "repo", tmp_path / "b", tmp_path / "fresh")
    before = tree_bytes(*roots)
    runs = [
        ("--prune", "--check", "--deep"),
        ("full",),
        ("copy",),
        ("forget", "--prune"),
        ("prune",),
        ("check", "--deep"),
        ("init", "--all"),
        ("unlock", "--restic", "--all-backends"),
    ]
    for args in runs:
        result = resticm(cfg, "--dry-run", *args, env=environ)
        assert result.returncode == 0, (args, result.stderr)
        assert "would run" in result.stdout + result.stderr, args
    assert tree_bytes(*roots) == before
    assert not (tmp_path / "fresh").exists()
