"""The restore drill: ``resticm verify [--backend NAME] [--sample N]``.

A check proves the repository is consistent; only a restore proves the backup
holds what the source held. The drill:

1. takes this host's newest snapshot on the repository;
2. lists its files (``restic ls --json``) and keeps those whose source file still
   has the same size and modification time (they did not change since);
3. restores a random sample of them into a private temporary directory (0700,
   removed afterwards) and compares each byte for byte with the source.

Any difference is a mismatch: the snapshot does not hold what the source held
(corruption, tampering, or a file rewritten with its mtime restored). Exit 1.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import logging
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import attrs

from .config import Config, Repository
from .errors import ResticmError
from .lockcheck import parse_lock_time
from .mirror import resolve_repository
from .restic import Restic

log = logging.getLogger("resticm_core")
#: Modification times closer than this are equal (restic keeps nanoseconds, we parse µs).
_MTIME_SLACK = 0.001


@attrs.frozen(kw_only=True)
class DrillReport:
    """What the drill found."""

    repository: str
    snapshot: str
    candidates: int
    matches: tuple[str, ...] = ()
    mismatches: tuple[str, ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.error

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "snapshot": self.snapshot,
            "candidates": self.candidates,
            "sampled": len(self.matches) + len(self.mismatches),
            "matches": list(self.matches),
            "mismatches": list(self.mismatches),
            "error": self.error,
            "ok": self.ok,
        }


def _unchanged(node: Mapping[str, Any]) -> bool:
    """Is the source file still the one the snapshot saw (same size and mtime)?"""
    try:
        st = os.stat(node["path"], follow_symlinks=False)
    except (OSError, KeyError, TypeError):
        return False
    mtime = parse_lock_time(node.get("mtime"))
    return (
        mtime is not None
        and st.st_size == node.get("size")
        and abs(st.st_mtime - mtime) < _MTIME_SLACK
        and os.path.isfile(node["path"])
    )


def _escape(path: str) -> str:
    """A literal path as a restic include pattern (filepath.Match syntax)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in path)


def drill(
    restic: Restic,
    repo: Repository,
    host: str,
    *,
    sample: int,
    rng: random.Random | None = None,
) -> DrillReport:
    """Run the drill on *repo* (see the module docstring)."""
    snapshots = restic.snapshots(repo, host=host)
    if not snapshots:
        return DrillReport(
            repository=repo.name, snapshot="", candidates=0, error="no snapshot of this host"
        )
    latest = max(snapshots, key=lambda s: str(s.get("time", "")))
    snapshot_id = str(latest.get("short_id") or latest.get("id"))
    listing = restic.run(["ls", "--json", str(latest["id"])], repo, capture_stdout=True)
    if not listing.ok:
        raise ResticmError(listing.message)
    nodes = []
    for line in listing.stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and item.get("type") == "file":
            nodes.append(item)
    candidates = [n for n in nodes if _unchanged(n)]
    chosen = (rng or random.Random()).sample(candidates, min(sample, len(candidates)))
    if not chosen:
        return DrillReport(
            repository=repo.name,
            snapshot=snapshot_id,
            candidates=0,
            error="no file of the snapshot is unchanged in the source: nothing to compare",
        )
    target = Path(tempfile.mkdtemp(prefix="resticm-drill-"))  # 0700
    try:
        args = ["restore", str(latest["id"]), "--target", str(target)]
        for node in chosen:
            args += ["--include", _escape(node["path"])]
        restored = restic.run(args, repo)
        if not restored.ok:
            raise ResticmError(restored.message)
        matches: list[str] = []
        mismatches: list[str] = []
        for node in sorted(chosen, key=lambda n: str(n["path"])):
            path = str(node["path"])
            copy = target / path.lstrip("/")
            same = copy.is_file() and filecmp.cmp(path, copy, shallow=False)
            (matches if same else mismatches).append(path)
    finally:
        shutil.rmtree(target, ignore_errors=True)
    return DrillReport(
        repository=repo.name,
        snapshot=snapshot_id,
        candidates=len(candidates),
        matches=tuple(matches),
        mismatches=tuple(mismatches),
    )


def cmd_verify(
    config: Config,
    args: argparse.Namespace,
    restic: Restic,
    environ: Mapping[str, str],
    out: TextIO = sys.stdout,
) -> int:
    """``verify``: exit 0 when every sampled file matches, 1 on a mismatch or error."""
    repo = resolve_repository(config, args.backend)
    if args.sample < 1:
        raise ResticmError("--sample must be at least 1")
    if args.dry_run:
        print(
            f"[dry-run] would restore up to {args.sample} unchanged file(s) of the latest "
            f"snapshot of {config.hostname} from {repo.name} and compare them with the source",
            file=out,
        )
        return 0
    report = drill(restic, repo, config.hostname, sample=args.sample)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2), file=out)
        return 0 if report.ok else 1
    if report.error:
        print(f"resticm verify on {repo.name}: {report.error}", file=sys.stderr)
        return 1
    for path in report.mismatches:
        print(f"MISMATCH {path}", file=out)
    print(
        f"{repo.name} snapshot {report.snapshot}: {len(report.matches)} match(es), "
        f"{len(report.mismatches)} mismatch(es) of {report.candidates} unchanged file(s)",
        file=out,
    )
    return 0 if report.ok else 1


__all__ = ["DrillReport", "cmd_verify", "drill"]
