"""The CLI of ``restore``, ``ls``, ``find``, ``diff``, ``dump`` and ``mount`` (issue 15).

Parsers are added by :func:`add_parsers` (argparse only: building the parser
stays cheap); :func:`dispatch` imports the library modules when one runs.
Results go to stdout (``--json``: one JSON document), diagnostics to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

#: The commands of this module.
COMMANDS = ("restore", "ls", "find", "diff", "dump", "mount")


def _from(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="source",
        metavar="NAME",
        help="this repository: primary or a backend (default: the primary, then "
        "copy_to_backends in order, the first that answers and holds the snapshot)",
    )


def _host(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", metavar="HOST", help="snapshots of this host (default: this one)")
    parser.add_argument("--all-hosts", action="store_true", help="snapshots of any host")


def add_parsers(command: Any) -> None:
    """Add the subcommands; *command(name, help)* returns a subparser."""
    restore = command("restore", "restore a snapshot from the primary or a mirror")
    restore.add_argument(
        "snapshot", nargs="?", default="latest", help="latest (default), latest~N or an id prefix"
    )
    _from(restore)
    restore.add_argument("--target", metavar="DIR", help="restore into this directory")
    restore.add_argument(
        "--in-place", action="store_true", help="restore onto / (asks for confirmation)"
    )
    restore.add_argument("--yes", action="store_true", help="no confirmation for --in-place")
    restore.add_argument(
        "--include", action="append", default=[], metavar="PATTERN", help="only these (repeatable)"
    )
    restore.add_argument(
        "--exclude", action="append", default=[], metavar="PATTERN", help="not these (repeatable)"
    )
    restore.add_argument(
        "--path",
        dest="paths",
        action="append",
        default=None,
        metavar="PATH",
        help="latest must hold this path (repeatable; default: the configured directories)",
    )
    _host(restore)
    restore.add_argument(
        "--tag", dest="tags", action="append", default=[], metavar="TAG", help="latest with tag"
    )
    restore.add_argument("--before", metavar="DATE", help="the newest snapshot before DATE")
    restore.add_argument("--after", metavar="DATE", help="only snapshots after DATE")
    restore.add_argument(
        "--overwrite",
        choices=("always", "if-changed", "never"),
        help="existing files in the target: required when it is not empty",
    )
    restore.add_argument(
        "--delete", action="store_true", help="remove files the snapshot lacks (restic >= 0.17)"
    )
    restore.add_argument("--verify", action="store_true", help="read back what was restored")
    restore.add_argument("--no-hooks", action="store_true", help="run no restore hook")

    listing = command("ls", "list the files of a snapshot")
    listing.add_argument("snapshot", nargs="?", default="latest", help="latest, latest~N or an id")
    listing.add_argument("path", nargs="?", help="only this directory")
    _from(listing)
    _host(listing)
    listing.add_argument("-l", "--long", action="store_true", help="mode, size and time too")

    find = command("find", "which snapshots hold a file (newest first)")
    find.add_argument("pattern", help="a name or path pattern (restic find)")
    _from(find)
    _host(find)
    find.add_argument("--newest", type=int, metavar="N", help="only the N newest snapshots")

    diff = command("diff", "what changed between two snapshots")
    diff.add_argument("first", help="latest~N or an id")
    diff.add_argument("second", nargs="?", default="latest", help="default: latest")
    _from(diff)
    _host(diff)

    dump = command("dump", "write one file of a snapshot to stdout (binary-safe)")
    dump.add_argument("snapshot", help="latest, latest~N or an id")
    dump.add_argument("file", help="the file's path in the snapshot")
    _from(dump)
    _host(dump)

    mount = command("mount", "browse the snapshots as files (restic mount; needs FUSE)")
    mount.add_argument("directory", help="the mount point")
    _from(mount)


def _err(text: str) -> None:
    print(f"resticm: {text}", file=sys.stderr)


def _skipped_lines(skipped: Any, out: TextIO) -> None:
    for s in skipped:
        print(f"skipped {s.name} ({s.url}): {s.reason}", file=out)


def _confirm(args: argparse.Namespace) -> bool:
    if args.yes or args.dry_run:
        return True
    if not sys.stdin.isatty():
        _err("--in-place overwrites files under /: confirm with --yes when not on a terminal")
        return False
    policy = args.overwrite or "always"
    answer = input(f"Restore {args.snapshot} onto /, overwriting existing files ({policy})? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def cmd_restore(
    config: Any,
    args: argparse.Namespace,
    registry: Any,
    environ: Mapping[str, str],
    out: TextIO = sys.stdout,
) -> int:
    import logging

    from .display import format_bytes as human_bytes
    from .logs import LOGGER_NAME, HookOutputLog
    from .restoring import restore

    if args.in_place and not _confirm(args):
        return 2
    report = restore(
        config,
        args.snapshot,
        args.target,
        args.source,
        include=args.include,
        exclude=args.exclude,
        paths=args.paths,
        host=args.host,
        all_hosts=args.all_hosts,
        tags=args.tags,
        before=args.before,
        after=args.after,
        overwrite=args.overwrite,
        delete=args.delete,
        verify=args.verify,
        dry_run=args.dry_run,
        in_place=args.in_place,
        no_hooks=args.no_hooks,
        registry=registry,
        environ=environ,
        output=HookOutputLog(logging.getLogger(LOGGER_NAME)),
        verbose=args.verbose,
        handle_signals=True,
        progress=getattr(args, "progress_display", None),
    )
    if getattr(args, "progress_display", None) is not None:
        args.progress_display.close()  # the line is gone before the report is printed
    if args.json:
        print(json.dumps(report.to_dict(), indent=2), file=out)
        return report.exit_code
    if report.repository:
        _skipped_lines(report.skipped_repositories, out)
        used = f"{report.repository} ({report.repository_url})"
        if report.skipped_repositories:
            names = ", ".join(s.name for s in report.skipped_repositories)
            used += f", because {names} could not serve it"
        print(f"using {used}", file=out)
    if report.ok:
        verb = "[dry-run] would restore" if report.dry_run else "restored"
        kept = f", {report.files_skipped} existing file(s) kept" if report.files_skipped else ""
        print(
            f"{verb} {report.files_restored} files and directories "
            f"({human_bytes(report.bytes_restored)}) "
            f"from snapshot {report.snapshot_id[:8]} ({report.snapshot_time[:19]}) "
            f"into {report.target}{kept}",
            file=out,
        )
    for warning in report.warnings:
        _err(f"warning: {warning}")
    for error in report.errors:
        _err(error)
    return report.exit_code


def cmd_ls(config: Any, args: argparse.Namespace, registry: Any, environ: Any, out: TextIO) -> int:
    from .browse import ls

    result = ls(
        config,
        args.snapshot,
        args.path,
        source=args.source,
        host=args.host,
        all_hosts=args.all_hosts,
        registry=registry,
        environ=environ,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2), file=out)
        return 0
    _skipped_lines(result.skipped_repositories, sys.stderr)
    print(
        f"snapshot {result.snapshot_id[:8]} of {result.repository} ({result.snapshot_time[:19]}):",
        file=sys.stderr,
    )
    for node in result.nodes:
        if args.long:
            when = node.mtime[:19].replace("T", " ")
            print(f"{node.permissions:<11} {node.size:>12} {when}  {node.path}", file=out)
        else:
            print(node.path, file=out)
    return 0


def cmd_find(
    config: Any, args: argparse.Namespace, registry: Any, environ: Any, out: TextIO
) -> int:
    from .browse import find

    result = find(
        config,
        args.pattern,
        source=args.source,
        newest=args.newest,
        host=args.host,
        all_hosts=args.all_hosts,
        registry=registry,
        environ=environ,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2), file=out)
        return 0 if result.matches else 1
    _skipped_lines(result.skipped_repositories, sys.stderr)
    if not result.matches:
        print(f"no snapshot on {result.repository} holds {args.pattern}", file=out)
        return 1
    for match in result.matches:
        when = match.snapshot_time[:19].replace("T", " ")
        print(
            f"{match.snapshot_id[:8]}  {when}  {match.node.size:>10}  {match.node.path}", file=out
        )
    return 0


def cmd_diff(
    config: Any, args: argparse.Namespace, registry: Any, environ: Any, out: TextIO
) -> int:
    from .browse import diff

    result = diff(
        config,
        args.first,
        args.second,
        source=args.source,
        host=args.host,
        all_hosts=args.all_hosts,
        registry=registry,
        environ=environ,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2), file=out)
        return 0
    print(f"comparing {result.first[:8]} to {result.second[:8]} on {result.repository}", file=out)
    for change in result.changes:
        print(f"{change.modifier:<4} {change.path}", file=out)
    added = result.statistics.get("added") or {}
    removed = result.statistics.get("removed") or {}
    if result.statistics:
        print(
            f"files: {added.get('files', 0)} new, {removed.get('files', 0)} removed, "
            f"{result.statistics.get('changed_files', 0)} changed",
            file=out,
        )
    return 0


def cmd_dump(config: Any, args: argparse.Namespace, registry: Any, environ: Any) -> int:
    from .browse import dump

    dump(
        config,
        args.snapshot,
        args.file,
        sys.stdout.buffer,
        source=args.source,
        host=args.host,
        all_hosts=args.all_hosts,
        registry=registry,
        environ=environ,
    )
    return 0


def cmd_mount(config: Any, args: argparse.Namespace, registry: Any, environ: Any) -> int:
    from .browse import mount

    return mount(config, args.directory, source=args.source, registry=registry, environ=environ)


def dispatch(
    command: str,
    config: Any,
    args: argparse.Namespace,
    registry: Any,
    environ: Mapping[str, str],
    out: TextIO = sys.stdout,
) -> int:
    if command == "restore":
        return cmd_restore(config, args, registry, environ, out)
    if command == "ls":
        return cmd_ls(config, args, registry, environ, out)
    if command == "find":
        return cmd_find(config, args, registry, environ, out)
    if command == "diff":
        return cmd_diff(config, args, registry, environ, out)
    if command == "dump":
        return cmd_dump(config, args, registry, environ)
    return cmd_mount(config, args, registry, environ)


__all__ = ["COMMANDS", "add_parsers", "dispatch"]
