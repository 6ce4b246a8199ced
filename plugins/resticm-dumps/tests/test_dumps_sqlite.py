"""SQLite dumps: back up a live file, delete it, restore it, compare every row."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from dumps_testlib import assert_no_local_dump, backup, dump_path, make_config, restore

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("sqlite3") is None, reason="sqlite3 is not installed"
)


def rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in sorted(tables)}


def seed(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB, n REAL)")
        db.executemany(
            "INSERT INTO notes (body, data, n) VALUES (?, ?, ?)",
            [(f"note {i} 'q' é", bytes([i % 256]) * 8, i / 3) for i in range(3000)],
        )
        db.execute("CREATE INDEX notes_body ON notes (body)")


def test_backup_delete_restore_gives_back_every_row(
    tmp_path: Path,
    repo: Path,
    workdir: Path,
    private_tmp: Path,
    environ: dict[str, str],
    dump_snapshots: Callable[[], list[dict[str, object]]],
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    database = data / "app.db"
    seed(database)
    before = rows(database)
    config = make_config(workdir, repo, [{"type": "sqlite", "databases": [str(database)]}])

    report = backup(config, environ, tmp_path)

    assert report.exit_code == 0, report.errors
    (snapshot,) = dump_snapshots()
    assert snapshot["paths"] == [dump_path("sqlite", "app")]
    assert snapshot["tags"] == ["dump:sqlite:app"]
    assert sorted(p.name for p in data.iterdir()) == ["app.db"]  # no dump beside it
    assert_no_local_dump(private_tmp, workdir)

    database.unlink()
    result = restore(config, environ, "sqlite:app")
    assert result.ok, result.error
    assert rows(database) == before

    elsewhere = tmp_path / "check.db"
    copy = restore(config, environ, "app", to_database=str(elsewhere))
    assert copy.ok, copy.error
    assert rows(elsewhere) == before


def test_restore_never_overwrites_an_existing_file(
    tmp_path: Path, repo: Path, workdir: Path, environ: dict[str, str]
) -> None:
    from resticm_core.dumps import DumpError

    database = tmp_path / "app.db"
    seed(database)
    config = make_config(workdir, repo, [{"type": "sqlite", "databases": [str(database)]}])
    assert backup(config, environ, tmp_path).exit_code == 0
    with pytest.raises(DumpError, match="exists: move it away first"):
        restore(config, environ, "sqlite:app")


def test_missing_database_file_fails_before_any_snapshot(
    tmp_path: Path,
    repo: Path,
    workdir: Path,
    environ: dict[str, str],
    dump_snapshots: Callable[[], list[dict[str, object]]],
) -> None:
    config = make_config(
        workdir, repo, [{"type": "sqlite", "databases": [str(tmp_path / "gone.db")]}]
    )
    report = backup(config, environ, tmp_path)
    assert report.exit_code == 1
    assert f"database file {tmp_path / 'gone.db'} does not exist" in report.errors[0]
    assert dump_snapshots() == []
    assert not (tmp_path / "gone.db").exists()  # sqlite3 did not create an empty one
