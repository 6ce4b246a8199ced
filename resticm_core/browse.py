"""Look into snapshots without restoring: ``ls``, ``find``, ``diff``, ``dump``, ``mount``.

Each command works on one repository, chosen as ``restore`` chooses it
(:mod:`resticm_core.snapshot_select`: ``--from NAME``, else the first of the
primary and ``copy_to_backends`` that answers and holds a matching snapshot).
``ls``, ``find`` and ``diff`` return typed records parsed from restic's JSON.

``dump`` and ``mount`` hand the terminal to restic: ``dump`` streams restic's
stdout to ours unchanged (binary-safe, no line splitting; the runner of
:mod:`resticm_core.restic` reads output line by line, so this one child gets its
environment from :func:`~resticm_core.restic.child_environment`, as ``resticm
run`` does: secrets in the environment only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import IO, Any

import attrs

from .config import Config, Repository
from .errors import ResticmError, UsageError
from .plugin_manager import PluginRegistry
from .restic import NOT_INSTALLED_MESSAGE, Restic, ResticRunner, child_environment
from .restoring import listing, make_restic
from .secrets import Redactor, redact_url
from .snapshot_select import (
    Choice,
    NoSnapshot,
    SkippedRepository,
    SnapshotFilter,
    check_selector,
    choose,
    configured_paths,
    pick,
    snapshot_time,
)


@attrs.frozen(kw_only=True)
class Node:
    """One entry of a snapshot."""

    path: str
    name: str
    #: ``file``, ``dir``, ``symlink``...
    type: str
    size: int = 0
    #: ``-rw-r--r--`` as restic prints it.
    permissions: str = ""
    mtime: str = ""
    uid: int = 0
    gid: int = 0

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Node:
        return cls(
            path=str(item.get("path", "")),
            name=str(item.get("name") or os.path.basename(str(item.get("path", "")))),
            type=str(item.get("type", "")),
            size=int(item.get("size") or 0),
            permissions=str(item.get("permissions", "")),
            mtime=str(item.get("mtime", "")),
            uid=int(item.get("uid") or 0),
            gid=int(item.get("gid") or 0),
        )

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class Listing:
    """What ``ls`` found: the repository and snapshot, and their nodes."""

    repository: str
    repository_url: str
    snapshot_id: str
    snapshot_time: str
    nodes: tuple[Node, ...] = ()
    skipped_repositories: tuple[SkippedRepository, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "repository_url": self.repository_url,
            "snapshot_id": self.snapshot_id,
            "snapshot_time": self.snapshot_time,
            "nodes": [n.to_dict() for n in self.nodes],
            "skipped_repositories": [s.to_dict() for s in self.skipped_repositories],
        }


@attrs.frozen(kw_only=True)
class Found:
    """One snapshot that holds a file ``find`` looked for."""

    snapshot_id: str
    snapshot_time: str
    hostname: str
    node: Node

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "snapshot_time": self.snapshot_time,
            "hostname": self.hostname,
            **self.node.to_dict(),
        }


@attrs.frozen(kw_only=True)
class FindResult:
    repository: str
    repository_url: str
    pattern: str
    #: Newest snapshot first.
    matches: tuple[Found, ...] = ()
    skipped_repositories: tuple[SkippedRepository, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "repository_url": self.repository_url,
            "pattern": self.pattern,
            "matches": [m.to_dict() for m in self.matches],
            "skipped_repositories": [s.to_dict() for s in self.skipped_repositories],
        }


@attrs.frozen(kw_only=True)
class Change:
    """One path ``diff`` reports: ``+`` added, ``-`` removed, ``M`` content, ``T`` type..."""

    path: str
    modifier: str


@attrs.frozen(kw_only=True)
class DiffResult:
    repository: str
    first: str
    second: str
    changes: tuple[Change, ...] = ()
    #: restic's ``statistics`` message (added/removed counts and bytes).
    statistics: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "first": self.first,
            "second": self.second,
            "changes": [attrs.asdict(c) for c in self.changes],
            "statistics": dict(self.statistics),
        }


def _filter(
    config: Config, host: str | None, all_hosts: bool, paths: bool = True
) -> SnapshotFilter:
    return SnapshotFilter(
        host=None if all_hosts else (host or config.hostname),
        paths=configured_paths(config) if paths else (),
    )


def _choose(
    config: Config,
    snapshot: str,
    *,
    source: str | None,
    host: str | None,
    all_hosts: bool,
    registry: PluginRegistry | None,
    runner: ResticRunner | None,
    environ: Mapping[str, str] | None,
    paths: bool = True,
) -> tuple[Restic, Choice]:
    check_selector(snapshot)
    env = dict(os.environ if environ is None else environ)
    restic = make_restic(config, env, registry or PluginRegistry.default(), runner)
    return restic, choose(
        config, restic, snapshot, _filter(config, host, all_hosts, paths), source=source
    )


def ls(
    config: Config,
    snapshot: str = "latest",
    path: str | None = None,
    *,
    source: str | None = None,
    host: str | None = None,
    all_hosts: bool = False,
    registry: PluginRegistry | None = None,
    runner: ResticRunner | None = None,
    environ: Mapping[str, str] | None = None,
) -> Listing:
    """The nodes of a snapshot (all of them; with *path*, that directory's entries).

    :raises NoRepository: no repository holds the snapshot (reasons in ``skipped``).
    """
    restic, choice = _choose(
        config,
        snapshot,
        source=source,
        host=host,
        all_hosts=all_hosts,
        registry=registry,
        runner=runner,
        environ=environ,
    )
    repo = choice.repository
    if path:
        result = restic.run(["ls", "--json", choice.snapshot_id, path], repo, capture_stdout=True)
        if not result.ok:
            raise ResticmError(result.message)
        nodes = [
            Node.from_json(item)
            for item in _json_lines(result.stdout)
            if (item.get("struct_type") or item.get("message_type")) == "node"
        ]
    else:
        nodes = [Node.from_json(item) for item in listing(restic, repo, choice.snapshot_id)]
    return Listing(
        repository=repo.name,
        repository_url=redact_url(repo.url),
        snapshot_id=choice.snapshot_id,
        snapshot_time=str(choice.snapshot.get("time", "")),
        nodes=tuple(nodes),
        skipped_repositories=choice.skipped,
    )


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def find(
    config: Config,
    pattern: str,
    *,
    source: str | None = None,
    newest: int | None = None,
    host: str | None = None,
    all_hosts: bool = False,
    registry: PluginRegistry | None = None,
    runner: ResticRunner | None = None,
    environ: Mapping[str, str] | None = None,
) -> FindResult:
    """The snapshots that hold files matching *pattern* (restic's ``find``), newest first.

    :param newest: only the N newest snapshots that hold a match.
    """
    restic, choice = _choose(
        config,
        "latest",
        source=source,
        host=host,
        all_hosts=all_hosts,
        registry=registry,
        runner=runner,
        environ=environ,
        paths=False,
    )
    repo = choice.repository
    args = ["find", "--json"]
    if not all_hosts:
        args += ["--host", host or config.hostname]
    result = restic.run([*args, "--", pattern], repo, capture_stdout=True)
    if not result.ok:
        raise ResticmError(result.message)
    try:
        groups = json.loads(result.stdout or "[]") or []
    except ValueError as exc:
        raise ResticmError(f"restic find printed invalid JSON: {exc}") from None
    by_id = {str(s.get("id")): s for s in choice.snapshots}
    found: list[tuple[float, Found]] = []
    for group in groups if isinstance(groups, list) else []:
        snap = by_id.get(str(group.get("snapshot", "")), {})
        for match in group.get("matches") or ():
            found.append(
                (
                    snapshot_time(snap) or 0.0,
                    Found(
                        snapshot_id=str(group.get("snapshot", "")),
                        snapshot_time=str(snap.get("time", "")),
                        hostname=str(snap.get("hostname", "")),
                        node=Node.from_json(match),
                    ),
                )
            )
    found.sort(key=lambda pair: pair[0], reverse=True)
    matches = [f for _t, f in found]
    if newest is not None:
        keep = list(dict.fromkeys(m.snapshot_id for m in matches))[: max(0, newest)]
        matches = [m for m in matches if m.snapshot_id in keep]
    return FindResult(
        repository=repo.name,
        repository_url=redact_url(repo.url),
        pattern=pattern,
        matches=tuple(matches),
        skipped_repositories=choice.skipped,
    )


def diff(
    config: Config,
    first: str,
    second: str = "latest",
    *,
    source: str | None = None,
    host: str | None = None,
    all_hosts: bool = False,
    registry: PluginRegistry | None = None,
    runner: ResticRunner | None = None,
    environ: Mapping[str, str] | None = None,
) -> DiffResult:
    """What changed from snapshot *first* to *second* (``restic diff --json``)."""
    check_selector(second)
    restic, choice = _choose(
        config,
        first,
        source=source,
        host=host,
        all_hosts=all_hosts,
        registry=registry,
        runner=runner,
        environ=environ,
    )
    try:
        other = pick(choice.snapshots, second, _filter(config, host, all_hosts))
    except NoSnapshot as exc:
        raise ResticmError(f"{second} on {choice.repository.name}: {exc}") from None
    ids = [choice.snapshot_id, str(other.get("id", ""))]
    result = restic.run(["diff", "--json", *ids], choice.repository, capture_stdout=True)
    if not result.ok:
        raise ResticmError(result.message)
    changes = []
    statistics: dict[str, Any] = {}
    for item in _json_lines(result.stdout):
        if item.get("message_type") == "change":
            changes.append(
                Change(path=str(item.get("path", "")), modifier=str(item.get("modifier", "")))
            )
        elif item.get("message_type") == "statistics":
            statistics = item
    return DiffResult(
        repository=choice.repository.name,
        first=ids[0],
        second=ids[1],
        changes=tuple(changes),
        statistics=statistics,
    )


def _child(
    config: Config, repo: Repository, environ: Mapping[str, str], registry: PluginRegistry
) -> tuple[str, dict[str, str], Redactor]:
    env, secrets = child_environment(repo, environ, password_provider=registry.repository_password)
    binary = shutil.which("restic", path=env.get("PATH", os.defpath))
    if binary is None:
        raise ResticmError(NOT_INSTALLED_MESSAGE)
    return binary, env, Redactor([*secrets, *config.secrets()], urls=[repo.url])


def dump(
    config: Config,
    snapshot: str,
    file: str,
    out: IO[bytes],
    *,
    source: str | None = None,
    host: str | None = None,
    all_hosts: bool = False,
    registry: PluginRegistry | None = None,
    runner: ResticRunner | None = None,
    environ: Mapping[str, str] | None = None,
) -> Choice:
    """Write one file of a snapshot to *out* exactly as stored (``restic dump``).

    :raises ResticmError: restic failed (its last words, redacted, in the message).
    """
    env = dict(os.environ if environ is None else environ)
    registry = registry or PluginRegistry.default()
    _restic, choice = _choose(
        config,
        snapshot,
        source=source,
        host=host,
        all_hosts=all_hosts,
        registry=registry,
        runner=runner,
        environ=env,
    )
    binary, child_env, redactor = _child(config, choice.repository, env, registry)
    out.flush()
    proc = subprocess.run(
        [binary, "dump", choice.snapshot_id, file],
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=out.fileno(),
        stderr=subprocess.PIPE,
        check=False,
    )
    if proc.returncode != 0:
        said = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        detail = said[-1].removeprefix("Fatal: ") if said else f"exit {proc.returncode}"
        raise ResticmError(
            redactor.redact(f"restic dump of {file} from {choice.repository.name}: {detail}")
        )
    return choice


def fuse_problem(environ: Mapping[str, str]) -> str:
    """Why ``mount`` cannot work here ("" when FUSE is usable)."""
    if not os.path.exists("/dev/fuse"):
        return "FUSE is not available: /dev/fuse is missing (load the fuse module: modprobe fuse)"
    path = environ.get("PATH", os.defpath)
    if not (shutil.which("fusermount3", path=path) or shutil.which("fusermount", path=path)):
        return "FUSE is not available: fusermount is not installed (install the 'fuse3' package)"
    return ""


def mount(
    config: Config,
    directory: str,
    *,
    source: str | None = None,
    registry: PluginRegistry | None = None,
    runner: ResticRunner | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """``restic mount DIRECTORY`` in the foreground until it is stopped; restic's exit code.

    :raises UsageError: FUSE is not available (exit 2).
    """
    env = dict(os.environ if environ is None else environ)
    problem = fuse_problem(env)
    if problem:
        raise UsageError(problem)
    if not os.path.isdir(directory):
        raise UsageError(f"mount point {directory} is not a directory")
    registry = registry or PluginRegistry.default()
    _restic, choice = _choose(
        config,
        "latest",
        source=source,
        host=None,
        all_hosts=True,
        registry=registry,
        runner=runner,
        environ=env,
        paths=False,
    )
    binary, child_env, _redactor = _child(config, choice.repository, env, registry)
    proc = subprocess.Popen([binary, "mount", directory], env=child_env)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # restic got the SIGINT too and unmounts
        return proc.wait()


__all__ = [
    "Change",
    "DiffResult",
    "FindResult",
    "Found",
    "Listing",
    "Node",
    "diff",
    "dump",
    "find",
    "fuse_problem",
    "ls",
    "mount",
]
