"""What the resticm-dumps tests share: admin access to the test servers, configs,
runs and restores through the library (the CLI is tested in test_distribution.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import resticm_dumps

from resticm_core import config_from_dict, run
from resticm_core.commands import make_restic
from resticm_core.dump_commands import RestoreResult, restore_dump
from resticm_core.phases import RunReport
from resticm_core.plugin_manager import PluginRegistry

PLUGIN_DIR = Path(__file__).resolve().parent.parent

USER = "resticm_test"
PASSWORD = "resticm-test-password"
REPO_PASSWORD = "repository password 4 dumps"
PG_PORT = int(os.environ.get("RESTICM_TEST_PGPORT", "5432"))
MYSQL_PORT = int(os.environ.get("RESTICM_TEST_MYSQL_PORT", "3306"))
REQUIRED = os.environ.get("RESTICM_REQUIRE_DATABASES") == "1"


def _restic_version() -> tuple[int, int, int] | None:
    from resticm_core.restic import parse_version

    try:
        out = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout
    except OSError:
        return None
    return parse_version(out)


#: The restic on PATH (scripts/test.sh runs the suite once per restic version).
RESTIC_VERSION = _restic_version()


def dump_path(label: str, database: str, extension: str = "sql") -> str:
    """A dump's path in its snapshot with the restic on PATH (restic 0.18.0: no directory)."""
    from resticm_core.dumps import STDIN_DIRECTORY_BROKEN

    separator = ":" if RESTIC_VERSION in STDIN_DIRECTORY_BROKEN else "/"
    return f"/{label}{separator}{database}.{extension}"


def unavailable(what: str, why: str) -> None:
    message = f"{what} is not available ({why}); run scripts/start-databases.sh"
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def run_tool(argv: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    data = stdin.encode() if stdin is not None else None
    result = subprocess.run(argv, env=env, input=data, capture_output=True)
    if result.returncode != 0:
        raise AssertionError(f"{argv[0]} failed: {result.stderr.decode(errors='replace').strip()}")
    # Binary columns (bytea hex is text, VARBINARY is raw): keep every byte comparable.
    return result.stdout.decode("utf-8", "backslashreplace")


class Postgres:
    """Admin access to the test PostgreSQL server."""

    def __init__(self) -> None:
        self.env = {**os.environ, "PGPASSWORD": PASSWORD}
        self.base = ["psql", "-X", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", USER]

    def sql(self, database: str, sql: str) -> str:
        return run_tool(
            [*self.base, "-d", database, "-v", "ON_ERROR_STOP=1", "-Atq"], self.env, sql
        )

    def create(self, name: str) -> str:
        self.sql("postgres", f'CREATE DATABASE "{name}"')
        return name

    def drop(self, name: str) -> None:
        self.sql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def exists(self, name: str) -> bool:
        return self.sql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != ""

    def fingerprint(self, database: str) -> dict[str, tuple[int, str]]:
        """Row count and checksum of every table's rows, in a stable order."""
        tables = self.sql(
            database,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        ).split()
        result = {}
        for table in tables:
            rows = self.sql(database, f'SELECT * FROM "{table}" ORDER BY 1')
            result[table] = (len(rows.splitlines()), hashlib.sha256(rows.encode()).hexdigest())
        return result


class MariaDB:
    """Admin access to the test MariaDB server."""

    def __init__(self) -> None:
        self.env = {**os.environ, "MYSQL_PWD": PASSWORD}
        self.base = ["mariadb", "-h", "127.0.0.1", "-P", str(MYSQL_PORT), "-u", USER]

    def sql(self, database: str, sql: str) -> str:
        return run_tool([*self.base, "--batch", "--skip-column-names", database], self.env, sql)

    def create(self, name: str) -> str:
        self.sql("mysql", f"CREATE DATABASE `{name}`")
        return name

    def drop(self, name: str) -> None:
        self.sql("mysql", f"DROP DATABASE IF EXISTS `{name}`")

    def fingerprint(self, database: str) -> dict[str, tuple[int, str]]:
        tables = self.sql(database, "SHOW TABLES").split()
        result = {}
        for table in sorted(tables):
            rows = self.sql(database, f"SELECT * FROM `{table}` ORDER BY 1")
            count = int(self.sql(database, f"SELECT COUNT(*) FROM `{table}`"))
            result[table] = (count, hashlib.sha256(rows.encode()).hexdigest())
        return result


def registry() -> PluginRegistry:
    return PluginRegistry.default(plugins=[resticm_dumps])


def make_config(workdir: Path, repo: Path, dumps: list[dict[str, Any]], **extra: Any) -> Any:
    data = {"repository": str(repo), "password": REPO_PASSWORD, "dumps": dumps, **extra}
    return config_from_dict(data, registry=registry(), base_dir=workdir)


def backup(config: Any, environ: dict[str, str], tmp_path: Path, **kwargs: Any) -> RunReport:
    return run(config, registry=registry(), environ=environ, lock_dir=tmp_path / "locks", **kwargs)


def restore(config: Any, environ: dict[str, str], name: str, **kwargs: Any) -> RestoreResult:
    restic = make_restic(config, environ, registry(), verbose=False)
    return restore_dump(
        config, config.primary_repository(), name, restic=restic, environ=environ, **kwargs
    )


def password_file(workdir: Path, password: str) -> str:
    path = workdir / "db.pass"
    path.write_text(password + "\n")
    os.chmod(path, 0o600)
    return "db.pass"  # relative: resolved against the config's directory


def assert_no_local_dump(private_tmp: Path, workdir: Path) -> None:
    """Nothing was written to the run's temp dir, and only our files are in workdir."""
    assert list(private_tmp.iterdir()) == []
    assert sorted(p.name for p in workdir.iterdir()) in ([], ["db.pass"])


def restic_json(repo: Path, tmp_path: Path, *args: str) -> object:
    env = {
        **os.environ,
        "RESTIC_PASSWORD": REPO_PASSWORD,
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
    }
    out = subprocess.run(
        ["restic", *args, "--json"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out) if out.strip() else None
