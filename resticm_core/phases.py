"""The vocabulary of a run: phases, statuses and the results every step records.

These are frozen values. The workflow builds them; the CLI, notifiers, observers
and the Ansible module only read them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from .json_values import to_json_dict


class Phase(enum.StrEnum):
    """A hook phase. The value is the config key (``hooks.pre_backup``...)."""

    PRE_BACKUP = "pre_backup"
    POST_BACKUP = "post_backup"
    ON_SUCCESS = "on_success"
    ON_ERROR = "on_error"
    FINALLY = "finally"
    #: ``resticm restore`` (issue 15): before the restore; a failure aborts it.
    PRE_RESTORE = "pre_restore"
    #: After a restore that started, whether it succeeded or not.
    POST_RESTORE = "post_restore"


class BackupStatus(enum.StrEnum):
    """What happened to the backup step, as on_success/on_error/finally see it."""

    SUCCESS = "success"
    #: restic exit 3: a snapshot was written but some files could not be read.
    PARTIAL = "partial"
    FAILURE = "failure"
    #: Soft skip: a pre_backup hook exited 75 or raised SkipBackup.
    SKIPPED = "skipped"
    #: The backup never ran: pre_backup failed, or the command has no backup step.
    NOT_RUN = "not_run"


class Command(enum.StrEnum):
    """What one :func:`resticm_core.run` does (``RunReport.command``, ``RESTICM_COMMAND``)."""

    BACKUP = "backup"
    #: The bare ``resticm``: backup, then forget (and the prune/check/copy flags ask for).
    DEFAULT = "default"
    FULL = "full"
    FORGET = "forget"
    PRUNE = "prune"
    CHECK = "check"
    COPY = "copy"
    #: ``resticm hooks run PHASE``: one phase's hooks alone.
    HOOKS = "hooks"


class StepKind(enum.StrEnum):
    """What a :class:`StepResult` is: code branches on this, never on the display name."""

    #: ``restic --no-lock cat config`` before pre_backup hooks stop anything.
    PREFLIGHT = "preflight"
    #: One ``dumps:`` database streamed into its own snapshot (``subject``: ``type:name``).
    DUMP = "dump"
    BACKUP = "backup"
    FORGET = "forget"
    PRUNE = "prune"
    CHECK = "check"
    COPY = "copy"
    #: ``verify_no_locks``: no lock of this run left in the repository.
    LOCKS = "locks"
    #: ``restic snapshots`` (the Ansible module's ``snapshots`` action).
    SNAPSHOTS = "snapshots"
    #: A step named by someone else (a plugin, an embedding application): its
    #: ``name`` is kept as given.
    OTHER = "other"


class Outcome(enum.StrEnum):
    """The outcome of one hook or one restic step."""

    OK = "ok"
    FAILED = "failed"
    #: The hook asked to skip the backup (exit 75 / SkipBackup).
    SOFT_SKIP = "soft_skip"
    #: restic exit 3: snapshot written, some source files unreadable.
    PARTIAL = "partial"
    #: Not executed: dry run, --no-hooks, or an earlier step decided so.
    SKIPPED = "skipped"


@attrs.frozen(kw_only=True)
class HookResult:
    """One executed hook (or one module of a directory hook)."""

    #: Human name: the script path, ``dir/10-dump.sh``, or ``python:mod:func``.
    name: str
    #: The executor kind that ran it (``script``, ``directory``, ``python``...).
    kind: str
    phase: Phase
    outcome: Outcome
    #: Exit code of a process hook; None for in-process hooks or when not started.
    exit_code: int | None = None
    duration: float = attrs.field(default=0.0, metadata={"round": 3})
    #: Why it failed, one line a human can act on. Empty when it succeeded.
    error: str = ""
    timed_out: bool = False
    #: The last lines of its output (bounded), for error messages and reports.
    output_tail: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED

    def to_dict(self) -> dict[str, Any]:
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class PhaseResult:
    """All hooks of one phase, in the order they ran."""

    phase: Phase
    hooks: tuple[HookResult, ...] = ()
    #: Set when the phase was not executed at all, with the reason (``--no-hooks``...).
    skipped_reason: str = ""

    __json_extras__: ClassVar[Mapping[str, int | None]] = {"failed": None}

    @property
    def failed(self) -> bool:
        return any(h.failed for h in self.hooks)

    @property
    def soft_skip(self) -> bool:
        return any(h.outcome is Outcome.SOFT_SKIP for h in self.hooks)

    @property
    def error(self) -> str:
        return "; ".join(f"{h.name}: {h.error}" for h in self.hooks if h.failed)

    def to_dict(self) -> dict[str, Any]:
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class BackupSummary:
    """restic's ``backup --json`` summary. Sizes in bytes, duration in seconds."""

    snapshot_id: str | None = None
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs_new: int = 0
    dirs_changed: int = 0
    dirs_unmodified: int = 0
    data_added: int = 0
    total_files_processed: int = 0
    total_bytes_processed: int = 0
    total_duration: float = 0.0
    #: What the added data takes in the repository after compression (restic >= 0.17
    #: reports it); None when restic does not say.
    data_added_packed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class SnapshotRef:
    """One snapshot a step named: its short ID, its time and why it was kept."""

    id: str
    #: restic's time stamp (RFC 3339), as restic printed it.
    time: str = ""
    host: str = ""
    tags: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    #: The retention rules that kept it (``last snapshot``, ``daily snapshot``...);
    #: empty for a removed snapshot, which no rule kept.
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class ForgetSummary:
    """What ``restic forget --json`` decided, over all its groups, oldest first."""

    removed: tuple[SnapshotRef, ...] = ()
    kept: tuple[SnapshotRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class CopiedSnapshot:
    """A snapshot ``restic copy`` wrote: its ID in the source and its new ID."""

    source_id: str
    #: Empty when restic named the source snapshot but not the copy (it failed).
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class CopySummary:
    """What ``restic copy`` printed: each snapshot copied (those already there are not)."""

    copied: tuple[CopiedSnapshot, ...] = ()

    __json_extras__: ClassVar[Mapping[str, int | None]] = {"count": None}

    @property
    def count(self) -> int:
        return len(self.copied)

    def to_dict(self) -> dict[str, Any]:
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class CheckSummary:
    """What a ``restic check`` read: the structure only, all data, or a subset."""

    #: ``metadata`` (index, snapshots, trees), ``all data`` or ``subset N/M``.
    read: str = "metadata"
    read_data: bool = False
    subset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_json_dict(self)


def _kind_from_name(step: StepResult) -> StepKind:
    word = step.name.split(" ", 1)[0]
    if not word:
        raise ValueError("a StepResult needs a kind (or a name)")
    try:
        return StepKind(word)
    except ValueError:
        return StepKind.OTHER


def _subject_from_name(step: StepResult) -> str:
    return "" if step.kind is StepKind.OTHER else step.name.partition(" ")[2]


@attrs.frozen(kw_only=True)
class StepResult:
    """One restic step (backup, forget, prune, check, copy...) on one repository.

    Built from its :attr:`kind` (and :attr:`subject`), or, as before, from its
    display :attr:`name`, which is then parsed once here: ``StepResult(kind=
    StepKind.DUMP, subject="postgresql:app", ...)`` and ``StepResult(name="dump
    postgresql:app", ...)`` are the same step.
    """

    #: The display text logs, ``--json``, metrics and notifications show:
    #: ``backup``, ``forget``, ``dump postgresql:app``... (``str(step)`` too).
    name: str = ""
    #: ``primary`` or the backend's name.
    repository: str
    outcome: Outcome
    duration: float = attrs.field(default=0.0, metadata={"round": 3})
    error: str = ""
    exit_code: int | None = None
    #: The command line that ran (or would run in a dry run), secrets redacted.
    command: str = ""
    summary: BackupSummary | None = None
    #: The repository's URL, credentials redacted ("" when the step did not record it).
    repository_url: str = ""
    #: forget: the snapshots removed and kept (``restic forget --json``).
    forget: ForgetSummary | None = None
    #: copy: the snapshots copied.
    copy: CopySummary | None = None
    #: check: what was read.
    check: CheckSummary | None = None
    #: What the step is; defaults to the first word of :attr:`name`.
    kind: StepKind = attrs.field(default=attrs.Factory(_kind_from_name, takes_self=True))
    #: What it is about within its kind: the dump's ``type:name``; empty for the others.
    subject: str = attrs.field(default=attrs.Factory(_subject_from_name, takes_self=True))

    def __attrs_post_init__(self) -> None:
        if self.kind is StepKind.OTHER:
            if not self.name:
                raise ValueError("a StepResult of kind 'other' needs its name")
            return
        shown = f"{self.kind.value} {self.subject}" if self.subject else self.kind.value
        if not self.name:
            object.__setattr__(self, "name", shown)  # frozen: set once, while building
        elif self.name != shown:
            raise ValueError(f"step name {self.name!r} does not match kind {self.kind.value!r}")

    def __str__(self) -> str:
        return self.name

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED

    def to_dict(self) -> dict[str, Any]:
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class RunReport:
    """Everything one invocation did. Returned by :func:`resticm_core.run`."""

    #: ``default``, ``backup``, ``full``...
    command: str
    host: str
    started_at: float
    finished_at: float
    dry_run: bool = False
    backup_status: BackupStatus = BackupStatus.NOT_RUN
    phases: tuple[PhaseResult, ...] = ()
    steps: tuple[StepResult, ...] = ()
    #: Every failure, one line each, in the order they happened (what ERROR lists).
    errors: tuple[str, ...] = ()
    #: Things worth attention that do not fail the run (post_backup failed...).
    warnings: tuple[str, ...] = ()
    #: The signal that stopped the run, if any.
    signal: int | None = None
    exit_code: int = 0
    #: Snapshots of this host per repository the run changed, counted after it
    #: (only when a Prometheus textfile is configured; see snapshot_count.py).
    snapshot_counts: Mapping[str, int] = attrs.field(factory=dict)
    #: The time (epoch seconds) of this host's newest snapshot per repository,
    #: from the same count (``resticm_snapshot_latest_timestamp_seconds``).
    snapshot_latest: Mapping[str, float] = attrs.field(factory=dict)

    __json_extras__: ClassVar[Mapping[str, int | None]] = {
        "duration": 3,
        "snapshot_id": None,
        "ok": None,
    }

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at

    @property
    def snapshot_id(self) -> str | None:
        for step in self.steps:
            if step.kind is StepKind.BACKUP and step.summary and step.summary.snapshot_id:
                return step.summary.snapshot_id
        return None

    def phase(self, phase: Phase) -> PhaseResult | None:
        for result in self.phases:
            if result.phase is phase:
                return result
        return None

    def to_dict(self) -> dict[str, Any]:
        return to_json_dict(self)
