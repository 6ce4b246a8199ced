"""``kind: verify-files``: fail the phase unless the dumps are really there.

The hooks guide's ``backup_and_verify`` function as a recipe, configured without
a script::

    hooks:
      pre_backup:
        - /etc/resticm/hooks/pre-backup.d/                  # makes the dumps
        - kind: verify-files
          paths:
            - /var/backups/databases/mariadb.sql.gz
            - /var/backups/databases/postgres-*.sql.gz      # a glob
          min_size: 1M          # bytes, or with a unit: 512K, 1M, 2G (binary: 1K = 1024)
          max_age: 2h           # a duration: the file must be younger
          newest: true          # for a glob, check only its newest match

``$VAR`` and ``${VAR}`` in ``paths`` are taken from the hook environment, so the
dump directory can be named once, in ``hooks.environment``::

          paths: ["${BACKUP_DIR}/mariadb.sql.gz"]

Every entry of ``paths`` must name at least one regular file (a glob: at least
one match) and every file checked must be non-empty, at least ``min_size`` bytes
and, when ``max_age`` is set, modified less than ``max_age`` ago. Every problem is
reported, one line per file, and the hook fails; in ``pre_backup`` that skips the
backup. Files are checked when the hook runs, never by ``check()`` (the dumps
do not exist before the hooks that make them ran). A dry run checks nothing.
Relative paths are taken against the config file's directory.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs

from ..hooks import Hook, HookContext
from ..hookspecs import hookimpl
from ..phases import HookResult, Outcome
from .script import not_started_result, report_result

_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)
_VARIABLE_RE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(value: object) -> int:
    """Bytes from ``1024``, ``"512K"``, ``"1M"``, ``"1.5GiB"`` (binary units, as restic's).

    :raises ValueError: anything else; the message names the key, for the config error.
    """
    if isinstance(value, bool):
        raise ValueError(f"min_size: expected bytes or a size like 10K, 1M, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        match = _SIZE_RE.fullmatch(value)
        if match:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    raise ValueError(f"min_size: expected bytes or a size like 10K, 1M, 2G, got {value!r}")


def _not_empty(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not value:
        raise ValueError("paths: list at least one file or glob to verify")


def human_size(size: float) -> str:
    """``1536`` -> ``1.5 KiB``; exact bytes below 1 KiB."""
    if size < 1024:
        return f"{int(size)} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"


def human_age(seconds: float) -> str:
    """``5400`` -> ``1h30m``; ``42`` -> ``42s``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@attrs.frozen(kw_only=True)
class VerifyFilesHook(Hook):
    kind: ClassVar[str] = "verify-files"

    #: Files or globs (``*``, ``?``, ``[...]``); relative to the config file's directory.
    paths: tuple[str, ...] = attrs.field(validator=_not_empty)
    #: Minimum size in bytes (``512K``, ``1M`` accepted). The default 1 means "not empty".
    min_size: Any = attrs.field(default=1, converter=parse_size)
    #: Maximum age (seconds or ``90m``, ``2h``); None: any age.
    max_age: float | None = attrs.field(default=None, metadata={"duration": True})
    #: For a glob, check only its newest match (timestamped dumps, older ones kept).
    newest: bool = False

    def describe(self) -> str:
        more = ",..." if len(self.paths) > 1 else ""
        return f"verify-files:{self.paths[0]}{more}"

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        ctx = ctx.with_env(self.env)
        name = self.describe()
        if ctx.cancel.is_set():
            return [not_started_result(ctx, name=name, kind=self.kind)]
        started = time.monotonic()
        ctx.output.message(logging.INFO, f"running hook {name}")
        now = time.time()
        problems: list[str] = []
        for pattern in self.paths:
            files, problem = self._files(ctx, pattern)
            if problem:
                problems.append(problem)
            for path in files:
                problem = self._verify(path, now)
                if problem:
                    problems.append(problem)
                else:
                    st = path.stat()
                    ctx.output.hook_line(
                        name,
                        f"ok: {path} ({human_size(st.st_size)}, "
                        f"modified {human_age(now - st.st_mtime)} ago)",
                    )
        for problem in problems:
            ctx.output.hook_line(name, f"ERROR: {problem}")
        if problems:
            error = "; ".join(problems)
            result = HookResult(
                name=name,
                kind=self.kind,
                phase=ctx.phase,
                outcome=Outcome.FAILED,
                duration=time.monotonic() - started,
                error=error,
                output_tail=tuple(f"ERROR: {p}" for p in problems[-20:]),
            )
        else:
            result = HookResult(
                name=name,
                kind=self.kind,
                phase=ctx.phase,
                outcome=Outcome.OK,
                duration=time.monotonic() - started,
            )
        report_result(ctx, result)
        return [result]

    def _files(self, ctx: HookContext, pattern: str) -> tuple[list[Path], str]:
        """The files *pattern* names, or why there are none."""
        missing = [a or b for a, b in _VARIABLE_RE.findall(pattern) if (a or b) not in ctx.env]
        if missing:
            return [], f"{pattern}: ${missing[0]} is not set (set it in hooks.environment)"
        expanded = _VARIABLE_RE.sub(lambda m: ctx.env[m.group(1) or m.group(2)], pattern)
        target = ctx.resolve_path(expanded)
        if not glob.has_magic(str(target)):
            if not os.path.lexists(target):
                return [], f"{target} does not exist"
            return [target], ""
        matches = [Path(p) for p in sorted(glob.glob(str(target)))]
        files = [p for p in matches if p.is_file()]
        if not files:
            return [], f"no file matches {target}"
        if self.newest:
            files = [max(files, key=lambda p: p.stat().st_mtime)]
        return files, ""

    def _verify(self, path: Path, now: float) -> str:
        """Why *path* is not a good dump, or ``""``."""
        try:
            st = path.stat()
        except OSError as exc:
            return f"{path}: cannot read it: {exc.strerror}"
        if not stat.S_ISREG(st.st_mode):
            return f"{path} is not a regular file"
        if st.st_size == 0:
            return f"{path} is empty"
        if st.st_size < self.min_size:
            return (
                f"{path} is too small: {human_size(st.st_size)}, "
                f"expected at least {human_size(self.min_size)}"
            )
        age = now - st.st_mtime
        if self.max_age is not None and age > self.max_age:
            return (
                f"{path} is too old: modified {human_age(age)} ago, "
                f"expected less than {human_age(self.max_age)}"
            )
        return ""


@hookimpl
def resticm_hook_types() -> Iterable[type[Hook]]:
    return [VerifyFilesHook]
