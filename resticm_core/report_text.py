"""The end-of-run summary a person reads: one block per step, then one verdict line.

Only formatting: every fact comes from the :class:`~resticm_core.phases.RunReport`
(``--json`` and the webhook carry the same facts as data). Each error is shown
once: on the line of the step it belongs to, or, when no step names it (a
pre_backup hook failed, the lock was held), in the list under the verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .display import format_bytes
from .phases import BackupSummary, ForgetSummary, RunReport, SnapshotRef, StepKind, StepResult

#: Removed snapshots listed one by one; beyond this many, a count.
MAX_LISTED = 20
#: Kept snapshots listed one by one; a policy keeps dozens, so beyond this, a count.
MAX_KEPT_LISTED = 5

def _when(time: str) -> str:
    """restic's RFC 3339 time as local ``YYYY-MM-DD HH:MM:SS`` (as given when it won't parse)."""
    import re

    text = re.sub(r"(\.\d{6})\d+", r"\1", time).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return time


def _snapshot(ref: SnapshotRef) -> str:
    reasons = f" ({', '.join(ref.reasons)})" if ref.reasons else ""
    return f"{ref.id} {_when(ref.time)}{reasons}"


def _backup_lines(summary: BackupSummary) -> list[str]:
    files = (
        f"files: {summary.files_new} new, {summary.files_changed} changed, "
        f"{summary.files_unmodified} unmodified"
    )
    added = f"added: {format_bytes(summary.data_added)}"
    if summary.data_added_packed is not None:
        added += f" ({format_bytes(summary.data_added_packed)} stored)"
    processed = (
        f"processed: {summary.total_files_processed} files, "
        f"{format_bytes(summary.total_bytes_processed)}"
    )
    return [files, f"{added}; {processed}"]


def _forget_lines(forget: ForgetSummary) -> list[str]:
    lines = [f"removed {len(forget.removed)}, kept {len(forget.kept)} snapshot(s)"]
    for ref in forget.removed[:MAX_LISTED]:
        lines.append(f"removed {_snapshot(ref)}")
    if len(forget.removed) > MAX_LISTED:
        lines.append(f"... and {len(forget.removed) - MAX_LISTED} more removed (see --json)")
    newest = forget.kept[-MAX_KEPT_LISTED:]
    for ref in newest:
        lines.append(f"kept    {_snapshot(ref)}")
    if len(forget.kept) > len(newest):
        lines.append(f"... and {len(forget.kept) - len(newest)} older kept (see --json)")
    return lines


def step_lines(step: StepResult) -> list[str]:
    """What *step* did, one fact per line, without its header (name, outcome, time)."""
    lines: list[str] = []
    if step.summary is not None and step.kind is StepKind.BACKUP:
        lines += _backup_lines(step.summary)
    if step.forget is not None:
        lines += _forget_lines(step.forget)
    if step.copy is not None:
        copied = step.copy.copied
        shown = ", ".join(f"{c.source_id} -> {c.id}" for c in copied[:MAX_LISTED])
        more = f", ... {len(copied) - MAX_LISTED} more" if len(copied) > MAX_LISTED else ""
        lines.append(f"copied {len(copied)} snapshot(s)" + (f": {shown}{more}" if shown else ""))
    if step.check is not None:
        lines.append(f"read: {step.check.read}")
    if step.repository_url and step.kind in (StepKind.BACKUP, StepKind.DUMP):
        lines.append(f"repository: {step.repository_url}")
    return lines


_VERDICTS = {
    0: "completed successfully",
    3: "completed with warnings (partial backup)",
    75: "not run: another run holds the lock",
}


def summary_lines(report: RunReport, *, steps: bool = True) -> list[str]:
    """The summary of *report*: the steps (unless *steps* is False), then the verdict.

    ``  backup  primary  ok  3.8s`` and its facts indented under it; then
    ``resticm backup completed successfully (exit 0, 3.8s)`` and the errors no
    step line showed.
    """
    lines: list[str] = []
    # Dump steps ("dump postgresql:app") are longer than restic's command names.
    width = max([10, *(len(step.name) for step in report.steps)])
    repo_width = max([8, *(len(step.repository) for step in report.steps)])
    shown_errors: set[str] = set()
    for step in report.steps if steps else ():
        error = f": {step.error}" if step.error else ""
        if step.error:
            shown_errors.add(step.error)
        snapshot = step.summary.snapshot_id if step.summary else None
        lines.append(
            f"  {step.name:<{width}} {step.repository:<{repo_width}} {step.outcome.value:<8} "
            f"{step.duration:6.1f}s{f' snapshot {snapshot}' if snapshot else ''}{error}"
        )
        lines += [f"  {'':<{width}}   {fact}" for fact in step_lines(step)]
    verdict = _VERDICTS.get(report.exit_code, "FAILED")
    lines.append(
        f"resticm {report.command} {verdict} (exit {report.exit_code}, {report.duration:.1f}s)"
    )
    lines += [f"  error: {error}" for error in _unshown(report.errors, shown_errors)]
    return lines


def _unshown(errors: Sequence[str], shown: set[str]) -> list[str]:
    """The errors no step line carried: a step's error is recorded by the run too."""
    seen: set[str] = set()
    out: list[str] = []
    for error in errors:
        if error in shown or error in seen:
            continue
        seen.add(error)
        out.append(error)
    return out


__all__ = ["step_lines", "summary_lines"]
