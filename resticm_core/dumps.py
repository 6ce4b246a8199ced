"""Database dumps streamed into restic: the ``dumps:`` config entries and their engine.

A dump source is a frozen attrs class contributed by a plugin through
``resticm_dump_types`` (the ``resticm-dumps`` distribution provides ``postgresql``,
``mariadb``/``mysql`` and ``sqlite``). The plugin only knows its tool: which
command prints a dump on stdout, which command reads it back on stdin, which
stderr lines are errors. This module does the rest, the same way for every tool:

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

import contextlib
import logging
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import attrs

from .children import guarded_argv
from .errors import ResticmError
from .phases import BackupSummary
from .pipes import PipeLines, last_line, stop_group
from .process import ProcessResult, run_process
from .secrets import MIN_SECRET_LENGTH, secret_values

if TYPE_CHECKING:
    from .config import Repository
    from .restic import Restic

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
    from .restic import scrubbed_environment

    return scrubbed_environment(environ)


# -- streaming one dump into restic ----------------------------------------------------------


@attrs.frozen(kw_only=True)
class DumpOutcome:
    """What happened to one dump."""

    name: str
    ok: bool
    error: str = ""
    #: The restic backup's summary (snapshot id, bytes) when restic finished.
    summary: BackupSummary | None = None
    exit_code: int | None = None
    duration: float = 0.0
    #: The dump tool's stderr tail (head and tail, bounded).
    stderr_tail: tuple[str, ...] = ()
    #: A listed database that no longer exists: skipped, not failed.
    gone: bool = False


class _DumpProcess:
    """The dump tool's process: stdout into a pipe for restic, stderr watched."""

    def __init__(
        self,
        source: DumpSource,
        target: DumpTarget,
        env: Mapping[str, str],
        write_end: int,
        on_line: Callable[[str], None] | None,
    ) -> None:
        self.source = source
        self.target = target
        self.timed_out = False
        self.cancelled = False
        tool_env = {**env, **target.command.env}
        self.proc = subprocess.Popen(
            guarded_argv(target.command.argv, tool_env),  # dies with resticm
            env=tool_env,
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        assert self.proc.stderr is not None
        self.stderr = PipeLines(
            self.proc.stderr, on_line, is_error=source.is_error_line, head=20, tail=30
        )

    def watch(self, timeout: float, cancel: threading.Event) -> threading.Thread:
        """Stop the dump when it runs past *timeout* or resticm is interrupted."""

        def watchdog() -> None:
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None:
                if cancel.is_set():
                    self.cancelled = True
                    self.stop()
                    return
                if time.monotonic() >= deadline:
                    self.timed_out = True
                    self.stop()
                    return
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=0.2)

        thread = threading.Thread(target=watchdog, daemon=True)
        thread.start()
        return thread

    def stop(self, grace: float = DUMP_KILL_GRACE) -> None:
        stop_group(self.proc, grace)

    def finish(self) -> tuple[int, list[str]]:
        """The tool's exit code and its stderr lines (head and tail)."""
        returncode = self.proc.wait()
        return returncode, self.stderr.join()

    def failure(self, returncode: int, lines: list[str]) -> str:
        """Why the dump is not complete, or "" when it is."""
        program = self.target.command.program
        if self.timed_out:
            return f"{program} timed out after {self.source.effective_timeout():.0f}s"
        if self.cancelled:
            return f"{program} was stopped: resticm was interrupted"
        errors = self.stderr.error_lines
        said = last_line(errors or lines)
        detail = f": {said}" if said else ""
        if returncode < 0:
            return f"{program} was killed by signal {-returncode}{detail}"
        if returncode != 0:
            return f"{program} failed with exit code {returncode}{detail}"
        if errors:
            return f"{program} reported an error (exit code 0){detail}"
        return ""


@attrs.frozen(kw_only=True)
class StreamRequest:
    """Where and how one dump is backed up."""

    source: DumpSource
    target: DumpTarget
    #: Tags besides ``dump:<label>:<database>`` (the config's ``default_tags``, ``-t``).
    tags: tuple[str, ...] = ()
    host: str | None = None


def backup_stdin_args(request: StreamRequest, *, flat: bool = False) -> list[str]:
    """``restic backup --stdin`` for one dump (*flat*: see :func:`dump_filename`)."""
    args = [
        "backup",
        "--json",
        "--stdin",
        "--stdin-filename",
        dump_filename(request.source, request.target, flat=flat),
        "--tag",
        dump_tag(request.source, request.target.database),
    ]
    for tag in request.tags:
        args += ["--tag", tag]
    if request.host:
        args += ["--host", request.host]
    return args


def _flat_names(restic: Restic) -> bool:
    """Must this restic get a ``--stdin-filename`` without a directory?"""
    try:
        return restic.version() in STDIN_DIRECTORY_BROKEN
    except ResticmError:
        return False  # restic missing or odd: its own run says so


def stream_dump(
    restic: Restic,
    repository: Repository,
    request: StreamRequest,
    *,
    env: Mapping[str, str],
    cancel: threading.Event | None = None,
    on_line: Callable[[str], None] | None = None,
) -> DumpOutcome:
    """Pipe one dump into ``restic backup --stdin`` and decide whether it is complete.

    :param restic: a :class:`resticm_core.restic.Restic`.
    :param repository: the :class:`resticm_core.config.Repository` to back up to.
    :param env: the environment of the dump tool (see :func:`dump_environment`).
    :param on_line: called with each stderr line of the dump tool.
    """
    from .restic import BackupParser, ResticErrorKind

    source, target = request.source, request.target
    name = dump_name(source, target.database)
    started = time.monotonic()
    cancel = cancel or threading.Event()
    read_end, write_end = os.pipe()
    try:
        dump = _DumpProcess(source, target, env, write_end, on_line)
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        reason = exc.strerror or str(exc)
        return DumpOutcome(
            name=name,
            ok=False,
            error=f"cannot run {target.command.program}: {reason}",
            duration=time.monotonic() - started,
        )
    # Only the dump tool may hold the write end: restic sees EOF when it exits.
    os.close(write_end)
    watchdog = dump.watch(source.effective_timeout(), cancel)
    parser = BackupParser(None)
    try:
        result = restic.run(
            backup_stdin_args(request, flat=_flat_names(restic)),
            repository,
            on_stdout=parser,
            stdin=read_end,
        )
    finally:
        # Closing the read end makes a dump still writing fail with EPIPE instead of
        # blocking forever when restic stopped early.
        os.close(read_end)
    if cancel.is_set():
        dump.cancelled = True  # whoever noticed first, the cause is the interrupt
    if not result.ok and dump.proc.poll() is None:
        dump.stop(grace=2.0)
    returncode, stderr_lines = dump.finish()
    watchdog.join(1.0)
    duration = time.monotonic() - started
    summary = parser.summary
    problem = dump.failure(returncode, stderr_lines)
    if not problem and summary is not None and summary.total_bytes_processed == 0:
        problem = f"{target.command.program} produced no output"
    stderr_tail = tuple(stderr_lines)
    if problem:
        # The dump tool's failure is the cause; restic reading a cut stream (exit 3,
        # "snapshot is empty") is only its consequence.
        error = problem
        if not (result.ok or dump.cancelled or result.error_kind is ResticErrorKind.PARTIAL):
            error += f"; restic: {result.message}"
    elif not result.ok:
        error = result.message
    else:
        error = ""
    if error:
        removal = _remove_snapshot(restic, repository, summary) if summary else ""
        gone = bool(problem) and target.listed and source.is_gone(target.database, stderr_lines)
        return DumpOutcome(
            name=name,
            ok=False,
            error=error + removal,
            summary=summary,
            exit_code=returncode if problem else result.exit_code,
            duration=duration,
            stderr_tail=stderr_tail,
            gone=gone,
        )
    return DumpOutcome(
        name=name,
        ok=True,
        summary=summary,
        exit_code=0,
        duration=duration,
        stderr_tail=stderr_tail,
    )


def _remove_snapshot(restic: Restic, repository: Repository, summary: BackupSummary) -> str:
    """Forget the snapshot restic wrote from an incomplete dump; say what happened."""
    snapshot = summary.snapshot_id
    if not snapshot:
        return ""
    result = restic.run(["forget", snapshot], repository)
    if result.ok:
        log.info("removed snapshot %s: it holds an incomplete dump", snapshot)
        return f"; its snapshot {snapshot} was removed"
    return (
        f"; its snapshot {snapshot} holds an INCOMPLETE dump and could not be removed "
        f"({result.message}): remove it with 'restic forget {snapshot}'"
    )


__all__ = [
    "DEFAULT_DUMP_TIMEOUT",
    "TAG_PREFIX",
    "Command",
    "DumpContext",
    "DumpError",
    "DumpOutcome",
    "DumpSource",
    "DumpTarget",
    "StreamRequest",
    "backup_stdin_args",
    "dump_environment",
    "dump_filename",
    "dump_name",
    "dump_tag",
    "stream_dump",
]
