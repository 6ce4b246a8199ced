"""``resticm restore``: get files back from the primary or a mirror, with hooks around it.

    choose repository and snapshot -> pre_restore -> restic restore -> post_restore
        -> on_success | on_error -> finally -> notify (event ``restore``)

The repository and snapshot are chosen by :mod:`resticm_core.snapshot_select`
(``--from``, or the first of the primary and ``copy_to_backends`` that answers).
Nothing here needs the state directory, the cache or the log directory: a fresh
machine with the config file and the password restores (docs/restore.md).

restic versions: restic 0.17 added ``restore --overwrite``, ``--delete`` and
``--dry-run``. On older restic (Debian 12 has 0.14, which always overwrites):

- ``--overwrite always``: restic's own behaviour;
- ``--overwrite never|if-changed`` into a non-empty target: restic restores into a
  staging directory inside the target (same filesystem), and resticm moves each
  entry into place unless the policy keeps the existing one;
- ``--dry-run``: nothing is restored; the snapshot's listing (``restic ls``),
  filtered by ``--include``/``--exclude`` as restic matches them, is compared with
  the target;
- ``--delete``: refused, naming the restic version it needs.

A non-empty target without ``--overwrite`` is refused before anything runs.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import fnmatch
import json
import logging
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import attrs

from .config import Config, Repository
from .errors import ResticmError, UsageError
from .hook_lifecycle import run_hook
from .hooks import Hook, HookContext, LoggingSink, OutputSink, hook_environment
from .phases import HookResult, Phase, PhaseResult
from .plugin_manager import PluginRegistry
from .progress import ProgressRunner, ProgressSink
from .restic import Restic, ResticRunner, SubprocessResticRunner
from .secrets import Redactor, redact_url
from .snapshot_select import (
    Choice,
    NoRepository,
    SkippedRepository,
    SnapshotFilter,
    check_selector,
    choose,
    configured_paths,
    parse_date,
    short_id,
)

log = logging.getLogger("resticm_core")

OVERWRITE_CHOICES = ("always", "if-changed", "never")
#: restic >= 0.17: ``restore --overwrite``, ``--delete``, ``--dry-run``.
NATIVE_OVERWRITE_SINCE = (0, 17, 0)
#: restic >= 0.16 prints a JSON summary of ``restore --json``.
JSON_RESTORE_SINCE = (0, 16, 0)
STAGING_PREFIX = ".resticm-restore-"


def _version_text(version: tuple[int, int, int]) -> str:
    return ".".join(str(v) for v in version)


@attrs.frozen(kw_only=True)
class RestoreReport:
    """What one restore did. Returned by :func:`resticm_core.restore`."""

    #: ``primary`` or the backend's name; "" when no repository could serve.
    repository: str = ""
    #: Its URL, passwords hidden.
    repository_url: str = ""
    snapshot_id: str = ""
    snapshot_time: str = ""
    target: str = ""
    dry_run: bool = False
    #: Entries restored (files, directories, links), or that would be in a dry run,
    #: counted as restic >= 0.16 counts its ``files_restored``.
    files_restored: int = 0
    #: Bytes of the regular files restored.
    bytes_restored: int = 0
    #: Files kept as they were (``--overwrite never|if-changed``).
    files_skipped: int = 0
    #: Repositories passed over before the one used (or all of them), with reasons.
    skipped_repositories: tuple[SkippedRepository, ...] = ()
    phases: tuple[PhaseResult, ...] = ()
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: How the numbers were obtained: ``restic`` (its JSON summary), ``target``
    #: (counted there), ``listing`` (the snapshot's listing).
    counted_from: str = ""
    restic_version: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "restore",
            "repository": self.repository,
            "repository_url": self.repository_url,
            "snapshot_id": self.snapshot_id,
            "snapshot_time": self.snapshot_time,
            "target": self.target,
            "dry_run": self.dry_run,
            "files_restored": self.files_restored,
            "bytes_restored": self.bytes_restored,
            "files_skipped": self.files_skipped,
            "skipped_repositories": [s.to_dict() for s in self.skipped_repositories],
            "phases": [p.to_dict() for p in self.phases],
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "counted_from": self.counted_from,
            "restic_version": self.restic_version,
            "duration": round(self.finished_at - self.started_at, 3),
            "exit_code": self.exit_code,
            "ok": self.ok,
        }


# -- restic's include/exclude matching (for the emulated dry run) ------------------------------


def _parts(path: str) -> list[str]:
    cleaned = os.path.normpath(path) if path else ""
    return cleaned.split("/") if cleaned not in ("", ".") else []


def _go_match(pattern: str, name: str) -> bool:
    # Go's filepath.Match negates a class with ^ as well as !.
    return fnmatch.fnmatchcase(name, pattern.replace("[^", "[!"))


def _match_parts(patterns: list[str], strs: list[str]) -> bool:
    if "**" in patterns:
        pos = patterns.index("**")
        for n in range(len(strs) - len(patterns) + 2):
            if _match_parts(patterns[:pos] + ["*"] * n + patterns[pos + 1 :], strs):
                return True
        return False
    if not patterns:
        return not strs
    if len(patterns) > len(strs):
        return False
    low, high = 0, len(strs) - len(patterns)
    if patterns[0] == "":
        high = 0  # an absolute pattern matches from the root only
    elif strs[0] == "":
        low = 1
    for offset in range(high, low - 1, -1):
        if all(_go_match(p, strs[offset + i]) for i, p in enumerate(patterns)):
            return True
    return False


def restic_match(pattern: str, path: str) -> bool:
    """Does *pattern* select *path* as restic's ``--include``/``--exclude`` do?

    restic's filter.Match: the pattern's components match consecutive components
    anywhere in the path (from the root when it starts with ``/``), ``**`` any
    number of them; a directory's match covers everything below it.
    """
    patterns = _parts(pattern)
    return bool(patterns) and _match_parts(patterns, _parts(path))


def selected(path: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not any(restic_match(p, path) for p in include):
        return False
    return not any(restic_match(p, path) for p in exclude)


# -- the target --------------------------------------------------------------------------------


def target_is_empty(target: Path) -> bool:
    """True for a missing directory or one without entries."""
    try:
        with os.scandir(target) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return True
    except NotADirectoryError:
        raise UsageError(f"restore target {target} exists and is not a directory") from None


def _count_tree(root: Path) -> tuple[int, int]:
    """Entries below *root* (files, directories, links: what restic >= 0.16 counts as
    ``files_restored``) and the bytes of the regular files."""
    entries = size = 0
    for directory, dirs, names in os.walk(root):
        entries += len(dirs) + len(names)
        for name in names:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(directory, name))
                if stat.S_ISREG(st.st_mode):
                    size += st.st_size
    return entries, size


def _move(source: str, destination: str) -> None:
    """Rename; across filesystems (an in-place restore onto several mounts) copy then delete."""
    try:
        os.replace(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(source, destination)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


@attrs.define
class _Merge:
    policy: str
    files: int = 0
    size: int = 0
    skipped: int = 0

    def directory(self, source: str, destination: str) -> None:
        for entry in os.scandir(source):
            src, dst = entry.path, os.path.join(destination, entry.name)
            exists = os.path.lexists(dst)
            if entry.is_dir(follow_symlinks=False):
                if exists and os.path.isdir(dst) and not os.path.islink(dst):
                    self.directory(src, dst)
                    if self.policy != "never":
                        _copy_metadata(src, dst)
                    self.files += 1  # as restic 0.17 counts a directory it merged into
                    continue
                if exists and self.policy == "never":
                    self.skipped += _count_tree(Path(src))[0] + 1
                    continue
                if exists:
                    _remove(dst)
                files, size = _count_tree(Path(src))
                _move(src, dst)
                self.files, self.size = self.files + files + 1, self.size + size
                continue
            if exists and (self.policy == "never" or _same_file(src, dst)):
                self.skipped += 1
                continue
            if exists and os.path.isdir(dst) and not os.path.islink(dst):
                shutil.rmtree(dst)
            size = 0 if entry.is_symlink() else entry.stat(follow_symlinks=False).st_size
            _move(src, dst)
            self.files, self.size = self.files + 1, self.size + size


def _same_file(a: str, b: str) -> bool:
    if os.path.islink(a) or os.path.islink(b):
        return False  # restic 0.17's if-changed recreates links: so does the emulation
    if not (os.path.isfile(a) and os.path.isfile(b)):
        return False
    return os.path.getsize(a) == os.path.getsize(b) and filecmp.cmp(a, b, shallow=False)


def _copy_metadata(source: str, destination: str) -> None:
    """A merged directory gets the snapshot's mode, times and (as root) owner."""
    st = os.lstat(source)
    with contextlib.suppress(OSError):
        if os.geteuid() == 0:
            os.lchown(destination, st.st_uid, st.st_gid)
        os.chmod(destination, st.st_mode & 0o7777)
        os.utime(destination, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


# -- signals -----------------------------------------------------------------------------------

INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _Interrupt:
    """First signal: stop restic (or pre_restore); second: skip the remaining hooks too.

    The workflow's rule (DESIGN §3), kept here rather than imported from its private parts.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.abort = threading.Event()
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            log.warning("received %s: stopping the restore", signal.Signals(signum).name)
            self.stop.set()
        else:
            log.warning("received %s again: skipping the remaining hooks", self.name)
            self.abort.set()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextlib.contextmanager
def _signal_handlers(interrupt: _Interrupt, install: bool) -> Iterator[None]:
    if not install or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, interrupt) for signum in INTERRUPT_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# -- hooks -------------------------------------------------------------------------------------


class _Hooks:
    """The restore's hook phases: the backup's executors and rules, restore variables."""

    def __init__(
        self,
        config: Config,
        *,
        environ: Mapping[str, str],
        output: OutputSink,
        dry_run: bool,
        no_hooks: bool,
        registry: PluginRegistry,
        extra: Mapping[Phase, Sequence[Hook]],
        interrupt: _Interrupt,
        redact: Callable[[str], str],
    ) -> None:
        self.config = config
        self.redact = redact
        self.environ = environ
        self.output = output
        self.dry_run = dry_run
        self.no_hooks = no_hooks
        self.registry = registry
        self.extra = extra
        self.variables: dict[str, str] = {}
        self.results: list[PhaseResult] = []
        self.interrupt = interrupt

    def run(self, phase: Phase, variables: Mapping[str, str]) -> PhaseResult:
        hooks = (*self.config.hooks.for_phase(phase.value), *self.extra.get(phase, ()))
        if not hooks:
            return PhaseResult(phase=phase)
        if self.no_hooks:
            return self._record(PhaseResult(phase=phase, skipped_reason="--no-hooks"))
        if self.interrupt.abort.is_set():
            reason = f"skipped: {self.interrupt.name} received twice"
            return self._record(PhaseResult(phase=phase, skipped_reason=reason))
        env = hook_environment(
            self.environ,
            variables={"RESTICM_PHASE": phase.value, **variables},
            configured=self.config.hooks.environment,
            secrets=self.config.secrets(),
        )
        ctx = HookContext(
            phase=phase,
            command="restore",
            env=env,
            variables={"RESTICM_PHASE": phase.value, **variables},
            config_dir=self.config.config_dir,
            default_timeout=self.config.hooks.timeout,
            kill_grace=self.config.hooks.kill_grace,
            dry_run=self.dry_run,
            # Cleanup phases survive the first signal; only a second one stops them.
            cancel=self.interrupt.stop if phase is Phase.PRE_RESTORE else self.interrupt.abort,
            output=self.output,
        )
        results: list[HookResult] = []
        for hook in hooks:
            # The engine's one lifecycle: check(), dry_run() in a dry run (an executor
            # is never run under --dry-run), crash capture, every result redacted.
            done = run_hook(hook, ctx, redact=self.redact)
            results.extend(done)
            if any(r.failed for r in results):
                break
        return self._record(PhaseResult(phase=phase, hooks=tuple(results)))

    def _record(self, result: PhaseResult) -> PhaseResult:
        self.results.append(result)
        self.registry.phase_finished(result, self.config)
        return result


HookLike = Hook | Callable[[HookContext], Any]


def _normalise(hooks: Mapping[Phase | str, Sequence[HookLike]] | None) -> dict[Phase, list[Hook]]:
    from .builtins.python_callable import PythonHook

    out: dict[Phase, list[Hook]] = {}
    for key, entries in (hooks or {}).items():
        try:
            phase = Phase(key)
        except ValueError:
            raise UsageError(f"unknown hook phase {key!r}") from None
        for entry in entries:
            out.setdefault(phase, []).append(
                entry if isinstance(entry, Hook) else PythonHook.from_function(entry)
            )
    return out


# -- restic ------------------------------------------------------------------------------------


def make_restic(
    config: Config,
    environ: Mapping[str, str],
    registry: PluginRegistry,
    runner: ResticRunner | None = None,
    *,
    verbose: bool = False,
    cancel: threading.Event | None = None,
    progress: ProgressSink | None = None,
) -> Restic:
    """The :class:`Restic` of a restore or browse command (the workflow's settings).

    With the real restic, the config's ``extra_args`` are checked against it first
    (:class:`~resticm_core.errors.ConfigError`, before any pre_restore hook runs).
    """
    if runner is None:
        from .restic_options import verify_extra_args

        verify_extra_args(config, environ=environ)
    runner = runner or SubprocessResticRunner(
        environ=environ,
        password_provider=registry.repository_password,
        on_command=(lambda line: log.info("$ %s", line)) if verbose else None,
    )
    if progress is not None:
        runner = ProgressRunner(runner, progress)
    return Restic(
        runner,
        cancel=cancel,
        timeouts=config.timeouts.as_mapping(),
        retry_lock=config.retry_lock,
        retries=config.retries,
    )


def listing(restic: Restic, repo: Repository, snapshot_id: str) -> list[dict[str, Any]]:
    """Every node of a snapshot (``restic ls --json``), snapshot header left out."""
    result = restic.run(["ls", "--json", snapshot_id], repo, capture_stdout=True)
    if not result.ok:
        raise ResticmError(result.message)
    nodes = []
    for line in result.stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        kind = (
            item.get("struct_type") or item.get("message_type") if isinstance(item, dict) else None
        )
        if kind == "node":
            nodes.append(item)
    return nodes


def _summary(lines: Sequence[str]) -> dict[str, Any] | None:
    for line in reversed(lines):
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("message_type") == "summary":
            return message
    return None


def _int(message: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = message.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


# -- the restore itself ------------------------------------------------------------------------


@attrs.define
class _Counts:
    files: int = 0
    size: int = 0
    skipped: int = 0
    source: str = ""


def _emulated_dry_run(
    restic: Restic,
    repo: Repository,
    snapshot_id: str,
    target: Path,
    include: Sequence[str],
    exclude: Sequence[str],
    overwrite: str,
) -> _Counts:
    """What a restore would do, from the snapshot's listing: nothing is written.

    Counted as restic >= 0.16 counts: every entry restored, directories included
    (also those created on the way to an included file); a directory is never
    "kept", a file is when the policy keeps the existing one.
    """
    counts = _Counts(source="listing")
    nodes = listing(restic, repo, snapshot_id)
    chosen = [n for n in nodes if selected(str(n.get("path", "")), include, exclude)]
    ancestors: set[str] = set()
    for node in chosen:
        parent = os.path.dirname(str(node.get("path", "")))
        while parent not in ("/", "") and parent not in ancestors:
            ancestors.add(parent)
            parent = os.path.dirname(parent)
    paths = {str(n.get("path", "")) for n in chosen}
    counts.files += len(ancestors - paths)
    for node in chosen:
        path = str(node.get("path", ""))
        existing = target / path.lstrip("/")
        if node.get("type") != "dir":
            if os.path.lexists(existing) and overwrite == "never":
                counts.skipped += 1
                continue
            size = node.get("size")
            # Content is compared in a real restore only; the same size counts as
            # unchanged here.
            if (
                overwrite == "if-changed"
                and existing.is_file()
                and not existing.is_symlink()
                and existing.stat().st_size == size
            ):
                counts.skipped += 1
                continue
            if node.get("type") == "file":
                counts.size += int(size or 0)
        counts.files += 1
    return counts


def _restic_restore(
    restic: Restic,
    repo: Repository,
    snapshot_id: str,
    target: Path,
    *,
    include: Sequence[str],
    exclude: Sequence[str],
    verify: bool,
    native: Sequence[str],
    json_output: bool,
) -> tuple[str, list[str]]:
    """Run ``restic restore``; returns (error or "", stdout lines)."""
    args = ["restore", snapshot_id, "--target", str(target)]
    for pattern in include:
        args += ["--include", pattern]
    for pattern in exclude:
        args += ["--exclude", pattern]
    if verify:
        args.append("--verify")
    args += list(native)
    if json_output:
        args.append("--json")
    lines: list[str] = []
    result = restic.run(args, repo, on_stdout=lines.append)
    return ("" if result.ok else result.message), lines


def restore(
    config: Config,
    snapshot: str = "latest",
    target: str | os.PathLike[str] | None = None,
    source: str | None = None,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    paths: Sequence[str] | None = None,
    host: str | None = None,
    all_hosts: bool = False,
    tags: Sequence[str] = (),
    before: str | float | None = None,
    after: str | float | None = None,
    overwrite: str | None = None,
    delete: bool = False,
    verify: bool = False,
    dry_run: bool = False,
    in_place: bool = False,
    no_hooks: bool = False,
    hooks: Mapping[Phase | str, Sequence[HookLike]] | None = None,
    registry: PluginRegistry | None = None,
    runner: ResticRunner | None = None,
    output: OutputSink | None = None,
    environ: Mapping[str, str] | None = None,
    verbose: bool = False,
    notify: bool = True,
    handle_signals: bool = False,
    progress: ProgressSink | None = None,
) -> RestoreReport:
    """Restore a snapshot (see the module docstring).

    :param snapshot: ``latest``, ``latest~N`` or an id prefix.
    :param target: the directory to restore into; required unless *in_place*.
    :param source: ``--from``: ``primary`` or a backend name; None tries the primary,
        then ``copy_to_backends`` in order.
    :param paths: the paths ``latest`` must hold; None: the configured directories.
    :param host: the host ``latest`` is of; None: this host (*all_hosts*: any).
    :param overwrite: ``always``, ``if-changed`` or ``never``; required for a
        non-empty target (an in-place restore defaults to ``always``).
    :param in_place: restore onto ``/`` (the caller asks for confirmation).
    :param handle_signals: SIGTERM/SIGINT/SIGHUP (main thread only) stop restic or the
        pre_restore hook; post_restore, on_error and finally still run (a second
        signal skips them); exit code 128+n.
    :param progress: receives restic's progress (restic >= 0.16 reports it for a
        restore; older ones get a spinner from :class:`~resticm_core.progress.TerminalProgress`).
    :raises UsageError: bad arguments, a non-empty target without *overwrite*, an
        option the installed restic lacks. Everything else is in the report.
    """
    started = time.time()
    environ = dict(os.environ if environ is None else environ)
    registry = registry or PluginRegistry.default()
    check_selector(snapshot)
    if in_place:
        if target is not None and Path(target) != Path("/"):
            raise UsageError("--in-place restores onto /: give --target or --in-place, not both")
        target_path = Path("/")
        overwrite = overwrite or "always"
    elif target is None:
        raise UsageError("no restore target: give --target DIR (or --in-place to restore onto /)")
    else:
        target_path = Path(os.path.expanduser(os.fspath(target))).absolute()
    if overwrite is not None and overwrite not in OVERWRITE_CHOICES:
        raise UsageError(
            f"--overwrite {overwrite!r}: expected one of {', '.join(OVERWRITE_CHOICES)}"
        )
    empty = target_is_empty(target_path)
    if not empty and overwrite is None:
        raise UsageError(
            f"restore target {target_path} is not empty: nothing was restored. "
            "Choose what happens to existing files with --overwrite always|if-changed|never, "
            "or restore into an empty directory"
        )
    flt = SnapshotFilter(
        host=None if all_hosts else (host or config.hostname),
        paths=tuple(paths) if paths is not None else configured_paths(config),
        tags=tuple(tags),
        before=parse_date(before, "--before") if isinstance(before, str) else before,
        after=parse_date(after, "--after") if isinstance(after, str) else after,
    )
    interrupt = _Interrupt()
    restic = make_restic(
        config, environ, registry, runner, verbose=verbose, cancel=interrupt.stop,
        progress=progress,
    )
    version = restic.version()
    native_options = version >= NATIVE_OVERWRITE_SINCE
    if delete and not native_options:
        raise UsageError(
            f"--delete needs restic >= {_version_text(NATIVE_OVERWRITE_SINCE)} "
            f"(installed: restic {_version_text(version)}); nothing was restored"
        )
    redactor = Redactor(
        config.secrets(),
        urls=[config.repository, *(b.repository for b in config.backends.values())],
    )
    phases = _Hooks(
        config,
        environ=environ,
        output=output or LoggingSink(log),
        dry_run=dry_run,
        no_hooks=no_hooks,
        registry=registry,
        extra=_normalise(hooks),
        interrupt=interrupt,
        redact=redactor.redact,
    )
    errors: list[str] = []
    warnings: list[str] = []
    variables = {
        "RESTICM_COMMAND": "restore",
        "RESTICM_CONFIG": str(config.source_path or ""),
        "RESTICM_HOST": config.hostname,
        "RESTICM_DRY_RUN": "1" if dry_run else "0",
        "RESTICM_RESTORE_TARGET": str(target_path),
        "RESTICM_REPOSITORY": "",
        "RESTICM_SNAPSHOT_ID": "",
    }
    fields: dict[str, Any] = {
        "target": str(target_path),
        "dry_run": dry_run,
        "restic_version": _version_text(version),
        "started_at": started,
    }
    with _signal_handlers(interrupt, handle_signals):
        choice: Choice | None = None
        counts = _Counts()
        restore_started = False
        try:
            choice = choose(config, restic, snapshot, flt, source=source)
        except NoRepository as exc:
            errors.append(redactor.redact(str(exc)))
            fields["skipped_repositories"] = exc.skipped
        if choice is not None:
            repo = choice.repository
            fields.update(
                repository=repo.name,
                repository_url=redact_url(repo.url),
                snapshot_id=choice.snapshot_id,
                snapshot_time=str(choice.snapshot.get("time", "")),
                skipped_repositories=choice.skipped,
            )
            for skipped in choice.skipped:
                log.warning(
                    "restore: skipped %s (%s): %s", skipped.name, skipped.url, skipped.reason
                )
            log.info(
                "restore: snapshot %s of %s (%s) into %s%s",
                short_id(choice.snapshot),
                repo.name,
                redact_url(repo.url),
                target_path,
                " (dry run)" if dry_run else "",
            )
            variables.update(
                RESTICM_REPOSITORY=redact_url(repo.url), RESTICM_SNAPSHOT_ID=choice.snapshot_id
            )
            pre = phases.run(Phase.PRE_RESTORE, variables)
            if pre.failed:
                errors.append(f"pre_restore failed, nothing was restored: {pre.error}")
            elif interrupt.stop.is_set():
                errors.append(f"interrupted by {interrupt.name}: nothing was restored")
            else:
                restore_started = True
                try:
                    counts = _run_restore(
                        restic,
                        repo,
                        choice.snapshot_id,
                        target_path,
                        empty=empty,
                        include=include,
                        exclude=exclude,
                        overwrite=overwrite,
                        delete=delete,
                        verify=verify,
                        dry_run=dry_run,
                        version=version,
                        in_place=in_place,
                    )
                except ResticmError as exc:
                    errors.append(redactor.redact(str(exc)))
                except OSError as exc:
                    errors.append(redactor.redact(f"restore into {target_path} failed: {exc}"))
        status = "success" if not errors else "failure"
        after_vars = {**variables, "RESTICM_RESTORE_STATUS": status, "BACKUP_STATUS": "not_run"}
        if restore_started:
            post = phases.run(
                Phase.POST_RESTORE,
                {**after_vars, **({"ERROR": "\n".join(errors)} if errors else {})},
            )
            if post.failed:
                warnings.append(f"post_restore failed: {post.error}")
        if errors:
            phases.run(Phase.ON_ERROR, {**after_vars, "ERROR": "\n".join(errors)})
        else:
            phases.run(Phase.ON_SUCCESS, after_vars)
        final_vars = {**after_vars, **({"ERROR": "\n".join(errors)} if errors else {})}
        phases.run(Phase.FINALLY, final_vars)
    report = RestoreReport(
        **fields,
        files_restored=counts.files,
        bytes_restored=counts.size,
        files_skipped=counts.skipped,
        counted_from=counts.source,
        phases=tuple(phases.results),
        errors=tuple(errors),
        warnings=tuple(redactor.redact(w) for w in warnings),
        finished_at=time.time(),
        exit_code=128 + interrupt.signum if interrupt.signum else (1 if errors else 0),
    )
    for warning in report.warnings:
        log.warning("%s", warning)
    if notify and not dry_run:
        _notify(config, report, redactor)
    return report


def _run_restore(
    restic: Restic,
    repo: Repository,
    snapshot_id: str,
    target: Path,
    *,
    empty: bool,
    include: Sequence[str],
    exclude: Sequence[str],
    overwrite: str | None,
    delete: bool,
    verify: bool,
    dry_run: bool,
    version: tuple[int, int, int],
    in_place: bool,
) -> _Counts:
    native = version >= NATIVE_OVERWRITE_SINCE
    json_output = version >= JSON_RESTORE_SINCE
    if not native and dry_run:
        return _emulated_dry_run(
            restic, repo, snapshot_id, target, include, exclude, overwrite or "always"
        )
    flags: list[str] = []
    if native:
        if overwrite:
            flags += ["--overwrite", overwrite]
        if delete:
            flags.append("--delete")
        if dry_run:
            flags.append("--dry-run")
    staged = not native and not empty and overwrite in ("never", "if-changed")
    if staged:
        return _staged_restore(
            restic, repo, snapshot_id, target, include, exclude, verify, str(overwrite)
        )
    if not dry_run:
        target.mkdir(parents=True, exist_ok=True)
    error, lines = _restic_restore(
        restic,
        repo,
        snapshot_id,
        target,
        include=include,
        exclude=exclude,
        verify=verify,
        native=flags,
        json_output=json_output,
    )
    if error:
        raise ResticmError(error)
    summary = _summary(lines) if json_output else None
    if summary is not None:
        restored = _int(summary, "files_restored", "total_files")
        size = _int(summary, "bytes_restored", "total_bytes")
        if restored is not None:
            return _Counts(
                files=restored,
                size=size or 0,
                skipped=_int(summary, "files_skipped") or 0,
                source="restic",
            )
    if empty and not in_place:
        files, size = _count_tree(target)
        return _Counts(files=files, size=size, source="target")
    counts = _emulated_dry_run(restic, repo, snapshot_id, target, include, exclude, "always")
    return counts


def _staged_restore(
    restic: Restic,
    repo: Repository,
    snapshot_id: str,
    target: Path,
    include: Sequence[str],
    exclude: Sequence[str],
    verify: bool,
    policy: str,
) -> _Counts:
    """restic < 0.17, ``--overwrite never|if-changed``: restore aside, then merge."""
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target)
    try:
        error, _lines = _restic_restore(
            restic,
            repo,
            snapshot_id,
            Path(staging),
            include=include,
            exclude=exclude,
            verify=verify,
            native=(),
            json_output=False,
        )
        if error:
            raise ResticmError(f"{error} (the target was not changed)")
        merge = _Merge(policy)
        merge.directory(staging, str(target))
        return _Counts(files=merge.files, size=merge.size, skipped=merge.skipped, source="target")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _notify(config: Config, report: RestoreReport, redactor: Redactor) -> None:
    from .notify import notify_run, restore_event

    try:
        notify_run([restore_event(report, config)], config, redactor=redactor)
    except Exception as exc:  # notifications never change the outcome
        log.warning("notifications failed: %s", redactor.redact(str(exc)))


__all__ = [
    "OVERWRITE_CHOICES",
    "RestoreReport",
    "listing",
    "make_restic",
    "restic_match",
    "restore",
    "target_is_empty",
]
