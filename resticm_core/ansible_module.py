"""The Ansible module ``resticm``: run a resticm command on a managed host.

:func:`run_module` holds all the logic and needs no Ansible: it takes the task's
parameters and returns the result dict Ansible prints. :func:`main` is the glue
(``AnsibleModule``, imported lazily so ``resticm_core`` never depends on Ansible).
The collection's ``plugins/modules/resticm.py`` only calls :func:`main`; it carries
copies of :data:`DOCUMENTATION`, :data:`EXAMPLES` and :data:`RETURN` because
``ansible-doc`` reads them from the module file itself (a test keeps them equal).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .config import Config
from .errors import ConfigError, LockHeldError, ResticmError
from .hooks import OutputSink
from .locking import ProcessLock, lock_key
from .phases import Outcome, RunReport, StepKind, StepResult
from .plugin_manager import DISABLE_ENV, PluginRegistry, blocked_from_env
from .restic import Restic, ResticResult, ResticRunner, SubprocessResticRunner, forget_args
from .secrets import Redactor, find_secrets, scrub_environment, secret_values

#: Commands the module runs. ``backup``/``default``/``full`` go through the
#: workflow (hooks included); the others call restic directly, without hooks.
WORKFLOW_COMMANDS = ("backup", "default", "full")
DIRECT_COMMANDS = ("forget", "check", "snapshots")
#: ``restore`` (issue 15) runs :func:`resticm_core.restoring.restore`, its hooks included.
RESTORE_COMMANDS = ("restore",)
COMMANDS = (*WORKFLOW_COMMANDS, *DIRECT_COMMANDS, *RESTORE_COMMANDS)

#: Shown instead of a secret that would otherwise reach the result.
MASK = "********"

DOCUMENTATION = r"""
---
module: resticm
short_description: Run restic backups through resticm_core on managed hosts
description:
  - Runs one resticm command (C(backup), the default workflow, C(full), C(forget),
    C(check) or C(snapshots)) on the managed host with the resticm_core library,
    hooks included, and returns the run report.
  - The host needs the C(restic) binary and the Python package C(resticm-core)
    installed for the Python interpreter Ansible uses there.
  - A failed step (a pre_backup hook, the backup, forget...) fails the task with the
    report's error text; secrets never appear in the result.
version_added: "0.1.0"
author:
  - resticm_core maintainers
options:
  config:
    description:
      - Path of a resticm YAML configuration file on the managed host.
      - Mutually exclusive with O(config_content); one of them is required.
    type: path
  config_content:
    description:
      - The configuration as a mapping, in the same shape as the YAML file.
      - 'Validated exactly like a file; errors read C(<config_content>: key.path: message).'
      - Use absolute paths for hooks and files; relative ones resolve against the
        module's working directory.
      - Secrets written inline here appear in Ansible's invocation log on the host;
        prefer O(password) or C(password_file).
    type: dict
  command:
    description:
      - What to run. C(backup) runs pre_backup, backup, post_backup and the result
        hooks; C(default) is the bare C(resticm) (backup then forget); C(full) adds
        prune and check.
      - C(forget) applies the retention policy to this host's snapshots;
        C(check) runs C(restic check); C(snapshots) lists this host's snapshots.
        These three run no hooks.
      - C(restore) restores O(snapshot) into O(target) from O(source), or from the
        first of the primary and C(copy_to_backends) that holds it, with the
        pre_restore and post_restore hooks.
    type: str
    default: backup
    choices: [backup, default, full, forget, check, snapshots, restore]
  snapshot:
    description:
      - C(restore) only. C(latest) (this host, the configured directories),
        C(latest~N) (the N-th before it) or a snapshot id prefix.
    type: str
    default: latest
  target:
    description:
      - C(restore) only. The directory to restore into (required for C(restore)).
        A non-empty one needs O(overwrite).
    type: path
  source:
    description:
      - C(restore) only. The repository to restore from (C(primary) or a backend
        name, the CLI's C(--from)); default the first that holds the snapshot.
    type: str
  include:
    description:
      - C(restore) only. Restore only what these restic patterns match.
    type: list
    elements: str
    default: []
  exclude:
    description:
      - C(restore) only. Do not restore what these restic patterns match.
    type: list
    elements: str
    default: []
  overwrite:
    description:
      - C(restore) only. What happens to existing files in a non-empty target.
    type: str
    choices: [always, if-changed, never]
  no_hooks:
    description:
      - Run no hook of any phase (C(--no-hooks)).
    type: bool
    default: false
  tags:
    description:
      - Extra tags for this backup, after the config's C(default_tags).
    type: list
    elements: str
    default: []
  password:
    description:
      - Repository password. Overrides the config's C(password),
        C(password_file) and C(password_command) for the primary repository.
      - Never logged and never returned.
    type: str
notes:
  - Check mode of C(restore) is its dry run, as C(resticm restore -n); nothing is
    written, and C(changed) says whether anything would be restored.
  - Check mode is a dry run. C(backup), C(default) and C(full) run nothing and
    report C(changed=true) when a snapshot would be written. C(forget) asks restic
    what it would remove with C(restic --no-lock forget --dry-run), which changes
    nothing. C(check) does not run. C(snapshots) is read-only and runs.
  - A partial backup (restic exit 3, some files unreadable) succeeds with a warning.
  - Another run holding the configuration's lock fails the task.
requirements:
  - restic >= 0.14 on the managed host
  - resticm-core (Python) on the managed host
"""

EXAMPLES = r"""
- name: Back up with the host's configuration file
  resticm.core.resticm:
    config: /etc/resticm/config.yaml

- name: Default workflow (backup then forget), with a vaulted password
  resticm.core.resticm:
    config: /etc/resticm/config.yaml
    command: default
    password: "{{ vault_restic_password }}"
    tags: [ansible]

- name: Configuration given inline
  resticm.core.resticm:
    config_content:
      repository: /srv/restic
      password_file: /etc/resticm/password
      directories: [/etc, /home]
      hooks:
        pre_backup: /etc/resticm/hooks/pre-backup.sh
    command: backup
  register: backup

- name: Show the new snapshot
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: snapshot {{ backup.snapshot_id }}"

- name: Apply the retention policy (changed only when snapshots were removed)
  resticm.core.resticm:
    config: /etc/resticm/config.yaml
    command: forget

- name: Restore the previous snapshot's /etc/nginx from the mirror if the primary is gone
  resticm.core.resticm:
    config: /etc/resticm/config.yaml
    command: restore
    snapshot: latest~1
    target: /srv/restore
    include: [/etc/nginx]
"""

RETURN = r"""
changed:
  description: A snapshot was created, or snapshots were forgotten (in check mode, would be).
  returned: always
  type: bool
  sample: true
snapshot_id:
  description: Short ID of the snapshot the backup wrote; null when none was written.
  returned: always
  type: str
  sample: 1a2b3c4d
exit_code:
  description: The exit code C(resticm) would have (0 ok, 1 failed, 3 partial, 75 lock held).
  returned: always
  type: int
  sample: 0
report:
  description:
    - The run report (C(RunReport.to_dict())) with every phase, hook and restic step;
      secrets are redacted. Empty when the configuration could not be loaded.
  returned: always
  type: dict
  sample:
    command: backup
    host: web1
    exit_code: 0
    ok: true
    snapshot_id: 1a2b3c4d
    errors: []
    steps:
      - name: backup
        repository: primary
        outcome: ok
forgotten:
  description: Short IDs of the snapshots forget removed (or would remove in check mode).
  returned: when command is forget
  type: list
  elements: str
  sample: [d426ae7f]
snapshots:
  description: This host's snapshots as C(restic snapshots --json) prints them.
  returned: when command is snapshots
  type: list
  elements: dict
restored_from:
  description: The repository C(restore) used (C(primary) or a backend name).
  returned: when command is restore
  type: str
  sample: s3
files_restored:
  description: Entries (files and directories) restored, or that would be in check mode.
  returned: when command is restore
  type: int
  sample: 42
msg:
  description: What failed, one line per error.
  returned: on failure
  type: str
  sample: "pre_backup hook /etc/resticm/hooks/pre-backup.sh failed: exit 1"
"""


def argument_spec() -> dict[str, Any]:
    """The module's parameters for ``AnsibleModule`` (mirrors :data:`DOCUMENTATION`)."""
    return {
        "config": {"type": "path"},
        "config_content": {"type": "dict"},
        "command": {"type": "str", "default": "backup", "choices": list(COMMANDS)},
        "no_hooks": {"type": "bool", "default": False},
        "tags": {"type": "list", "elements": "str", "default": []},
        "password": {"type": "str", "no_log": True},
        "snapshot": {"type": "str", "default": "latest"},
        "target": {"type": "path"},
        "source": {"type": "str"},
        "include": {"type": "list", "elements": "str", "default": []},
        "exclude": {"type": "list", "elements": "str", "default": []},
        "overwrite": {"type": "str", "choices": ["always", "if-changed", "never"]},
    }


class _ModuleError(Exception):
    """A failure before anything ran: bad parameters or configuration."""


def run_module(
    params: Mapping[str, Any],
    check_mode: bool,
    *,
    runner: ResticRunner | None = None,
    environ: Mapping[str, str] | None = None,
    registry: PluginRegistry | None = None,
    lock_dir: Path | None = None,
    output: OutputSink | None = None,
    log_to_config: bool = False,
    scrub_environ: bool = False,
) -> dict[str, Any]:
    """Run the task described by *params*; returns the dict Ansible reports.

    Never raises for expected failures: they come back as ``failed: true`` with a
    ``msg``. The ``password`` parameter and every secret of the configuration are
    masked in the returned dict.

    :param check_mode: Ansible's check mode; a dry run (see :data:`DOCUMENTATION`).
    :param runner: the restic seam (tests pass :class:`resticm_core.testing.FakeRestic`).
    :param log_to_config: install the config's ``logging:`` handlers (file, console on
        stderr) as the CLI does; :func:`main` sets it, library callers keep their own.
    :param scrub_environ: remove the config's secrets from ``os.environ`` once it is
        loaded (:func:`~resticm_core.secrets.scrub_environment`); :func:`main` sets it.
    """
    password = params.get("password") or None
    secrets = [password] if password else []
    env = os.environ if environ is None else environ
    try:
        if registry is None:
            registry = PluginRegistry.default(blocked=blocked_from_env(env.get(DISABLE_ENV)))
        config = _load(params, password, registry=registry, environ=environ)
        if password:
            # The module's password replaces every password source of the config.
            config = attrs.evolve(
                config, password=password, password_file=None, password_command=None
            )
        secrets += config.secrets()
        if scrub_environ:
            scrub_environment(secrets)
        if log_to_config:
            _setup_logging(config, Redactor(secrets))
        command = params.get("command") or "backup"
        if command not in COMMANDS:
            raise _ModuleError(f"unknown command {command!r} (commands: {', '.join(COMMANDS)})")
        result = _run(
            config,
            command,
            params,
            check_mode,
            runner=runner,
            environ=environ,
            registry=registry,
            lock_dir=lock_dir,
            output=output,
        )
        if params.get("config_content") and _inline_secrets(params["config_content"]):
            result.setdefault("warnings", []).append(
                "config_content holds secrets inline; they appear in Ansible's invocation "
                "log on the host: use the password option or password_file instead"
            )
    except ConfigError as exc:
        result = _failure("configuration error: " + "; ".join(exc.messages))
    except ResticmError as exc:
        result = _failure(str(exc), exit_code=exc.exit_code)
    except _ModuleError as exc:
        result = _failure(str(exc))
    masked: dict[str, Any] = _mask(result, Redactor(secrets))
    return masked


def _setup_logging(config: Config, redactor: Redactor) -> None:
    from .logs import setup_logging

    setup_logging(config.logging, redactor=redactor)


def _failure(msg: str, *, exit_code: int = 2) -> dict[str, Any]:
    return {
        "failed": True,
        "changed": False,
        "msg": msg,
        "report": {},
        "snapshot_id": None,
        "exit_code": exit_code,
    }


def _load(
    params: Mapping[str, Any],
    password: str | None,
    *,
    registry: PluginRegistry | None,
    environ: Mapping[str, str] | None,
) -> Config:
    """The task's config. With *password*, a config that names no password source is
    valid too: validation sees the password where restic would (never in the result)."""
    from .config_file import config_from_dict, load_config

    if password:
        environ = {**(os.environ if environ is None else environ), "RESTIC_PASSWORD": password}

    path, content = params.get("config"), params.get("config_content")
    if path and content is not None:
        raise _ModuleError("parameters are mutually exclusive: config|config_content")
    if path:
        return load_config(path, registry=registry, environ=environ)
    if content is None:
        raise _ModuleError("one of the following is required: config, config_content")
    if not isinstance(content, Mapping):
        raise _ModuleError("config_content must be a mapping (the YAML file's content)")
    return config_from_dict(content, registry=registry, source="<config_content>", environ=environ)


def _inline_secrets(content: Mapping[str, Any]) -> bool:
    # The same list the permission check of a config file uses.
    return any(True for _ in find_secrets(content))


def _mask(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, Mapping):
        return {k: _mask(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, redactor) for v in value]
    return value


def _run(
    config: Config,
    command: str,
    params: Mapping[str, Any],
    check_mode: bool,
    **seams: Any,
) -> dict[str, Any]:
    if command in WORKFLOW_COMMANDS:
        return _run_workflow(config, command, params, check_mode, **seams)
    if command in RESTORE_COMMANDS:
        return _run_restore(config, params, check_mode, **seams)
    return _run_direct(config, command, check_mode, **seams)


def _run_restore(
    config: Config,
    params: Mapping[str, Any],
    check_mode: bool,
    *,
    runner: ResticRunner | None,
    environ: Mapping[str, str] | None,
    registry: PluginRegistry | None,
    lock_dir: Path | None,
    output: OutputSink | None,
) -> dict[str, Any]:
    """``restore``: check mode is the restore's dry run."""
    del lock_dir  # a restore takes restic's lock only, as the CLI's does
    from .restoring import restore

    if not params.get("target"):
        raise _ModuleError("command restore needs the target parameter")
    report = restore(
        config,
        params.get("snapshot") or "latest",
        params["target"],
        params.get("source") or None,
        include=tuple(params.get("include") or ()),
        exclude=tuple(params.get("exclude") or ()),
        overwrite=params.get("overwrite") or None,
        dry_run=check_mode,
        no_hooks=bool(params.get("no_hooks")),
        registry=registry,
        runner=runner,
        output=output,
        environ=environ,
    )
    result: dict[str, Any] = {
        "changed": report.ok and report.files_restored > 0,
        "report": report.to_dict(),
        "snapshot_id": report.snapshot_id[:8] or None,
        "exit_code": report.exit_code,
        "restored_from": report.repository,
        "files_restored": report.files_restored,
    }
    if report.warnings:
        result["warnings"] = list(report.warnings)
    if not report.ok:
        result["failed"] = True
        result["msg"] = "; ".join(report.errors) or (
            f"resticm restore failed (exit {report.exit_code})"
        )
    return result


def _run_workflow(
    config: Config,
    command: str,
    params: Mapping[str, Any],
    check_mode: bool,
    *,
    runner: ResticRunner | None,
    environ: Mapping[str, str] | None,
    registry: PluginRegistry | None,
    lock_dir: Path | None,
    output: OutputSink | None,
) -> dict[str, Any]:
    from .workflow import run

    report = run(
        config,
        command,
        dry_run=check_mode,
        no_hooks=bool(params.get("no_hooks")),
        tags=tuple(params.get("tags") or ()),
        runner=runner,
        environ=environ,
        registry=registry,
        lock_dir=lock_dir,
        output=output,
    )
    if check_mode:
        # Nothing ran: a backup step that would run means a snapshot would be written.
        changed = report.ok and any(s.kind is StepKind.BACKUP for s in report.steps)
    else:
        # The workflow's forget does not say what it removed; without a new snapshot,
        # a forget that ran may have removed some, so it counts as a change.
        changed = report.snapshot_id is not None or any(
            s.kind is StepKind.FORGET and s.outcome is Outcome.OK for s in report.steps
        )
    return _result(report, changed=changed)


def _result(report: RunReport, *, changed: bool, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "changed": changed,
        "report": report.to_dict(),
        "snapshot_id": report.snapshot_id,
        "exit_code": report.exit_code,
        **extra,
    }
    if report.exit_code == 3:
        result["warnings"] = [*report.warnings, *report.errors] or [
            "partial backup: some files could not be read"
        ]
    elif not report.ok:
        result["failed"] = True
        result["msg"] = "; ".join(report.errors) or (
            f"resticm {report.command} failed (exit {report.exit_code})"
        )
    return result


def _run_direct(
    config: Config,
    command: str,
    check_mode: bool,
    *,
    runner: ResticRunner | None,
    environ: Mapping[str, str] | None,
    registry: PluginRegistry | None,
    lock_dir: Path | None,
    output: OutputSink | None,
) -> dict[str, Any]:
    """forget / check / snapshots on the primary repository, without hooks."""
    del output  # no hooks run here
    registry = registry or PluginRegistry.default()  # run_module always passes one
    restic = Restic(
        runner
        or SubprocessResticRunner(environ=environ, password_provider=registry.repository_password),
        timeouts=config.timeouts.as_mapping(),
        retry_lock=config.retry_lock,
    )
    redactor = Redactor(
        config.secrets(),
        urls=[config.repository, *(b.repository for b in config.backends.values())],
    )
    started = time.time()
    lock = ProcessLock(lock_key(config.source_path, config.repository), lock_dir=lock_dir)
    try:
        lock.acquire()
    except LockHeldError as exc:
        report = _direct_report(config, command, started, check_mode, (), [str(exc)], 75)
        return _result(report, changed=False)
    try:
        if command == "forget":
            return _forget(config, restic, redactor, started, check_mode)
        if command == "check":
            return _check(config, restic, redactor, started, check_mode)
        return _snapshots(config, restic, redactor, started, check_mode)
    finally:
        lock.release()


def _direct_report(
    config: Config,
    command: str,
    started: float,
    check_mode: bool,
    steps: tuple[StepResult, ...],
    errors: list[str],
    exit_code: int,
    warnings: tuple[str, ...] = (),
) -> RunReport:
    return RunReport(
        command=command,
        host=config.hostname,
        started_at=started,
        finished_at=time.time(),
        dry_run=check_mode,
        steps=steps,
        errors=tuple(errors),
        warnings=warnings,
        exit_code=exit_code,
    )


def _step(name: str, result: ResticResult, redactor: Redactor) -> StepResult:
    return StepResult(
        name=name,
        repository=result.repository,
        outcome=Outcome.OK if result.ok else Outcome.FAILED,
        duration=result.duration,
        error=redactor.redact(result.message),
        exit_code=result.exit_code,
        command=result.command_line,
    )


def _finish(
    config: Config,
    command: str,
    started: float,
    check_mode: bool,
    step: StepResult,
    *,
    changed: bool,
    **extra: Any,
) -> dict[str, Any]:
    errors = [step.error] if step.failed else []
    report = _direct_report(
        config, command, started, check_mode, (step,), errors, 1 if step.failed else 0
    )
    return _result(report, changed=changed and not step.failed, **extra)


def _forget(
    config: Config, restic: Restic, redactor: Redactor, started: float, check_mode: bool
) -> dict[str, Any]:
    repo = config.primary_repository()
    policy = config.retention.forget_args()
    if config.retention.empty:
        report = _direct_report(
            config,
            "forget",
            started,
            check_mode,
            (),
            [],
            0,
            warnings=("retention policy is empty (every keep_* is 0): forget skipped",),
        )
        skipped = _result(report, changed=False, forgotten=[])
        skipped["warnings"] = list(report.warnings)
        return skipped
    # --json makes restic list what it removed, which is what `changed` reports. In
    # check mode `--no-lock ... --dry-run` asks the same question and writes nothing.
    args = [*forget_args(policy, host=config.hostname, dry_run=check_mode), "--json"]
    if check_mode:
        args = ["--no-lock", *args]
    result = restic.run(args, repo, capture_stdout=True)
    step = _step("forget", result, redactor)
    forgotten = _removed_ids(result.stdout) if result.ok else []
    return _finish(
        config,
        "forget",
        started,
        check_mode,
        step,
        changed=bool(forgotten),
        forgotten=forgotten,
    )


def _removed_ids(stdout: str) -> list[str]:
    """Short IDs in the ``remove`` lists of ``restic forget --json`` (null when none)."""
    try:
        groups = json.loads(stdout or "[]")
    except ValueError:
        return []
    ids: list[str] = []
    for group in groups if isinstance(groups, list) else []:
        removed = group.get("remove") if isinstance(group, dict) else None
        for snapshot in removed or []:
            if isinstance(snapshot, dict):
                ids.append(str(snapshot.get("short_id") or str(snapshot.get("id", ""))[:8]))
    return ids


def _check(
    config: Config, restic: Restic, redactor: Redactor, started: float, check_mode: bool
) -> dict[str, Any]:
    repo = config.primary_repository()
    if check_mode:
        step = StepResult(
            name="check",
            repository=repo.name,
            outcome=Outcome.SKIPPED,
            command=restic.describe(["check"], repo),
        )
        return _finish(config, "check", started, check_mode, step, changed=False)
    step = _step("check", restic.check(repo), redactor)
    return _finish(config, "check", started, check_mode, step, changed=False)


def _snapshots(
    config: Config, restic: Restic, redactor: Redactor, started: float, check_mode: bool
) -> dict[str, Any]:
    repo = config.primary_repository()
    args = ["snapshots", "--json", "--host", config.hostname]
    result = restic.run(args, repo, capture_stdout=True)
    step = _step("snapshots", result, redactor)
    snapshots: list[Any] = []
    if result.ok:
        try:
            value = json.loads(result.stdout or "null")
        except ValueError:
            value = None
        snapshots = value if isinstance(value, list) else []
    return _finish(
        config, "snapshots", started, check_mode, step, changed=False, snapshots=snapshots
    )


def main() -> None:
    """Entry point of the Ansible module (``plugins/modules/resticm.py`` calls it)."""
    from ansible.module_utils.basic import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        AnsibleModule,
    )

    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("config", "config_content")],
        required_one_of=[("config", "config_content")],
        supports_check_mode=True,
    )
    # The module's process is resticm's own: passwords leave os.environ before any
    # hook runs; the captured copy still gives restic an inherited RESTIC_PASSWORD.
    environ = scrub_environment([module.params.get("password") or ""])
    try:
        result = run_module(
            module.params,
            module.check_mode,
            environ=environ,
            log_to_config=True,
            scrub_environ=True,
        )
    except Exception as exc:  # an unexpected bug: a message, never a traceback
        result = _failure(f"resticm module error: {type(exc).__name__}: {exc}")
        result = _mask(result, Redactor([module.params.get("password") or ""]))
    # Secrets written inside config_content are masked in the echoed invocation too.
    content = module.params.get("config_content")
    if isinstance(content, Mapping):
        module.no_log_values.update(secret_values(content))
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":  # pragma: no cover - run by Ansible
    main()
