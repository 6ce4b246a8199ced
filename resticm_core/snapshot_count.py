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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .phases import Outcome, StepKind, StepResult

if TYPE_CHECKING:
    from .config import Config
    from .restic import Restic

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


def parse_count(stdout: str) -> int | None:
    """The number of snapshots in ``restic snapshots --json`` output; None if unreadable."""
    try:
        value = json.loads(stdout or "")
    except ValueError:
        return None
    if value is None:  # some restic versions print `null` for none
        return 0
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return len(value)
    return None


def count_snapshots(
    restic: Restic,
    config: Config,
    steps: Sequence[StepResult],
    *,
    dry_run: bool = False,
    stopped: Callable[[], bool] = lambda: False,
    redact: Callable[[str], str] = str,
) -> dict[str, int]:
    """Snapshots of ``config.hostname`` per changed repository name (see the module doc).

    Never raises for an unreachable repository or odd output: that repository is
    left out and a warning (redacted by *redact*) is logged.
    """
    if not wanted(config, dry_run=dry_run):
        return {}
    counts: dict[str, int] = {}
    for name in repositories_changed(steps):
        if stopped():
            break
        try:
            repository = config.repository_named(name)
        except KeyError:  # a step of a plugin on a repository the config does not name
            continue
        args = ["--no-lock", "snapshots", "--json", "--host", config.hostname]
        result = restic.run(args, repository, capture_stdout=True)
        count = parse_count(result.stdout) if result.ok else None
        if count is None:
            reason = result.message if not result.ok else "restic printed no snapshot list"
            log.warning("cannot count the snapshots of %s: %s", name, redact(reason))
            continue
        counts[name] = count
    return counts
