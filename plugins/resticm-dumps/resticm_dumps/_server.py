"""What the PostgreSQL and MariaDB sources share: connection keys and credentials.

Credentials never go in argv (``ps`` shows argv to every user): the password is
read from ``password_file``, from the variable ``password_env`` names, or from
the config itself, and handed to the tool in its environment only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from resticm_core.dumps import DumpContext, DumpError, DumpSource

#: The database list entry that means "every database on the server".
ALL = "all"


def _secret() -> str | None:
    # repr=False: never in reprs, tracebacks, debug logs; the converter never echoes it.
    field: str | None = attrs.field(default=None, repr=False)
    return field


@attrs.frozen(kw_only=True)
class ServerDump(DumpSource):
    """Connection and credential keys of a database server."""

    #: Host name or address; empty: the local socket.
    host: str = ""
    #: TCP port; 0: the tool's default.
    port: int = 0
    #: User to connect as; empty: the tool's default (the system user).
    username: str = ""
    #: The password, inline (the config file must then be 0600).
    password: str | None = _secret()
    #: A file holding the password (first line), relative to the config's directory.
    password_file: str = ""
    #: The name of an environment variable of resticm holding the password.
    password_env: str = ""
    #: Databases to dump, each into its own snapshot; ``all``: every database.
    databases: tuple[str, ...] = (ALL,)
    #: Extra options for the dump tool (appended after resticm's).
    options: tuple[str, ...] = ()
    #: Extra options for the restore tool.
    restore_options: tuple[str, ...] = ()
    #: Extra environment for the tools (``PGSSLMODE``...); secret-named values are redacted.
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    #: The tools this source runs (checked on PATH before anything runs).
    def tools(self) -> Sequence[str]:
        return ()

    def describe(self) -> str:
        user = f" as {self.username}" if self.username else ""
        return f"{self.kind} {', '.join(self.databases)} on {self.where()}{user}"

    def where(self) -> str:
        """The server, for messages: ``host:port`` or the local socket."""
        host = self.host or "local socket"
        return f"{host}:{self.port}" if self.port else host

    def check(self, ctx: DumpContext) -> list[str]:
        problems: list[str] = []
        sources = [k for k in ("password", "password_file", "password_env") if getattr(self, k)]
        if len(sources) > 1:
            problems.append(f"set only one of {', '.join(sources)}")
        if self.password_file:
            path = ctx.resolve_path(self.password_file)
            if not path.is_file():
                problems.append(f"password_file {path} does not exist")
            elif not os.access(path, os.R_OK):
                problems.append(f"password_file {path} is not readable by this user")
        if self.password_env and self.password_env not in ctx.env:
            problems.append(
                f"password_env: the variable {self.password_env} is not set in "
                "resticm's environment"
            )
        if not self.databases:
            problems.append("databases is empty: list databases or 'all'")
        for database in self.databases:
            if database.startswith("-") or not database.strip():
                problems.append(f"invalid database name {database!r}")
        search_path = ctx.env.get("PATH", os.defpath)
        for tool in self.tools():
            if shutil.which(tool, path=search_path) is None:
                problems.append(f"{tool} is not installed or not on PATH ({self.package_hint()})")
        return problems

    def package_hint(self) -> str:
        return "install the database client package"

    def read_password(self, ctx: DumpContext) -> str | None:
        """The configured password, or None to let the tool use its own sources."""
        if self.password:
            return self.password
        if self.password_file:
            path = ctx.resolve_path(self.password_file)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise DumpError(f"cannot read password_file {path}: {exc.strerror}") from None
            lines = text.splitlines()
            return lines[0] if lines else ""
        if self.password_env:
            return ctx.env.get(self.password_env)
        return None

    def wanted_databases(self) -> list[str]:
        """The configured names without duplicates, ``all`` kept as is."""
        return list(dict.fromkeys(self.databases))

    def was_listed(self, database: str) -> bool:
        """Found by listing the server for ``all``, not named in the config."""
        return ALL in self.databases and database not in self.databases

    def expand(self, listed: Sequence[str]) -> list[str]:
        """``all`` replaced by *listed* (the server's databases), order kept, no duplicates."""
        names: list[str] = []
        for database in self.wanted_databases():
            names += list(listed) if database == ALL else [database]
        return list(dict.fromkeys(names))


def first_error(lines: Sequence[str]) -> str:
    """The most telling line of a failed tool's output, for one-line messages."""
    said = [line.strip() for line in lines if line.strip()]
    for line in said:
        if "error" in line.lower() or "fatal" in line.lower() or "denied" in line.lower():
            return line[:300]
    return said[-1][:300] if said else "no output"
