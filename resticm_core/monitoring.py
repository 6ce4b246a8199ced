"""What the monitoring observers write: a Prometheus textfile and a JSON status file.

Both are written atomically (a temporary file in the same directory, then
``os.replace``), so node_exporter or a status page never reads half a file, and
both *merge* with what is already there: a ``resticm forget`` run updates the
forget series and keeps the backup series of the last ``resticm backup``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic_files import atomic_write
from .phases import Outcome, StepKind

if TYPE_CHECKING:
    from .phases import RunReport

#: Metric name -> (type, help). Order = order in the file.
METRICS: dict[str, tuple[str, str]] = {
    "resticm_run_last_timestamp_seconds": ("gauge", "Unix time the last run of a command ended."),
    "resticm_run_success": ("gauge", "1 if the last run of a command exited 0, else 0."),
    "resticm_run_exit_code": ("gauge", "Exit code of the last run of a command."),
    "resticm_run_duration_seconds": ("gauge", "Duration of the last run of a command."),
    "resticm_step_last_timestamp_seconds": (
        "gauge",
        "Unix time the last run of a step on a repository ended.",
    ),
    "resticm_step_success": (
        "gauge",
        "1 ok, 0.5 partial (warnings), 0 failed: the last run of a step on a repository.",
    ),
    "resticm_step_duration_seconds": ("gauge", "Duration of the last run of a step."),
    "resticm_backup_files_new": ("gauge", "Files new in the last snapshot."),
    "resticm_backup_files_changed": ("gauge", "Files changed in the last snapshot."),
    "resticm_backup_files_unmodified": ("gauge", "Files unmodified in the last snapshot."),
    "resticm_backup_added_bytes": ("gauge", "Bytes added to the repository by the last backup."),
    "resticm_backup_processed_bytes": ("gauge", "Bytes the last backup read."),
    "resticm_backup_processed_files": ("gauge", "Files the last backup read."),
    "resticm_snapshots": (
        "gauge",
        "Snapshots of this host in the repository, counted after the last run that changed them.",
    ),
    "resticm_snapshots_timestamp_seconds": (
        "gauge",
        "Unix time resticm_snapshots was last counted.",
    ),
    "resticm_snapshot_latest_timestamp_seconds": (
        "gauge",
        "Unix time of this host's newest snapshot in the repository (alert on time() - this).",
    ),
    "resticm_snapshot_age_seconds": (
        "gauge",
        "Age of this host's newest snapshot when resticm last looked "
        "(at resticm_snapshots_timestamp_seconds).",
    ),
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$")
_STEP_VALUE = {Outcome.OK: 1.0, Outcome.PARTIAL: 0.5, Outcome.FAILED: 0.0}


def _publish(path: Path, text: str) -> None:
    """Atomically, world-readable: node_exporter and status pages run as other users."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text, mode=0o644)


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _series(name: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def report_samples(report: RunReport, labels: Mapping[str, str]) -> dict[str, float]:
    """The samples of one run, by series (``name{labels}``)."""
    samples: dict[str, float] = {}
    run_labels = {**labels, "command": report.command}
    samples[_series("resticm_run_last_timestamp_seconds", run_labels)] = report.finished_at
    samples[_series("resticm_run_success", run_labels)] = 1.0 if report.exit_code == 0 else 0.0
    samples[_series("resticm_run_exit_code", run_labels)] = float(report.exit_code)
    samples[_series("resticm_run_duration_seconds", run_labels)] = report.duration
    for step in report.steps:
        if step.outcome not in _STEP_VALUE:  # skipped (dry run, interrupted): nothing ran
            continue
        step_labels = {**labels, "step": step.name, "repository": step.repository}
        samples[_series("resticm_step_last_timestamp_seconds", step_labels)] = report.finished_at
        samples[_series("resticm_step_success", step_labels)] = _STEP_VALUE[step.outcome]
        samples[_series("resticm_step_duration_seconds", step_labels)] = step.duration
        if step.kind is StepKind.BACKUP and step.summary is not None:
            repo_labels = {**labels, "repository": step.repository}
            summary = step.summary
            for metric, value in (
                ("resticm_backup_files_new", summary.files_new),
                ("resticm_backup_files_changed", summary.files_changed),
                ("resticm_backup_files_unmodified", summary.files_unmodified),
                ("resticm_backup_added_bytes", summary.data_added),
                ("resticm_backup_processed_bytes", summary.total_bytes_processed),
                ("resticm_backup_processed_files", summary.total_files_processed),
            ):
                samples[_series(metric, repo_labels)] = float(value)
    samples.update(
        snapshot_samples(report.snapshot_counts, report.snapshot_latest, report.finished_at, labels)
    )
    return samples


def snapshot_samples(
    counts: Mapping[str, int],
    latest: Mapping[str, float],
    now: float,
    labels: Mapping[str, str],
) -> dict[str, float]:
    """The snapshot series of the repositories counted at *now* (a run's end, ``status``).

    ``resticm_snapshot_age_seconds`` is the age at *now*: a textfile is read long
    after it was written, so alerts use ``time() -
    resticm_snapshot_latest_timestamp_seconds``, which stays true between writes.
    """
    samples: dict[str, float] = {}
    for repository, count in counts.items():
        repo_labels = {**labels, "repository": repository}
        samples[_series("resticm_snapshots", repo_labels)] = float(count)
        samples[_series("resticm_snapshots_timestamp_seconds", repo_labels)] = now
        when = latest.get(repository)
        if when is not None:
            samples[_series("resticm_snapshot_latest_timestamp_seconds", repo_labels)] = when
            samples[_series("resticm_snapshot_age_seconds", repo_labels)] = max(0.0, now - when)
    return samples


def parse_samples(lines: Iterable[str]) -> dict[str, float]:
    """Our own earlier samples back from a textfile (comments and junk ignored)."""
    samples: dict[str, float] = {}
    for line in lines:
        match = _SAMPLE.match(line.strip())
        if match and match.group(1) in METRICS:
            try:
                samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
            except ValueError:
                continue
    return samples


def render_textfile(samples: Mapping[str, float]) -> str:
    """Samples in the Prometheus text format, grouped by metric, sorted."""
    out: list[str] = []
    for name, (kind, help_text) in METRICS.items():
        mine = sorted(s for s in samples if s.split("{", 1)[0] == name)
        if not mine:
            continue
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        out += [f"{series} {samples[series]!r}" for series in mine]
    return "\n".join(out) + "\n"


def update_textfile(path: Path, report: RunReport, labels: Mapping[str, str]) -> None:
    """Merge the run's samples into the textfile at *path* and write it atomically."""
    merge_textfile(path, report_samples(report, labels))


def merge_textfile(path: Path, samples: Mapping[str, float]) -> None:
    """Merge *samples* into the textfile at *path* (others kept) and write it atomically."""
    try:
        previous = parse_samples(path.read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError):
        previous = {}
    _publish(path, render_textfile({**previous, **samples}))


def _step_status(report: RunReport) -> dict[str, dict[str, Any]]:
    repositories: dict[str, dict[str, Any]] = {}
    for step in report.steps:
        if step.outcome not in _STEP_VALUE:
            continue
        entry: dict[str, Any] = {
            "success": step.outcome is not Outcome.FAILED,
            "outcome": step.outcome.value,
            "time": report.finished_at,
            "duration": round(step.duration, 3),
            "error": step.error,
        }
        if step.summary is not None:
            entry["summary"] = step.summary.to_dict()
        repositories.setdefault(step.repository, {})[step.name] = entry
    return repositories


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def update_status_file(path: Path, report: RunReport) -> None:
    """Merge the run into the JSON status file at *path* (atomically).

    Shape: ``{"version": 1, "commands": {cmd: {...}}, "repositories": {repo: {step: {...}}}}``.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    commands = _section(data, "commands")
    repositories = _section(data, "repositories")
    commands[report.command] = {
        "success": report.exit_code == 0,
        "exit_code": report.exit_code,
        "time": report.finished_at,
        "duration": round(report.duration, 3),
        "host": report.host,
        "backup_status": report.backup_status.value,
        "snapshot_id": report.snapshot_id,
        "errors": list(report.errors),
        "warnings": list(report.warnings),
    }
    for repo, steps in _step_status(report).items():
        current = repositories.get(repo)
        repositories[repo] = {**(current if isinstance(current, dict) else {}), **steps}
    for repo, count in report.snapshot_counts.items():
        # This host's snapshots, counted after the run changed the repository.
        current = repositories.get(repo)
        entry: dict[str, Any] = {"count": count, "time": report.finished_at}
        if repo in report.snapshot_latest:
            entry["latest"] = report.snapshot_latest[repo]
        repositories[repo] = {**(current if isinstance(current, dict) else {}), "snapshots": entry}
    text = json.dumps({"version": 1, "commands": commands, "repositories": repositories}, indent=2)
    _publish(path, text + "\n")
