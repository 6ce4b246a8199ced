"""``type: mariadb`` (alias ``mysql``): mariadb-dump per database.

Each dump is taken with ``--single-transaction`` (a consistent snapshot of InnoDB
tables without locking them) and without ``CREATE DATABASE``/``USE``, so it can
be restored into any database name (``--to-database``). The password reaches
the tools as ``MYSQL_PWD`` in their environment, never in argv.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from typing import ClassVar

import attrs

from resticm_core.dumps import Command, DumpContext, DumpError, DumpTarget

from ._server import ALL, ServerDump, first_error

#: Schemas of the server itself, never part of ``all`` (list ``mysql`` to dump it).
SYSTEM_SCHEMAS = frozenset({"information_schema", "performance_schema", "sys", "mysql"})
_ERROR_LINE = re.compile(r"(\berror\b|couldn't|\bdenied\b|\bcan't\b)", re.IGNORECASE)


def _identifier(text: str) -> str:
    return "`" + text.replace("`", "``") + "`"


@attrs.frozen(kw_only=True)
class MariaDBDump(ServerDump):
    """A MariaDB or MySQL server: each database into its own snapshot."""

    kind: ClassVar[str] = "mariadb"
    aliases: ClassVar[tuple[str, ...]] = ("mysql",)

    #: A local socket path instead of host/port.
    socket: str = ""
    #: The dump tool; empty: ``mariadb-dump``, else ``mysqldump``, whichever is on PATH.
    dump_command: str = ""
    #: The client; empty: ``mariadb``, else ``mysql``.
    client_command: str = ""

    def _which(self, ctx: DumpContext, configured: str, *names: str) -> str:
        if configured:
            return configured
        path = ctx.env.get("PATH", os.defpath)
        return next((n for n in names if shutil.which(n, path=path)), names[0])

    def _dump_tool(self, ctx: DumpContext) -> str:
        return self._which(ctx, self.dump_command, "mariadb-dump", "mysqldump")

    def _client(self, ctx: DumpContext) -> str:
        return self._which(ctx, self.client_command, "mariadb", "mysql")

    def check(self, ctx: DumpContext) -> list[str]:
        problems = super().check(ctx)
        path = ctx.env.get("PATH", os.defpath)
        for tool in (self._dump_tool(ctx), self._client(ctx)):
            if shutil.which(tool, path=path) is None:
                problems.append(
                    f"{tool} is not installed or not on PATH (apt-get install mariadb-client)"
                )
        return problems

    def _connection(self) -> list[str]:
        args = []
        if self.host:
            args.append(f"--host={self.host}")
        if self.port:
            args.append(f"--port={self.port}")
        if self.socket:
            args.append(f"--socket={self.socket}")
        if self.username:
            args.append(f"--user={self.username}")
        return args

    def _env(self, ctx: DumpContext) -> dict[str, str]:
        env = dict(self.env)
        password = self.read_password(ctx)
        if password is not None:
            env["MYSQL_PWD"] = password
        return env

    def _client_command(self, ctx: DumpContext, *args: str) -> Command:
        argv = (self._client(ctx), *self._connection(), "--connect-timeout=30", *args)
        return Command(argv=argv, env=self._env(ctx))

    def _query(self, ctx: DumpContext, sql: str, what: str) -> list[str]:
        command = self._client_command(ctx, "--batch", "--skip-column-names", "-e", sql)
        result = ctx.run(command)
        if not result.ok:
            detail = result.start_error or first_error(result.stderr_tail)
            raise DumpError(f"cannot {what} on MariaDB {self.where()}: {detail}")
        return [line.strip() for line in result.stdout_tail if line.strip()]

    def targets(self, ctx: DumpContext) -> Sequence[DumpTarget]:
        if ctx.dry_run:
            names = self.wanted_databases()
        elif ALL in self.databases:
            listed = self._query(ctx, "SHOW DATABASES", "list the databases")
            names = self.expand([n for n in listed if n not in SYSTEM_SCHEMAS])
        else:
            names = self.wanted_databases()
        env = self._env(ctx)
        tool = self._dump_tool(ctx)
        return [
            DumpTarget(
                database=name,
                command=Command(
                    argv=(
                        tool,
                        *self._connection(),
                        "--single-transaction",
                        "--routines",
                        "--triggers",
                        *self.options,
                        name,
                    ),
                    env=env,
                ),
                listed=self.was_listed(name),
            )
            for name in names
        ]

    def is_gone(self, database: str, lines: Sequence[str]) -> bool:
        return any(f"Unknown database '{database}'" in line for line in lines)

    def is_error_line(self, line: str) -> bool:
        return not line.lower().startswith("warning") and bool(_ERROR_LINE.search(line))

    def prepare_restore(
        self, database: str, ctx: DumpContext, *, to_database: str, extension: str
    ) -> None:
        self._query(
            ctx,
            f"CREATE DATABASE IF NOT EXISTS {_identifier(to_database)}",
            f"create database {to_database!r}",
        )

    def restore_command(
        self, database: str, ctx: DumpContext, *, to_database: str, extension: str
    ) -> Command:
        # Without --force the client stops at the first failing statement, exit 1.
        return self._client_command(ctx, "--batch", *self.restore_options, to_database)
