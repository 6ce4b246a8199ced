"""resticm_core: restic backups as an explicit, pluggable workflow.

    import resticm_core

    config = resticm_core.load_config("/etc/resticm/config.yaml")
    report = resticm_core.run(config, "backup")
    print(report.exit_code, report.snapshot_id)

Names are imported lazily, so ``import resticm_core`` and ``resticm --version``
stay fast; the public API is exactly :data:`__all__`.
"""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING``: ``import resticm_core`` (and so every
# ``resticm`` start, ``--version`` included) then does not import typing. Type
# checkers treat a module-level ``TYPE_CHECKING = False`` as the typing constant.
TYPE_CHECKING = False

__version__ = "0.1.0"

if TYPE_CHECKING:
    from typing import Any

    from .browse import diff, find, ls
    from .config import Backend, Config, Repository, Retention
    from .config_file import config_from_dict, load_config
    from .errors import ConfigError, LockHeldError, PluginError, ResticmError, SkipBackup
    from .hooks import Hook, HookContext
    from .hookspecs import hookimpl, hookspec
    from .notify.api import Event, EventStatus, Notifier, NotifyContext, NotifyError
    from .phases import (
        BackupStatus,
        BackupSummary,
        CheckSummary,
        Command,
        CopiedSnapshot,
        CopySummary,
        ForgetSummary,
        HookResult,
        Outcome,
        Phase,
        PhaseResult,
        RunReport,
        SnapshotRef,
        StepKind,
        StepResult,
    )
    from .plugin_manager import PluginRegistry, make_plugin_manager
    from .restoring import RestoreReport, restore
    from .run_state import RunState
    from .secrets import scrub_environment
    from .workflow import RunOptions, run, run_phase_hooks

_EXPORTS = {
    "Backend": "config",
    "Config": "config",
    "Repository": "config",
    "Retention": "config",
    "config_from_dict": "config_file",
    "load_config": "config_file",
    "ConfigError": "errors",
    "LockHeldError": "errors",
    "PluginError": "errors",
    "ResticmError": "errors",
    "SkipBackup": "errors",
    "Hook": "hooks",
    "HookContext": "hooks",
    "hookimpl": "hookspecs",
    "hookspec": "hookspecs",
    "Event": "notify.api",
    "EventStatus": "notify.api",
    "Notifier": "notify.api",
    "NotifyContext": "notify.api",
    "NotifyError": "notify.api",
    "BackupStatus": "phases",
    "BackupSummary": "phases",
    "CheckSummary": "phases",
    "CopiedSnapshot": "phases",
    "CopySummary": "phases",
    "ForgetSummary": "phases",
    "SnapshotRef": "phases",
    "Command": "phases",
    "HookResult": "phases",
    "Outcome": "phases",
    "Phase": "phases",
    "PhaseResult": "phases",
    "RunReport": "phases",
    "StepKind": "phases",
    "StepResult": "phases",
    "RunState": "run_state",
    "PluginRegistry": "plugin_manager",
    "make_plugin_manager": "plugin_manager",
    "scrub_environment": "secrets",
    "RunOptions": "workflow",
    "run": "workflow",
    "run_phase_hooks": "workflow",
    "RestoreReport": "restoring",
    "restore": "restoring",
    "diff": "browse",
    "find": "browse",
    "ls": "browse",
}

__all__ = [
    "Backend",
    "BackupStatus",
    "BackupSummary",
    "CheckSummary",
    "Command",
    "Config",
    "ConfigError",
    "CopiedSnapshot",
    "CopySummary",
    "Event",
    "EventStatus",
    "ForgetSummary",
    "Hook",
    "HookContext",
    "HookResult",
    "LockHeldError",
    "Notifier",
    "NotifyContext",
    "NotifyError",
    "Outcome",
    "Phase",
    "PhaseResult",
    "PluginError",
    "PluginRegistry",
    "Repository",
    "ResticmError",
    "RestoreReport",
    "Retention",
    "RunOptions",
    "RunReport",
    "RunState",
    "SkipBackup",
    "SnapshotRef",
    "StepKind",
    "StepResult",
    "__version__",
    "config_from_dict",
    "diff",
    "find",
    "hookimpl",
    "hookspec",
    "load_config",
    "ls",
    "make_plugin_manager",
    "restore",
    "run",
    "run_phase_hooks",
    "scrub_environment",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'resticm_core' has no attribute {name!r}")
    # importlib is imported here, not at the top: it imports warnings, and a bare
    # ``import resticm_core`` (``resticm --version``) needs neither.
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # cache: the next access is a plain lookup
    return value
