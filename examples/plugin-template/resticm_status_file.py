"""resticm-status-file: a hook kind that writes the run's outcome as JSON.

    hooks:
      finally:
        - kind: status-file
          path: /var/lib/node_exporter/resticm.json     # or relative to the config
          mode: 0o644                                   # default 0o600

Put it in ``finally`` (every path) or ``on_success``/``on_error``. The file is
replaced atomically (written beside it, then renamed), so a monitoring agent
never reads half of it::

    {"phase": "finally", "backup_status": "success", "snapshot_id": "1a2b3c4d",
     "host": "web1", "command": "backup", "error": "", "written_at": 1767225600.0}

A template: copy the directory, rename the distribution, the module, the entry
point and the kind, and replace the fields and ``check()``/``run()``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import ClassVar

import attrs

from resticm_core import Hook, HookContext, HookResult, Outcome, hookimpl

__version__ = "0.1.0"


@attrs.frozen(kw_only=True)
class StatusFileHook(Hook):
    """``kind: status-file``. The attrs fields are the config keys, validated at load.

    ``timeout`` and ``env`` are inherited from :class:`Hook`.
    """

    kind: ClassVar[str] = "status-file"

    #: Where to write; ``~`` expanded, relative to the config file's directory.
    path: str
    #: Permissions of the file.
    mode: int = 0o600

    def describe(self) -> str:
        return f"status-file:{self.path}"

    def check(self, ctx: HookContext) -> list[str]:
        # Static checks only, never a side effect: `resticm config validate` and
        # dry runs call it too. Each problem says how to fix it.
        directory = ctx.resolve_path(self.path).parent
        if not directory.is_dir():
            return [
                f"status-file: directory {directory} does not exist (fix: mkdir -p {directory})"
            ]
        if not os.access(directory, os.W_OK | os.X_OK):
            return [f"status-file: directory {directory} is not writable"]
        return []

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        ctx = ctx.with_env(self.env)  # the entry's own `env:`, as the builtin kinds do
        problems = self.check(ctx)
        if problems:
            return [self._result(ctx, Outcome.FAILED, error="; ".join(problems))]
        if ctx.dry_run:
            ctx.output.message(logging.INFO, f"[dry-run] would write {self.path}")
            return [self._result(ctx, Outcome.SKIPPED)]
        if ctx.cancel.is_set():  # resticm was interrupted twice: do nothing new
            return [self._result(ctx, Outcome.FAILED, error="interrupted: not started")]
        started = time.monotonic()
        status = {
            "phase": str(ctx.phase),
            "backup_status": ctx.env.get("BACKUP_STATUS", ""),
            "snapshot_id": ctx.env.get("RESTICM_SNAPSHOT_ID", ""),
            "host": ctx.env.get("RESTICM_HOST", ""),
            "command": ctx.command,
            "error": ctx.env.get("ERROR", "").split("\n", 1)[0],
            "written_at": time.time(),
        }
        target = ctx.resolve_path(self.path)
        temporary = target.with_name(f".{target.name}.{os.getpid()}")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.mode)
            with os.fdopen(fd, "w") as file:
                json.dump(status, file)
                file.write("\n")
            os.chmod(temporary, self.mode)  # the umask may have removed bits
            os.replace(temporary, target)
        except OSError as exc:
            # Expected failures are results, never exceptions.
            return [
                self._result(ctx, Outcome.FAILED, error=f"cannot write {target}: {exc.strerror}")
            ]
        ctx.output.hook_line(self.describe(), f"{status['backup_status'] or 'status'} -> {target}")
        return [self._result(ctx, Outcome.OK, duration=time.monotonic() - started)]

    def _result(
        self, ctx: HookContext, outcome: Outcome, *, error: str = "", duration: float = 0.0
    ) -> HookResult:
        if error:
            ctx.output.message(logging.ERROR, f"hook {self.describe()} failed: {error}")
        return HookResult(
            name=self.describe(),
            kind=self.kind,
            phase=ctx.phase,
            outcome=outcome,
            error=error,
            duration=duration,
        )


@hookimpl
def resticm_hook_types() -> Iterable[type[Hook]]:
    """The plugin hook resticm calls to learn the kinds this plugin provides."""
    return [StatusFileHook]
