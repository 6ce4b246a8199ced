"""Unit tests of the workflow engine with the public FakeRestic (no restic process).

They pin what the integration tests cannot reach cheaply: restic ≥ 0.17 exit codes,
the exact command lines, flag combinations, observers and redaction.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from resticm_core import Phase, RunOptions, config_from_dict, hookimpl, run
from resticm_core.phases import BackupStatus, Outcome
from resticm_core.testing import FakeRestic, RecordingSink


def make_config(tmp_path: Path, **extra: Any) -> Any:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    data = {
        "repository": str(tmp_path / "repo"),
        "password": "s3cret-pass",
        "directories": [str(source)],
        "host": "web1",
        **extra,
    }
    return config_from_dict(data, base_dir=tmp_path)


def go(
    config: Any, fake: FakeRestic, tmp_path: Path, command: str = "backup", **kwargs: Any
) -> Any:
    return run(
        config,
        command,
        runner=fake,
        environ={},
        lock_dir=tmp_path / "locks",
        output=RecordingSink(),
        **kwargs,
    )


def pairs(args: tuple[str, ...]) -> set[tuple[str, str]]:
    """Adjacent (flag, value) pairs of a command line."""
    return set(itertools.pairwise(args))


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, ctx: Any) -> None:
        self.seen.append(
            (ctx.phase.value, ctx.env.get("BACKUP_STATUS", ""), ctx.env.get("ERROR", ""))
        )

    def hooks(self, *phases: str) -> dict[str, list[Any]]:
        return {p: [self] for p in phases}

    @property
    def phases(self) -> list[str]:
        return [s[0] for s in self.seen]


ALL = ("pre_backup", "post_backup", "on_success", "on_error", "finally")


@pytest.mark.parametrize(
    ("exit_code", "words"),
    [
        (10, "does not exist"),
        (11, "lock"),
        (12, "password"),
    ],
)
def test_restic_017_exit_codes_at_preflight_stop_before_pre_backup(
    tmp_path: Path,
    exit_code: int,
    words: str,
) -> None:
    fake = FakeRestic()
    fake.respond("cat", exit_code=exit_code, stderr=["Fatal: something"])
    recorder = Recorder()
    report = go(make_config(tmp_path), fake, tmp_path, hooks=recorder.hooks(*ALL))
    assert recorder.phases == ["on_error", "finally"], (
        "nothing stopped for an unreachable repository"
    )
    assert fake.commands() == ["cat"]
    assert report.exit_code == 1 and report.backup_status is BackupStatus.FAILURE
    assert words in report.errors[0].lower()


def test_backup_command_line_and_forget_scope(tmp_path: Path) -> None:
    fake = FakeRestic()
    fake.respond("backup", stdout=[FakeRestic.summary_line("cafe0123")])
    config = make_config(
        tmp_path,
        default_tags=["nightly"],
        exclude_patterns=["*.tmp"],
        retention={"keep_daily": 3, "keep_within": ""},
    )
    report = go(config, fake, tmp_path, "default", tags=["manual"])
    backup, forget = fake.calls
    assert backup.args[:2] == ("backup", "--json")
    assert ("--tag", "nightly") in pairs(backup.args)
    assert ("--tag", "manual") in pairs(backup.args)
    assert ("--exclude", "*.tmp") in pairs(backup.args)
    assert ("--host", "web1") in pairs(backup.args)
    assert forget.args[0] == "forget" and "--keep-within" not in forget.args
    assert ("--keep-daily", "3") in pairs(forget.args)
    assert ("--keep-hourly", "24") in pairs(forget.args), (
        "Go defaults apply key by key"
    )
    assert ("--host", "web1") in pairs(forget.args)
    assert report.snapshot_id == "cafe0123"
    assert all("s3cret-pass" not in a for call in fake.calls for a in call.args)

    fake2 = FakeRestic()
    go(config, fake2, tmp_path, "default", options=RunOptions(all_hosts=True))
    assert "--host" not in fake2.calls[-1].args


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, ["backup", "forget"]),
        ({"no_forget": True}, ["backup"]),
        ({"prune": True}, ["backup", "forget", "prune"]),
        ({"prune": True, "no_prune": True}, ["backup", "forget"]),
        ({"check": True}, ["backup", "forget", "check"]),
        ({"deep": True}, ["backup", "forget", "check --read-data"]),
        ({"deep": True, "no_check": True}, ["backup", "forget"]),
        ({"no_backup": True}, ["forget"]),
    ],
)
def test_default_workflow_flags(
    tmp_path: Path, flags: dict[str, bool], expected: list[str]
) -> None:
    fake = FakeRestic()
    go(make_config(tmp_path), fake, tmp_path, "default", options=RunOptions(**flags))
    # `cat config` reads the repository id for the deep-check state (issue 3).
    shown = [
        c.command + (" --read-data" if "--read-data" in c.args else "")
        for c in fake.calls
        if c.command != "cat"
    ]
    assert shown == expected


def test_full_runs_forget_prune_check(tmp_path: Path) -> None:
    fake = FakeRestic()
    report = go(make_config(tmp_path), fake, tmp_path, "full", options=RunOptions(deep=True))
    steps = [c for c in fake.calls if c.command != "cat"]  # cat config: the deep-check state
    assert [c.command for c in steps] == ["backup", "forget", "prune", "check"]
    assert "--read-data" in steps[-1].args
    assert report.exit_code == 0


def test_empty_retention_skips_forget_with_warning(tmp_path: Path) -> None:
    fake = FakeRestic()
    zero = {
        k: 0 for k in ("keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
    }
    report = go(
        make_config(tmp_path, retention={**zero, "keep_within": ""}), fake, tmp_path, "default"
    )
    assert fake.commands() == ["backup"]
    assert any("retention policy is empty" in w for w in report.warnings)
    assert report.exit_code == 0


def test_restic_missing(tmp_path: Path) -> None:
    recorder = Recorder()
    report = go(
        make_config(tmp_path), FakeRestic(installed=False), tmp_path, hooks=recorder.hooks(*ALL)
    )
    assert recorder.phases == ["on_error", "finally"]
    assert report.exit_code == 1 and "not installed" in report.errors[0]


def test_locked_repository_at_backup_is_a_backup_failure(tmp_path: Path) -> None:
    fake = FakeRestic()
    fake.respond("backup", exit_code=11, stderr=["Fatal: unable to create lock in backend"])
    recorder = Recorder()
    report = go(make_config(tmp_path), fake, tmp_path, hooks=recorder.hooks(*ALL))
    assert recorder.phases == ["pre_backup", "post_backup", "on_error", "finally"]
    assert recorder.seen[1][1] == "failure"
    assert "lock" in report.errors[0].lower()


def test_observers_see_every_phase_and_step_and_the_report(tmp_path: Path) -> None:
    seen: list[str] = []

    class Observer:
        @hookimpl
        def resticm_phase_finished(self, result: Any) -> None:
            seen.append((getattr(result, "phase", None) and result.phase.value) or result.name)

        @hookimpl
        def resticm_run_finished(self, report: Any) -> None:
            seen.append(f"report:{report.exit_code}")

    class Broken:
        @hookimpl
        def resticm_run_finished(self, report: Any) -> None:
            raise RuntimeError("metrics server down")

    recorder = Recorder()
    report = go(
        make_config(tmp_path),
        FakeRestic(),
        tmp_path,
        "default",
        hooks=recorder.hooks("pre_backup", "on_success"),
        plugins=[Observer(), Broken()],
    )
    assert seen == ["preflight", "pre_backup", "backup", "forget", "on_success", "report:0"]
    assert report.exit_code == 0, "a failing observer never changes the outcome"


def test_credentials_in_repository_urls_are_redacted(tmp_path: Path) -> None:
    fake = FakeRestic()
    fake.respond(
        "backup",
        exit_code=1,
        stderr=["Fatal: unable to open rest:https://alice:hunter2pass@backup.example/repo"],
    )
    config = make_config(tmp_path, repository="rest:https://alice:hunter2pass@backup.example/repo")
    recorder = Recorder()
    report = go(config, fake, tmp_path, hooks=recorder.hooks("on_error"))
    text = repr(report.to_dict()) + repr(recorder.seen)
    assert "hunter2pass" not in text
    assert "alice:***@backup.example" in text


def test_signal_like_interrupt_skips_remaining_steps(tmp_path: Path) -> None:
    """A stop request during the backup: post_backup still runs, forget does not."""
    recorder = Recorder()

    def interrupt(ctx: Any) -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)

    fake = FakeRestic()
    report = go(
        make_config(tmp_path),
        fake,
        tmp_path,
        "default",
        hooks={"pre_backup": [interrupt], **recorder.hooks("post_backup", "on_error", "finally")},
        handle_signals=True,
    )
    assert report.exit_code == 143
    assert fake.commands() == ["cat"], "only the preflight: nothing runs after the interrupt"
    assert recorder.phases == ["on_error", "finally"]
    assert "SIGTERM" in recorder.seen[0][2]


def test_phase_results_are_in_the_report(tmp_path: Path) -> None:
    recorder = Recorder()
    report = go(make_config(tmp_path), FakeRestic(), tmp_path, hooks=recorder.hooks(*ALL))
    assert [p.phase for p in report.phases] == [
        Phase.PRE_BACKUP,
        Phase.POST_BACKUP,
        Phase.ON_SUCCESS,
        Phase.FINALLY,
    ]
    assert all(h.outcome is Outcome.OK for p in report.phases for h in p.hooks)
    data = report.to_dict()
    assert data["ok"] is True and data["phases"][0]["hooks"][0]["kind"] == "python"


def test_hooks_kill_grace_and_timeout_reach_every_hook(tmp_path: Path) -> None:
    seen: list[tuple[float, float]] = []
    config = make_config(tmp_path, hooks={"kill_grace": "2s", "timeout": "90s"})
    assert config.hooks.kill_grace == 2.0
    report = go(
        config,
        FakeRestic(),
        tmp_path,
        hooks={"pre_backup": [lambda ctx: seen.append((ctx.kill_grace, ctx.default_timeout))]},
    )
    assert report.exit_code == 0, report.errors
    assert seen == [(2.0, 90.0)]
    default = make_config(tmp_path)
    assert default.hooks.kill_grace == 10.0
