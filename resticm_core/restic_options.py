"""restic's own options on every command resticm runs (issue 18).

A repository's :class:`~resticm_core.config.RepositorySettings` (``options``,
``limit_upload``, ``limit_download``, ``compression``, ``pack_size``,
``extra_args``) become restic flags here, inserted right after the command name
(``restic backup -o s3.connections=8 --compression max --exclude-caches --json ... -- /srv``):
restic reads its global flags anywhere, and a flag after ``--`` would be a path.

``extra_args`` are checked against the restic present: the flags of
``restic <command> --help`` (read once per binary and version in a process) and
the flags resticm sets itself (``--json``, ``--repo``, ``--password-*``,
``--host``...), which they may not override. An unknown flag is an error that
names it, the command and the restic version: never silently dropped.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from .config import EXTRA_ARGS_COMMANDS, Config, RepositorySettings
from .errors import ConfigError

if TYPE_CHECKING:
    from .errors import KeyPath

#: ``compression:`` values restic takes.
COMPRESSION_MODES = ("auto", "off", "max")
#: Seconds for one ``restic <command> --help`` or ``restic version``.
HELP_TIMEOUT = 60.0

#: Flags resticm sets itself, with the key to use instead. Any command.
_CONTROLLED_GLOBAL: Mapping[str, str] = {
    "--json": "resticm reads restic's JSON output itself",
    "--repo": "the repository is the 'repository' key",
    "--repository-file": "the repository is the 'repository' key",
    "--password-file": "use the 'password_file' key",
    "--password-command": "use the 'password_command' key",
    "--key-hint": "resticm sets restic's credentials itself",
    "--no-lock": "resticm decides which commands lock",
    "--retry-lock": "use the 'retry_lock' key",
    "--option": "use the 'options' key",
    "--limit-upload": "use the 'limit_upload' key",
    "--limit-download": "use the 'limit_download' key",
    "--compression": "use the 'compression' key",
    "--pack-size": "use the 'pack_size' key",
    "--help": "it prints the help instead of running",
    "--dry-run": "use resticm's own --dry-run (-n)",
}
#: Per command: what resticm's own keys and flags decide.
_CONTROLLED: Mapping[str, Mapping[str, str]] = {
    "backup": {
        "--stdin": "database dumps are the 'dumps' key",
        "--stdin-filename": "database dumps are the 'dumps' key",
        "--host": "use the 'host' key",
        "--tag": "use 'default_tags' (or resticm -t)",
    },
    "forget": {
        "--prune": "use the 'prune' policy key (or resticm --prune)",
        "--host": "use the 'host' key (or resticm forget --all-hosts)",
        "--group-by": "use retention.group_by",
        **{
            f"--keep-{name}": f"use retention.keep_{name}"
            for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly", "within", "tag")
        },
    },
    "check": {
        "--read-data": "use resticm check --deep (or deep_check_interval_days)",
        "--read-data-subset": "use resticm check --subset",
    },
    "copy": {"--host": "use resticm copy --all (this host's snapshots by default)"},
    "restore": {"--target": "use resticm restore --target"},
}
#: The source-repository flags of copy/init (``--from-*`` since 0.14, ``*2`` before).
_SOURCE_FLAG = re.compile(r"^--(from-[\w-]+|repo2|password-file2|password-command2|key-hint2)$")
#: ``  -e, --exclude pattern   exclude a pattern`` / ``      --exclude-caches   ...``.
_HELP_FLAG = re.compile(
    r"^\s+(?:-(?P<short>\w), )?--(?P<long>[\w-]+)(?: (?P<type>[^\s]+))?(?:\s|$)"
)


# -- flags on the command line ----------------------------------------------------------------


def _option_value(key: str, value: str) -> str:
    """``key=value`` as restic's ``-o`` reads it: a comma-separated (CSV) list, so a
    value holding a comma or a quote is quoted to stay one option."""
    text = f"{key}={value}"
    if "," not in text and '"' not in text:
        return text
    import csv  # lazy, as difflib below: every restic command imports this module
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([text])
    return buffer.getvalue()


def global_args(settings: RepositorySettings) -> list[str]:
    """The global restic flags of *settings* (options, limits, compression, pack size)."""
    args: list[str] = []
    for key, value in settings.options.items():
        args += ["-o", _option_value(key, value)]
    if settings.limit_upload is not None:
        args += ["--limit-upload", str(settings.limit_upload)]
    if settings.limit_download is not None:
        args += ["--limit-download", str(settings.limit_download)]
    if settings.compression is not None:
        args += ["--compression", settings.compression]
    if settings.pack_size is not None:
        args += ["--pack-size", str(settings.pack_size)]
    return args


def command_args(args: Sequence[str], settings: RepositorySettings) -> list[str]:
    """*args* with the global flags and the command's ``extra_args`` of *settings* added
    right after the command name.

    A dump's ``backup --stdin`` gets the global flags only: the directory flags of
    ``extra_args.backup`` (``--exclude-larger-than``, ``--one-file-system``) mean
    nothing for a stream.
    """
    index = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if index is None:
        return list(args)
    command = args[index]
    extra: Sequence[str] = ()
    if command in EXTRA_ARGS_COMMANDS and "--stdin" not in args:
        extra = settings.extra_args.for_command(command)
    added = [*global_args(settings), *extra]
    if not added:
        return list(args)
    return [*args[: index + 1], *added, *args[index + 1 :]]


def restic_settings(settings: RepositorySettings) -> dict[str, object]:
    """The effective restic flags of a repository, for ``resticm info``."""
    return {
        "global_args": global_args(settings),
        "options": dict(settings.options),
        "limit_upload": settings.limit_upload,
        "limit_download": settings.limit_download,
        "compression": settings.compression,
        "pack_size": settings.pack_size,
        "extra_args": {
            command: list(settings.extra_args.for_command(command))
            for command in EXTRA_ARGS_COMMANDS
            if settings.extra_args.for_command(command)
        },
    }


# -- the flags of the restic present ----------------------------------------------------------


@attrs.frozen
class CommandFlags:
    """The flags ``restic <command> --help`` lists (its own and the global ones)."""

    command: str
    version: str
    binary: str
    #: Long name (without ``--``) -> takes a value.
    long: Mapping[str, bool]
    #: Shorthand letter -> long name.
    short: Mapping[str, str]


def parse_help(text: str) -> tuple[dict[str, bool], dict[str, str]]:
    """The long flags (name -> takes a value) and shorthands of a cobra ``--help`` text."""
    long: dict[str, bool] = {}
    short: dict[str, str] = {}
    for line in text.splitlines():
        match = _HELP_FLAG.match(line)
        if match is None:
            continue
        long[match["long"]] = bool(match["type"])
        if match["short"]:
            short[match["short"]] = match["long"]
    return long, short


@functools.lru_cache(maxsize=32)
def _version_of(binary: str, _mtime_ns: int) -> str:
    # Keyed by the binary's path and mtime: a restic upgraded mid-process is asked again.
    out = subprocess.run(
        [binary, "version"], capture_output=True, text=True, timeout=HELP_TIMEOUT, check=False
    )
    match = re.search(r"\brestic (\d+\.\d+\.\d+)", out.stdout)
    return match[1] if match else "unknown"


@functools.lru_cache(maxsize=64)
def _help_of(binary: str, version: str, command: str) -> tuple[dict[str, bool], dict[str, str]]:
    # The cache the issue asks for: one `restic <cmd> --help` per binary, version and
    # command in a process (``version`` is part of the key only so an upgrade misses).
    out = subprocess.run(
        [binary, command, "--help"],
        capture_output=True,
        text=True,
        timeout=HELP_TIMEOUT,
        check=False,
        env={"PATH": os.defpath, "LC_ALL": "C"},
    )
    return parse_help(out.stdout)


def restic_flags(command: str, *, binary: str) -> CommandFlags:
    """The flags of ``restic <command>`` for the restic at *binary* (a full path)."""
    version = _version_of(binary, os.stat(binary).st_mtime_ns)
    long, short = _help_of(binary, version, command)
    return CommandFlags(command=command, version=version, binary=binary, long=long, short=short)


def find_restic(environ: Mapping[str, str], binary: str = "restic") -> str | None:
    """The restic that runs for *environ* (its ``PATH``), as a full path."""
    return shutil.which(binary, path=environ.get("PATH", os.defpath))


# -- checking ---------------------------------------------------------------------------------


def _controlled(command: str, flag: str) -> str | None:
    if flag in _CONTROLLED_GLOBAL:
        return _CONTROLLED_GLOBAL[flag]
    if command in ("copy", "init") and _SOURCE_FLAG.match(flag):
        return "the copy source is the primary (or the backend's own keys)"
    return _CONTROLLED.get(command, {}).get(flag)


def check_extra_args(command: str, args: Sequence[str], flags: CommandFlags) -> list[str]:
    """Problems of one ``extra_args.<command>`` list, each ``[index]: message``."""
    problems: list[str] = []
    restic = f"restic {command} {flags.version} ({flags.binary})"
    i = 0
    while i < len(args):
        token = args[i]
        where = f"[{i}]"
        if not token.startswith("-") or token == "-":
            problems.append(
                f"{where}: {token!r} is not a flag; extra_args holds restic flags and their values"
            )
            i += 1
            continue
        if token.startswith("--"):
            name, has_value = token[2:].partition("=")[0], "=" in token
        else:
            letter = token[1:2]
            name = flags.short.get(letter, "")
            has_value = len(token) > 2
            if not name:
                problems.append(f"{where}: {token} is not a flag of {restic}")
                i += 1
                continue
        reason = _controlled(command, f"--{name}")
        if reason is not None:
            problems.append(f"{where}: {token}: resticm sets this itself ({reason})")
        elif name not in flags.long:
            import difflib

            close = difflib.get_close_matches(name, list(flags.long), n=1)
            hint = f"; did you mean --{close[0]}?" if close else ""
            problems.append(f"{where}: {token} is not a flag of {restic}{hint}")
        elif flags.long[name] and not has_value and i + 1 < len(args):
            nxt = args[i + 1]
            if not nxt.startswith("--"):
                i += 1  # its value
        i += 1
    return problems


def _settings_of(config: Config) -> Iterable[tuple[str, RepositorySettings]]:
    yield "", config
    for name, backend in config.backends.items():
        yield f"backends.{name}.", backend


def extra_args_problems(
    config: Config, *, binary: str | None, commands: Iterable[str] | None = None
) -> list[str]:
    """Every problem of the config's ``extra_args`` against the restic at *binary*.

    *commands*: only those (a run checks what it will run); None: all. Without a
    restic (*binary* None) only the flags resticm controls can be checked.
    """
    wanted = set(EXTRA_ARGS_COMMANDS if commands is None else commands)
    problems: list[str] = []
    for prefix, settings in _settings_of(config):
        for command in EXTRA_ARGS_COMMANDS:
            args = getattr(settings.extra_args, command)
            if command not in wanted or not args:
                continue
            key = f"{prefix}extra_args.{command}"
            if binary is None:
                flags = CommandFlags(command, "?", "not installed", long={}, short={})
                found = [
                    p
                    for p in check_extra_args(command, args, flags)
                    if "resticm sets this itself" in p
                ]
            else:
                found = check_extra_args(command, args, restic_flags(command, binary=binary))
            problems += [f"{key}{problem}" for problem in found]
    return problems


def settings_problems(config: Config) -> list[tuple[KeyPath, str]]:
    """Located problems of the first-class keys (values the types cannot refuse)."""
    problems: list[tuple[KeyPath, str]] = []
    secrets = set(config.secrets())
    for prefix, settings in _settings_of(config):
        path: KeyPath = ("backends", prefix.split(".")[1]) if prefix else ()
        if settings.compression is not None and settings.compression not in COMPRESSION_MODES:
            problems.append(
                (
                    (*path, "compression"),
                    f"expected one of {', '.join(COMPRESSION_MODES)}, got {settings.compression!r}",
                )
            )
        for key in ("limit_upload", "limit_download", "pack_size"):
            value = getattr(settings, key)
            if value is not None and value <= 0:
                problems.append(((*path, key), f"must be greater than 0, got {value}"))
        for key in settings.options:
            if not key or "=" in key or key.strip() != key:
                problems.append(((*path, "options", key), "expected an option name like s3.region"))
        # Flags are on restic's command line (ps shows them): no secret may be there.
        for command in EXTRA_ARGS_COMMANDS:
            for i, token in enumerate(settings.extra_args.for_command(command)):
                if any(secret in token for secret in secrets):
                    problems.append(
                        (
                            (*path, "extra_args", command, i),
                            "holds a secret of this config: restic's command line is visible "
                            "to every user (ps); pass secrets through env",
                        )
                    )
        for key, value in settings.options.items():
            if any(secret in value for secret in secrets):
                problems.append(
                    (
                        (*path, "options", key),
                        "holds a secret of this config: restic's command line is visible "
                        "to every user (ps); pass secrets through env",
                    )
                )
    return problems


def verify_extra_args(
    config: Config,
    *,
    environ: Mapping[str, str],
    commands: Iterable[str] | None = None,
    binary: str = "restic",
) -> None:
    """Raise :class:`ConfigError` (exit 2) when an ``extra_args`` flag is refused.

    For runs: called before any hook runs. No-op without ``extra_args``.
    """
    if not any(
        settings.extra_args.for_command(c)
        for _prefix, settings in _settings_of(config)
        for c in EXTRA_ARGS_COMMANDS
    ):
        return
    found = find_restic(environ, binary)
    problems = extra_args_problems(config, binary=found, commands=commands)
    if problems:
        source = str(config.source_path or "<config>")
        raise ConfigError(f"{source}: {problem}" for problem in problems)


__all__ = [
    "COMPRESSION_MODES",
    "CommandFlags",
    "check_extra_args",
    "command_args",
    "extra_args_problems",
    "find_restic",
    "global_args",
    "parse_help",
    "restic_flags",
    "restic_settings",
    "settings_problems",
    "verify_extra_args",
]
