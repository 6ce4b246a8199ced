"""Per-repository policy (issue 18): retention, forget, prune, check, deep checks.

Every repository (the primary and each backend) has an effective policy:

- the top-level keys (``retention``, ``forget``, ``prune``, ``check``,
  ``deep_check_interval_days``) are every repository's default;
- a backend's own key beats the top-level one for that backend. Its
  ``retention`` is a whole block (keys it does not write are off).

How a policy combines with the command and its flags (:func:`repository_steps`):

- ``forget: false`` (append-only, S3 Object Lock): no forget and no prune ever
  run there, whatever the command or flag;
- ``prune: false`` / ``check: false``: that step never runs there (``full``,
  ``resticm prune``/``check`` and ``--prune``/``--check`` included);
- ``prune: true`` / ``check: true``: the default workflow runs that step there
  without ``--prune``/``--check``;
- ``--no-forget``, ``--no-prune``, ``--no-check`` always switch a step off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .config import PRIMARY, Config, Retention
from .json_values import to_json_dict

if TYPE_CHECKING:
    from .errors import KeyPath
    from .mirror import Plan
    from .run_state import RunOptions

#: Why a step did not run on a repository whose policy refuses it (logged).
APPEND_ONLY = "forget: false (append-only): no forget and no prune run there"


@attrs.frozen(kw_only=True)
class RepositoryPolicy:
    """What maintenance a repository gets; see the module docstring."""

    name: str
    retention: Retention
    forget: bool = True
    #: None: as the command and flags say; True/False: see :func:`repository_steps`.
    prune: bool | None = None
    check: bool | None = None
    deep_check_interval_days: int = 30
    #: Where the retention came from: ``retention`` (top level) or ``backends.X.retention``.
    retention_from: str = "retention"

    def to_dict(self) -> dict[str, Any]:
        """For ``resticm info`` (``--json`` too)."""
        retention = self.retention
        return {
            "retention": to_json_dict(retention),
            "retention_from": self.retention_from,
            "forget_arguments": retention.forget_args() if self.forget else [],
            "forget": self.forget,
            "prune": _tri(self.prune),
            "check": _tri(self.check),
            "deep_check_interval_days": self.deep_check_interval_days,
        }


def _tri(value: bool | None) -> str:
    return {None: "when asked", True: "always", False: "never"}[value]


def effective_policy(config: Config, name: str) -> RepositoryPolicy:
    """The policy of the primary (``primary``) or of backend *name*; KeyError if unknown."""
    if name == PRIMARY:
        return RepositoryPolicy(
            name=PRIMARY,
            retention=config.retention,
            forget=config.forget,
            prune=config.prune,
            check=config.check,
            deep_check_interval_days=config.deep_check_interval_days,
        )
    backend = config.backends[name]
    return RepositoryPolicy(
        name=name,
        retention=backend.retention if backend.retention is not None else config.retention,
        retention_from=(
            f"backends.{name}.retention" if backend.retention is not None else "retention"
        ),
        forget=config.forget if backend.forget is None else backend.forget,
        prune=config.prune if backend.prune is None else backend.prune,
        check=config.check if backend.check is None else backend.check,
        deep_check_interval_days=(
            config.deep_check_interval_days
            if backend.deep_check_interval_days is None
            else backend.deep_check_interval_days
        ),
    )


def all_policies(config: Config) -> dict[str, RepositoryPolicy]:
    """The primary's policy, then each backend's, in config order."""
    return {name: effective_policy(config, name) for name in (PRIMARY, *config.backends)}


@attrs.frozen(kw_only=True)
class RepositorySteps:
    """The maintenance steps one repository gets in this run."""

    forget: bool
    forget_prune: bool
    prune: bool
    check: bool
    #: Steps the plan wanted that the policy refused, e.g. ``("forget", "prune")``.
    refused: tuple[str, ...] = ()


def repository_steps(plan: Plan, options: RunOptions, policy: RepositoryPolicy) -> RepositorySteps:
    """*plan*'s steps for one repository, after its *policy* (module docstring)."""
    default = options.command == "default"
    refused: list[str] = []

    def allowed(step: str, wanted: bool, setting: bool | None) -> bool:
        if wanted and setting is False:
            refused.append(step)
            return False
        return wanted

    prune_wanted = plan.prune or (default and policy.prune is True and not options.no_prune)
    check_wanted = plan.check or (default and policy.check is True and not options.no_check)
    if not policy.forget:
        refused += [s for s, w in (("forget", plan.forget), ("prune", prune_wanted)) if w]
        refused += ["forget --prune"] if plan.forget_prune else []
        forget = forget_prune = prune = False
    else:
        forget = plan.forget
        forget_prune = allowed("forget --prune", plan.forget_prune, policy.prune)
        prune = allowed("prune", prune_wanted, policy.prune)
    check = allowed("check", check_wanted, policy.check)
    return RepositorySteps(
        forget=forget,
        forget_prune=forget_prune,
        prune=prune,
        check=check,
        refused=tuple(refused),
    )


def policy_problems(config: Config) -> list[tuple[KeyPath, str]]:
    """Located problems of the policy keys: ``forget: false`` with an explicit ``prune: true``."""
    problems: list[tuple[KeyPath, str]] = []
    message = (
        "prune: true conflicts with forget: false on {name} (append-only: resticm never "
        "prunes it); remove one of them"
    )
    if not config.forget and config.prune is True:
        problems.append((("prune",), message.format(name="the primary")))
    for name, backend in config.backends.items():
        forget = config.forget if backend.forget is None else backend.forget
        if not forget and backend.prune is True:
            problems.append((("backends", name, "prune"), message.format(name=name)))
        if backend.deep_check_interval_days is not None and backend.deep_check_interval_days < 0:
            problems.append(
                (
                    ("backends", name, "deep_check_interval_days"),
                    f"must be 0 (off) or more, got {backend.deep_check_interval_days}",
                )
            )
        if backend.retention is not None:
            problems += _retention_problems(backend.retention, ("backends", name, "retention"))
    return problems


def _retention_problems(retention: Retention, where: KeyPath) -> list[tuple[KeyPath, str]]:
    counts = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")
    return [
        ((*where, key), f"must be 0 (off) or more, got {value}")
        for key in (*counts, "keep_yearly")
        if (value := getattr(retention, key)) < 0
    ]


def describe_dicts(
    policies: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """``resticm info``'s text lines: each repository's :meth:`RepositoryPolicy.to_dict`
    and restic settings (:func:`resticm_core.restic_options.restic_settings`)."""
    lines = []
    for name, policy in policies.items():
        if not policy["forget"]:
            forget = "never (forget: false)"
        else:
            forget = " ".join(policy["forget_arguments"]) or "(empty retention: forget skipped)"
        days = policy["deep_check_interval_days"]
        lines += [
            f"  {name}:",
            f"    forget:      {forget}",
            f"    retention:   from {policy['retention_from']}",
            f"    prune:       {policy['prune'] if policy['forget'] else 'never'}",
            f"    check:       {policy['check']}",
            f"    deep check:  {f'every {days} day(s)' if days > 0 else 'off'}",
        ]
        restic = settings.get(name, {})
        if restic.get("global_args"):
            lines.append(f"    restic flags: {' '.join(restic['global_args'])}")
        for command, args in restic.get("extra_args", {}).items():
            lines.append(f"    extra_args.{command}: {' '.join(args)}")
    return lines


__all__ = [
    "APPEND_ONLY",
    "RepositoryPolicy",
    "RepositorySteps",
    "all_policies",
    "describe_dicts",
    "effective_policy",
    "policy_problems",
    "repository_steps",
]
