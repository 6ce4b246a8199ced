"""resticm-dumps: database dumps streamed straight into restic, and restored from it.

Registers three dump types through the ``resticm`` entry point group::

    dumps:
      - type: postgresql        # pg_dump per database (+ pg_dumpall --globals-only)
      - type: mariadb           # mariadb-dump per database (alias: mysql)
      - type: sqlite            # sqlite3 .dump per database file

resticm runs each dump tool with its stdout piped into ``restic backup --stdin``
(nothing is written to local disk), tags the snapshot ``dump:<name>:<database>``,
drops the snapshot when the tool fails, and ``resticm dumps restore`` pipes
``restic dump`` back into psql / pg_restore / mariadb / sqlite3.
"""

from __future__ import annotations

from collections.abc import Iterable

from resticm_core import hookimpl
from resticm_core.dumps import DumpSource

from .mariadb import MariaDBDump
from .postgresql import PostgreSQLDump
from .sqlite import SQLiteDump

__version__ = "0.1.0"


@hookimpl
def resticm_dump_types() -> Iterable[type[DumpSource]]:
    return [PostgreSQLDump, MariaDBDump, SQLiteDump]


__all__ = ["MariaDBDump", "PostgreSQLDump", "SQLiteDump", "resticm_dump_types"]
