"""Public test doubles for the engine and for plugin authors.

Use them for fast unit tests of workflow logic; integration tests still run the
real ``restic`` (see ``tests/`` of this project for both kinds side by side)::

    from resticm_core import config_from_dict, run
    from resticm_core.testing import FakeRestic, RecordingSink

    fake = FakeRestic()
    fake.respond("backup", exit_code=3, stdout=[FakeRestic.summary_line("1a2b3c4d")])
    report = run(config, "backup", runner=fake, output=RecordingSink())
    assert report.exit_code == 3
    assert fake.commands() == ["cat", "backup"]
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .config import Repository
from .errors import ResticNotFoundError
from .restic import ResticErrorKind, ResticResult

__all__ = ["FakeCall", "FakeRestic", "RecordingSink"]


@attrs.frozen(kw_only=True)
class FakeCall:
    """One restic invocation the fake received."""

    args: tuple[str, ...]
    repository: str
    extra_env: Mapping[str, str] = attrs.field(factory=dict)
    #: What restic read on stdin (``backup --stdin`` of a dump), the first MiB of it.
    stdin_data: bytes | None = None

    @property
    def command(self) -> str:
        return next((a for a in self.args if not a.startswith("-")), "")


@attrs.frozen
class _Response:
    exit_code: int
    stdout: tuple[str, ...]
    stderr: tuple[str, ...]
    repository: str | None


class FakeRestic:
    """A :class:`resticm_core.restic.ResticRunner` that records calls and answers from rules.

    Every command succeeds with no output unless :meth:`respond` says otherwise.
    Responses for a command are used in order; the last one repeats.
    """

    def __init__(
        self, version: tuple[int, int, int] = (0, 17, 3), *, installed: bool = True
    ) -> None:
        self._version = version
        self._installed = installed
        self._responses: dict[str, list[_Response]] = {}
        self._lock = threading.Lock()
        self.calls: list[FakeCall] = []

    def respond(
        self,
        command: str,
        *,
        exit_code: int = 0,
        stdout: Sequence[str] = (),
        stderr: Sequence[str] = (),
        repository: str | None = None,
    ) -> None:
        """Answer the next *command* (``backup``, ``forget``...) with this exit code and output.

        :param repository: only for this repository name (``primary``, a backend).
        """
        self._responses.setdefault(command, []).append(
            _Response(exit_code, tuple(stdout), tuple(stderr), repository)
        )

    @staticmethod
    def summary_line(snapshot_id: str = "1a2b3c4d", **figures: Any) -> str:
        """A ``restic backup --json`` summary line."""
        return json.dumps(
            {
                "message_type": "summary",
                "snapshot_id": snapshot_id,
                "files_new": 1,
                "data_added": 100,
                **figures,
            }
        )

    def commands(self) -> list[str]:
        """The restic subcommands run so far, in order."""
        return [call.command for call in self.calls]

    def _next(self, command: str, repository: str) -> _Response:
        candidates = [
            r for r in self._responses.get(command, []) if r.repository in (None, repository)
        ]
        if not candidates:
            return _Response(0, (), (), None)
        chosen = candidates[0]
        if len(candidates) > 1:
            self._responses[command].remove(chosen)
        return chosen

    def execute(
        self,
        args: Sequence[str],
        repository: Repository,
        *,
        timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
        capture_stdout: bool = False,
        cancel: threading.Event | None = None,
        extra_env: Mapping[str, str] | None = None,
        stdin: int | None = None,
    ) -> ResticResult:
        call = FakeCall(
            args=tuple(args),
            repository=repository.name,
            extra_env=dict(extra_env or {}),
            stdin_data=None if stdin is None else _drain(stdin),
        )
        with self._lock:
            self.calls.append(call)
            response = self._next(call.command, repository.name)
        if not self._installed:
            return ResticResult(
                args=tuple(args),
                repository=repository.name,
                exit_code=None,
                error_kind=ResticErrorKind.NOT_INSTALLED,
            )
        for line in response.stdout:
            if on_stdout is not None:
                on_stdout(line)
        return ResticResult.from_exit(
            args,
            repository.name,
            response.exit_code,
            stderr=response.stderr,
            stdout="\n".join(response.stdout) if capture_stdout else "",
        )

    def version(self) -> tuple[int, int, int]:
        if not self._installed:
            raise ResticNotFoundError(
                "restic is not installed or not on PATH (install the 'restic' package)"
            )
        return self._version


def _drain(fd: int, keep: int = 1 << 20) -> bytes:
    """Read a stream to its end as restic would, keeping its first *keep* bytes."""
    kept = bytearray()
    while chunk := os.read(fd, 65536):
        if len(kept) < keep:
            kept += chunk[: keep - len(kept)]
    return bytes(kept)


class RecordingSink:
    """An :class:`resticm_core.hooks.OutputSink` that keeps every line, for assertions."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.messages: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def hook_line(self, hook: str, line: str) -> None:
        with self._lock:
            self.lines.append((hook, line))

    def message(self, level: int, text: str) -> None:
        with self._lock:
            self.messages.append((level, text))

    def texts(self, level: int | None = None) -> list[str]:
        """The messages of *level* (every message when None)."""
        return [text for lvl, text in self.messages if level is None or lvl == level]
