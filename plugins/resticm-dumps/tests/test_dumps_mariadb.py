"""MariaDB dumps against a real server: back up, drop, restore, compare every table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dumps_testlib import (
    MYSQL_PORT,
    PASSWORD,
    USER,
    MariaDB,
    assert_no_local_dump,
    backup,
    dump_path,
    make_config,
    restore,
)

pytestmark = pytest.mark.xdist_group("databases")

SEED = """
CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(80) NOT NULL,
                    price DECIMAL(10,2), note TEXT NULL, raw VARBINARY(16)) ENGINE=InnoDB;
INSERT INTO items (name, price, note, raw)
  SELECT CONCAT('item ', seq), seq * 1.25, IF(seq % 5 = 0, NULL, CONCAT('n', seq)),
         UNHEX(MD5(seq))
  FROM seq_1_to_4000;
INSERT INTO items (name, price, note) VALUES ('O''Brien "q" \\\\ é ☃', 1, 'tab\there');
CREATE TABLE stock (item_id INT, qty INT, FOREIGN KEY (item_id) REFERENCES items(id));
INSERT INTO stock SELECT seq, seq % 17 FROM seq_1_to_4000;
CREATE TRIGGER stock_guard BEFORE INSERT ON stock FOR EACH ROW SET NEW.qty = GREATEST(NEW.qty, 0);
"""


def maria_entry(database: str, **extra: object) -> dict[str, object]:
    return {
        "type": "mysql",  # the alias: the Go guide's users write mysql
        "host": "127.0.0.1",
        "port": MYSQL_PORT,
        "username": USER,
        "password_env": "TEST_DB_PASSWORD",
        "databases": [database],
        **extra,
    }


def test_backup_drop_restore_gives_back_every_row(
    mariadb: MariaDB,
    maria_database: str,
    repo: Path,
    workdir: Path,
    private_tmp: Path,
    environ: dict[str, str],
    tmp_path: Path,
    dump_snapshots: Callable[[], list[dict[str, object]]],
) -> None:
    mariadb.sql(maria_database, SEED)
    before = mariadb.fingerprint(maria_database)
    assert before["items"][0] == 4001 and before["stock"][0] == 4000
    environ["TEST_DB_PASSWORD"] = PASSWORD
    config = make_config(workdir, repo, [maria_entry(maria_database)])

    report = backup(config, environ, tmp_path)

    assert report.exit_code == 0, report.errors
    (snapshot,) = dump_snapshots()
    assert snapshot["paths"] == [dump_path("mariadb", maria_database)]
    assert snapshot["tags"] == [f"dump:mariadb:{maria_database}"]
    assert_no_local_dump(private_tmp, workdir)

    mariadb.drop(maria_database)
    result = restore(config, environ, f"mariadb:{maria_database}")
    assert result.ok, result.error
    assert mariadb.fingerprint(maria_database) == before
    triggers = mariadb.sql(maria_database, "SHOW TRIGGERS")
    assert "stock_guard" in triggers

    copy = restore(config, environ, maria_database, to_database=maria_database + "_copy")
    assert copy.ok, copy.error
    assert mariadb.fingerprint(maria_database + "_copy") == before


def test_wrong_password_fails_clearly_and_keeps_no_snapshot(
    mariadb: MariaDB,
    maria_database: str,
    repo: Path,
    workdir: Path,
    private_tmp: Path,
    environ: dict[str, str],
    tmp_path: Path,
    dump_snapshots: Callable[[], list[dict[str, object]]],
) -> None:
    environ["TEST_DB_PASSWORD"] = "wrong-password-here"
    config = make_config(workdir, repo, [maria_entry(maria_database)])

    report = backup(config, environ, tmp_path)

    assert report.exit_code == 1
    (error,) = report.errors
    assert f"dump mariadb:{maria_database} failed: mariadb-dump failed with exit code 2" in error
    assert "Access denied for user 'resticm_test'" in error
    assert "wrong-password-here" not in error
    assert dump_snapshots() == []
    assert_no_local_dump(private_tmp, workdir)


def test_all_skips_the_system_schemas(
    mariadb: MariaDB,
    maria_database: str,
    repo: Path,
    workdir: Path,
    environ: dict[str, str],
    tmp_path: Path,
) -> None:
    mariadb.sql(maria_database, "CREATE TABLE t (x INT); INSERT INTO t VALUES (7);")
    environ["TEST_DB_PASSWORD"] = PASSWORD
    config = make_config(workdir, repo, [maria_entry("all")])
    report = backup(config, environ, tmp_path)
    assert report.exit_code == 0, report.errors
    names = {s.name for s in report.steps}
    assert f"dump mariadb:{maria_database}" in names
    for system in ("mysql", "information_schema", "performance_schema", "sys"):
        assert f"dump mariadb:{system}" not in names
