"""The CLI's side of several jobs: ``resticm jobs``, and running every job of a file.

A command of :data:`MULTI_JOB_COMMANDS` given no ``-j`` on a file with ``jobs:``
runs each selected job in turn (``run_jobs:``, else every job in file order), each
with its own lock, report and notifications, exactly as ``resticm -j NAME``
would; one failing does not stop the next (a signal does). The exit code is the
worst of theirs (:func:`resticm_core.jobs.overall_exit_code`). Every other command
works on one repository and needs ``-j`` when there are several jobs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .jobs import JobSet, job_summary, overall_exit_code

#: Commands that run every job when no ``-j`` is given.
MULTI_JOB_COMMANDS = frozenset(
    {"default", "backup", "full", "forget", "prune", "check", "copy", "config validate"}
)

log = logging.getLogger("resticm_core")


def cmd_jobs(job_set: JobSet, args: argparse.Namespace) -> int:
    """``resticm jobs``: name, repository (no secret), directories and schedule of each."""
    rows = [job_summary(config) for config in job_set.jobs.values()]
    if args.json:
        document = {
            "config": str(job_set.source_path),
            "run_jobs": list(job_set.run_jobs or job_set.names),
            "jobs": rows,
        }
        print(json.dumps(document, indent=2))
        return 0
    if not rows:
        print(f"{job_set.source_path} defines no jobs: every command works on its one config")
        return 0
    name_width = max(4, *(len(str(row["name"])) for row in rows))
    repo_width = max(10, *(len(str(row["repository"])) for row in rows))
    print(f"{'JOB':<{name_width}}  {'REPOSITORY':<{repo_width}}  {'SCHEDULE':<16}  DIRECTORIES")
    for row in rows:
        directories = ", ".join(row["directories"]) or "-"  # type: ignore[arg-type]
        print(
            f"{row['name']!s:<{name_width}}  {row['repository']!s:<{repo_width}}  "
            f"{row['schedule'] or '-'!s:<16}  {directories}"
        )
    if job_set.run_jobs:
        print(f"run_jobs: {', '.join(job_set.run_jobs)}")
    return 0


#: ``run_one(command, config, args, registry, env)``: one job's run report (the CLI's).
RunOne = Callable[[str, Any, argparse.Namespace, Any, dict[str, str]], Any]


def run_jobs(
    command: str,
    job_set: JobSet,
    args: argparse.Namespace,
    registry: Any,
    env: Mapping[str, str],
    *,
    run_one: RunOne,
    print_summary: Callable[[Any], None],
) -> int:
    """Run *command* for every selected job; the worst exit code.

    :param run_one: runs one job as ``resticm -j NAME`` would and returns its report.
    :param print_summary: prints one report's text summary.
    """
    configs = job_set.selected(None)
    _setup_logging(configs, args, warn=command != "config validate")
    if command == "config validate":
        return _validate_all(job_set, args, env)
    codes: list[int] = []
    documents: list[dict[str, Any]] = []
    for config in configs:
        if not args.json:
            print(f"resticm: job {config.job}", file=sys.stderr)
        report = run_one(command, config, args, registry, dict(env))
        code = int(report.exit_code)
        codes.append(code)
        if args.json:
            documents.append({"job": config.job, **report.to_dict()})
        else:
            print_summary(report)
        if code >= 128:  # stopped by a signal: the operator wants the whole run to stop
            log.warning("job %s was stopped by a signal; the remaining jobs do not run", config.job)
            break
    worst = overall_exit_code(codes)
    if args.json:
        print(json.dumps({"command": command, "exit_code": worst, "ok": worst == 0,
                          "jobs": documents}, indent=2))
    else:
        results = ", ".join(f"{c.job}: {code}" for c, code in zip(configs, codes, strict=False))
        print(f"resticm {command}: {len(codes)} job(s), exit {worst} ({results})",
              file=sys.stderr)
    return worst


def _validate_all(job_set: JobSet, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """``config validate`` of every job: each problem prefixed with its job."""
    from .config_check import check_config

    errors: list[str] = []
    warnings: list[str] = []
    for name, config in job_set.jobs.items():
        found = check_config(config, environ=env)
        errors += [f"job {name}: {error}" for error in found.errors]
        warnings += [f"job {name}: {warning}" for warning in found.warnings]
    source = str(job_set.source_path)
    ok = not errors
    if args.json:
        print(json.dumps({"ok": ok, "config": source, "jobs": job_set.names,
                          "errors": errors, "warnings": warnings}))
        return 0 if ok else 2
    jobs = f"{len(job_set.jobs)} jobs: {', '.join(job_set.names)}"
    if ok:
        extra = f", {len(warnings)} warning(s)" if warnings else ""
        print(f"OK: {source} ({jobs}{extra})")
    else:
        print(f"FAILED: {source} ({jobs}): {len(errors)} problem(s) that fail every run")
    for error in errors:
        print(f"  error: {error}")
    for warning in warnings:
        print(f"  warning: {warning}")
    return 0 if ok else 2


def _setup_logging(configs: list[Any], args: argparse.Namespace, *, warn: bool) -> None:
    """Logging as the first job sets it, redacting the secrets of every job."""
    from .config_file import config_warnings
    from .logs import setup_logging
    from .secrets import Redactor

    secrets = [s for config in configs for s in config.secrets()]
    urls = [
        url
        for config in configs
        for url in (config.repository, *(b.repository for b in config.backends.values()))
    ]
    # Through the progress display, as the CLI's own logging (a log line clears the line).
    setup_logging(
        configs[0].logging,
        redactor=Redactor(secrets, urls=urls),
        verbose=args.verbose,
        stream=getattr(args, "progress_display", None),
    )
    if warn:
        for config in configs:
            for warning in config_warnings(config):
                log.warning("job %s: %s", config.job, warning)
