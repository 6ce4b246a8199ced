"""The configuration as attrs models: pure data, no I/O.

Keys keep the Go resticm names and meanings (attribute name = YAML key), so an
existing ``config.yaml`` loads unchanged. Additions are marked. Loading and
validation live in :mod:`resticm_core.config_file` and :mod:`resticm_core.converter`.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .dumps import DumpSource
from .hooks import DEFAULT_HOOK_TIMEOUT, DEFAULT_KILL_GRACE, Hook
from .notify.api import DEFAULT_DEADLINE, Notifier
from .secrets import MIN_SECRET_LENGTH, is_secret_name, secret_values

PRIMARY = "primary"


def _secret() -> str | None:
    # repr=False keeps secrets out of reprs, tracebacks and debug logs (and the
    # converter never echoes the value of such a field in an error).
    field: str | None = attrs.field(default=None, repr=False)
    return field


@attrs.frozen(kw_only=True)
class Credentials:
    """The credential keys of a repository, written once.

    The primary's are top-level keys of :class:`Config`, a copy target's are keys
    of its :class:`Backend`, and a resolved :class:`Repository` carries the ones
    of whichever it is: all three subclass this, so the YAML keys stay flat
    (``password:`` next to ``repository:``) and every field is declared here only.
    """

    password: str | None = _secret()
    password_file: str | None = None  #: addition
    password_command: str | None = None  #: addition
    aws_access_key_id: str = ""
    aws_secret_access_key: str = attrs.field(default="", repr=False)
    #: addition: extra environment for restic on this repository (B2_*, AZURE_*...).
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def has_password_source(self) -> bool:
        return bool(self.password or self.password_file or self.password_command)

    def storage_environment(self) -> dict[str, str]:
        """The variables restic reads the storage credentials from: ``AWS_ACCESS_KEY_ID``
        and ``AWS_SECRET_ACCESS_KEY`` when set, then ``env`` (which wins). No password
        variable: where the password comes from is the caller's choice."""
        variables: dict[str, str] = {}
        if self.aws_access_key_id:
            variables["AWS_ACCESS_KEY_ID"] = self.aws_access_key_id
        if self.aws_secret_access_key:
            variables["AWS_SECRET_ACCESS_KEY"] = self.aws_secret_access_key
        variables.update(self.env)
        return variables

    def storage_secrets(self) -> list[str]:
        """The secret values of :meth:`storage_environment` (by variable name)."""
        return [v for k, v in self.storage_environment().items() if v and is_secret_name(k)]


@attrs.frozen(kw_only=True)
class Retention:
    """``retention:``. Absent keys keep the Go tool's defaults; ``0`` or ``""`` turns one off."""

    keep_last: int = 0  #: addition
    keep_within: str = "7d"
    keep_hourly: int = 24
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12
    keep_yearly: int = 5
    keep_tags: tuple[str, ...] = ()  #: addition
    #: addition: restic's ``--group-by``; None keeps restic's default (host,paths).
    group_by: str | None = None

    def forget_args(self) -> list[str]:
        """The ``restic forget`` policy flags, in the Go tool's order."""
        args: list[str] = []
        if self.keep_last > 0:
            args += ["--keep-last", str(self.keep_last)]
        if self.keep_within:
            args += ["--keep-within", self.keep_within]
        for name in ("hourly", "daily", "weekly", "monthly", "yearly"):
            value = getattr(self, f"keep_{name}")
            if value > 0:
                args += [f"--keep-{name}", str(value)]
        for tag in self.keep_tags:
            args += ["--keep-tag", tag]
        if self.group_by is not None:
            args += ["--group-by", self.group_by]
        return args

    @property
    def empty(self) -> bool:
        """True when no rule is set: restic would keep everything."""
        return not any(a.startswith("--keep") for a in self.forget_args())


@attrs.frozen(kw_only=True)
class BackendRetention(Retention):
    """addition (issue 18): ``backends.<name>.retention``: a whole policy of its own.

    Unlike the top-level block, a key it does not write is off: ``{keep_last: 1}``
    keeps one snapshot, not one plus the Go defaults.
    """

    keep_within: str = ""
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0


def _duration() -> float | None:
    field: float | None = attrs.field(default=None, metadata={"duration": True})
    return field


@attrs.frozen(kw_only=True)
class Timeouts:
    """addition: ``timeouts:``, seconds (or ``90s``, ``10m``, ``2h``) per restic command.

    A command without one runs until it ends, as with the Go tool; the read-only
    probes (``cat``, ``snapshots``, ``list``) default to 300 s.
    """

    backup: float | None = _duration()
    forget: float | None = _duration()
    prune: float | None = _duration()
    check: float | None = _duration()
    copy: float | None = _duration()
    init: float | None = _duration()
    cat: float | None = _duration()
    snapshots: float | None = _duration()
    list: float | None = _duration()
    unlock: float | None = _duration()

    def as_mapping(self) -> dict[str, float]:
        """The set timeouts by command name, for :class:`resticm_core.restic.Restic`."""
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}


#: addition (issue 18): the restic commands ``extra_args`` may add flags to.
EXTRA_ARGS_COMMANDS = ("backup", "forget", "prune", "check", "copy", "restore", "init")


def _args() -> tuple[str, ...] | None:
    field: tuple[str, ...] | None = attrs.field(default=None)
    return field


@attrs.frozen(kw_only=True)
class ExtraArgs:
    """addition (issue 18): ``extra_args:``, restic flags added to one command.

    None (absent) inherits: a backend's list for a command replaces the top-level
    one for that command on that repository. Checked against the flags of the
    restic present (:mod:`resticm_core.restic_options`).
    """

    backup: tuple[str, ...] | None = _args()
    forget: tuple[str, ...] | None = _args()
    prune: tuple[str, ...] | None = _args()
    check: tuple[str, ...] | None = _args()
    copy: tuple[str, ...] | None = _args()
    restore: tuple[str, ...] | None = _args()
    init: tuple[str, ...] | None = _args()

    def for_command(self, command: str) -> tuple[str, ...]:
        value: tuple[str, ...] | None = getattr(self, command, None)
        return value or ()

    def over(self, base: ExtraArgs) -> ExtraArgs:
        """These lists, each absent one taken from *base*."""
        return ExtraArgs(
            **{
                name: own if (own := getattr(self, name)) is not None else getattr(base, name)
                for name in EXTRA_ARGS_COMMANDS
            }
        )


@attrs.frozen(kw_only=True)
class RepositorySettings(Credentials):
    """addition (issue 18): restic's settings for a repository, written once.

    Top-level keys of :class:`Config` (every repository's default) and keys of a
    :class:`Backend` (that one only: a set key beats the top-level one, ``options``
    merge key by key, ``extra_args`` replace per command). A resolved
    :class:`Repository` carries the effective values; :mod:`resticm_core.restic_options`
    turns them into restic flags.
    """

    #: restic's ``-o key=value`` backend options (``s3.storage-class``...).
    options: Mapping[str, str] = attrs.field(factory=dict)
    #: ``--limit-upload`` / ``--limit-download``, KiB/s.
    limit_upload: int | None = None
    limit_download: int | None = None
    #: ``--compression``: auto, off or max (repository format 2).
    compression: str | None = None
    #: ``--pack-size``, MiB.
    pack_size: int | None = None
    extra_args: ExtraArgs = attrs.field(factory=ExtraArgs)

    def settings_over(self, base: RepositorySettings) -> dict[str, Any]:
        """The restic settings of these keys over *base*'s (for :func:`attrs.evolve`)."""
        scalars = ("limit_upload", "limit_download", "compression", "pack_size")
        merged: dict[str, Any] = {
            name: own if (own := getattr(self, name)) is not None else getattr(base, name)
            for name in scalars
        }
        merged["options"] = {**base.options, **self.options}
        merged["extra_args"] = self.extra_args.over(base.extra_args)
        return merged


@attrs.frozen(kw_only=True)
class Backend(RepositorySettings):
    """``backends.<name>``: a copy target (or a repository ``backend use`` selects)."""

    repository: str
    #: addition: ``resticm status`` is critical when this backend's newest snapshot
    #: is older (a duration); beats ``--max-age`` and the top-level ``max_age``.
    max_age: float | None = _duration()
    #: addition (issue 18): this repository's own policy (:mod:`resticm_core.policy`).
    #: A whole retention block: the keys it does not write are off, not inherited.
    retention: BackendRetention | None = None
    #: ``false``: append-only / object-lock storage: never forget nor prune here.
    forget: bool | None = None
    #: ``true``: prune after forget even without ``--prune``; ``false``: never.
    prune: bool | None = None
    #: ``true``: check in the default workflow even without ``--check``; ``false``: never.
    check: bool | None = None
    deep_check_interval_days: int | None = None


#: Storage providers by repository URL scheme, and the variable prefixes of their
#: credentials (what restic reads for that backend).
PROVIDER_VARIABLES: Mapping[str, tuple[str, ...]] = {
    "s3": ("AWS_",),
    "b2": ("B2_",),
    "azure": ("AZURE_",),
    "gs": ("GOOGLE_",),
    "swift": ("OS_", "ST_"),
}


def storage_provider(url: str) -> str | None:
    """``s3`` for ``s3:https://...``; None for local paths, sftp, rest and rclone."""
    scheme, sep, _rest = url.partition(":")
    return scheme.lower() if sep and scheme.lower() in PROVIDER_VARIABLES else None


@attrs.frozen(kw_only=True)
class Repository(RepositorySettings):
    """A resolved repository: the primary or a backend, with its credentials."""

    #: ``primary`` or the backend's name.
    name: str
    url: str
    #: Set when this backend defines no storage credentials of its own and uses the
    #: primary's (same provider), as the Go tool did: the name it took them from.
    credentials_from: str | None = None

    @classmethod
    def of(cls, name: str, url: str, credentials: Credentials) -> Repository:
        """The repository *name* at *url* with the credentials of *credentials* (and its
        restic settings, when it has some)."""
        keys = RepositorySettings if isinstance(credentials, RepositorySettings) else Credentials
        fields = {a.name: getattr(credentials, a.name) for a in attrs.fields(keys)}
        return cls(name=name, url=url, **fields)


@attrs.frozen(kw_only=True)
class PhaseHooks:
    """``hooks:``. Each phase is a list of hook entries run in order.

    A phase may be written as one string (a path or ``python:mod:func``) as in the
    Go tool, or as a list of strings and mappings with an explicit ``kind``.
    """

    pre_backup: tuple[Hook, ...] = ()
    post_backup: tuple[Hook, ...] = ()
    on_success: tuple[Hook, ...] = ()
    on_error: tuple[Hook, ...] = ()
    #: addition, written ``finally:`` in YAML: runs last on every path.
    finally_: tuple[Hook, ...] = ()
    #: addition (issue 15): around ``resticm restore`` (pre: a failure aborts it;
    #: post: runs whenever the restore started).
    pre_restore: tuple[Hook, ...] = ()
    post_restore: tuple[Hook, ...] = ()
    #: addition: variables added to every hook's environment.
    environment: Mapping[str, str] = attrs.field(factory=dict)
    #: addition: default timeout in seconds for hooks that set none.
    timeout: float = DEFAULT_HOOK_TIMEOUT
    #: addition: seconds between TERM and KILL when a hook is stopped (timeout, signal).
    kill_grace: float = attrs.field(default=DEFAULT_KILL_GRACE, metadata={"duration": True})

    def for_phase(self, phase: str) -> tuple[Hook, ...]:
        hooks: tuple[Hook, ...] = getattr(self, "finally_" if phase == "finally" else phase)
        return hooks

    @property
    def any(self) -> bool:
        return any(
            (
                self.pre_backup,
                self.post_backup,
                self.on_success,
                self.on_error,
                self.finally_,
                self.pre_restore,
                self.post_restore,
            )
        )


@attrs.frozen(kw_only=True)
class Notifications:
    """``notifications:``. Each ``providers[]`` entry is a :class:`Notifier` chosen
    by its ``type`` from the installed notifier plugins (docs/notifications.md)."""

    enabled: bool = False
    notify_on_success: bool = False
    notify_on_error: bool = False
    providers: tuple[Notifier, ...] = ()
    #: addition: seconds (a duration: ``2m``) one dispatch may take in total, all
    #: providers, timeouts and retries included; a hung provider is then abandoned.
    timeout: float = DEFAULT_DEADLINE


@attrs.frozen(kw_only=True)
class Monitoring:
    """addition: ``monitoring:``, files the builtin observers write after each run."""

    #: node_exporter textfile collector file (``*.prom``), written atomically.
    prometheus_textfile: str = ""
    #: JSON status file: the last result per command and per repository step.
    status_file: str = ""


@attrs.frozen(kw_only=True)
class Logging:
    """``logging:``."""

    file: str = "/var/log/resticm/resticm.log"
    max_size_mb: int = 10
    max_files: int = 5
    level: str = "info"
    console: bool = True
    json: bool = False


@attrs.frozen(kw_only=True)
class Config(RepositorySettings):
    """A whole resticm configuration. Its :class:`Credentials` keys are the primary's,
    its :class:`RepositorySettings` every repository's defaults."""

    repository: str
    directories: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()
    exclude_file: str = ""
    retention: Retention = attrs.field(factory=Retention)
    deep_check_interval_days: int = 30
    #: addition (issue 18): every repository's default policy; a backend's own key
    #: beats it (:mod:`resticm_core.policy`). ``forget: false``: never forget nor prune.
    forget: bool = True
    prune: bool | None = None
    check: bool | None = None
    default_tags: tuple[str, ...] = ()
    backends: Mapping[str, Backend] = attrs.field(factory=dict)
    copy_to_backends: tuple[str, ...] = ()
    #: addition: how many copy backends are served at once.
    copy_concurrency: int = 3  # chosen by measurement: docs/performance.md (copies)
    hooks: PhaseHooks = attrs.field(factory=PhaseHooks)
    #: addition: database dumps streamed into restic, one snapshot per database;
    #: each entry's ``type`` comes from a dump plugin (docs/dumps.md).
    dumps: tuple[DumpSource, ...] = ()
    notifications: Notifications = attrs.field(factory=Notifications)
    #: addition: Prometheus textfile and status file.
    monitoring: Monitoring = attrs.field(factory=Monitoring)
    logging: Logging = attrs.field(factory=Logging)
    verify_no_locks: bool = False
    #: addition: keep retrying a command whose repository another process has
    #: locked, for this long (``--retry-lock`` on restic >= 0.16, emulated before).
    retry_lock: float | None = _duration()
    #: addition: extra attempts of a restic command that failed with a transient
    #: backend error (connection refused, 5xx...), backoff 5 s, 10 s, 20 s...
    retries: int = 2
    #: addition: per-command restic timeouts.
    timeouts: Timeouts = attrs.field(factory=Timeouts)
    #: addition: probe the repository (read-only) before pre_backup hooks run.
    preflight: bool = True
    #: addition: the host name used for ``--host``; default: this machine's name.
    host: str | None = None
    #: addition: ``resticm status``: the primary's maximum snapshot age (a duration),
    #: beating ``--max-age``, and the default of backends that set none.
    max_age: float | None = _duration()
    #: addition (issue 18): the systemd ``OnCalendar=`` of this job's timer
    #: (``schedule install``); None: ``--on-calendar`` (default ``daily``).
    schedule: str | None = None

    #: The job's name when the file has ``jobs:`` (docs/configuration.md, "Several
    #: jobs"); None for a file without. Not a YAML key: set by the loader.
    job: str | None = attrs.field(default=None, metadata={"yaml": False})
    #: Values that ``${env:...}``, ``${file:...}``, ``${credential:...}`` references
    #: resolved to: secrets whatever key holds them. Not a YAML key.
    resolved_secrets: tuple[str, ...] = attrs.field(
        default=(), repr=False, metadata={"yaml": False}
    )
    #: Where the config was read from; None for configs built from a mapping.
    #: Not a YAML key: set by ``load_config``.
    source_path: Path | None = attrs.field(default=None, metadata={"yaml": False})
    #: The directory relative paths resolve against for configs built from a mapping
    #: (``config_from_dict(base_dir=...)``). Not a YAML key.
    base_dir: Path | None = attrs.field(default=None, metadata={"yaml": False})

    @property
    def config_dir(self) -> Path:
        """The directory relative hook paths resolve against."""
        if self.source_path is not None:
            return self.source_path.parent
        return self.base_dir if self.base_dir is not None else Path.cwd()

    @property
    def hostname(self) -> str:
        return self.host or socket.gethostname()

    def primary_repository(self) -> Repository:
        return Repository.of(PRIMARY, self.repository, self)

    def repository_named(self, name: str) -> Repository:
        """The primary (``primary``) or a backend by name; KeyError if unknown."""
        if name == PRIMARY:
            return self.primary_repository()
        backend = self.backends[name]
        settings = attrs.evolve(backend, **backend.settings_over(self))
        repository = Repository.of(name, backend.repository, settings)
        return _inherit_storage_credentials(repository, self.primary_repository())

    def secrets(self) -> list[str]:
        """Every secret value written in the config, for redaction and scrubbing.

        What :func:`~resticm_core.secrets.find_secrets` finds in the whole config
        (the list the permission check refuses a readable file for), plus what each
        notifier and dump source adds itself (a notifier's whole ``url``, a
        plugin's own secret keys).
        """
        values = [*secret_values(self), *self.resolved_secrets]
        for provider in self.notifications.providers:
            values += provider.secrets()
        for dump in self.dumps:
            values += dump.secrets()
        return [v for v in dict.fromkeys(values) if v and len(v) >= MIN_SECRET_LENGTH]


def _inherit_storage_credentials(backend: Repository, primary: Repository) -> Repository:
    """*backend* with the primary's credentials for the same storage provider, when it
    defines none of its own for that provider.

    The Go tool ran every restic of a backend with the primary's ``AWS_*`` (its
    ``config.example.yaml`` relies on it for an S3 mirror in the same account); without
    this, forget/prune/check on such a mirror fail with "Access Denied". A backend's
    own variables (``aws_*`` keys or ``env:``) always win: nothing is mixed.
    """
    provider = storage_provider(backend.url)
    if provider is None or provider != storage_provider(primary.url):
        return backend
    prefixes = PROVIDER_VARIABLES[provider]
    if any(key.startswith(prefixes) for key in backend.storage_environment()):
        return backend
    offered = {k: v for k, v in primary.storage_environment().items() if k.startswith(prefixes)}
    if not offered:
        return backend
    return attrs.evolve(backend, env={**offered, **backend.env}, credentials_from=PRIMARY)
