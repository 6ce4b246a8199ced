"""``type: postgresql``: pg_dump per database, pg_dumpall for the globals.

Dumps are plain SQL by default (``format: plain``), which restic deduplicates
well from one night to the next; ``format: custom`` gives pg_dump's compressed
archive for pg_restore. Restores run in a single transaction, so a restore that
fails half-way leaves the database as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

import attrs

from resticm_core.dumps import Command, DumpContext, DumpError, DumpTarget

from ._server import ALL, ServerDump, first_error

#: The pseudo-database of ``globals: true``: roles and tablespaces (pg_dumpall -g).
GLOBALS = "_globals"
_ERROR_LINE = re.compile(r"\b(error|fatal|panic):", re.IGNORECASE)
_LIST_DATABASES = (
    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname"
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@attrs.frozen(kw_only=True)
class PostgreSQLDump(ServerDump):
    """A PostgreSQL server: each database into its own snapshot."""

    kind: ClassVar[str] = "postgresql"
    aliases: ClassVar[tuple[str, ...]] = ("postgres", "pg")

    #: ``plain`` (SQL, restored with psql) or ``custom`` (restored with pg_restore).
    format: str = "plain"
    #: Also dump roles and tablespaces (``pg_dumpall --globals-only``) as ``_globals``.
    globals: bool = False
    #: The database psql connects to for listing and creating databases.
    maintenance_database: str = "postgres"
    #: Where the PostgreSQL programs are (``/usr/lib/postgresql/16/bin``); empty: PATH.
    bin_dir: str = ""

    def tools(self) -> Sequence[str]:
        tools = [self._tool("pg_dump"), self._tool("psql")]
        if self.globals:
            tools.append(self._tool("pg_dumpall"))
        return tools

    def package_hint(self) -> str:
        return "apt-get install postgresql-client, or set bin_dir"

    def check(self, ctx: DumpContext) -> list[str]:
        problems = super().check(ctx)
        if self.format not in ("plain", "custom"):
            problems.append(f"format must be plain or custom, got {self.format!r}")
        return problems

    def _tool(self, name: str) -> str:
        return f"{self.bin_dir.rstrip('/')}/{name}" if self.bin_dir else name

    def _connection(self) -> list[str]:
        args = ["--no-password"]  # never prompt: no terminal at 3 a.m.
        if self.host:
            args.append(f"--host={self.host}")
        if self.port:
            args.append(f"--port={self.port}")
        if self.username:
            args.append(f"--username={self.username}")
        return args

    def _env(self, ctx: DumpContext) -> dict[str, str]:
        env = dict(self.env)
        password = self.read_password(ctx)
        if password is not None:
            env["PGPASSWORD"] = password
        # A server that does not answer fails the dump instead of hanging the night.
        if "PGCONNECT_TIMEOUT" not in ctx.env and "PGCONNECT_TIMEOUT" not in env:
            env["PGCONNECT_TIMEOUT"] = "30"
        return env

    def _psql(self, ctx: DumpContext, database: str, *args: str) -> Command:
        argv = (self._tool("psql"), "-X", *self._connection(), f"--dbname={database}", *args)
        return Command(argv=argv, env=self._env(ctx))

    def _query(self, ctx: DumpContext, sql: str, what: str) -> list[str]:
        command = self._psql(
            ctx, self.maintenance_database, "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql
        )
        result = ctx.run(command)
        if not result.ok:
            detail = result.start_error or first_error(result.stderr_tail)
            raise DumpError(f"cannot {what} on PostgreSQL {self.where()}: {detail}")
        return [line.strip() for line in result.stdout_tail if line.strip()]

    def targets(self, ctx: DumpContext) -> Sequence[DumpTarget]:
        env = self._env(ctx)
        if ctx.dry_run:
            names = self.wanted_databases()  # `all` stays a placeholder: nothing is contacted
        elif ALL in self.databases:
            names = self.expand(self._query(ctx, _LIST_DATABASES, "list the databases"))
        else:
            names = self.wanted_databases()
        targets = [self._target(name, env) for name in names]
        if self.globals:
            argv = (self._tool("pg_dumpall"), *self._connection(), "--globals-only")
            targets.append(DumpTarget(database=GLOBALS, command=Command(argv=argv, env=env)))
        return targets

    def _target(self, database: str, env: dict[str, str]) -> DumpTarget:
        if self.format == "custom":
            fmt, extension = ["--format=custom"], "dump"
        else:
            # --clean --if-exists: the restore replaces what is there, tables and all.
            fmt, extension = ["--format=plain", "--clean", "--if-exists"], "sql"
        argv = (
            self._tool("pg_dump"),
            *self._connection(),
            *fmt,
            *self.options,
            f"--dbname={database}",
        )
        return DumpTarget(
            database=database,
            command=Command(argv=argv, env=env),
            extension=extension,
            listed=self.was_listed(database),
        )

    def is_error_line(self, line: str) -> bool:
        return bool(_ERROR_LINE.search(line))

    def is_gone(self, database: str, lines: Sequence[str]) -> bool:
        return any(f'database "{database}" does not exist' in line for line in lines)

    def prepare_restore(
        self, database: str, ctx: DumpContext, *, to_database: str, extension: str
    ) -> None:
        if database == GLOBALS:
            return
        exists = self._query(
            ctx,
            f"SELECT 1 FROM pg_database WHERE datname = {_literal(to_database)}",
            f"look up database {to_database!r}",
        )
        if not exists:
            self._query(
                ctx,
                f"CREATE DATABASE {_identifier(to_database)}",
                f"create database {to_database!r}",
            )

    def restore_command(
        self, database: str, ctx: DumpContext, *, to_database: str, extension: str
    ) -> Command:
        if database == GLOBALS:
            # Roles that exist already are reported by psql and skipped, not fatal.
            return self._psql(ctx, self.maintenance_database, "-q", *self.restore_options)
        if extension == "dump":  # taken with format: custom
            argv = (
                self._tool("pg_restore"),
                *self._connection(),
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={to_database}",
                *self.restore_options,
            )
            return Command(argv=argv, env=self._env(ctx))
        return self._psql(
            ctx,
            to_database,
            "-q",
            "--output=/dev/null",  # the dump's SELECT setval(...) results; errors stay
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            *self.restore_options,
        )
