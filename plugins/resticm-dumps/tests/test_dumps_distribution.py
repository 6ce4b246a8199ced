"""resticm-dumps really pip-installed (into a private --target directory), found
through its entry point by the real ``resticm`` CLI: backup, dumps list, restore."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from dumps_testlib import PG_PORT, PLUGIN_DIR, REPO_PASSWORD, USER, Postgres, dump_path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if pip.returncode != 0 or importlib.util.find_spec("hatchling") is None:
        pytest.skip("pip or hatchling missing: cannot build the plugin offline")
    base = tmp_path_factory.mktemp("dumps-plugin")
    source = shutil.copytree(
        PLUGIN_DIR, base / "src", ignore=shutil.ignore_patterns("__pycache__", "tests")
    )
    target = base / "site"
    argv = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--no-index",
            "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
            str(source)]  # fmt: skip
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore", "PIP_REQUIRE_VIRTUALENV": "0"}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return target


def resticm(
    site: Path, environ: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {**environ, "PYTHONPATH": str(site)}
    env.pop("RESTICM_DISABLE_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_config(workdir: Path, repo: Path, dumps: str) -> Path:
    config = workdir / "config.yaml"
    config.write_text(
        f"repository: {repo}\npassword: {REPO_PASSWORD}\n"
        f"logging:\n  file: {workdir / 'resticm.log'}\n"
        f"dumps:\n{dumps}"
    )
    config.chmod(0o600)
    return config


def test_cli_backup_list_restore_sqlite(
    site: Path, tmp_path: Path, repo: Path, workdir: Path, environ: dict[str, str]
) -> None:
    if shutil.which("sqlite3") is None:
        pytest.skip("sqlite3 is not installed")
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO t (v) VALUES (?)", [(f"v{i}",) for i in range(500)])
    config = write_config(workdir, repo, f"  - type: sqlite\n    databases: [{database}]\n")

    listed = resticm(site, environ, tmp_path, "plugins", "--json")
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert plugins["dumps"]["distribution"] == "resticm-dumps"
    assert plugins["dumps"]["dump_kinds"] == ["postgresql", "mariadb", "sqlite"]

    first = resticm(site, environ, tmp_path, "-c", str(config), "backup")
    assert first.returncode == 0, first.stderr
    second = resticm(site, environ, tmp_path, "-c", str(config), "backup")
    assert second.returncode == 0, second.stderr

    table = resticm(site, environ, tmp_path, "-c", str(config), "dumps", "list")
    assert table.returncode == 0, table.stderr
    (row,) = [line for line in table.stdout.splitlines() if line.startswith("sqlite:shop")]
    assert row.split()[4:] == ["2", dump_path("sqlite", "shop")]
    as_json = json.loads(
        resticm(site, environ, tmp_path, "-c", str(config), "--json", "dumps", "list").stdout
    )
    assert as_json[0]["name"] == "sqlite:shop" and as_json[0]["count"] == 2

    dry = resticm(site, environ, tmp_path, "-c", str(config), "-n", "dumps", "restore", "shop")
    assert dry.returncode == 0, dry.stderr
    assert "restic dump" in dry.stdout and f"sqlite3 -bail {database}" in dry.stdout

    unknown = resticm(site, environ, tmp_path, "-c", str(config), "dumps", "restore", "nope")
    assert unknown.returncode == 2
    assert "no dump named 'nope' in the repository (dumps: sqlite:shop)" in unknown.stderr

    database.unlink()
    restored = resticm(site, environ, tmp_path, "-c", str(config), "dumps", "restore", "shop")
    assert restored.returncode == 0, restored.stderr
    assert "restored sqlite:shop from snapshot" in restored.stdout
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*), max(v) FROM t").fetchone() == (500, "v99")


@pytest.mark.xdist_group("databases")
def test_cli_restore_postgresql_by_snapshot(
    site: Path,
    tmp_path: Path,
    repo: Path,
    workdir: Path,
    environ: dict[str, str],
    postgres: Postgres,
    pg_database: str,
) -> None:
    postgres.sql(pg_database, "CREATE TABLE t (x int); INSERT INTO t VALUES (1);")
    environ["PGPASSWORD"] = "resticm-test-password"  # the tools' own variable works too
    config = write_config(
        workdir,
        repo,
        f"  - type: postgresql\n    host: 127.0.0.1\n    port: {PG_PORT}\n"
        f"    username: {USER}\n    databases: [{pg_database}]\n",
    )
    assert resticm(site, environ, tmp_path, "-c", str(config), "backup").returncode == 0
    listed = resticm(site, environ, tmp_path, "-c", str(config), "--json", "dumps", "list")
    first_id = json.loads(listed.stdout)[0]["latest"]["id"]
    postgres.sql(pg_database, "INSERT INTO t VALUES (2);")
    assert resticm(site, environ, tmp_path, "-c", str(config), "backup").returncode == 0

    result = resticm(
        site, environ, tmp_path, "-c", str(config), "dumps", "restore",
        f"postgresql:{pg_database}", "--snapshot", first_id,
        "--to-database", pg_database + "_copy",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert postgres.sql(pg_database + "_copy", "SELECT count(*) FROM t").strip() == "1"
    assert postgres.sql(pg_database, "SELECT count(*) FROM t").strip() == "2"


def test_sigterm_during_a_dump_stops_it_and_leaves_no_snapshot(
    site: Path, tmp_path: Path, repo: Path, workdir: Path, environ: dict[str, str]
) -> None:
    import signal
    import time

    from dumps_testlib import restic_json

    database = tmp_path / "app.db"
    database.write_bytes(b"")
    calls = tmp_path / "calls"
    started = tmp_path / "started"
    slow = tmp_path / "slow-sqlite3"
    slow.write_text(f"#!/bin/sh\necho 'BEGIN TRANSACTION;'\ntouch {started}\nexec sleep 60\n")
    slow.chmod(0o700)
    hooks = ""
    for phase in ("post_backup", "on_error", "finally"):
        hook = tmp_path / phase
        hook.write_text(f"#!/bin/sh\necho {phase} >> {calls}\n")
        hook.chmod(0o700)
        hooks += f"  {phase}: {hook}\n"
    config = write_config(
        workdir, repo, f"  - type: sqlite\n    sqlite3: {slow}\n    databases: [{database}]\n"
    )
    with config.open("a") as f:
        f.write(f"hooks:\n{hooks}")
    env = {**environ, "PYTHONPATH": str(site)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "resticm_core", "-c", str(config), "backup"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert started.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert calls.read_text().split() == ["on_error", "finally"]  # the backup never started
    assert "slow-sqlite3 was stopped: resticm was interrupted" in stderr
    assert restic_json(repo, tmp_path, "snapshots") in ([], None)
    assert restic_json(repo, tmp_path, "list", "locks") in ([], None)
