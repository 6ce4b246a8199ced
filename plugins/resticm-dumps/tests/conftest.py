"""Fixtures of the resticm-dumps tests: real database servers, a real repository.

The servers are the ones ``scripts/start-databases.sh`` (resticm-core) installs and
starts: PostgreSQL and MariaDB on 127.0.0.1 with the superuser ``resticm_test``.
Tests skip when a server is not reachable, unless ``RESTICM_REQUIRE_DATABASES=1``
(CI sets it): then a missing server is a failure, not a silent skip.
Each test works in its own uniquely named databases, so tests run in parallel.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The plugin is tested from its source tree (test_distribution.py installs it for real),
# and the test modules import their shared code from this directory.
sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from dumps_testlib import REPO_PASSWORD, MariaDB, Postgres, restic_json, unavailable  # noqa: E402


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    if shutil.which("psql") is None or shutil.which("pg_dump") is None:
        unavailable("PostgreSQL", "psql/pg_dump not installed")
    server = Postgres()
    try:
        server.sql("postgres", "SELECT 1")
    except AssertionError as exc:
        unavailable("PostgreSQL on 127.0.0.1", str(exc))
    return server


@pytest.fixture(scope="session")
def mariadb() -> MariaDB:
    if shutil.which("mariadb") is None or shutil.which("mariadb-dump") is None:
        unavailable("MariaDB", "mariadb/mariadb-dump not installed")
    server = MariaDB()
    try:
        server.sql("mysql", "SELECT 1")
    except AssertionError as exc:
        unavailable("MariaDB on 127.0.0.1", str(exc))
    return server


@pytest.fixture
def unique() -> str:
    """A database name no other test (or parallel worker) uses."""
    return f"rt_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def database_servers_lock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One database test at a time across pytest-xdist workers.

    The servers are shared, and `databases: [all]` dumps every database on them: a
    test restoring its own database in another worker would be caught half-way.
    (The `xdist_group` marks say the same to `--dist loadgroup`, but not every
    pytest/xdist pairing honours module-level marks; this lock does not depend on it.)
    """
    # The parent of a worker's basetemp is shared by all workers of one run.
    path = tmp_path_factory.getbasetemp().parent / "database-servers.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture
def pg_database(postgres: Postgres, unique: str, database_servers_lock: None) -> Iterator[str]:
    postgres.create(unique)
    yield unique
    postgres.drop(unique)
    postgres.drop(unique + "_copy")


@pytest.fixture
def maria_database(mariadb: MariaDB, unique: str, database_servers_lock: None) -> Iterator[str]:
    mariadb.create(unique)
    yield unique
    mariadb.drop(unique)
    mariadb.drop(unique + "_copy")


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("restic") is None:
        pytest.skip("restic is not installed")
    base = tmp_path_factory.mktemp("dumps-template")
    env = {**os.environ, "RESTIC_PASSWORD": REPO_PASSWORD, "RESTIC_CACHE_DIR": str(base / "c")}
    subprocess.run(["restic", "init", "-q", "-r", str(base / "repo")], env=env, check=True)
    return base / "repo"


@pytest.fixture
def repo(tmp_path: Path, template_repo: Path) -> Path:
    target = tmp_path / "repo"
    shutil.copytree(template_repo, target)
    return target


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The config's directory: only the files the test puts there."""
    path = tmp_path / "etc"
    path.mkdir()
    return path


@pytest.fixture
def private_tmp(tmp_path: Path) -> Path:
    """TMPDIR/TMP/TEMP of the run: a dump written to local disk would land here."""
    path = tmp_path / "tmp"
    path.mkdir()
    return path


@pytest.fixture
def environ(tmp_path: Path, private_tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "PG", "MYSQL"))}
    env["RESTIC_CACHE_DIR"] = str(tmp_path / "cache")
    env["RESTICM_STATE_DIR"] = str(tmp_path / "state")
    for name in ("TMPDIR", "TMP", "TEMP"):
        env[name] = str(private_tmp)
    return env


@pytest.fixture
def dump_snapshots(repo: Path, tmp_path: Path) -> Callable[[], list[dict[str, object]]]:
    def read() -> list[dict[str, object]]:
        found = restic_json(repo, tmp_path, "snapshots") or []
        assert isinstance(found, list)
        return found

    return read
