"""``resticm dumps list`` and ``resticm dumps restore``: find dump snapshots, pipe them back.

A restore runs two processes joined by a pipe, nothing on local disk::

    restic dump <snapshot> /<label>/<database>.sql  |  psql / pg_restore / mariadb / sqlite3

resticm keeps its own copy of the pipe's write end until restic has exited: the
restore tool sees the end of its input only when restic finished *successfully*.
When restic fails half-way, the restore tool is stopped before it reads an end
of file, so psql's single transaction is rolled back instead of committing half
a dump.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, TextIO

import attrs

from .children import guarded_argv
from .config import Config, Repository
from .dumps import TAG_PREFIX, DumpContext, DumpError, DumpSource, dump_environment
from .errors import ResticmError, UsageError
from .pipes import PipeLines, last_line
from .process import stop_group
from .restic import NOT_INSTALLED_MESSAGE, PasswordProvider, Restic, child_environment
from .secrets import Redactor

#: Seconds between TERM and KILL when a restore is stopped.
RESTORE_KILL_GRACE = 10.0


@attrs.frozen(kw_only=True)
class DumpSnapshots:
    """Every snapshot of one dump (``<label>:<database>``), newest last."""

    name: str
    label: str
    database: str
    snapshots: tuple[Mapping[str, Any], ...]

    @property
    def latest(self) -> Mapping[str, Any]:
        return self.snapshots[-1]

    def to_dict(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "name": self.name,
            "label": self.label,
            "database": self.database,
            "count": len(self.snapshots),
            "latest": {
                "id": latest.get("short_id") or str(latest.get("id", ""))[:8],
                "time": latest.get("time"),
                "path": _snapshot_path(latest),
                "hostname": latest.get("hostname"),
            },
        }


def _snapshot_path(snapshot: Mapping[str, Any]) -> str:
    paths = snapshot.get("paths") or []
    return str(paths[0]) if paths else ""


def _dump_names(snapshot: Mapping[str, Any]) -> list[str]:
    return [
        tag[len(TAG_PREFIX) :]
        for tag in snapshot.get("tags") or []
        if isinstance(tag, str) and tag.startswith(TAG_PREFIX)
    ]


def group_dumps(snapshots: Iterable[Mapping[str, Any]]) -> list[DumpSnapshots]:
    """Dump snapshots grouped by dump name, each group oldest first."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for snapshot in snapshots:
        for name in _dump_names(snapshot):
            groups.setdefault(name, []).append(snapshot)
    result = []
    for name in sorted(groups):
        label, _, database = name.partition(":")
        ordered = sorted(groups[name], key=lambda s: str(s.get("time", "")))
        result.append(
            DumpSnapshots(name=name, label=label, database=database, snapshots=tuple(ordered))
        )
    return result


def list_dumps(restic: Restic, repository: Repository, *, host: str | None) -> list[DumpSnapshots]:
    """The dumps in *repository* (of *host*, or of every host with None)."""
    return group_dumps(restic.snapshots(repository, host=host))


def resolve_name(name: str, dumps: Sequence[DumpSnapshots]) -> DumpSnapshots:
    """The dump *name* means: ``label:database``, ``dump:label:database``, or a
    database name alone when only one dump has it."""
    wanted = name[len(TAG_PREFIX) :] if name.startswith(TAG_PREFIX) else name
    for dump in dumps:
        if dump.name == wanted:
            return dump
    matches = [d for d in dumps if d.database == wanted]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(d.name for d in dumps) or "none"
    if matches:
        raise UsageError(
            f"{name!r} names several dumps ({', '.join(d.name for d in matches)}): "
            "write LABEL:DATABASE"
        )
    raise UsageError(f"no dump named {name!r} in the repository (dumps: {known})")


def pick_snapshot(dump: DumpSnapshots, snapshot_id: str | None) -> Mapping[str, Any]:
    """The newest snapshot of *dump*, or the one whose id starts with *snapshot_id*."""
    if not snapshot_id or snapshot_id == "latest":
        return dump.latest
    found = [s for s in dump.snapshots if str(s.get("id", "")).startswith(snapshot_id)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(
            f"snapshot {snapshot_id} is not a dump of {dump.name} "
            f"(its snapshots: {', '.join(str(s.get('short_id', '')) for s in dump.snapshots)})"
        )
    raise UsageError(f"snapshot id {snapshot_id} is ambiguous: give more characters")


def source_for(config: Config, label: str) -> DumpSource:
    """The ``dumps:`` entry with *label*: its connection settings drive the restore."""
    for source in config.dumps:
        if source.label == label:
            return source
    known = ", ".join(s.label for s in config.dumps) or "none"
    raise UsageError(
        f"the config has no dumps entry named {label!r} (entries: {known}); the restore "
        "needs its type and connection settings"
    )


# -- the restore pipe ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RestoreResult:
    """What a restore did."""

    name: str
    snapshot: str
    to_database: str
    ok: bool
    error: str = ""
    #: What the restore tool printed (head and tail): warnings such as existing roles.
    output: tuple[str, ...] = ()


def restore_dump(
    config: Config,
    repository: Repository,
    name: str,
    *,
    restic: Restic,
    environ: Mapping[str, str],
    snapshot_id: str | None = None,
    to_database: str | None = None,
    all_hosts: bool = False,
    password_provider: PasswordProvider | None = None,
    dry_run: bool = False,
    on_line: Callable[[str], None] | None = None,
    restic_binary: str = "restic",
) -> RestoreResult:
    """Pipe a dump snapshot back into its database.

    :param name: ``label:database`` (or the database alone when unambiguous).
    :param snapshot_id: a snapshot id (prefix) of that dump; default: the newest.
    :param to_database: restore into this database (SQLite: this file) instead.
    :param on_line: called with each line the restore tool and restic print on stderr.
    :param password_provider: the repository password's plugin source; default:
        *restic*'s own.
    :raises UsageError: unknown dump or snapshot; :class:`DumpError`: the database
        cannot be prepared. A failing restore is a result with ``ok=False``.
    """
    host = None if all_hosts or snapshot_id else config.hostname
    dump = resolve_name(name, list_dumps(restic, repository, host=host))
    snapshot = pick_snapshot(dump, snapshot_id)
    short = str(snapshot.get("short_id") or str(snapshot.get("id", ""))[:8])
    source = source_for(config, dump.label)
    path = _snapshot_path(snapshot)
    extension = PurePosixPath(path).suffix.lstrip(".")
    target = to_database or dump.database
    ctx = DumpContext(env=dump_environment(environ), config_dir=config.config_dir, dry_run=dry_run)
    load = source.restore_command(dump.database, ctx, to_database=target, extension=extension)
    restic_argv = [restic_binary, "dump", str(snapshot.get("id", short)), path]
    if dry_run:
        shown = f"restic dump {short} {path} | {load.shown()}"
        return RestoreResult(
            name=dump.name, snapshot=short, to_database=target, ok=True, output=(shown,)
        )
    source.prepare_restore(dump.database, ctx, to_database=target, extension=extension)
    restic_env, secrets = child_environment(
        repository, environ, password_provider=password_provider or restic.password_provider
    )
    redactor = Redactor([*secrets, *config.secrets()], urls=[repository.url])
    binary = shutil.which(restic_binary, path=restic_env.get("PATH", os.defpath))
    if binary is None:
        raise ResticmError(NOT_INSTALLED_MESSAGE)
    failure, lines = _pipe(
        [binary, *restic_argv[1:]],
        restic_env,
        load.argv,
        {**ctx.env, **load.env},
        on_line,
    )
    output = tuple(redactor.redact(line) for line in lines)
    return RestoreResult(
        name=dump.name,
        snapshot=short,
        to_database=target,
        ok=not failure,
        error=redactor.redact(failure),
        output=output,
    )


def _pipe(
    restic_argv: Sequence[str],
    restic_env: Mapping[str, str],
    load_argv: Sequence[str],
    load_env: Mapping[str, str],
    on_line: Callable[[str], None] | None,
) -> tuple[str, list[str]]:
    """Run ``restic dump | load``; returns (error or "", the load tool's output)."""
    read_end, write_end = os.pipe()
    program = os.path.basename(load_argv[0])
    try:
        load = subprocess.Popen(
            guarded_argv(load_argv, load_env),  # both ends die with resticm
            env=dict(load_env),
            stdin=read_end,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        return f"cannot run {program}: {exc.strerror or exc}", []
    os.close(read_end)
    assert load.stdout is not None
    load_output = PipeLines(load.stdout, on_line)
    try:
        dumper = subprocess.Popen(
            guarded_argv(restic_argv, restic_env),
            env=dict(restic_env),
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        os.close(write_end)
        stop_group(load, RESTORE_KILL_GRACE)
        return f"cannot run restic: {exc.strerror or exc}", load_output.join()
    assert dumper.stderr is not None
    restic_output = PipeLines(dumper.stderr, on_line)
    try:
        restic_code = dumper.wait()
        if restic_code != 0:
            # Our write end is still open: the restore tool has not seen an end of
            # input, so stopping it now rolls its transaction back.
            stop_group(load, RESTORE_KILL_GRACE)
            os.close(write_end)
            write_end = -1
            load.wait()
            detail = last_line(restic_output.join())
            return (
                f"restic dump failed with exit code {restic_code}: {detail}; "
                f"{program} was stopped before the end of its input",
                load_output.join(),
            )
        os.close(write_end)
        write_end = -1
        load_code = load.wait()
    except BaseException:
        stop_group(dumper, RESTORE_KILL_GRACE, signal.SIGINT)
        stop_group(load, RESTORE_KILL_GRACE)
        raise
    finally:
        if write_end >= 0:
            os.close(write_end)
    lines = load_output.join()
    restic_output.join()
    if load_code != 0:
        detail = last_line(lines)
        return f"{program} failed with exit code {load_code}: {detail}", lines
    return "", lines


# -- CLI -----------------------------------------------------------------------------------------


def add_dumps_parser(dumps: argparse.ArgumentParser, parents: Sequence[Any]) -> None:
    """The ``dumps list`` and ``dumps restore`` actions under the ``dumps`` command."""
    actions = dumps.add_subparsers(dest="dumps_action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", aliases=["ls"], parents=list(parents), help="list the dumps in the repository"
    )
    listing.add_argument("--all-hosts", action="store_true", help="of every host")
    listing.add_argument("--backend", metavar="NAME", help="this backend instead of the primary")
    restore = actions.add_parser(
        "restore",
        parents=list(parents),
        help="pipe a dump back into its database (restic dump | psql/mariadb/sqlite3)",
    )
    restore.add_argument("name", help="LABEL:DATABASE (or DATABASE when unambiguous)")
    restore.add_argument("--snapshot", metavar="ID", help="this snapshot (default: the newest)")
    restore.add_argument(
        "--to-database", metavar="DB", help="restore into this database (SQLite: this file)"
    )
    restore.add_argument("--all-hosts", action="store_true", help="newest of any host")
    restore.add_argument("--backend", metavar="NAME", help="from this backend")


def cmd_dumps(
    config: Config,
    args: argparse.Namespace,
    restic: Restic,
    environ: Mapping[str, str],
    out: TextIO = sys.stdout,
) -> int:
    """``resticm dumps list|restore``."""
    from .mirror import resolve_repository

    repository = resolve_repository(config, args.backend)
    if args.dumps_action in ("list", "ls"):
        host = None if args.all_hosts else config.hostname
        dumps = list_dumps(restic, repository, host=host)
        if args.json:
            print(json.dumps([d.to_dict() for d in dumps], indent=2), file=out)
            return 0
        if not dumps:
            print("No dumps found", file=out)
            return 0
        print(f"{'NAME':<32} {'LATEST':<10} {'TIME':<20} {'COUNT':>5}  PATH", file=out)
        for dump in dumps:
            row = dump.to_dict()["latest"]
            when = str(row["time"] or "")[:19].replace("T", " ")
            print(
                f"{dump.name:<32} {row['id']:<10} {when:<20} {len(dump.snapshots):>5}  "
                f"{row['path']}",
                file=out,
            )
        return 0
    try:
        result = restore_dump(
            config,
            repository,
            args.name,
            restic=restic,
            environ=environ,
            snapshot_id=args.snapshot,
            to_database=args.to_database,
            all_hosts=args.all_hosts,
            dry_run=args.dry_run,
            on_line=lambda line: print(line, file=sys.stderr),
        )
    except DumpError as exc:
        raise ResticmError(f"restore of {args.name}: {exc}") from None
    if args.json:
        print(json.dumps(attrs.asdict(result), indent=2), file=out)
    elif args.dry_run:
        print(f"[dry-run] would run: {result.output[0]}", file=out)
    elif result.ok:
        print(
            f"restored {result.name} from snapshot {result.snapshot} into {result.to_database}",
            file=out,
        )
    else:
        print(f"resticm: restore of {result.name} failed: {result.error}", file=sys.stderr)
    return 0 if result.ok else 1


__all__ = [
    "DumpSnapshots",
    "RestoreResult",
    "add_dumps_parser",
    "cmd_dumps",
    "group_dumps",
    "list_dumps",
    "pick_snapshot",
    "resolve_name",
    "restore_dump",
    "source_for",
]
