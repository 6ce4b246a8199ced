"""``kind: script``: run one executable file directly (no shell).

    hooks:
      pre_backup: /etc/resticm/hooks/pre-backup.sh          # short form
      post_backup:
        - {kind: script, path: hooks/post.sh, args: ["--quiet"], timeout: 600}
        - kind: script
          path: ~/bin/report                                # ~ is expanded
          env: {REPORT_TO: ops@example.org}                 # added for this hook only

Behaviour (DESIGN §4 and §10):

- ``path`` has ``~`` expanded and, when relative, is taken against the config
  file's directory. It is a path only: arguments go in ``args:``.
- Before running, the file is checked (:func:`~resticm_core.hooks.check_hook_file`):
  it must exist, be executable, and neither it nor any directory on the way to it
  (up to ``/``, through every symlink) nor any symlink followed may be writable by
  group/others (sticky directories excepted) or owned by someone else than root or
  the current user. A problem fails the hook with the fix in the message; a
  *missing* file is a failure too (the Go tool skipped it silently). The checks
  also run in dry runs.
- Once checked, nobody else can change what the path leads to, so the file is
  executed by its configured path (``$0`` stays meaningful), not by descriptor.
- The file is executed directly (``[path, *args]``, no shell) in its own process
  group with the hook environment plus the hook's ``env:``; its output is streamed
  line by line to the output sink, only a bounded tail is kept in memory.
- Exit 0 is success; exit 75 (EX_TEMPFAIL) in ``pre_backup`` is a soft skip of the
  backup and success in any other phase; anything else, a timeout (TERM to the
  group, KILL after the grace period) or an interruption is a failure.

The helpers :func:`run_hook_file`, :func:`dry_run_result`, :func:`not_started_result`
and :func:`report_result` are shared with the ``directory`` and ``python``
executors, so every builtin kind words its messages the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import attrs

from ..hooks import (
    Hook,
    HookContext,
    check_hook_file,
    failed_result,
    preview_result,
    result_from_process,
)
from ..hookspecs import hookimpl
from ..phases import HookResult, Outcome, Phase

#: How many bytes of a hook file are read to explain why it could not be executed.
_SHEBANG_PROBE_BYTES = 256


@attrs.frozen(kw_only=True)
class ScriptHook(Hook):
    kind: ClassVar[str] = "script"

    #: The executable; ``~`` expanded, relative to the config file's directory.
    path: str
    #: Arguments passed to it (the path itself is never split on spaces).
    args: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.path

    def check(self, ctx: HookContext) -> list[str]:
        return check_hook_file(ctx.resolve_path(self.path))

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        name = self.describe()
        problems = self.check(ctx)
        if problems:
            result = failed_result(
                name=name, kind=self.kind, phase=ctx.phase, error="; ".join(problems)
            )
            report_result(ctx, result)
            return [result]
        return [
            run_hook_file(
                ctx.with_env(self.env),
                ctx.resolve_path(self.path),
                self.args,
                name=name,
                kind=self.kind,
                timeout=self.effective_timeout(ctx),
            )
        ]


def run_hook_file(
    ctx: HookContext,
    path: Path,
    args: Sequence[str],
    *,
    name: str,
    kind: str,
    timeout: float,
) -> HookResult:
    """Execute an already checked hook file and turn its end into a :class:`HookResult`.

    *ctx* already carries the hook's own ``env:``. Messages before and after go to
    ``ctx.output``; the hook's output lines are streamed there by ``run_command``.
    """
    if ctx.cancel.is_set():
        # Starting a child only to stop it at once would run its first lines.
        return not_started_result(ctx, name=name, kind=kind)
    ctx.output.message(logging.INFO, f"running hook {name}")
    proc = ctx.run_command([str(path), *args], name=name, timeout=timeout, cwd=None)
    result = result_from_process(
        name=name,
        kind=kind,
        phase=ctx.phase,
        proc=proc,
        skip_allowed=ctx.phase is Phase.PRE_BACKUP,
    )
    if proc.start_error:
        result = attrs.evolve(result, error=result.error + exec_failure_hint(path))
    report_result(ctx, result)
    return result


def exec_failure_hint(path: Path) -> str:
    """Why an existing, executable file could not be executed, as a hint suffix.

    ``execve`` only says "Exec format error" (no ``#!`` line) or, confusingly,
    "No such file or directory" (the interpreter named by ``#!`` is missing, or
    the line ends with a Windows carriage return); reading the first line tells
    which one it was.
    """
    try:
        with path.open("rb") as file:
            first = file.readline(_SHEBANG_PROBE_BYTES)
    except OSError:
        return ""
    if first.startswith(b"\x7fELF"):
        return ""
    if not first.startswith(b"#!"):
        return " (the file has no #! line: add a #!/bin/sh line as its first line)"
    line = first.rstrip(b"\n")
    if line.endswith(b"\r"):
        return f" (its #! line ends with a carriage return; fix: sed -i 's/\\r$//' {path})"
    words = line[2:].split()
    if words and not os.path.exists(words[0]):
        interpreter = os.fsdecode(words[0])
        return f" (the interpreter {interpreter} named in its #! line does not exist)"
    return ""


def not_started_result(ctx: HookContext, *, name: str, kind: str) -> HookResult:
    """The result of a hook not started because resticm was already interrupted."""
    result = failed_result(name=name, kind=kind, phase=ctx.phase, error="interrupted: not started")
    report_result(ctx, result)
    return result


def dry_run_result(ctx: HookContext, *, name: str, kind: str) -> HookResult:
    """The result of a hook a dry run did not execute (its static checks passed)."""
    return preview_result(ctx, name=name, kind=kind)


def report_result(ctx: HookContext, result: HookResult) -> None:
    """Tell the output sink how a hook ended (the one place these messages are worded)."""
    if result.outcome is Outcome.SOFT_SKIP:
        # A soft skip is a decision of the hook, not a problem: INFO, not WARNING.
        ctx.output.message(
            logging.INFO,
            f"hook {result.name} asked to skip the backup (soft skip) after {result.duration:.1f}s",
        )
    elif result.failed:
        ctx.output.message(logging.ERROR, f"hook {result.name} failed: {result.error}")
    elif result.outcome is Outcome.OK:
        ctx.output.message(logging.INFO, f"hook {result.name} finished in {result.duration:.1f}s")


@hookimpl
def resticm_hook_types() -> Iterable[type[Hook]]:
    return [ScriptHook]
