#!/usr/bin/env python3
"""Run a resticm backup from your own Python program.

    python3 examples/embed.py /etc/resticm/config.yaml [--min-free-mb 500] [--report report.json]

What it shows, in order:

1. load a config file the way the ``resticm`` command does (located errors, exit 2);
2. register Python hooks from code, for this run only — here a pre_backup check
   that every source directory's file system has enough free space, and a
   ``finally`` hook that records the outcome — next to the hooks the config has;
3. run the backup with :func:`resticm_core.run`, which never raises for an
   expected failure: everything that happened is in the returned report;
4. read the report: exit code, backup status, snapshot, each phase and hook, the
   errors; optionally write it as JSON for your monitoring.

Exit code: the report's (0 ok, 1 a step failed, 3 partial backup, 75 another run
holds the lock), 2 for a config error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import resticm_core
from resticm_core import ConfigError, HookContext, RunReport


def check_free_space(ctx: HookContext) -> None:
    """A pre_backup hook: enough free space where the dumps and the cache go?

    Its settings come from the environment this program passes to the run.
    Raising fails the hook: pre_backup fails, the backup is skipped, on_error runs.
    """
    min_free_mb = int(ctx.env["EMBED_MIN_FREE_MB"])
    for directory in ctx.env["EMBED_SOURCES"].splitlines():
        probe = Path(directory)
        while not probe.exists():  # a dump directory a later hook creates
            probe = probe.parent
        free_mb = shutil.disk_usage(probe).free // (1024 * 1024)
        if free_mb < min_free_mb:
            raise RuntimeError(
                f"only {free_mb} MB free on the file system of {directory}, {min_free_mb} MB needed"
            )
        ctx.output.hook_line("check_free_space", f"{directory}: {free_mb} MB free")


#: What the finally hook saw, read by main() after the run.
OUTCOMES: list[str] = []


def record_outcome(ctx: HookContext) -> None:
    """A ``finally`` hook: runs on every path, sees BACKUP_STATUS and ERROR."""
    OUTCOMES.append(ctx.env.get("BACKUP_STATUS", "?"))


def print_report(report: RunReport) -> None:
    print(f"exit code:     {report.exit_code}")
    print(f"backup status: {report.backup_status}")
    print(f"snapshot:      {report.snapshot_id or '-'}")
    for phase in report.phases:
        for hook in phase.hooks:
            line = f"  {phase.phase:<12} {hook.outcome:<10} {hook.name}"
            print(line + (f"  ({hook.error})" if hook.error else ""))
    for step in report.steps:
        print(f"  step {step.name:<12} {step.outcome}")
    for error in report.errors:
        print(f"error: {error}")
    for warning in report.warnings:
        print(f"warning: {warning}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--min-free-mb", type=int, default=100)
    parser.add_argument("--report", type=Path, help="write the run's report here, as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        config = resticm_core.load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    report = resticm_core.run(
        config,
        "backup",
        # Added after the hooks of the config, for this run only: plain
        # functions taking a HookContext, or resticm_core.Hook instances.
        hooks={"pre_backup": [check_free_space], "finally": [record_outcome]},
        # Hooks see this environment (plus resticm's variables): settings for ours.
        environ={
            **os.environ,
            "EMBED_MIN_FREE_MB": str(args.min_free_mb),
            "EMBED_SOURCES": "\n".join(config.directories),
        },
    )

    print_report(report)
    print(f"finally saw:   BACKUP_STATUS={','.join(OUTCOMES) or '-'}")
    if args.report:
        args.report.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
