"""The repository commands of the CLI that are not workflows.

``init``, ``snapshots``, ``stats``, ``info``, ``unlock``, ``run``, ``env``,
``context``, ``backend``. (``forget``, ``prune``, ``check`` and ``copy`` run
through :func:`resticm_core.workflow.run`; ``verify`` lives in
:mod:`resticm_core.drill`.) Each function takes the parsed arguments and
returns the exit code; output goes to *out* (stdout), diagnostics to stderr.

The context file ``~/.config/resticm/context.yaml`` is the Go tool's: keys
``config_file`` and ``active_backend`` (empty or ``primary``: the primary).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .atomic_files import atomic_write
from .cli_types import positive_int, read_data_subset
from .config import PRIMARY, Config, Repository
from .config_file import CONTEXT_FILE, DEFAULT_ETC_DIR
from .display import format_bytes
from .errors import LockHeldError, ResticmError, UsageError
from .json_values import to_json_dict
from .locking import ProcessLock, lock_key
from .phases import Phase
from .restic import (
    Restic,
    ResticErrorKind,
    SubprocessResticRunner,
    child_environment,
    configured_password,
)
from .secrets import redact_url
from .state import default_state_dir


def resolve_repository(config: Config, name: str | None) -> Repository:
    """:func:`resticm_core.mirror.resolve_repository`, imported on first use: this
    module is imported by every CLI command, ``mirror`` (and ``lockcheck``) only
    by the commands that maintain or copy."""
    from .mirror import resolve_repository as resolve

    return resolve(config, name)


# -- the context file --------------------------------------------------------------------------


def context_path(environ: Mapping[str, str]) -> Path:
    """``$HOME/.config/resticm/context.yaml``."""
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / CONTEXT_FILE


def read_context(environ: Mapping[str, str]) -> dict[str, Any]:
    """The context file's keys; {} when missing or unreadable."""
    from ruamel.yaml import YAML

    try:
        data = YAML(typ="safe").load(context_path(environ).read_text(encoding="utf-8"))
    except Exception:  # missing or unparseable: no context
        return {}
    return dict(data) if isinstance(data, Mapping) else {}


def write_context(environ: Mapping[str, str], data: Mapping[str, Any]) -> Path:
    """Write the context file (0600, atomically), keeping keys we do not know."""
    from ruamel.yaml import YAML

    path = context_path(environ)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = io.StringIO()
    YAML(typ="safe").dump(dict(data), text)
    atomic_write(path, text.getvalue(), mode=0o600)
    return path


def active_backend(environ: Mapping[str, str]) -> str | None:
    """The backend ``resticm backend use`` selected; None for the primary."""
    value = read_context(environ).get("active_backend")
    return value if isinstance(value, str) and value and value != PRIMARY else None


# -- shared helpers ----------------------------------------------------------------------------


def make_restic(config: Config, environ: Mapping[str, str], registry: Any, verbose: bool) -> Restic:
    """A :class:`Restic` over the real binary, as the workflows build it."""
    runner = SubprocessResticRunner(
        environ=environ,
        password_provider=registry.repository_password,
        on_command=(lambda line: print(f"$ {line}", file=sys.stderr)) if verbose else None,
    )
    return Restic(
        runner,
        timeouts=config.timeouts.as_mapping(),
        retry_lock=config.retry_lock,
        retries=config.retries,
    )


def _targets(config: Config, all_backends: bool, selected: str | None) -> list[Repository]:
    if all_backends:
        return [config.primary_repository()] + [
            config.repository_named(n) for n in config.copy_to_backends
        ]
    return [resolve_repository(config, selected)]


def _err(text: str) -> None:
    print(f"resticm: {text}", file=sys.stderr)


# -- init --------------------------------------------------------------------------------------


def cmd_init(
    config: Config, args: argparse.Namespace, restic: Restic, out: TextIO = sys.stdout
) -> int:
    """``init [--all | --backend NAME]``: create repositories that do not exist yet.

    An existing repository is never initialised again; a wrong password is
    reported as such (restic's "is there a repository" probe alone cannot tell).
    Copy backends get the primary's chunker parameters (better deduplication).
    """
    if args.backend:
        names = [args.backend]
    elif args.all:
        names = [PRIMARY, *config.backends]  # config order, primary first
    else:
        names = [PRIMARY]
    repositories = [resolve_repository(config, name) for name in names]
    primary = config.primary_repository()
    failures = 0
    for repo in repositories:
        shown = f"{repo.name} ({redact_url(repo.url)})"
        chunker_from = primary if repo.name in config.copy_to_backends else None
        if args.dry_run:
            preview = ["init", "--copy-chunker-params"] if chunker_from else ["init"]
            print(f"[dry-run] would run: {restic.describe(preview, repo)}", file=out)
            continue
        probe = restic.cat_config(repo)
        if probe.ok:
            print(
                f"repository {shown} is already initialized: refusing to initialize it again",
                file=out,
            )
            continue
        if probe.error_kind is ResticErrorKind.WRONG_PASSWORD:
            _err(f"wrong password for {shown}: it exists and is not initialized again")
            failures += 1
            continue
        if probe.error_kind is not ResticErrorKind.REPOSITORY_MISSING:
            _err(f"cannot initialize {shown}: {probe.message}")
            failures += 1
            continue
        result = restic.init(repo, copy_chunker_params_from=chunker_from)
        if not result.ok:
            _err(f"init of {shown} failed: {result.message}")
            failures += 1
            continue
        extra = " with the primary's chunker parameters" if chunker_from else ""
        print(f"initialized repository {shown}{extra}", file=out)
    return 1 if failures else 0


# -- snapshots and stats -----------------------------------------------------------------------


def _short(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "short_id", "time", "hostname", "username", "tags", "paths", "original")
    return {k: snapshot[k] for k in keys if k in snapshot}


def cmd_snapshots(
    config: Config,
    args: argparse.Namespace,
    restic: Restic,
    selected: str | None,
    out: TextIO = sys.stdout,
) -> int:
    """``snapshots [--latest] [--all] [--all-backends]``.

    This host's snapshots (``--all``: every host's). ``--latest``: the newest one
    of them. ``--json`` prints one JSON document: a list (an object or null with
    ``--latest``), or with ``--all-backends`` an object keyed by repository name.
    """
    host = None if args.all else config.hostname
    results: dict[str, Any] = {}
    failures = 0
    for repo in _targets(config, args.all_backends, selected):
        try:
            found = [_short(s) for s in restic.snapshots(repo, host=host)]
        except ResticmError as exc:
            failures += 1
            results[repo.name] = {"error": str(exc)}
            _err(str(exc))
            continue
        found.sort(key=lambda s: str(s.get("time", "")))
        results[repo.name] = (found[-1] if found else None) if args.latest else found
    if args.json:
        document = results if args.all_backends else next(iter(results.values()))
        print(json.dumps(document, indent=2), file=out)
        return 1 if failures else 0
    for name, value in results.items():
        if args.all_backends:
            print(f"== {name}", file=out)
        if isinstance(value, dict) and "error" in value:
            print(f"  error: {value['error']}", file=out)
            continue
        rows = [value] if isinstance(value, dict) else (value or [])
        if not rows:
            print("No snapshots found", file=out)
            continue
        print(f"{'ID':<10} {'TIME':<20} {'HOST':<15} PATHS", file=out)
        for snap in rows:
            when = str(snap.get("time", ""))[:19].replace("T", " ")
            paths = " ".join(snap.get("paths", []))
            print(
                f"{snap.get('short_id', ''):<10} {when:<20} {snap.get('hostname', ''):<15} {paths}",
                file=out,
            )
        print(f"Total: {len(rows)} snapshot(s)", file=out)
    return 1 if failures else 0


def cmd_stats(
    config: Config,
    args: argparse.Namespace,
    restic: Restic,
    selected: str | None,
    out: TextIO = sys.stdout,
) -> int:
    """``stats [--all-backends]``: restic's restore-size statistics."""
    results: dict[str, Any] = {}
    failures = 0
    for repo in _targets(config, args.all_backends, selected):
        result = restic.run(["stats", "--json"], repo, capture_stdout=True)
        try:
            data = json.loads(result.stdout) if result.ok else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            failures += 1
            message = result.message or f"restic stats printed no statistics on {repo.name}"
            results[repo.name] = {"error": message}
            _err(message)
            continue
        results[repo.name] = {
            "total_size": data.get("total_size", 0),
            "total_file_count": data.get("total_file_count", 0),
        }
    if args.json:
        document = results if args.all_backends else next(iter(results.values()))
        print(json.dumps(document, indent=2), file=out)
        return 1 if failures else 0
    for name, value in results.items():
        if args.all_backends:
            print(f"== {name}", file=out)
        if "error" in value:
            print(f"  error: {value['error']}", file=out)
            continue
        print(f"Total Size:  {format_bytes(value['total_size'])}", file=out)
        print(f"Total Files: {value['total_file_count']}", file=out)
    return 1 if failures else 0


# -- info --------------------------------------------------------------------------------------


def _password_source(repo: Repository) -> str:
    found = configured_password(repo)
    if found is None:
        return "not set in the config (RESTIC_PASSWORD or a plugin)"
    return {
        "RESTIC_PASSWORD": "password (inline)",
        "RESTIC_PASSWORD_FILE": f"password_file {repo.password_file}",
        "RESTIC_PASSWORD_COMMAND": "password_command",
    }[found[0]]


def info_document(
    config: Config, environ: Mapping[str, str], source: str, selected: str | None
) -> dict[str, Any]:
    """Everything ``resticm info`` shows, as data. Never a secret value."""
    retention = config.retention
    policy = {
        **to_json_dict(retention),
        "group_by": retention.group_by or "host,paths (restic's default)",
    }
    backends = {}
    for name, backend in config.backends.items():
        repo = config.repository_named(name)
        backends[name] = {
            "repository": redact_url(backend.repository),
            "copy_target": name in config.copy_to_backends,
            "password": _password_source(repo),
            "env": sorted(backend.env),
        }
    hooks = {
        phase.value: [h.describe() for h in config.hooks.for_phase(phase)]
        for phase in Phase
    }
    primary = config.primary_repository()
    return {
        "config": {"file": str(config.source_path or ""), "source": source},
        "host": config.hostname,
        "active_backend": selected or PRIMARY,
        "repository": {
            "url": redact_url(config.repository),
            "password": _password_source(primary),
            "aws_access_key_id_set": bool(config.aws_access_key_id),
            "env": sorted(config.env),
        },
        "directories": [
            {"path": d, "exists": Path(os.path.expanduser(d)).exists()} for d in config.directories
        ],
        "exclude_file": config.exclude_file,
        "exclude_patterns": list(config.exclude_patterns),
        "retention": policy,
        "forget_arguments": retention.forget_args(),
        "backends": backends,
        "copy_to_backends": list(config.copy_to_backends),
        "copy_concurrency": config.copy_concurrency,
        "deep_check_interval_days": config.deep_check_interval_days,
        **_issue18_info(config),
        "state_dir": str(default_state_dir(environ)),
        "verify_no_locks": config.verify_no_locks,
        "default_tags": list(config.default_tags),
        "hooks": {k: v for k, v in hooks.items() if v},
        "dumps": [
            {"type": d.kind, "name": d.label, "describe": d.describe()} for d in config.dumps
        ],
        "notifications": {
            "enabled": config.notifications.enabled,
            "notify_on_success": config.notifications.notify_on_success,
            "notify_on_error": config.notifications.notify_on_error,
            "providers": [p.kind for p in config.notifications.providers],
        },
        "logging": {
            "file": config.logging.file,
            "level": config.logging.level,
            "max_size_mb": config.logging.max_size_mb,
            "max_files": config.logging.max_files,
            "console": config.logging.console,
            "json": config.logging.json,
        },
    }


def _issue18_info(config: Config) -> dict[str, Any]:
    """The effective policy and restic flags of each repository (issue 18)."""
    from .policy import all_policies
    from .restic_options import restic_settings

    return {
        "policies": {name: p.to_dict() for name, p in all_policies(config).items()},
        "restic_settings": {
            name: restic_settings(resolve_repository(config, name))
            for name in (PRIMARY, *config.backends)
        },
    }


def _print_issue18_info(doc: Mapping[str, Any], p: Any) -> None:
    from .policy import describe_dicts

    p("Policy per repository:")
    for line in describe_dicts(doc["policies"], doc["restic_settings"]):
        p(line)


def cmd_info(
    config: Config,
    args: argparse.Namespace,
    environ: Mapping[str, str],
    selected: str | None,
    out: TextIO = sys.stdout,
) -> int:
    """``info``: the effective configuration, secrets never shown."""
    if args.config:
        source = "--config"
    elif read_context(environ).get("config_file"):
        source = "context"
    else:
        source = "default search"
    doc = info_document(config, environ, source, selected)
    if args.json:
        print(json.dumps(doc, indent=2), file=out)
        return 0

    def p(text: str = "") -> None:
        print(text, file=out)

    p(f"Configuration: {doc['config']['file']} (from {source})")
    p(f"Host:          {doc['host']}")
    p(f"Active:        {doc['active_backend']}")
    p(f"Repository:    {doc['repository']['url']}")
    p(f"  password:    {doc['repository']['password']}")
    if doc["repository"]["env"]:
        p(f"  env:         {', '.join(doc['repository']['env'])}")
    p("Directories:")
    for d in doc["directories"]:
        p(f"  {d['path']}" + ("" if d["exists"] else "  (does not exist)"))
    if config.exclude_file or config.exclude_patterns:
        p(
            f"Exclusions:    file {config.exclude_file or '-'}, "
            f"{len(config.exclude_patterns)} pattern(s)"
        )
        for pattern in config.exclude_patterns[:5]:
            p(f"  {pattern}")
    p("Retention (effective):")
    for key, value in doc["retention"].items():
        if value not in (0, "", []):
            p(f"  {key}: {value}")
    p(f"  forget arguments: {' '.join(doc['forget_arguments']) or '(none: forget skipped)'}")
    p("Backends:")
    for name, backend in doc["backends"].items():
        mark = " [copy target]" if backend["copy_target"] else ""
        p(f"  {name}: {backend['repository']}{mark}")
    if not doc["backends"]:
        p("  (none)")
    p(f"Copy concurrency: {config.copy_concurrency}")
    interval = config.deep_check_interval_days
    p(f"Deep check:    {'every ' + str(interval) + ' day(s)' if interval > 0 else 'Disabled'}")
    _print_issue18_info(doc, p)
    p(f"State dir:     {doc['state_dir']}")
    p(f"verify_no_locks: {config.verify_no_locks}")
    if config.default_tags:
        p(f"Default tags:  {', '.join(config.default_tags)}")
    p("Hooks:" + ("" if doc["hooks"] else " (none)"))
    for phase, entries in doc["hooks"].items():
        p(f"  {phase}: {', '.join(entries)}")
    if doc["dumps"]:
        p("Dumps:")
        for dump in doc["dumps"]:
            p(f"  {dump['name']}: {dump['describe']}")
    n = doc["notifications"]
    p(
        f"Notifications: {'enabled' if n['enabled'] else 'disabled'}; "
        f"providers: {', '.join(n['providers']) or '-'}"
    )
    lg = doc["logging"]
    p(f"Logging:       {lg['file']} ({lg['level']}, {lg['max_size_mb']} MB x {lg['max_files']})")
    return 0


# -- unlock ------------------------------------------------------------------------------------


def cmd_unlock(
    config: Config,
    args: argparse.Namespace,
    restic: Restic,
    selected: str | None,
    lock_dir: Path | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """``unlock [--restic] [--all-backends]``.

    resticm's own lock file is never deleted: a lock whose process died is free
    already (flock), and a live one belongs to a running resticm. Reported only.
    ``--restic`` runs ``restic unlock``, which removes stale restic locks only.
    """
    key = lock_key(config.source_path, config.repository, config.job)
    lock = ProcessLock(key, lock_dir=lock_dir)
    failures = 0
    try:
        lock.acquire()
    except LockHeldError as exc:
        print(f"resticm lock: held by a running resticm ({exc}); not removed", file=out)
        if args.force:
            # The Go tool removed it anyway and let two runs overlap on one repository.
            _err("unlock --force: the lock belongs to a running resticm; stop that run first")
            failures += 1
    else:
        lock.release()
        if args.force and not args.dry_run and lock.path.exists():
            # -f of the Go tool: remove the file without asking. It is free (no process
            # holds it), so removing it changes nothing but the listing.
            lock.path.unlink(missing_ok=True)
            print(f"resticm lock: free, lock file removed ({lock.path})", file=out)
        else:
            print(f"resticm lock: free ({lock.path})", file=out)
    if not args.restic:
        return 1 if failures else 0
    for repo in _targets(config, args.all_backends, selected):
        if args.dry_run:
            print(f"[dry-run] would run: {restic.describe(['unlock'], repo)}", file=out)
            continue
        result = restic.unlock(repo)
        if result.ok:
            print(f"{repo.name}: stale restic locks removed (live locks kept)", file=out)
        else:
            failures += 1
            _err(result.message)
    return 1 if failures else 0


# -- run and env -------------------------------------------------------------------------------


def cmd_run(
    config: Config,
    restic_args: Sequence[str],
    environ: Mapping[str, str],
    registry: Any,
    selected: str | None,
    dry_run: bool = False,
) -> int:
    """``run ARGS...``: restic with this repository's credentials; restic's exit code.

    stdin/stdout/stderr are restic's own (interactive ``restic mount``, ``restore``...).
    """
    if not restic_args:
        raise UsageError(
            "no restic command given: resticm run ARGS... (e.g. resticm run ls latest)"
        )
    repo = resolve_repository(config, selected)
    env, _secrets = child_environment(repo, environ, password_provider=registry.repository_password)
    if dry_run:
        from .restic import printable_command

        print(f"[dry-run] would run: {printable_command(restic_args, repo)}")
        return 0
    binary = shutil.which("restic", path=env.get("PATH", os.defpath))
    if binary is None:
        raise ResticmError("restic is not installed or not on PATH (install the 'restic' package)")
    return subprocess.run([binary, *restic_args], env=env, check=False).returncode


def _quote(value: str, shell: str) -> str:
    if shell == "powershell":
        return "'" + value.replace("'", "''") + "'"
    return "'" + value.replace("'", "'\\''") + "'"


def cmd_env(
    config: Config,
    args: argparse.Namespace,
    selected: str | None,
    out: TextIO = sys.stdout,
    environ: Mapping[str, str] | None = None,
) -> int:
    """``env [--format bash|fish|powershell] [--backend NAME]``: shell exports.

    Prints secrets by design (``eval "$(resticm env)"``); nothing else does.
    """
    aliases = {
        "bash": "bash",
        "sh": "bash",
        "fish": "fish",
        "powershell": "powershell",
        "pwsh": "powershell",
    }
    shell = aliases.get(args.format)
    repo = resolve_repository(config, args.backend if args.backend else selected)
    if shell is None:
        raise UsageError(f"unsupported format: {args.format} (supported: bash, fish, powershell)")
    variables = {"RESTIC_REPOSITORY": repo.url}
    password = configured_password(repo)
    inherited = (environ or {}).get("RESTIC_PASSWORD")
    if password is None and repo.name == PRIMARY and inherited:
        # As for restic children: the inherited RESTIC_PASSWORD when the config names none.
        password = ("RESTIC_PASSWORD", inherited)
    if password is None:
        # The Go tool's error: an export without a password makes every restic call fail.
        keys = "password, password_file or password_command"
        where = "the primary (top level)" if repo.name == PRIMARY else f"backends.{repo.name}"
        raise UsageError(
            f"password not configured for backend '{repo.name}' (set {keys} in {where})"
        )
    variables[password[0]] = password[1]
    variables.update(repo.storage_environment())
    for name, value in variables.items():
        if shell == "bash":
            line = f"export {name}={_quote(value, shell)}"
        elif shell == "fish":
            line = f"set -x {name} {_quote(value, shell)}"
        else:
            line = f"$env:{name} = {_quote(value, shell)}"
        print(line, file=out)
    print(f"# restic variables for {repo.name} exported", file=out)
    print("# restic can now be used directly", file=out)
    return 0


# -- context and backend -----------------------------------------------------------------------


def cmd_context(
    args: argparse.Namespace, environ: Mapping[str, str], out: TextIO = sys.stdout
) -> int:
    """``context [use FILE | list | reset]``; without an action: the current context."""
    action = args.context_action
    data = read_context(environ)
    if action == "use":
        path = Path(os.path.expanduser(args.file)).absolute()
        if not path.is_file():
            raise UsageError(f"configuration file not found: {args.file}")
        write_context(environ, {**data, "config_file": str(path)})
        print(f"context: {path}", file=out)
        return 0
    if action == "reset":
        context_path(environ).unlink(missing_ok=True)
        print("context reset: the default config search applies", file=out)
        return 0
    current = data.get("config_file")
    if action == "list":
        home = Path(environ.get("HOME") or str(Path.home()))
        for directory in (home / ".config" / "resticm", DEFAULT_ETC_DIR):
            for path in sorted(directory.glob("*.y*ml")) if directory.is_dir() else []:
                if path.name == "context.yaml" or not path.is_file():
                    continue
                mark = "* " if current and Path(current) == path else "  "
                print(f"{mark}{path}", file=out)
        return 0
    print(f"config_file: {current or '(none: default search)'}", file=out)
    print(f"active_backend: {data.get('active_backend') or PRIMARY}", file=out)
    return 0


def cmd_backend(
    config: Config, args: argparse.Namespace, environ: Mapping[str, str], out: TextIO = sys.stdout
) -> int:
    """``backend [use NAME | list]``; without an action: the active backend."""
    data = read_context(environ)
    active = active_backend(environ) or PRIMARY
    if args.backend_action == "use":
        resolve_repository(config, args.name)
        value = "" if args.name == PRIMARY else args.name
        write_context(environ, {**data, "active_backend": value})
        print(f"active backend: {args.name}", file=out)
        return 0
    if args.backend_action == "list":
        rows = [(PRIMARY, config.repository)] + [
            (n, b.repository) for n, b in config.backends.items()
        ]
        for name, url in rows:
            mark = "→ " if name == active else "  "
            suffix = " (active)" if name == active else ""
            print(f"{mark}{name}: {redact_url(url)}{suffix}", file=out)
        return 0
    print(active, file=out)
    return 0


__all__ = [
    "active_backend",
    "cmd_backend",
    "cmd_context",
    "cmd_env",
    "cmd_info",
    "cmd_init",
    "cmd_run",
    "cmd_snapshots",
    "cmd_stats",
    "cmd_unlock",
    "context_path",
    "make_restic",
    "read_context",
    "write_context",
]


# -- the CLI's parsers and dispatch ------------------------------------------------------------

#: Commands :func:`dispatch` serves (after the config is loaded), besides ``context``.
COMMANDS = (
    "init",
    "snapshots",
    "stats",
    "info",
    "unlock",
    "run",
    "env",
    "backend",
    "verify",
    # restore and browse (issue 15): resticm_core.restore_commands
    "restore",
    "ls",
    "find",
    "diff",
    "dump",
    "mount",
    "status",
)
#: Maintenance commands that run through the workflow engine (lock, report, notifications).
WORKFLOW_COMMANDS = ("forget", "prune", "check", "copy")


def add_parsers(command: Any) -> None:
    """Add this module's subcommands; *command(name, help)* returns a subparser."""
    forget = command("forget", "forget snapshots by the retention policy on every repository")
    forget.add_argument("-p", "--prune", action="store_true", help="prune in the same restic call")
    forget.add_argument("--all-hosts", action="store_true", help="forget without the host filter")
    forget.add_argument("--primary-only", action="store_true", help="not on the copy backends")
    prune = command("prune", "remove unreferenced data on every repository")
    prune.add_argument("--primary-only", action="store_true", help="not on the copy backends")
    check = command("check", "check every repository")
    how = check.add_mutually_exclusive_group()
    how.add_argument("--deep", action="store_true", help="read all data (--read-data)")
    how.add_argument(
        "--auto", action="store_true", help="deep when deep_check_interval_days elapsed"
    )
    how.add_argument(
        "--subset",
        type=read_data_subset,
        metavar="N/M",
        help="read a subset of the data (e.g. 1/10, 5%%, 500M)",
    )
    check.add_argument("--primary-only", action="store_true", help="not on the copy backends")
    copy = command("copy", "copy this host's snapshots from the primary to the copy backends")
    copy.add_argument("--all", dest="copy_all", action="store_true", help="every host's snapshots")
    copy.add_argument(
        "--to",
        dest="copy_to",
        action="append",
        default=[],
        metavar="NAME",
        help="only this backend (repeatable, or comma-separated)",
    )
    init = command("init", "initialise repositories (an existing one is never touched)")
    init.add_argument("--all", action="store_true", help="the primary, then every backend")
    init.add_argument("--backend", metavar="NAME", help="only this backend")
    snapshots = command("snapshots", "list snapshots")
    snapshots.add_argument("--latest", action="store_true", help="only the newest one")
    snapshots.add_argument("--all", action="store_true", help="of every host, not only this one")
    snapshots.add_argument(
        "--all-backends", action="store_true", help="the primary and every copy backend"
    )
    stats = command("stats", "repository statistics (restic stats)")
    stats.add_argument(
        "--all-backends", action="store_true", help="the primary and every copy backend"
    )
    command("info", "show the effective configuration (no secret)")
    unlock = command("unlock", "show resticm's lock; with --restic remove stale restic locks")
    unlock.add_argument("--restic", action="store_true", help="run restic unlock (stale only)")
    unlock.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="remove resticm's lock file without asking (only when no run holds it)",
    )
    unlock.add_argument(
        "--all-backends", action="store_true", help="with --restic: every repository"
    )
    run = command("run", "run restic with the repository's credentials: resticm run ARGS...")
    run.add_argument("restic_args", nargs=argparse.REMAINDER, help="restic's arguments")
    env = command("env", "print shell exports for restic (contains the password!)")
    env.add_argument("--format", default="bash", help="bash (default), fish or powershell")
    env.add_argument("-b", "--backend", metavar="NAME", help="this backend, not the active one")
    context = command("context", "select the config file (~/.config/resticm/context.yaml)")
    actions = context.add_subparsers(dest="context_action", metavar="ACTION")
    use = actions.add_parser("use", help="use this config file from now on")
    use.add_argument("file")
    actions.add_parser("list", aliases=["ls"], help="list config files")
    actions.add_parser("reset", help="forget the context: default config search")
    backend = command("backend", "select the repository read-only commands work on")
    backend_actions = backend.add_subparsers(dest="backend_action", metavar="ACTION")
    backend_use = backend_actions.add_parser("use", help="make NAME (or primary) the active one")
    backend_use.add_argument("name")
    backend_actions.add_parser("list", aliases=["ls"], help="list the repositories")
    from .status import add_parser as add_status_parser

    add_status_parser(command)
    verify = command("verify", "restore drill: restore a sample and compare it with the source")
    verify.add_argument("--backend", metavar="NAME", help="drill this backend (default: primary)")
    verify.add_argument(
        "--sample",
        type=positive_int,
        default=20,
        metavar="N",
        help="files to restore (default 20)",
    )
    from .restore_commands import add_parsers as add_restore_parsers  # issue 15

    add_restore_parsers(command)


def split_run_argv(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """Split ``[globals] run ARGS...``: everything after ``run`` is restic's, untouched.

    Returns the arguments for resticm's parser and restic's arguments (None when
    the command is not ``run``).
    """
    takes_value = {"-c", "--config", "--lock-wait", "-t", "--tag", "-j", "--job"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in takes_value:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        if arg == "run":
            ours, restic_args = _leading_globals(argv[i + 1 :])
            return [*argv[: i + 1], *ours], restic_args
        return list(argv), None
    return list(argv), None


#: resticm's global flags that ``run`` takes as its own when they come before restic's
#: first argument (the Go spelling ``resticm run -c CFG snapshots``); the value-taking ones.
_RUN_GLOBALS_WITH_VALUE = ("-c", "--config", "--lock-wait", "-j", "--job")
_RUN_GLOBALS = ("-v", "--verbose", "-n", "--dry-run")


def _leading_globals(rest: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``run``'s arguments: resticm's global flags up to restic's first argument,
    then restic's, untouched (``run snapshots -c`` keeps ``-c`` for restic's --compact)."""
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in _RUN_GLOBALS_WITH_VALUE and i + 1 < len(rest):
            i += 2
        elif arg in _RUN_GLOBALS or arg.startswith(("--config=", "--lock-wait=", "--job=")):
            i += 1
        else:
            break
    return list(rest[:i]), list(rest[i:])


def dispatch(
    command: str,
    config: Config,
    args: argparse.Namespace,
    registry: Any,
    environ: Mapping[str, str],
) -> int:
    """Run one of :data:`COMMANDS` (the config is loaded)."""
    selected = active_backend(environ)
    if command == "backend":
        return cmd_backend(config, args, environ)
    if command == "info":
        return cmd_info(config, args, environ, selected)
    if command == "env":
        return cmd_env(config, args, selected, environ=environ)
    if command == "run":
        return cmd_run(config, args.restic_args, environ, registry, selected, args.dry_run)
    from .restore_commands import COMMANDS as RESTORE_COMMANDS

    if command in RESTORE_COMMANDS:
        from .restore_commands import dispatch as restore_dispatch

        return restore_dispatch(command, config, args, registry, environ)
    restic = make_restic(config, environ, registry, args.verbose)
    if command == "init":
        from .restic_options import verify_extra_args

        verify_extra_args(config, environ=environ)  # extra_args.init (issue 18)
        return cmd_init(config, args, restic)
    if command == "snapshots":
        return cmd_snapshots(config, args, restic, selected)
    if command == "stats":
        return cmd_stats(config, args, restic, selected)
    if command == "unlock":
        return cmd_unlock(config, args, restic, selected)
    if command == "status":
        from .status import cmd_status

        return cmd_status(config, args, restic, environ)
    if command == "verify":
        from .drill import cmd_verify

        return cmd_verify(config, args, restic, environ)
    raise UsageError(f"unknown command {command!r}")
