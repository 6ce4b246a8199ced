"""Database dumps: the contract of a ``dumps:`` entry (:class:`DumpSource`, the
:class:`Command` it builds, :class:`DumpTarget`, :class:`DumpContext`); the engine that
streams a dump into restic is :mod:`resticm_core.dump_stream`.

A dump source is a frozen attrs class contributed by a plugin through
``resticm_dump_types`` (the ``resticm-dumps`` distribution provides ``postgresql``,
``mariadb``/``mysql`` and ``sqlite``). The plugin only knows its tool: which
command prints a dump on stdout, which command reads it back on stdin, which
stderr lines are errors. The engine does the rest, the same way for every tool:

- each dump's stdout is piped straight into ``restic backup --stdin
  --stdin-filename <label>/<database>.<ext> --tag dump:<label>:<database>``:
  nothing is written to local disk, and each dump is its own snapshot that
  retention and restore find by its path and tag;
- the dump fails when its tool exits non-zero, prints an error line on stderr
  (even with exit 0), produces no output, times out or is interrupted; the
  snapshot restic wrote from the truncated stream is then removed
  (``restic forget <id>``), so no snapshot claims to hold a complete dump;
- in the workflow a failed dump is a pre_backup failure (DESIGN §3): the file
  backup does not run, on_error and finally do.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import attrs

from .errors import ResticmError
from .inherited_env import scrubbed_environment
from .process import ProcessResult, run_process
from .secrets import MIN_SECRET_LENGTH, secret_values

if TYPE_CHECKING:
    pass

log = logging.getLogger("resticm_core.dumps")

#: The tag prefix of every dump snapshot: ``dump:<label>:<database>``.
TAG_PREFIX = "dump:"
#: Seconds between TERM and KILL when a dump tool is stopped.
DUMP_KILL_GRACE = 10.0
#: Seconds a dump may run when its entry sets no ``timeout``.
DEFAULT_DUMP_TIMEOUT = 6 * 3600.0


class DumpError(ResticmError):
    """A dump source cannot do what was asked (list databases, prepare a restore)."""


@attrs.frozen(kw_only=True)
class Command:
    """One process to run: its argv (never a secret in it) and extra environment.

    Credentials go in :attr:`env` (``PGPASSWORD``, ``MYSQL_PWD``): the environment
    of a process is readable by its owner and root only, its argv by everyone.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def program(self) -> str:
        return Path(self.argv[0]).name if self.argv else ""

    def shown(self) -> str:
        """The command line for messages and dry runs (argv holds no secret)."""
        return shlex.join(self.argv)


@attrs.frozen(kw_only=True)
class DumpTarget:
    """One database of a source, dumped into its own snapshot."""

    #: The database name (``all`` for a whole-server dump, ``_globals`` for roles...).
    database: str
    #: Prints the dump on stdout.
    command: Command
    #: The file extension of the dump in the snapshot (``sql``, ``dump``...).
    extension: str = "sql"
    #: Found by listing the server (``all``), not named in the config: if it was
    #: dropped before its dump started, it is skipped with a warning, not a failure.
    listed: bool = False


@attrs.frozen(kw_only=True)
class DumpContext:
    """What a dump source gets to plan and run its commands."""

    #: The environment every tool starts from: inherited, minus restic credentials.
    env: Mapping[str, str]
    #: Relative paths (``password_file``, a SQLite ``path``) resolve against it.
    config_dir: Path = attrs.field(factory=Path.cwd)
    #: In a dry run nothing may be contacted: :meth:`DumpSource.targets` returns
    #: what it can without connecting (``all`` stays one placeholder target).
    dry_run: bool = False
    #: Set when resticm is interrupted.
    cancel: threading.Event = attrs.field(factory=threading.Event)

    def resolve_path(self, path: str) -> Path:
        expanded = Path(os.path.expanduser(path))
        return expanded if expanded.is_absolute() else self.config_dir / expanded

    def run(
        self, command: Command, *, timeout: float | None = 300.0, stdin: int | None = None
    ) -> ProcessResult:
        """Run a short helper command (list databases, create one) and capture its output."""
        return run_process(
            command.argv,
            env={**self.env, **command.env},
            timeout=timeout,
            cancel=self.cancel,
            kill_grace=DUMP_KILL_GRACE,
            tail_lines=200,
            head_lines=200,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
        )


@attrs.frozen(kw_only=True)
class DumpSource:
    """Base class of dump sources (``dumps[]`` entries). Subclasses set :attr:`kind`.

    Fields common to every source; subclasses add their connection keys.
    """

    #: The ``type:`` this class handles. Unique across plugins.
    kind: ClassVar[str] = ""
    #: Other ``type:`` spellings (``mysql`` for ``mariadb``).
    aliases: ClassVar[tuple[str, ...]] = ()

    #: The label in tags, snapshot paths and ``resticm dumps`` names; default: the type.
    #: Two entries of the same type need different names.
    name: str = ""
    #: Seconds one database's dump may run (``2h``); default 6 hours.
    timeout: float | None = None

    @property
    def label(self) -> str:
        return self.name or self.kind

    def describe(self) -> str:
        return f"{self.kind} dump {self.label!r}"

    def secrets(self) -> list[str]:
        """Values to redact wherever they could appear: what
        :func:`~resticm_core.secrets.find_secrets` finds in the source's keys (an
        inline ``password``, secret-named ``env`` variables). A subclass with more
        secret keys extends this list."""
        return [v for v in secret_values(self) if len(v) >= MIN_SECRET_LENGTH]

    def check(self, ctx: DumpContext) -> list[str]:
        """Problems found without connecting (tool not installed, password file missing)."""
        return []

    def targets(self, ctx: DumpContext) -> Sequence[DumpTarget]:
        """The databases to dump now, each with its dump command.

        May connect to list the databases (``all``); raises :class:`DumpError` with a
        clear message when that fails (wrong password, server down).
        """
        raise NotImplementedError(f"dump type {self.kind!r} does not implement targets()")

    def is_error_line(self, line: str) -> bool:
        """Does this stderr line of the dump tool mean the dump failed, even with exit 0?"""
        return "error" in line.lower()

    def is_gone(self, database: str, lines: Sequence[str]) -> bool:
        """Do the failed tool's stderr *lines* say *database* does not exist (any more)?

        Asked only for databases found by listing (``all``): one dropped between the
        listing and its dump is skipped with a warning instead of failing the backup.
        """
        return False

    def prepare_restore(
        self, database: str, ctx: DumpContext, *, to_database: str, extension: str
    ) -> None:
        """Make *to_database* ready to load the dump of *database* (create it if missing).

        *extension* is the dump's in the snapshot (``sql``, ``dump``): the format it
        was taken in, which may differ from today's config. Raises
        :class:`DumpError` when it cannot.
        """

    def restore_command(
        self, database: str, ctx: DumpContext, *, to_database: str, extension: str
    ) -> Command:
        """The command that reads the dump of *database* on stdin into *to_database*."""
        raise NotImplementedError(f"dump type {self.kind!r} does not implement restores")

    def effective_timeout(self) -> float:
        return DEFAULT_DUMP_TIMEOUT if self.timeout is None else self.timeout


def dump_name(source: DumpSource, database: str) -> str:
    """The name ``resticm dumps`` uses: ``<label>:<database>``."""
    return f"{source.label}:{database}"


def dump_tag(source: DumpSource, database: str) -> str:
    return f"{TAG_PREFIX}{dump_name(source, database)}"


#: restic 0.18.0 (Debian 13's) cannot back up stdin under a directory name: ``backup
#: --stdin-filename a/b`` fails with "unable to save snapshot: open /a: no such file
#: or directory" (restic issue #5324, fixed in 0.18.1).
STDIN_DIRECTORY_BROKEN = ((0, 18, 0),)


def dump_filename(source: DumpSource, target: DumpTarget, *, flat: bool = False) -> str:
    """The path of the dump inside its snapshot (restic shows it as ``/<this>``).

    ``<label>/<database>.<ext>``; *flat* (for restic 0.18.0) ``<label>:<database>.<ext>``,
    ``:`` as in the dump's name. Restores read the path from the snapshot: both work.
    """
    separator = ":" if flat else "/"
    return f"{source.label}{separator}{target.database}.{target.extension}"


def dump_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment dump tools start from: no restic repository credentials."""
    return scrubbed_environment(environ)


__all__ = [
    "DEFAULT_DUMP_TIMEOUT",
    "TAG_PREFIX",
    "Command",
    "DumpContext",
    "DumpError",
    "DumpSource",
    "DumpTarget",
    "dump_environment",
    "dump_filename",
    "dump_name",
    "dump_tag",
]
