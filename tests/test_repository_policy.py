"""Per-repository policy (issue 18): retention, forget, prune, check per backend.

The real ``resticm`` process against real local repositories; the step decisions
alone (:func:`resticm_core.policy.repository_steps`) are tested without restic.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from resticm_core import config_from_dict
from resticm_core.errors import ConfigError
from resticm_core.mirror import make_plan
from resticm_core.policy import effective_policy, repository_steps
from resticm_core.run_state import RunOptions

from .conftest import PASSWORD, json_config, requires_restic, restic_env, run_config

PASSWORD_KEYS = {"password": PASSWORD}


def write_config(tmp_path: Path, source: Path, **extra: Any) -> Path:
    return json_config(tmp_path, source, host="policy-host", **extra)


def resticm(cfg: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_config(cfg, *args, env=env)


def snapshot_count(repo: Path, cache: Path) -> int:
    out = subprocess.run(
        ["restic", "--no-lock", "snapshots", "--json"],
        env=restic_env(cache, repo),
        capture_output=True,
        text=True,
        check=True,
    )
    return len(json.loads(out.stdout or "[]") or [])


def steps(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(s["name"], s["repository"]) for s in report["steps"] if s["outcome"] == "ok"}


# -- with restic ----------------------------------------------------------------------------------


@requires_restic
@pytest.mark.restic
def test_append_only_mirror_keeps_every_snapshot_and_a_keep_last_mirror_keeps_one(
    tmp_path: Path, source: Path, environ: dict[str, str], template_repo: Path
) -> None:
    for name in ("repo", "append", "one"):
        shutil.copytree(template_repo, tmp_path / name)
    cfg = write_config(
        tmp_path,
        source,
        # The primary keeps two: every other Go default off.
        retention={
            "keep_last": 2,
            "keep_within": "",
            "keep_hourly": 0,
            "keep_daily": 0,
            "keep_weekly": 0,
            "keep_monthly": 0,
            "keep_yearly": 0,
        },
        backends={
            "append": {"repository": str(tmp_path / "append"), **PASSWORD_KEYS, "forget": False},
            # A whole block: keep_within/keep_daily... it does not write are off.
            "one": {
                "repository": str(tmp_path / "one"),
                **PASSWORD_KEYS,
                "retention": {"keep_last": 1},
                "prune": True,
                "check": False,
            },
        },
        copy_to_backends=["append", "one"],
    )
    reports = []
    for run in range(3):
        checks = ["--check"] if run == 2 else []  # the last run only: checks cost time
        done = resticm(cfg, "--json", "--prune", *checks, env=environ)
        assert done.returncode == 0, done.stderr
        reports.append(json.loads(done.stdout))
    cache = tmp_path / "cache"
    assert snapshot_count(tmp_path / "repo", cache) == 2
    assert snapshot_count(tmp_path / "append", cache) == 3
    assert snapshot_count(tmp_path / "one", cache) == 1
    ran = steps(reports[-1])
    # The primary is forgotten and pruned; the append-only mirror never is (but checked).
    assert {("forget", "primary"), ("prune", "primary"), ("check", "primary")} <= ran
    assert ("copy", "append") in ran and ("check", "append") in ran
    assert ("forget", "append") not in ran and ("prune", "append") not in ran
    # check: false beats --check; the mirror's own retention is what forget used.
    assert ("check", "one") not in ran and ("prune", "one") in ran
    forget_one = next(
        s for s in reports[-1]["steps"] if s["name"] == "forget" and s["repository"] == "one"
    )
    assert "--keep-last 1" in forget_one["command"]
    assert "--keep-within" not in forget_one["command"]


@requires_restic
@pytest.mark.restic
def test_prune_true_prunes_without_the_flag_and_forget_false_refuses_the_prune_command(
    tmp_path: Path, source: Path, environ: dict[str, str], template_repo: Path
) -> None:
    for name in ("repo", "append"):
        shutil.copytree(template_repo, tmp_path / name)
    cfg = write_config(
        tmp_path,
        source,
        prune=True,  # every repository's default: prune after forget, no --prune needed
        backends={
            "append": {"repository": str(tmp_path / "append"), **PASSWORD_KEYS, "forget": False}
        },
        copy_to_backends=["append"],
    )
    done = resticm(cfg, "--json", env=environ)
    assert done.returncode == 0, done.stderr
    ran = steps(json.loads(done.stdout))
    assert ("prune", "primary") in ran
    assert ("prune", "append") not in ran and ("forget", "append") not in ran
    # The explicit command too: never on an append-only repository, and it says why.
    pruned = resticm(cfg, "--json", "prune", env=environ)
    assert pruned.returncode == 0, pruned.stderr
    assert steps(json.loads(pruned.stdout)) == {("prune", "primary")}
    assert "append: prune not run" in pruned.stderr and "forget: false" in pruned.stderr


# -- without restic -------------------------------------------------------------------------------


def test_info_prints_each_repositorys_effective_policy(
    tmp_path: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = write_config(
        tmp_path,
        source,
        deep_check_interval_days=14,
        backends={
            "append": {"repository": str(tmp_path / "a"), **PASSWORD_KEYS, "forget": False},
            "one": {
                "repository": str(tmp_path / "o"),
                **PASSWORD_KEYS,
                "retention": {"keep_last": 1},
                "check": True,
                "deep_check_interval_days": 90,
            },
        },
    )
    done = resticm(cfg, "info", "--json", env=environ)
    assert done.returncode == 0, done.stderr
    policies = json.loads(done.stdout)["policies"]
    assert policies["primary"]["retention"]["keep_daily"] == 7  # the Go defaults
    assert policies["primary"]["deep_check_interval_days"] == 14
    assert policies["append"]["forget"] is False
    assert policies["append"]["forget_arguments"] == []
    assert policies["one"]["retention"]["keep_last"] == 1
    assert policies["one"]["retention"]["keep_daily"] == 0
    assert policies["one"]["forget_arguments"] == ["--keep-last", "1"]
    assert policies["one"]["retention_from"] == "backends.one.retention"
    assert policies["one"]["check"] == "always"
    assert policies["one"]["deep_check_interval_days"] == 90
    text = resticm(cfg, "info", env=environ)
    assert text.returncode == 0, text.stderr
    section = text.stdout.split("Policy per repository:")[1]
    assert "never (forget: false)" in section
    assert "--keep-last 1" in section
    assert "every 90 day(s)" in section and "every 14 day(s)" in section


def test_forget_false_with_an_explicit_prune_true_is_a_config_error() -> None:
    data = {
        "repository": "/r",
        "password": PASSWORD,
        "backends": {"lock": {"repository": "/l", "password": PASSWORD, "forget": False,
                              "prune": True}},
    }
    with pytest.raises(ConfigError) as raised:
        config_from_dict(data, environ={})
    (message,) = raised.value.messages
    assert message.startswith("<config>: backends.lock.prune: prune: true conflicts with forget")
    # An inherited prune: true does not conflict: the backend's forget: false wins.
    config = config_from_dict(
        {**data, "prune": True, "backends": {"lock": {"repository": "/l", "forget": False}}},
        environ={},
    )
    assert effective_policy(config, "lock").forget is False


def test_a_backend_retention_block_is_whole_and_typos_in_it_are_refused() -> None:
    base = {"repository": "/r", "password": PASSWORD}
    config = config_from_dict(
        {**base, "backends": {"m": {"repository": "/m", "retention": {"keep_daily": 3}}}},
        environ={},
    )
    assert effective_policy(config, "m").retention.forget_args() == ["--keep-daily", "3"]
    assert effective_policy(config, PRIMARY).retention.keep_within == "7d"
    with pytest.raises(ConfigError) as raised:
        config_from_dict(
            {**base, "backends": {"m": {"repository": "/m", "retention": {"keep_dialy": 3}}}},
            environ={},
        )
    assert "backends.m.retention.keep_dialy" in raised.value.messages[0]


PRIMARY = "primary"


@pytest.mark.parametrize(
    ("command", "flags", "policy", "expected"),
    [
        # default workflow: prune/check only when asked, unless the policy says always
        ("default", {}, {}, (True, False, False, False)),
        ("default", {}, {"prune": True, "check": True}, (True, False, True, True)),
        ("default", {"no_prune": True, "no_check": True}, {"prune": True, "check": True},
         (True, False, False, False)),
        ("default", {"prune": True, "check": True}, {"prune": False, "check": False},
         (True, False, False, False)),
        ("default", {"prune": True}, {"forget": False}, (False, False, False, False)),
        # full: everything, but never what the policy forbids
        ("full", {}, {"forget": False, "check": False}, (False, False, False, False)),
        ("full", {}, {}, (True, False, True, True)),
        # explicit commands
        ("forget", {"prune": True}, {}, (True, True, False, False)),
        ("forget", {"prune": True}, {"prune": False}, (True, False, False, False)),
        ("prune", {}, {"forget": False}, (False, False, False, False)),
        ("check", {}, {"forget": False}, (False, False, False, True)),
    ],
)
def test_how_the_policy_combines_with_the_command_and_flags(
    command: str,
    flags: dict[str, bool],
    policy: dict[str, bool],
    expected: tuple[bool, bool, bool, bool],
) -> None:
    config = config_from_dict(
        {"repository": "/r", "password": PASSWORD, **policy}, environ={}
    )
    options = RunOptions(command=command, **flags)
    plan = make_plan(options, config)
    steps = repository_steps(plan, options, effective_policy(config, PRIMARY))
    assert (steps.forget, steps.forget_prune, steps.prune, steps.check) == expected
