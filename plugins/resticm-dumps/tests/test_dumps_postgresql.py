"""PostgreSQL dumps against a real server: back up, drop, restore, compare every table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dumps_testlib import (
    PASSWORD,
    PG_PORT,
    USER,
    Postgres,
    assert_no_local_dump,
    backup,
    dump_path,
    make_config,
    password_file,
    restore,
)

pytestmark = pytest.mark.xdist_group("databases")

SEED = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text, born date);
INSERT INTO customers (name, email, born)
  SELECT 'customer ' || i, CASE WHEN i % 7 = 0 THEN NULL ELSE 'c' || i || '@example.org' END,
         DATE '1970-01-01' + i
  FROM generate_series(1, 3000) AS i;
INSERT INTO customers (name, email) VALUES ('O''Brien, "quoted" \\ tab	é ☃', NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
                     total numeric(12,2), payload jsonb, blob bytea);
INSERT INTO orders (customer_id, total, payload, blob)
  SELECT 1 + i % 3000, i * 1.25, jsonb_build_object('n', i, 'tags', jsonb_build_array('a', i)),
         decode(md5(i::text), 'hex')
  FROM generate_series(1, 8000) AS i;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 5000;
"""


def pg_entry(workdir: Path, database: str, **extra: object) -> dict[str, object]:
    return {
        "type": "postgresql",
        "host": "127.0.0.1",
        "port": PG_PORT,
        "username": USER,
        "password_file": password_file(workdir, PASSWORD),
        "databases": [database],
        **extra,
    }


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_backup_drop_restore_gives_back_every_row(
    postgres: Postgres,
    pg_database: str,
    repo: Path,
    workdir: Path,
    private_tmp: Path,
    environ: dict[str, str],
    tmp_path: Path,
    dump_snapshots: Callable[[], list[dict[str, object]]],
    fmt: str,
) -> None:
    postgres.sql(pg_database, SEED)
    before = postgres.fingerprint(pg_database)
    assert before["orders"][0] == 8000 and before["customers"][0] == 3001
    config = make_config(workdir, repo, [pg_entry(workdir, pg_database, format=fmt)])

    report = backup(config, environ, tmp_path)

    assert report.exit_code == 0, report.errors
    (snapshot,) = dump_snapshots()
    extension = "dump" if fmt == "custom" else "sql"
    assert snapshot["paths"] == [dump_path("postgresql", pg_database, extension)]
    assert snapshot["tags"] == [f"dump:postgresql:{pg_database}"]
    assert_no_local_dump(private_tmp, workdir)

    postgres.drop(pg_database)
    assert not postgres.exists(pg_database)
    result = restore(config, environ, f"postgresql:{pg_database}")

    assert result.ok, result.error
    assert postgres.fingerprint(pg_database) == before
    assert postgres.sql(pg_database, "SELECT count(*) FROM big_orders").strip() == "4000"
    assert_no_local_dump(private_tmp, workdir)


def test_restore_into_another_database_and_over_an_existing_one(
    postgres: Postgres,
    pg_database: str,
    repo: Path,
    workdir: Path,
    environ: dict[str, str],
    tmp_path: Path,
) -> None:
    postgres.sql(pg_database, SEED)
    before = postgres.fingerprint(pg_database)
    config = make_config(workdir, repo, [pg_entry(workdir, pg_database)])
    assert backup(config, environ, tmp_path).exit_code == 0

    copy = restore(config, environ, pg_database, to_database=pg_database + "_copy")
    assert copy.ok, copy.error
    assert postgres.fingerprint(pg_database + "_copy") == before

    # Changed since the backup: the restore replaces it (dump taken with --clean).
    postgres.sql(pg_database, "DELETE FROM orders WHERE id > 10; CREATE TABLE extra (x int);")
    over = restore(config, environ, pg_database)
    assert over.ok, over.error
    after = postgres.fingerprint(pg_database)
    assert after["orders"] == before["orders"] and after["customers"] == before["customers"]


def test_wrong_password_fails_clearly_and_keeps_no_snapshot(
    postgres: Postgres,
    pg_database: str,
    repo: Path,
    workdir: Path,
    private_tmp: Path,
    environ: dict[str, str],
    tmp_path: Path,
    dump_snapshots: Callable[[], list[dict[str, object]]],
) -> None:
    entry = pg_entry(workdir, pg_database)
    entry["password_file"] = password_file(workdir, "not-the-password")
    source = tmp_path / "files"
    source.mkdir()
    (source / "a.txt").write_text("a")
    config = make_config(workdir, repo, [entry], directories=[str(source)])

    report = backup(config, environ, tmp_path)

    assert report.exit_code == 1
    (error,) = report.errors
    assert f"dump postgresql:{pg_database} failed: pg_dump failed with exit code 1" in error
    assert "password authentication failed" in error
    assert "not-the-password" not in error
    assert dump_snapshots() == []  # neither a dump snapshot nor the file backup
    assert [s.outcome.value for s in report.steps if s.name.startswith("dump")] == ["failed"]
    assert_no_local_dump(private_tmp, workdir)


def test_all_lists_the_databases_and_globals_dump_the_roles(
    postgres: Postgres,
    pg_database: str,
    repo: Path,
    workdir: Path,
    environ: dict[str, str],
    tmp_path: Path,
    dump_snapshots: Callable[[], list[dict[str, object]]],
) -> None:
    postgres.sql(pg_database, "CREATE TABLE t (x int); INSERT INTO t VALUES (42);")
    config = make_config(workdir, repo, [pg_entry(workdir, "all", name="pg-main", globals=True)])
    report = backup(config, environ, tmp_path)
    assert report.exit_code == 0, report.errors
    names = {s.name for s in report.steps}
    assert {
        f"dump pg-main:{pg_database}",
        "dump pg-main:postgres",
        "dump pg-main:_globals",
    } <= names
    assert not any("template" in n for n in names)
    paths = {p for s in dump_snapshots() for p in s["paths"]}  # type: ignore[attr-defined]
    assert dump_path("pg-main", "_globals") in paths and dump_path("pg-main", pg_database) in paths

    postgres.drop(pg_database)
    result = restore(config, environ, f"pg-main:{pg_database}")
    assert result.ok, result.error
    assert postgres.sql(pg_database, "SELECT x FROM t").strip() == "42"


def test_dry_run_contacts_nothing(
    pg_database: str, repo: Path, workdir: Path, environ: dict[str, str], tmp_path: Path
) -> None:
    entry = pg_entry(workdir, "all")
    entry["host"] = "192.0.2.1"  # TEST-NET: a dry run that connected would hang or fail
    config = make_config(workdir, repo, [entry])
    report = backup(config, environ, tmp_path, dry_run=True)
    assert report.exit_code == 0, report.errors
    (step,) = report.steps
    assert step.command.startswith("pg_dump --no-password --host=192.0.2.1")
    assert "| restic -r" in step.command and "--tag dump:postgresql:all" in step.command
    assert PASSWORD not in step.command


def test_a_restic_dump_failing_half_way_leaves_the_database_untouched(
    postgres: Postgres,
    pg_database: str,
    repo: Path,
    workdir: Path,
    environ: dict[str, str],
    tmp_path: Path,
) -> None:
    postgres.sql(pg_database, SEED)
    config = make_config(workdir, repo, [pg_entry(workdir, pg_database)])
    assert backup(config, environ, tmp_path).exit_code == 0
    # A restic that delivers the dump up to the end of the first table's data (whole,
    # valid statements: psql at an end of input there would commit them), then fails.
    broken = tmp_path / "broken-restic"
    broken.write_text(
        "#!/bin/sh\n"
        "restic \"$@\" | sed '/^\\\\[.]$/q'\n"
        "echo 'network gone' >&2\n"
        "exit 1\n"
    )
    broken.chmod(0o700)
    target = pg_database + "_copy"

    result = restore(config, environ, pg_database, to_database=target, restic_binary=str(broken))

    assert not result.ok
    assert "restic dump failed with exit code 1: network gone" in result.error
    assert "psql was stopped before the end of its input" in result.error
    # The transaction was rolled back: not one table of the half dump is there.
    assert (
        postgres.sql(target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0\n"
    )
