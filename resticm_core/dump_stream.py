"""The dump engine: one dump tool's stdout streamed into ``restic backup --stdin``.

How a dump is judged and what happens to a cut snapshot is described in
:mod:`resticm_core.dumps` (the contract a dump plugin implements).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import attrs

from .children import guarded_argv
from .dumps import (
    DUMP_KILL_GRACE,
    STDIN_DIRECTORY_BROKEN,
    DumpSource,
    DumpTarget,
    dump_filename,
    dump_name,
    dump_tag,
)
from .errors import ResticmError
from .phases import BackupSummary
from .pipes import PipeLines, last_line
from .process import stop_group
from .restic import BackupParser, ResticErrorKind

if TYPE_CHECKING:
    from .config import Repository
    from .restic import Restic

log = logging.getLogger("resticm_core.dumps")


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
