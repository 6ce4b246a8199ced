"""``kind: directory``: run-parts for a ``pre-backup.d`` style directory.

    hooks:
      pre_backup: /etc/resticm/hooks/pre-backup.d/          # short form (a directory)
      post_backup:
        - {kind: directory, path: hooks/post-backup.d, continue_on_error: true}
        - kind: directory
          path: ~/backup/on-success.d
          timeout: 300                                      # per module
          env: {DUMP_DIR: /var/backups/databases}           # seen by every module

The orchestrator script of the hooks guide, built in (DESIGN §4, §10):

- The entries of the directory run one after the other, sorted by name in byte
  (C-locale) order whatever the locale: ``10-a``, ``2-b``, ``B``, ``a``.
- There is no name pattern (unlike Debian's run-parts, ``*.sh`` runs). Skipped,
  and never a failure: hidden files (``.name``), editor and package leftovers
  (:data:`LEFTOVER_PATTERNS`, with a warning), subdirectories, and regular files
  that are not executable (with a warning saying how to enable them).
- Every module gets the checks of a script hook (a module writable by others or
  a dangling symlink fails) and runs like one: no shell, own process group, the
  ``timeout`` applies to each module. Each module gives one result named
  ``<path>/<module>``.
- The first failing module stops the directory, unless ``continue_on_error``
  (the phase fails all the same). A module exiting 75 in ``pre_backup`` skips the
  whole backup softly: the modules after it do not run.
- The directory itself must exist and must not be writable by group/others or
  owned by another user — even with the sticky bit, since anyone could *add* a
  module that would then run. Every directory and symlink on the way to it is
  checked as for a script hook. An empty directory runs nothing and succeeds.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import attrs

from ..hooks import (
    Hook,
    HookContext,
    check_hook_file,
    failed_result,
    path_problems,
    trusted_owners,
)
from ..hookspecs import hookimpl
from ..phases import HookResult, Outcome
from ..trusted_path import open_trusted
from .script import dry_run_result, report_result, run_hook_file

#: Editor and package-manager leftovers that never run (DESIGN §10 "Directory runner").
LEFTOVER_PATTERNS = ("*~", "*.dpkg-*", "*.rpm*", "*.swp", "*.bak")


@attrs.frozen
class _Skipped:
    """A directory entry that does not run, and the message saying so."""

    level: int
    text: str


@attrs.frozen
class _Plan:
    """What a directory holds: the modules to run, in order, and what is skipped."""

    modules: tuple[Path, ...]
    skipped: tuple[_Skipped, ...]


@attrs.frozen(kw_only=True)
class DirectoryHook(Hook):
    kind: ClassVar[str] = "directory"

    #: The directory; ``~`` expanded, relative to the config file's directory.
    path: str
    #: Run the remaining modules after one failed (the phase still fails).
    continue_on_error: bool = False

    def describe(self) -> str:
        return self.path

    def check(self, ctx: HookContext) -> list[str]:
        directory = ctx.resolve_path(self.path)
        problems = directory_problems(directory)
        if problems:
            # Module checks would repeat the directory's own problem for each module.
            return problems
        try:
            plan = plan_directory(directory)
        except OSError as exc:
            return [f"cannot list hook directory {directory}: {exc.strerror}"]
        return [problem for module in plan.modules for problem in check_hook_file(module)]

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        directory = ctx.resolve_path(self.path)
        problems = directory_problems(directory)
        plan = _Plan(modules=(), skipped=())
        if not problems:
            try:
                plan = plan_directory(directory)
            except OSError as exc:
                problems = [f"cannot list hook directory {directory}: {exc.strerror}"]
        if problems:
            result = failed_result(
                name=self.describe(),
                kind=self.kind,
                phase=ctx.phase,
                error="; ".join(problems),
            )
            report_result(ctx, result)
            return [result]
        for skipped in plan.skipped:
            ctx.output.message(skipped.level, skipped.text)
        if not plan.modules:
            ctx.output.message(logging.INFO, f"hook directory {directory} has nothing to run")
            return []
        return self._run_modules(ctx.with_env(self.env), plan.modules)

    def _run_modules(self, ctx: HookContext, modules: Sequence[Path]) -> list[HookResult]:
        results: list[HookResult] = []
        for index, module in enumerate(modules):
            result = self._run_module(ctx, module)
            results.append(result)
            if self._stops_here(ctx, result):
                self._report_not_run(ctx, result, modules[index + 1 :])
                break
        return results

    def _run_module(self, ctx: HookContext, module: Path) -> HookResult:
        name = self.module_name(module.name)
        problems = check_hook_file(module)
        if problems:
            result = failed_result(
                name=name, kind=self.kind, phase=ctx.phase, error="; ".join(problems)
            )
            report_result(ctx, result)
            return result
        if ctx.dry_run:
            return dry_run_result(ctx, name=name, kind=self.kind)
        return run_hook_file(
            ctx, module, (), name=name, kind=self.kind, timeout=self.effective_timeout(ctx)
        )

    def _stops_here(self, ctx: HookContext, result: HookResult) -> bool:
        if result.outcome is Outcome.SOFT_SKIP:
            # The backup is skipped as a whole; later modules prepare a backup that won't run.
            return True
        # After an interruption every further module would be stopped at once anyway.
        return result.failed and (not self.continue_on_error or ctx.cancel.is_set())

    def _report_not_run(
        self, ctx: HookContext, result: HookResult, remaining: Sequence[Path]
    ) -> None:
        if not remaining:
            return
        why = "skips the backup" if result.outcome is Outcome.SOFT_SKIP else "failed"
        names = ", ".join(module.name for module in remaining)
        ctx.output.message(
            logging.WARNING if result.failed else logging.INFO,
            f"hook {result.name} {why}; not run: {names}",
        )

    def module_name(self, module: str) -> str:
        """The result name of one module: ``<path>/<module>`` as configured."""
        base = self.path.rstrip("/")
        return f"{base}/{module}"


def directory_problems(directory: Path) -> list[str]:
    """Why *directory* cannot be used as a hook directory (empty list: it can).

    Beyond its own mode and owner, everything on the way to it is checked as for a
    hook file (:func:`~resticm_core.hooks.check_hook_file`): every directory up to
    ``/``, of the resolved path and of the path as written, and every symlink.
    """
    try:
        with open_trusted(directory, owners=trusted_owners()) as opened:
            st, unsafe = opened.st, opened.unsafe
    except FileNotFoundError:
        return [f"hook directory {directory} does not exist"]
    except OSError as exc:
        return [f"cannot access hook directory {directory}: {exc.strerror}"]
    if not stat.S_ISDIR(st.st_mode):
        return [f"hook directory {directory} is not a directory"]
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    problems = []
    # No sticky-bit exception here (unlike a script's parent directory): whoever
    # can create a file in it adds a module that runs as us.
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(
            f"hook directory {directory} is writable by group or others, so anyone could "
            f"add a module that runs as {who} (fix: chmod go-w {directory})"
        )
    if st.st_uid not in (0, os.geteuid()):
        problems.append(
            f"hook directory {directory} is owned by uid {st.st_uid}, neither root nor "
            f"the current user (fix: chown {who} {directory})"
        )
    return problems + path_problems(unsafe, subject=f"hook directory {directory}", parent=None)


def plan_directory(directory: Path) -> _Plan:
    """Sort the entries of *directory* into modules to run and skipped entries.

    Raises :class:`OSError` when the directory cannot be listed.
    """
    modules: list[Path] = []
    skipped: list[_Skipped] = []
    # Byte order, as run-parts in the C locale: independent of the user's locale.
    for name in sorted(os.listdir(directory), key=os.fsencode):
        path = directory / name
        reason = _skip_reason(path)
        if reason is None:
            modules.append(path)
        else:
            skipped.append(reason)
    return _Plan(modules=tuple(modules), skipped=tuple(skipped))


def _skip_reason(path: Path) -> _Skipped | None:
    """Why the entry at *path* does not run, or None when it is a module.

    Entries that cannot be stat'ed (a dangling symlink) are modules: the module
    checks then fail them, as a missing hook file fails a script hook.
    """
    name = path.name
    if name.startswith("."):
        return _Skipped(logging.DEBUG, f"skipping hidden file {path}")
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in LEFTOVER_PATTERNS):
        return _Skipped(
            logging.WARNING,
            f"skipping {path}: looks like an editor or package leftover "
            f"({', '.join(LEFTOVER_PATTERNS)} never run)",
        )
    try:
        st = path.stat()
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return _Skipped(logging.INFO, f"skipping subdirectory {path}")
    if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o111:
        return _Skipped(
            logging.WARNING,
            f"skipping {path}: not executable (to run it: chmod u+x {path})",
        )
    return None


@hookimpl
def resticm_hook_types() -> Iterable[type[Hook]]:
    return [DirectoryHook]
