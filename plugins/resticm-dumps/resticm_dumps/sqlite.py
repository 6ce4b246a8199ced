"""``type: sqlite``: ``sqlite3 .dump`` of each database file.

``.dump`` reads the database in one read transaction, so the SQL it prints is
a consistent copy even while the application writes. (sqlite3's ``.backup``
makes a binary copy but needs a seekable file: it would put the dump on local
disk, which is what streaming avoids.) The database name is the file's stem:
``/var/lib/app/app.db`` is ``sqlite:app``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import attrs

from resticm_core.dumps import Command, DumpContext, DumpError, DumpSource, DumpTarget


@attrs.frozen(kw_only=True)
class SQLiteDump(DumpSource):
    """SQLite database files, each into its own snapshot."""

    kind: ClassVar[str] = "sqlite"
    aliases: ClassVar[tuple[str, ...]] = ("sqlite3",)

    #: Database files (relative paths: against the config's directory).
    databases: tuple[str, ...] = ()
    #: The sqlite3 program.
    sqlite3: str = "sqlite3"

    def describe(self) -> str:
        return f"sqlite {', '.join(self.databases)}"

    def _paths(self, ctx: DumpContext) -> dict[str, Path]:
        return {Path(p).stem: ctx.resolve_path(p) for p in self.databases}

    def check(self, ctx: DumpContext) -> list[str]:
        problems: list[str] = []
        if not self.databases:
            problems.append("databases is empty: list the database files")
        stems = [Path(p).stem for p in self.databases]
        for stem in sorted({s for s in stems if stems.count(s) > 1}):
            problems.append(
                f"two database files are named {stem!r}: put them in two entries "
                "with different 'name:'"
            )
        for path in self._paths(ctx).values():
            if not path.is_file():
                problems.append(f"database file {path} does not exist")
        if shutil.which(self.sqlite3, path=ctx.env.get("PATH", os.defpath)) is None:
            problems.append(
                f"{self.sqlite3} is not installed or not on PATH (apt-get install sqlite3)"
            )
        return problems

    def targets(self, ctx: DumpContext) -> Sequence[DumpTarget]:
        return [
            DumpTarget(
                database=stem,
                # -readonly: a missing file is an error, not a new empty database.
                command=Command(argv=(self.sqlite3, "-readonly", "-bail", str(path), ".dump")),
            )
            for stem, path in self._paths(ctx).items()
        ]

    def is_error_line(self, line: str) -> bool:
        lowered = line.lower()
        return lowered.startswith(("error", "parse error", "runtime error")) or "error:" in lowered

    def _target_path(self, database: str, ctx: DumpContext, to_database: str) -> Path:
        if to_database != database:
            return ctx.resolve_path(to_database)
        path = self._paths(ctx).get(database)
        if path is None:
            raise DumpError(
                f"no database file named {database!r} in this entry; "
                "give the file to restore into with --to-database PATH"
            )
        return path

    def prepare_restore(
        self, database: str, ctx: DumpContext, *, to_database: str, extension: str
    ) -> None:
        path = self._target_path(database, ctx, to_database)
        if path.exists():
            raise DumpError(
                f"{path} exists: move it away first (a restore never overwrites a "
                "database file), or restore elsewhere with --to-database PATH"
            )
        if not path.parent.is_dir():
            raise DumpError(f"the directory of {path} does not exist")

    def restore_command(
        self, database: str, ctx: DumpContext, *, to_database: str, extension: str
    ) -> Command:
        path = self._target_path(database, ctx, to_database)
        return Command(argv=(self.sqlite3, "-bail", str(path)))
