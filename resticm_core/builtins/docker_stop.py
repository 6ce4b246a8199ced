"""``kind: docker-stop`` and ``kind: docker-start``: stop containers for the backup,
restart exactly those afterwards, whatever happened.

    hooks:
      pre_backup:
        - kind: docker-stop
          label: backup-stop=true       # `docker ps --filter label=...` (the default
                                        # when no container is named)
          containers: [webapp]          # and/or by name (skipped if not running)
          grace: 30s                    # docker stop --time 30
      post_backup:
        - {kind: docker-start}          # right after the backup
      finally:
        - {kind: docker-start}          # the safety net: every path

``docker-stop`` lists the running containers to stop, stops them one by one
with ``docker stop --time GRACE NAME`` and records each container it stopped,
right after stopping it, in a private state file. ``docker-start`` starts the
containers recorded there and forgets each one it started; with nothing
recorded it does nothing, so it is harmless in both post_backup and finally.
A container that was not running before the backup is never started.

Where the record lives: ``docker-stopped-<key>.json`` (mode 0600) in the private
runtime directory resticm keeps its locks in — ``/run/resticm`` for root,
``/run/user/<uid>/resticm`` or ``/tmp/resticm-<uid>`` for other users — or in
``state_dir`` when set (both kinds of one config must use the same). ``<key>`` is
derived from the config file's real path (for a config built in code: from the
repository and the config directory). The process lock allows one run per
config, so the two halves of a run always meet the same file; ``/run`` is
emptied at boot, so a record never outlives a reboot. A record left by a run that
was killed with SIGKILL is picked up and restarted by the next run.

A hook kind contributes to one phase: a config entry is one hook in one phase.
That is why these are two kinds (see docs/cookbook.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import attrs

from ..atomic_files import atomic_write
from ..hooks import Hook, HookContext, failed_result
from ..hookspecs import hookimpl
from ..locking import default_lock_dir
from ..phases import HookResult, Outcome
from ..process import ProcessResult, run_process
from .script import not_started_result, report_result

#: The label selecting containers when a docker-stop entry names none.
DEFAULT_LABEL = "backup-stop=true"


def state_key(ctx: HookContext) -> str:
    """The name part of the state file: one per config, as the process lock."""
    config = ctx.variables.get("RESTICM_CONFIG", "")
    if config:
        source = str(Path(config).resolve())
        stem = Path(config).stem
    else:
        source = f"repository:{ctx.variables.get('RESTICM_REPOSITORY', '')}:{ctx.config_dir}"
        stem = "repository"
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem[:40])
    return f"{safe}-{digest}"


@attrs.frozen(kw_only=True)
class _DockerHook(Hook):
    """What both halves share: the docker command and the state file."""

    #: The docker command (a name looked up on PATH, or a path).
    docker: str = "docker"
    #: Directory of the state file; default: resticm's private runtime directory.
    state_dir: str | None = None

    def check(self, ctx: HookContext) -> list[str]:
        # `config validate` checks with an empty hook environment: resticm's own PATH
        # is what the hooks inherit.
        path = ctx.env.get("PATH") or os.environ.get("PATH", os.defpath)
        if shutil.which(self.docker, path=path) is None:
            return [f"{self.kind}: the command {self.docker!r} was not found on PATH"]
        return []

    def state_file(self, ctx: HookContext) -> Path:
        directory = ctx.resolve_path(self.state_dir) if self.state_dir else default_lock_dir()
        return directory / f"docker-stopped-{state_key(ctx)}.json"

    def read_state(self, ctx: HookContext) -> list[str]:
        """The containers recorded as stopped; [] when there is no record."""
        path = self.state_file(ctx)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise _StateError(f"cannot read the state file {path}: {exc}") from exc
        names = data.get("containers", []) if isinstance(data, dict) else []
        return [str(n) for n in names]

    def write_state(self, ctx: HookContext, containers: Sequence[str]) -> None:
        """Record *containers* (replacing the record), privately; no record when empty."""
        path = self.state_file(ctx)
        if not containers:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        _private_dir(path.parent)
        record = {
            "containers": list(containers),
            "config": ctx.variables.get("RESTICM_CONFIG", ""),
            "updated": time.time(),
        }
        atomic_write(path, json.dumps(record), mode=0o600)

    def docker_command(self, ctx: HookContext, *args: str) -> ProcessResult:
        return ctx.run_command(
            [self.docker, *args], name=self.describe(), timeout=self.effective_timeout(ctx)
        )

    def docker_list(self, ctx: HookContext, *args: str) -> tuple[list[str], ProcessResult]:
        """Run a listing command; its stdout lines (all of them) are returned, not shown."""
        lines: list[str] = []
        name = self.describe()
        proc = run_process(
            [self.docker, *args],
            env=ctx.env,
            timeout=self.effective_timeout(ctx),
            kill_grace=ctx.kill_grace,
            on_stdout=lambda line: lines.append(line.strip()),
            on_stderr=lambda line: ctx.output.hook_line(name, line),
            cancel=ctx.cancel,
        )
        return [line for line in lines if line], proc

    def _result(
        self, ctx: HookContext, started: float, error: str = "", tail: Sequence[str] = ()
    ) -> HookResult:
        result = HookResult(
            name=self.describe(),
            kind=self.kind,
            phase=ctx.phase,
            outcome=Outcome.FAILED if error else Outcome.OK,
            duration=time.monotonic() - started,
            error=error,
            output_tail=tuple(tail),
        )
        report_result(ctx, result)
        return result

    def _before(self, ctx: HookContext) -> HookResult | None:
        """The result when the hook must not (or cannot) run, else None."""
        problems = self.check(ctx)
        if problems:
            result = failed_result(
                name=self.describe(), kind=self.kind, phase=ctx.phase, error="; ".join(problems)
            )
            report_result(ctx, result)
            return result
        if ctx.cancel.is_set():
            return not_started_result(ctx, name=self.describe(), kind=self.kind)
        return None


class _StateError(Exception):
    """The state file exists but cannot be read or written."""


def _private_dir(path: Path) -> None:
    """Create *path* 0700; refuse one another user owns (they could forge the record)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise _StateError(f"state directory {path} is not a directory owned by uid {os.geteuid()}")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


def _failure(proc: ProcessResult) -> str:
    said = [line.strip() for line in (*proc.stdout_tail, *proc.stderr_tail) if line.strip()]
    return proc.describe_failure() + (f" ({said[-1][:300]})" if said else "")


@attrs.frozen(kw_only=True)
class DockerStopHook(_DockerHook):
    kind: ClassVar[str] = "docker-stop"

    #: Containers to stop by name; those not running are skipped.
    containers: tuple[str, ...] = ()
    #: Stop the running containers with this label (``key=value`` or ``key``).
    #: Default: ``backup-stop=true`` when ``containers`` is empty, else none.
    label: str | None = None
    #: Seconds ``docker stop`` waits before killing (``--time``).
    grace: float = attrs.field(default=30.0, metadata={"duration": True})

    def describe(self) -> str:
        label = self.effective_label()
        parts = [*self.containers, *([f"label={label}"] if label else [])]
        return f"docker-stop:{','.join(parts)}"

    def effective_label(self) -> str | None:
        return self.label if self.label or self.containers else DEFAULT_LABEL

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        ctx = ctx.with_env(self.env)
        early = self._before(ctx)
        if early is not None:
            return [early]
        started = time.monotonic()
        ctx.output.message(logging.INFO, f"running hook {self.describe()}")
        try:
            recorded = self.read_state(ctx)
            if recorded:
                ctx.output.message(
                    logging.WARNING,
                    f"{self.describe()}: containers stopped by an earlier run were never "
                    f"restarted: {', '.join(recorded)}; docker-start will restart them too",
                )
            wanted, error = self._to_stop(ctx)
            if error:
                return [self._result(ctx, started, error)]
            stopped = list(recorded)
            for name in wanted:
                if name in stopped:
                    continue
                ctx.output.hook_line(self.describe(), f"stopping {name} (grace {self.grace:g}s)")
                proc = self.docker_command(ctx, "stop", "--time", f"{self.grace:g}", name)
                if not proc.ok:
                    # The ones stopped so far are recorded: docker-start restarts them.
                    return [self._result(ctx, started, f"cannot stop {name}: {_failure(proc)}")]
                stopped.append(name)
                self.write_state(ctx, stopped)
        except (_StateError, OSError) as exc:
            return [self._result(ctx, started, str(exc))]
        count = len(stopped) - len(recorded)
        ctx.output.hook_line(self.describe(), f"stopped {count} container(s)")
        return [self._result(ctx, started)]

    def _to_stop(self, ctx: HookContext) -> tuple[list[str], str]:
        """The running containers to stop, in order: named ones, then labelled ones."""
        running, proc = self.docker_list(ctx, "ps", "--format", "{{.Names}}")
        if not proc.ok:
            return [], f"cannot list the running containers: {_failure(proc)}"
        wanted = []
        for name in self.containers:
            if name in running:
                wanted.append(name)
            else:
                ctx.output.hook_line(self.describe(), f"{name} is not running, skipping")
        label = self.effective_label()
        if label:
            labelled, proc = self.docker_list(
                ctx, "ps", "--filter", f"label={label}", "--format", "{{.Names}}"
            )
            if not proc.ok:
                return [], f"cannot list the containers labelled {label}: {_failure(proc)}"
            wanted.extend(name for name in labelled if name not in wanted)
        return wanted, ""


@attrs.frozen(kw_only=True)
class DockerStartHook(_DockerHook):
    kind: ClassVar[str] = "docker-start"

    def describe(self) -> str:
        return "docker-start"

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        ctx = ctx.with_env(self.env)
        early = self._before(ctx)
        if early is not None:
            return [early]
        started = time.monotonic()
        ctx.output.message(logging.INFO, f"running hook {self.describe()}")
        try:
            recorded = self.read_state(ctx)
            if not recorded:
                ctx.output.hook_line(self.describe(), "no container to restart")
                return [self._result(ctx, started)]
            left: list[str] = []
            errors: list[str] = []
            for name in recorded:
                ctx.output.hook_line(self.describe(), f"starting {name}")
                proc = self.docker_command(ctx, "start", name)
                if not proc.ok:
                    # Kept in the record: the next docker-start (finally) tries again.
                    left.append(name)
                    errors.append(f"cannot start {name}: {_failure(proc)}")
            self.write_state(ctx, left)
        except (_StateError, OSError) as exc:
            return [self._result(ctx, started, str(exc))]
        ctx.output.hook_line(self.describe(), f"restarted {len(recorded) - len(left)} container(s)")
        return [self._result(ctx, started, "; ".join(errors))]


@hookimpl
def resticm_hook_types() -> Iterable[type[Hook]]:
    return [DockerStopHook, DockerStartHook]
