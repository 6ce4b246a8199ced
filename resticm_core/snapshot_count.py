"""Counting each repository's snapshots after a run, for the ``resticm_snapshots`` metric.

Why a separate ``restic snapshots`` call and not ``forget --json``: forget runs
only in ``resticm``/``full`` (never after ``resticm backup``, the command most
schedules run), its tables are part of the user-visible output, and with
``--prune`` restic 0.14 prints prune's text after the JSON on stdout. One
``restic --no-lock snapshots --json --host H`` per repository is cheap (it reads
the snapshot files only, through restic's cache, and writes no lock), so it runs
only when a Prometheus textfile is configured, only on repositories whose
snapshot list the run changed (a successful or partial backup, dump, forget or
copy), and never in a dry run or after a signal. A failed count is logged and leaves
the metric's previous value; it never changes the run's outcome.

The same call also gives the newest snapshot (its time feeds
``resticm_snapshot_latest_timestamp_seconds``), and ``resticm status`` reuses it
(:func:`query`): one restic call per repository gives both the count and the
newest snapshot, where ``--latest 1`` would give the newest only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from .phases import Outcome, StepKind, StepResult

if TYPE_CHECKING:
    from .config import Config, Repository
    from .restic import Restic, ResticResult

log = logging.getLogger("resticm_core.monitoring")

#: Steps after which a repository's snapshot list may differ (each dump writes one).
CHANGING_STEPS = frozenset({StepKind.BACKUP, StepKind.DUMP, StepKind.FORGET, StepKind.COPY})


def wanted(config: Config, *, dry_run: bool) -> bool:
    """Does anything consume snapshot counts for this run (the textfile, the status file)?"""
    monitoring = config.monitoring
    return not dry_run and bool(monitoring.prometheus_textfile or monitoring.status_file)


def repositories_changed(steps: Sequence[StepResult]) -> list[str]:
    """Repositories (in order of first change) on which a snapshot-changing step ran."""
    names: list[str] = []
    for step in steps:
        changing = step.kind in CHANGING_STEPS
        changed = changing and step.outcome in (Outcome.OK, Outcome.PARTIAL)
        if changed and step.repository not in names:
            names.append(step.repository)
    return names


# RFC 3339 as restic writes it: nanoseconds, ``Z`` or an offset. Python 3.11's
# fromisoformat takes at most 6 fractional digits, so the rest is cut.
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def snapshot_time(value: object) -> float | None:
    """Epoch seconds of a snapshot's ``time`` (``2024-05-01T02:00:00.123456789+02:00``)."""
    match = _TIME.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    fraction = (match.group(2) or "")[:7]
    zone = match.group(3) or "Z"
    zone = "+00:00" if zone == "Z" else zone
    try:
        return datetime.fromisoformat(match.group(1) + fraction + zone).timestamp()
    except ValueError:
        return None


@attrs.frozen(kw_only=True)
class SnapshotSurvey:
    """This host's snapshots in one repository: how many, and the newest one."""

    count: int
    #: The newest snapshot as restic printed it (``id``, ``short_id``, ``time``,
    #: ``summary`` on restic >= 0.17...), None when there is none.
    newest: Mapping[str, Any] | None = None
    #: Its time in epoch seconds (None: no snapshot, or a time restic wrote oddly).
    newest_time: float | None = None


def parse_snapshots(stdout: str) -> list[dict[str, Any]] | None:
    """The list in ``restic snapshots --json`` output; None if unreadable."""
    try:
        value = json.loads(stdout or "")
    except ValueError:
        return None
    if value is None:  # some restic versions print `null` for none
        return []
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    return None


def survey(snapshots: Sequence[Mapping[str, Any]]) -> SnapshotSurvey:
    """Count and newest of *snapshots* (restic lists them oldest first; not relied on)."""
    timed = [(snapshot_time(s.get("time")), i) for i, s in enumerate(snapshots)]
    known = [(t, i) for t, i in timed if t is not None]
    if not known:
        newest = snapshots[-1] if snapshots else None
        return SnapshotSurvey(count=len(snapshots), newest=newest)
    when, index = max(known)
    return SnapshotSurvey(count=len(snapshots), newest=snapshots[index], newest_time=when)


def parse_count(stdout: str) -> int | None:
    """The number of snapshots in ``restic snapshots --json`` output; None if unreadable."""
    found = parse_snapshots(stdout)
    return None if found is None else len(found)


def query(
    restic: Restic, repository: Repository, host: str
) -> tuple[SnapshotSurvey | None, ResticResult]:
    """One ``restic --no-lock snapshots --json --host H``: the survey (None on failure)
    and the result (its ``message`` says why when the survey is None)."""
    args = ["--no-lock", "snapshots", "--json", "--host", host]
    result = restic.run(args, repository, capture_stdout=True)
    found = parse_snapshots(result.stdout) if result.ok else None
    return (survey(found) if found is not None else None), result


def count_snapshots(
    restic: Restic,
    config: Config,
    steps: Sequence[StepResult],
    *,
    dry_run: bool = False,
    stopped: Callable[[], bool] = lambda: False,
    redact: Callable[[str], str] = str,
) -> dict[str, int]:
    """Snapshots of ``config.hostname`` per changed repository name (see the module doc)."""
    found = survey_snapshots(
        restic, config, steps, dry_run=dry_run, stopped=stopped, redact=redact
    )
    return {name: entry.count for name, entry in found.items()}


def survey_snapshots(
    restic: Restic,
    config: Config,
    steps: Sequence[StepResult],
    *,
    dry_run: bool = False,
    stopped: Callable[[], bool] = lambda: False,
    redact: Callable[[str], str] = str,
) -> dict[str, SnapshotSurvey]:
    """This host's snapshot count and newest snapshot per changed repository.

    Never raises for an unreachable repository or odd output: that repository is
    left out and a warning (redacted by *redact*) is logged.
    """
    if not wanted(config, dry_run=dry_run):
        return {}
    counts: dict[str, SnapshotSurvey] = {}
    for name in repositories_changed(steps):
        if stopped():
            break
        try:
            repository = config.repository_named(name)
        except KeyError:  # a step of a plugin on a repository the config does not name
            continue
        found, result = query(restic, repository, config.hostname)
        if found is None:
            reason = result.message if not result.ok else "restic printed no snapshot list"
            log.warning("cannot count the snapshots of %s: %s", name, redact(reason))
            continue
        counts[name] = found
    return counts
