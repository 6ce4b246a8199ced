"""``resticm status``: is every repository's newest backup of this host fresh?

For the primary and every copy backend: this host's newest snapshot (id, age,
size when restic says it), the snapshot count, the last run's outcome from the
status file (``monitoring.status_file``), the last deep check from the
deep-check state. With a maximum age it is a health check with the monitoring
exit codes of Nagios/Icinga (the rule is documented in docs/status.md):

* 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. A repository that cannot be read is
  UNKNOWN, never OK. The verdict is the worst repository's, ranked
  OK < WARNING < UNKNOWN < CRITICAL: a repository known to be stale is the more
  urgent news.

Cost: one ``restic --no-lock snapshots --json --host H`` per repository, all at
once in a small thread pool (each restic spends most of its time deriving the
key and waiting for the backend, so they overlap well). That one call gives the
count *and* the newest snapshot; ``--latest 1`` would need a second call for the
count. It takes no lock, so it never waits for a running backup. No transient
retries: a monitor asks again at its next interval, and a probe must answer
within the monitor's own timeout.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from .cli_types import duration_seconds
from .display import format_bytes
from .errors import UsageError
from .reachability import unreachable
from .secrets import redact_url
from .snapshot_count import SnapshotSurvey, query
from .state import DeepCheckState, default_state_dir, repository_id

if TYPE_CHECKING:
    from .config import Config, Repository
    from .restic import Restic

#: Repositories queried at once (more would only queue on the CPU: key derivation).
MAX_WORKERS = 4
#: Steps whose last record tells whether the last run wrote this repository's snapshot.
_WRITING_STEPS = ("backup", "copy")
_DUMP_PREFIX = "dump "


class Health(enum.IntEnum):
    """A repository's (and the whole check's) state; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


_RANK = {Health.OK: 0, Health.WARNING: 1, Health.UNKNOWN: 2, Health.CRITICAL: 3}


def worst(states: Sequence[Health]) -> Health:
    """The most urgent of *states* (OK when empty)."""
    return max(states, key=_RANK.__getitem__, default=Health.OK)


@attrs.frozen(kw_only=True)
class RepositoryStatus:
    """What ``status`` found out about one repository."""

    name: str
    #: The repository URL, password redacted.
    url: str
    state: Health
    #: Why the state is not OK, one line each.
    reasons: tuple[str, ...] = ()
    #: None: the repository could not be read.
    count: int | None = None
    newest: Mapping[str, Any] | None = None
    newest_time: float | None = None
    age: float | None = None
    max_age: float | None = None
    #: The newest record of a snapshot-writing step (backup, copy, dump) in the status file.
    last_run: Mapping[str, Any] | None = None
    last_check: Mapping[str, Any] | None = None
    last_deep_check: float | None = None

    @property
    def size(self) -> int | None:
        """Bytes the newest snapshot covers (restic >= 0.17 writes a summary; 0.14 none)."""
        summary = (self.newest or {}).get("summary")
        value = summary.get("total_bytes_processed") if isinstance(summary, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def to_dict(self) -> dict[str, Any]:
        newest = None
        if self.newest is not None:
            newest = {
                "id": self.newest.get("id"),
                "short_id": self.newest.get("short_id"),
                "time": self.newest.get("time"),
                "age_seconds": None if self.age is None else round(self.age, 3),
                "size": self.size,
            }
        return {
            "name": self.name,
            "repository": self.url,
            "state": self.state.label,
            "reasons": list(self.reasons),
            "snapshots": self.count,
            "newest": newest,
            "max_age_seconds": self.max_age,
            "last_run": dict(self.last_run) if self.last_run else None,
            "last_check": dict(self.last_check) if self.last_check else None,
            "last_deep_check": self.last_deep_check,
        }


@attrs.frozen(kw_only=True)
class StatusReport:
    host: str
    time: float
    repositories: tuple[RepositoryStatus, ...]

    @property
    def state(self) -> Health:
        return worst([r.state for r in self.repositories])

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.label,
            "exit_code": int(self.state),
            "host": self.host,
            "time": self.time,
            "repositories": [r.to_dict() for r in self.repositories],
        }


# -- inputs ------------------------------------------------------------------------------------


def effective_max_age(config: Config, name: str, cli: float | None) -> float | None:
    """The repository's own ``max_age`` (a backend's, or the top-level one for the
    primary), else ``--max-age``, else the top-level ``max_age`` (backends)."""
    from .config import PRIMARY

    own = config.max_age if name == PRIMARY else config.backends[name].max_age
    if own is not None:
        return own
    return cli if cli is not None else config.max_age


def configured_path(config: Config, target: str) -> Path:
    """A ``monitoring:`` path as the observers resolve it (``~``, relative to the config)."""
    path = Path(os.path.expanduser(target))
    return path if path.is_absolute() else config.config_dir / path


def read_status_file(config: Config) -> dict[str, Any]:
    """``repositories`` of the JSON status file; {} when not configured or unreadable."""
    if not config.monitoring.status_file:
        return {}
    try:
        data = json.loads(configured_path(config, config.monitoring.status_file).read_text())
    except (OSError, ValueError):
        return {}
    section = data.get("repositories") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}


def _records(status: Mapping[str, Any], name: str) -> tuple[list[dict[str, Any]], Any]:
    """(snapshot-writing step records, the check record) of *name*, each with its step."""
    entry = status.get(name)
    if not isinstance(entry, dict):
        return [], None
    writing = [
        {"step": step, **record}
        for step, record in entry.items()
        if isinstance(record, dict)
        and (step in _WRITING_STEPS or step.startswith(_DUMP_PREFIX))
        and isinstance(record.get("time"), int | float)
    ]
    check = entry.get("check")
    return writing, ({"step": "check", **check} if isinstance(check, dict) else None)


# -- evaluation --------------------------------------------------------------------------------


def human_age(seconds: float) -> str:
    """``95`` -> ``1m35s``, ``93784`` -> ``1d2h``, ``86400`` -> ``1d``: two units at most."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    first = next((i for i, (value, _) in enumerate(parts) if value), len(parts) - 1)
    shown = [f"{value}{unit}" for value, unit in parts[first : first + 2] if value]
    return "".join(shown) or "0s"


def evaluate(
    name: str,
    url: str,
    found: SnapshotSurvey | None,
    failure: str,
    *,
    host: str,
    now: float,
    max_age: float | None,
    warn_age: float | None,
    status: Mapping[str, Any],
    deep_check: float | None,
) -> RepositoryStatus:
    """One repository's state by the rule of docs/status.md."""
    states: list[Health] = []
    reasons: list[str] = []

    def flag(state: Health, reason: str) -> None:
        states.append(state)
        reasons.append(reason)

    writing, check = _records(status, name)
    last_run = max(writing, key=lambda r: r["time"], default=None)
    for record in writing + ([check] if check else []):
        outcome = record.get("outcome") or ("ok" if record.get("success") else "failed")
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.get("time", 0)))
        error = f": {record['error']}" if record.get("error") else ""
        if outcome == "failed":
            flag(Health.CRITICAL, f"last {record['step']} failed ({when}){error}")
        elif outcome == "partial":
            flag(Health.WARNING, f"last {record['step']} finished with warnings ({when})")
    age = None
    if found is None:
        flag(Health.UNKNOWN, failure)
    elif found.count == 0:
        flag(Health.CRITICAL, f"no snapshot of host {host}")
    elif found.newest_time is None:
        flag(Health.UNKNOWN, "the newest snapshot has no readable time")
    else:
        age = now - found.newest_time
        shown = human_age(age)
        if max_age is not None and age > max_age:
            flag(Health.CRITICAL, f"newest snapshot is {shown} old (max age {human_age(max_age)})")
        elif warn_age is not None and age > warn_age:
            flag(Health.WARNING, f"newest snapshot is {shown} old (warn age {human_age(warn_age)})")
    return RepositoryStatus(
        name=name,
        url=url,
        state=worst(states),
        reasons=tuple(reasons),
        count=None if found is None else found.count,
        newest=None if found is None else found.newest,
        newest_time=None if found is None else found.newest_time,
        age=age,
        max_age=max_age,
        last_run=last_run,
        last_check=check,
        last_deep_check=deep_check,
    )


# -- collection --------------------------------------------------------------------------------


def _probe(
    restic: Restic, repo: Repository, host: str, deep: Mapping[str, tuple[float, str]]
) -> tuple[SnapshotSurvey | None, str, float | None]:
    """The one snapshots call; the deep check by the name the state recorded beside the id.

    The state is keyed by repository id, which only ``restic cat config`` tells:
    a second call per repository. The state also records the backend name, so
    the id is asked for only when two entries share this name (two configs on
    one machine both calling theirs ``primary``).
    """
    down = unreachable(repo.url)
    if down is not None:  # restic >= 0.17 would retry a refused connection for 15 minutes
        return None, redact_url(f"restic snapshots failed on {repo.name}: {down}"), None
    found, result = query(restic, repo, host)
    failure = "" if found is not None else (result.message or "restic printed no snapshot list")
    named = [when for when, name in deep.values() if name == repo.name]
    deep_check = named[0] if len(named) == 1 else None
    if len(named) > 1 and found is not None:
        probe = restic.cat_config(repo)
        repo_id = repository_id(probe.stdout) if probe.ok else None
        deep_check = deep[repo_id][0] if repo_id is not None and repo_id in deep else None
    return found, redact_url(failure), deep_check


def collect(
    config: Config,
    restic: Restic,
    repositories: Sequence[Repository],
    *,
    environ: Mapping[str, str],
    max_age: float | None = None,
    warn_age: float | None = None,
    now: float | None = None,
    state_dir: Path | None = None,
) -> StatusReport:
    """Query *repositories* in parallel and evaluate each (see the module doc)."""
    host = config.hostname
    deep = DeepCheckState(state_dir or default_state_dir(environ)).deep_checks()
    workers = max(1, min(MAX_WORKERS, len(repositories)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="status") as pool:
        probes = list(pool.map(lambda repo: _probe(restic, repo, host, deep), repositories))
    moment = time.time() if now is None else now
    status = read_status_file(config)
    rows = []
    for repo, (found, failure, deep_check) in zip(repositories, probes, strict=True):
        limit = effective_max_age(config, repo.name, max_age)
        rows.append(
            evaluate(
                repo.name,
                redact_url(repo.url),
                found,
                failure,
                host=host,
                now=moment,
                max_age=limit,
                warn_age=warn_age,
                status=status,
                deep_check=deep_check,
            )
        )
    return StatusReport(host=host, time=moment, repositories=tuple(rows))


# -- output ------------------------------------------------------------------------------------


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def _threshold(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def verdict_line(report: StatusReport, warn_age: float | None = None) -> str:
    """The first line (what Nagios shows), with performance data after ``|``."""
    rows = report.repositories
    bad = [r for r in rows if r.state is not Health.OK]
    if bad:
        text = "; ".join(f"{r.name}: {r.reasons[0]}" for r in bad if r.reasons)
    else:
        ages = [r.age for r in rows if r.age is not None]
        newest = f", oldest newest-snapshot {human_age(max(ages))}" if ages else ""
        text = f"{len(rows)} repositor{'y' if len(rows) == 1 else 'ies'} ok{newest}"
    perf = " ".join(
        f"'{r.name}_age'={r.age:.0f}s;{_threshold(warn_age)};{_threshold(r.max_age)}"
        for r in rows
        if r.age is not None
    )
    return f"RESTICM {report.state.name} - {text}" + (f" | {perf}" if perf else "")


def render(report: StatusReport, warn_age: float | None = None) -> str:
    """The verdict line, then a table, then every reason."""
    header = ("REPOSITORY", "SNAPSHOT", "AGE", "SIZE", "COUNT", "LAST RUN", "DEEP CHECK", "STATE")
    table = [header]
    for r in report.repositories:
        run = r.last_run
        run_text = f"{run.get('outcome', '?')} {_when(run.get('time'))}" if run else "-"
        size = r.size
        table.append(
            (
                r.name,
                str((r.newest or {}).get("short_id") or "-"),
                "-" if r.age is None else human_age(r.age),
                "-" if size is None else format_bytes(size),
                "-" if r.count is None else str(r.count),
                run_text,
                _when(r.last_deep_check),
                r.state.name,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [verdict_line(report, warn_age)]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    for r in report.repositories:
        lines += [f"{r.name}: {reason}" for reason in r.reasons]
    return "\n".join(lines) + "\n"


def write_metrics(path: Path, report: StatusReport) -> None:
    """Merge the snapshot series of the repositories read into the textfile."""
    from .monitoring import merge_textfile, snapshot_samples

    counts = {r.name: r.count for r in report.repositories if r.count is not None}
    latest = {r.name: r.newest_time for r in report.repositories if r.newest_time is not None}
    merge_textfile(path, snapshot_samples(counts, latest, report.time, {"host": report.host}))


# -- the command -------------------------------------------------------------------------------


def add_parser(command: Any) -> None:
    """The ``status`` subcommand; *command(name, help)* returns a subparser."""
    status = command(
        "status", "newest snapshot per repository; a health check with --max-age (exit 0-3)"
    )
    status.add_argument(
        "--max-age",
        type=duration_seconds,
        metavar="DURATION",
        help="critical when a newest snapshot is older (e.g. 26h); "
        "a repository's max_age: in the config wins",
    )
    status.add_argument(
        "--warn-age", type=duration_seconds, metavar="DURATION", help="warning when older"
    )
    status.add_argument(
        "-b",
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help="only this repository (repeatable; primary for the primary)",
    )
    status.add_argument(
        "--timeout",
        type=duration_seconds,
        metavar="DURATION",
        help="stop a restic call after this long: UNKNOWN (default: timeouts.snapshots, 300s)",
    )
    status.add_argument(
        "--textfile",
        nargs="?",
        const="",
        metavar="PATH",
        help="also write the snapshot metrics to PATH (default: monitoring.prometheus_textfile)",
    )


def _textfile_target(config: Config, value: str | None) -> Path | None:
    if value is None:
        return None
    target = value or config.monitoring.prometheus_textfile
    if not target:
        raise UsageError(
            "status --textfile: no PATH given and monitoring.prometheus_textfile is not set"
        )
    return configured_path(config, target)


def cmd_status(
    config: Config,
    args: argparse.Namespace,
    restic: Restic,
    environ: Mapping[str, str],
    out: TextIO = sys.stdout,
) -> int:
    """``status``: the exit code is the verdict (0 ok, 1 warning, 2 critical, 3 unknown)."""
    from .mirror import resolve_repository  # maintenance engine: only status needs it here

    textfile = _textfile_target(config, args.textfile)
    if args.backend:
        names = [n for value in args.backend for n in value.split(",") if n]
        repositories = [resolve_repository(config, name) for name in dict.fromkeys(names)]
    else:
        repositories = [config.primary_repository()] + [
            config.repository_named(n) for n in dict.fromkeys(config.copy_to_backends)
        ]
    restic.retries = 0  # see the module doc
    if args.timeout is not None:
        restic.timeouts["snapshots"] = args.timeout
    report = collect(
        config,
        restic,
        repositories,
        environ=environ,
        max_age=args.max_age,
        warn_age=args.warn_age,
    )
    if textfile is not None:
        write_metrics(textfile, report)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2), file=out)
    else:
        out.write(render(report, args.warn_age))
    return int(report.state)


__all__ = [
    "Health",
    "RepositoryStatus",
    "StatusReport",
    "cmd_status",
    "collect",
    "effective_max_age",
    "evaluate",
    "render",
    "worst",
]
