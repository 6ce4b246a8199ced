"""What will fail every night, found before the first night.

``resticm config validate`` and ``resticm schedule install`` refuse (exit 2) a
config that loads but cannot run: a hook whose file is missing, not executable
or unsafe (its own ``check()`` says so, and the same check fails the hook at run
time), a dump whose tool or password is missing, a ``password_file`` that does
not exist, a ``password_command`` whose program cannot be found, a copy backend
with no password. Warnings are what the run survives (a missing
``exclude_file``: the backup is bigger, nothing is lost; a backend that no run
copies to).

Every other command logs the same findings as warnings, once, and goes on: the
run itself fails at the step concerned, with the same message.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping

import attrs

from .config import Config, Repository
from .hooks import HookContext
from .phases import Phase


@attrs.frozen
class ConfigCheck:
    """The findings of :func:`check_config`, each a ``key.path: message`` line."""

    #: What makes every run fail (validate exits 2).
    errors: tuple[str, ...] = ()
    #: What a run survives.
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def check_config(config: Config, *, environ: Mapping[str, str]) -> ConfigCheck:
    """Run every static check a run would run, without running anything."""
    errors = [*hook_problems(config), *dump_problems(config)]
    errors += _extra_args_problems(config, environ)
    warnings: list[str] = []
    copied = set(config.copy_to_backends)
    for key, repo in _repositories(config):
        found = password_problems(repo, key, environ)
        # A backend no run writes to (only `backend use` reaches it) cannot fail a night.
        if key == "" or repo.name in copied:
            errors += found
        else:
            warnings += found
    for name in config.copy_to_backends:
        backend = config.backends.get(name)
        if backend is not None and not (
            backend.password or backend.password_file or backend.password_command
        ):
            errors.append(
                f"backends.{name}: no password (set password, password_file or "
                f"password_command): every copy to {name!r} would fail"
            )
    if config.exclude_file and not os.path.exists(
        os.path.join(config.config_dir, os.path.expanduser(config.exclude_file))
    ):
        warnings.append(
            f"exclude_file: {config.exclude_file} does not exist: the backup runs without it"
        )
    return ConfigCheck(errors=tuple(errors), warnings=tuple(warnings))


def _extra_args_problems(config: Config, environ: Mapping[str, str]) -> list[str]:
    """``extra_args`` flags the restic present does not know (issue 18)."""
    from .restic_options import extra_args_problems, find_restic

    return extra_args_problems(config, binary=find_restic(environ))


def hook_problems(config: Config) -> list[str]:
    """Each hook's own ``check()``: what fails that hook when its phase comes."""
    problems = []
    for phase in Phase:
        ctx = HookContext(phase=phase, command="validate", env={}, config_dir=config.config_dir)
        for i, hook in enumerate(config.hooks.for_phase(phase.value)):
            try:
                found = hook.check(ctx)
            except Exception as exc:  # a plugin's bug must not stop every command
                found = [f"check() of hook kind {hook.kind!r} crashed: {type(exc).__name__}: {exc}"]
            problems += [f"hooks.{phase.value}[{i}]: {problem}" for problem in found]
    return problems


def dump_problems(config: Config) -> list[str]:
    """Each dump source's own static check: tool installed, password file there."""
    if not config.dumps:
        return []
    from .dumps import DumpContext, dump_environment

    ctx = DumpContext(env=dump_environment(os.environ), config_dir=config.config_dir)
    problems = []
    for i, dump in enumerate(config.dumps):
        try:
            found = dump.check(ctx)
        except Exception as exc:  # a plugin's bug must not stop every command
            found = [f"check() of dump type {dump.kind!r} crashed: {type(exc).__name__}: {exc}"]
        problems += [f"dumps[{i}]: {problem}" for problem in found]
    return problems


def password_problems(repo: Repository, key: str, environ: Mapping[str, str]) -> list[str]:
    """A ``password_file`` that cannot be read, a ``password_command`` not found."""
    prefix = f"{key}." if key else ""
    problems = []
    if repo.password_file:
        path = os.path.expanduser(repo.password_file)
        if not os.path.exists(path):
            problems.append(f"{prefix}password_file: {path} does not exist")
        elif not os.access(path, os.R_OK):
            problems.append(f"{prefix}password_file: {path} is not readable by this user")
    if repo.password_command:
        try:
            words = shlex.split(repo.password_command)
        except ValueError as exc:
            problems.append(f"{prefix}password_command: cannot be split into words ({exc})")
            words = []
        if words and _program(words[0], environ) is None:
            problems.append(
                f"{prefix}password_command: {words[0]!r} is not an executable program"
                + ("" if "/" in words[0] else " on PATH")
            )
    return problems


def _program(name: str, environ: Mapping[str, str]) -> str | None:
    if "/" in name:
        path = os.path.expanduser(name)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which(name, path=environ.get("PATH", os.defpath))


def _repositories(config: Config) -> list[tuple[str, Repository]]:
    """(key path prefix, repository): the primary is at the top level."""
    found = [("", config.primary_repository())]
    found += [(f"backends.{name}", config.repository_named(name)) for name in config.backends]
    return found
