"""Which units ``resticm schedule`` writes for a config: one per job of a file with ``jobs:``.

A file without jobs keeps the one ``resticm.service``/``.timer`` it always had (its
top-level ``schedule:``, when set, is the default ``--on-calendar``). A file with
jobs gets ``resticm-JOB.service``/``.timer`` per job (``--name`` is the prefix),
each running ``resticm --job JOB`` at the job's own ``schedule:``; ``-j JOB``
limits the command to that job.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .errors import ConfigError, UsageError

if TYPE_CHECKING:
    from .jobs import JobSet
    from .schedule import Schedule

MakeSchedule = Callable[..., "Schedule"]


def job_schedules(
    args: argparse.Namespace, environ: Mapping[str, str], make: MakeSchedule
) -> list[Schedule]:
    """The schedules of this command: one, or one per (selected) job."""
    job_set = _job_set(args, environ)
    selected = getattr(args, "job", None)
    if job_set is None:
        if selected:
            raise UsageError(f"--job {selected}: no config with jobs: found (pass --config)")
        return [make(args)]
    if not job_set.has_jobs:
        if selected:
            job_set.job(selected)  # raises: the file defines no jobs
        single = job_set.single
        return [make(args, on_calendar=single.schedule if single is not None else None)]
    configs = [job_set.job(selected)] if selected else list(job_set.jobs.values())
    return [make(args, job=config.job, on_calendar=config.schedule) for config in configs]


def _job_set(args: argparse.Namespace, environ: Mapping[str, str]) -> JobSet | None:
    """The config's jobs; None when there is no config to read.

    An unreadable config is an error for ``install --config`` (it would be refused
    anyway); ``show`` and ``remove``, and a config found by search, fall back to the
    one unit with a warning, as ``schedule`` worked before it read configs at all.
    """
    from .config_file import find_config_path, load_job_set

    explicit = getattr(args, "config", None)
    try:
        path, _also = find_config_path(explicit, environ=environ)
    except ConfigError:
        if explicit and args.schedule_command == "install":
            raise
        return None
    try:
        return load_job_set(path, environ=environ)
    except ConfigError as exc:
        if explicit and args.schedule_command == "install":
            raise
        print(
            f"resticm: warning: cannot read the jobs of {path} ({exc.messages[0]}); "
            "scheduling one unit",
            file=sys.stderr,
        )
        return None
