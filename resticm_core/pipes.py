"""Two processes joined by a pipe: the pieces the dump streams and restores share.

:mod:`resticm_core.process` runs one child and reads both of its outputs; a dump
(``pg_dump | restic backup --stdin``) and a restore (``restic dump | psql``) join
two children directly, so the data never passes through Python. What is left for
Python is reading each child's *messages* (stderr) and stopping a child's whole
process group. Both children are started through
:func:`resticm_core.children.guarded_argv`, so they die with resticm as
:func:`~resticm_core.process.run_process`'s children do.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import IO

from .process import OutputTail

#: A message line longer than this is cut (messages, not data, pass through here).
MAX_MESSAGE_BYTES = 4096


class PipeLines:
    """Drains a pipe in a daemon thread: each line into a bounded head/tail, a
    callback, and (when *is_error* says so) a short list of error lines."""

    def __init__(
        self,
        pipe: IO[bytes],
        on_line: Callable[[str], None] | None = None,
        *,
        is_error: Callable[[str], bool] | None = None,
        head: int = 20,
        tail: int = 40,
    ) -> None:
        self.tail = OutputTail(head=head, tail=tail)
        self.error_lines: list[str] = []
        self._on_line = on_line
        self._is_error = is_error
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[bytes]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for raw in pipe:
                line = raw[:MAX_MESSAGE_BYTES].decode("utf-8", "replace").rstrip("\r\n")
                self.tail.add(line)
                is_error = self._is_error
                if is_error is not None and len(self.error_lines) < 20 and is_error(line):
                    self.error_lines.append(line)
                if self._on_line is not None:
                    self._on_line(line)

    def join(self, timeout: float = 5.0) -> list[str]:
        """Wait for the end of the stream (bounded), then the lines kept."""
        self._thread.join(timeout)
        return self.tail.lines()


def last_line(lines: list[str]) -> str:
    """The last non-empty line (a failed tool's reason), cut for one-line messages."""
    said = [line.strip() for line in lines if line.strip()]
    return said[-1][:300] if said else ""
