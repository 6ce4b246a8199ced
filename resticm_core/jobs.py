"""Several backup jobs in one configuration: which ones a command runs, and the overall result.

A file with ``jobs:`` (docs/configuration.md, "Several jobs") is loaded into a
:class:`JobSet`, one :class:`~resticm_core.config.Config` per job; a file without
is a :class:`JobSet` of one unnamed config and behaves exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from .config import Config
from .errors import UsageError
from .secrets import redact_url

#: Exit codes of one job, weakest first, for the overall exit code of several:
#: a signal beats a failure, which beats a job that could not run (lock held),
#: which beats a partial backup (DESIGN §8 and §10).
_RANK = {0: 0, 3: 1, 75: 2, 1: 3}


@attrs.frozen(kw_only=True)
class JobSet:
    """What one configuration file (with its includes and ``conf.d``) defines."""

    #: The main file's real path.
    source_path: Path
    #: The config of a file without ``jobs:``; None when it has jobs.
    single: Config | None = None
    #: ``jobs:`` by name, in file order (main file first, then ``conf.d``).
    jobs: Mapping[str, Config] = attrs.field(factory=dict)
    #: ``run_jobs:``: the jobs a run without ``-j`` runs, in this order; empty: all.
    run_jobs: tuple[str, ...] = ()

    @property
    def has_jobs(self) -> bool:
        return bool(self.jobs)

    @property
    def names(self) -> list[str]:
        return list(self.jobs)

    def all_configs(self) -> list[Config]:
        """Every config: the single one, or each job's."""
        return [self.single] if self.single is not None else list(self.jobs.values())

    def job(self, name: str) -> Config:
        """The job *name*.

        :raises UsageError: no such job (or the file has no ``jobs:``).
        """
        if not self.jobs:
            raise UsageError(f"--job {name}: {self.source_path} defines no jobs (no 'jobs:' key)")
        try:
            return self.jobs[name]
        except KeyError:
            raise UsageError(
                f"--job {name}: no such job in {self.source_path} (jobs: {', '.join(self.jobs)})"
            ) from None

    def selected(self, name: str | None) -> list[Config]:
        """What a run runs: job *name*, else ``run_jobs`` (or every job) in order."""
        if name is not None:
            return [self.job(name)]
        if self.single is not None:
            return [self.single]
        return [self.jobs[n] for n in self.run_jobs] if self.run_jobs else list(self.jobs.values())

    def one(self, name: str | None, command: str) -> Config:
        """The config a one-repository command works on.

        :raises UsageError: several jobs and no ``-j``: the message lists them.
        """
        if name is not None:
            return self.job(name)
        if self.single is not None:
            return self.single
        if len(self.jobs) == 1:
            return next(iter(self.jobs.values()))
        raise UsageError(
            f"{command}: {self.source_path} defines {len(self.jobs)} jobs; choose one with "
            f"-j NAME (jobs: {', '.join(self.jobs)})"
        )


def overall_exit_code(codes: Iterable[int]) -> int:
    """The exit code of several jobs: the worst of theirs (signal > 1 > 75 > 3 > 0).

    Any other code (2, a usage error found at run time) counts as a failure.
    """
    worst = 0
    for code in codes:
        if _rank(code) > _rank(worst):
            worst = code
    return worst


def _rank(code: int) -> int:
    if code >= 128:
        return 10
    return _RANK.get(code, _RANK[1])


def job_summary(config: Config) -> dict[str, object]:
    """One line of ``resticm jobs``: what a job backs up, where, when (no secret)."""
    return {
        "name": config.job,
        "repository": redact_url(config.repository),
        "directories": list(config.directories),
        "copy_to_backends": list(config.copy_to_backends),
        "dumps": [dump.label for dump in config.dumps],
        "schedule": config.schedule,
    }
