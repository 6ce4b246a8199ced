"""``kind: directory``: run-parts semantics with real module scripts."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from resticm_core.builtins import directory as directory_module
from resticm_core.builtins.directory import DirectoryHook
from resticm_core.hooks import HookContext
from resticm_core.phases import Outcome, Phase
from resticm_core.testing import RecordingSink

BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


class HookDir:
    """A ``.d`` directory whose modules append their name to a shared log."""

    def __init__(self, tmp_path: Path) -> None:
        self.config_dir = tmp_path
        self.path = tmp_path / "pre-backup.d"
        self.path.mkdir(mode=0o700)
        self.log = tmp_path / "ran.log"

    def module(self, name: str, body: str = "", mode: int = 0o700) -> Path:
        path = self.path / name
        path.write_text(f'#!/bin/sh\necho "$(basename "$0")" >> {self.log}\n' + body)
        path.chmod(mode)
        return path

    def ran(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def ctx(self, phase: Phase = Phase.PRE_BACKUP, **kwargs: Any) -> HookContext:
        return HookContext(
            phase=phase,
            command="backup",
            env=dict(BASE_ENV),
            config_dir=self.config_dir,
            output=RecordingSink(),
            **kwargs,
        )


@pytest.fixture
def hookdir(tmp_path: Path) -> HookDir:
    return HookDir(tmp_path)


def sink(ctx: HookContext) -> RecordingSink:
    assert isinstance(ctx.output, RecordingSink)
    return ctx.output


def test_modules_run_in_byte_order(hookdir: HookDir) -> None:
    for name in ["a", "B", "2-b", "10-a"]:
        hookdir.module(name)
    results = DirectoryHook(path="pre-backup.d").run(hookdir.ctx())
    assert hookdir.ran() == ["10-a", "2-b", "B", "a"]
    assert [r.name for r in results] == [
        "pre-backup.d/10-a",
        "pre-backup.d/2-b",
        "pre-backup.d/B",
        "pre-backup.d/a",
    ]
    assert all(r.outcome is Outcome.OK and r.kind == "directory" for r in results)


def test_trailing_slash_in_path_gives_clean_names(hookdir: HookDir) -> None:
    hookdir.module("10-a")
    [result] = DirectoryHook(path=f"{hookdir.path}/").run(hookdir.ctx())
    assert result.name == f"{hookdir.path}/10-a"


def test_sh_modules_run_no_name_pattern(hookdir: HookDir) -> None:
    hookdir.module("10-dump-mariadb.sh")
    hookdir.module("20.with.dots")
    DirectoryHook(path="pre-backup.d").run(hookdir.ctx())
    assert hookdir.ran() == ["10-dump-mariadb.sh", "20.with.dots"]


def test_hidden_files_and_leftovers_are_skipped(hookdir: HookDir) -> None:
    leftovers = [
        "10-a~",
        "10-a.dpkg-old",
        "10-a.dpkg-dist",
        "10-a.dpkg-new",
        "10-a.dpkg-tmp",
        "10-a.rpmnew",
        "10-a.rpmsave",
        "10-a.rpmorig",
        "10-a.swp",
        "10-a.bak",
    ]
    for name in [*leftovers, ".hidden", "10-a"]:
        hookdir.module(name)
    ctx = hookdir.ctx()
    results = DirectoryHook(path="pre-backup.d").run(ctx)
    assert hookdir.ran() == ["10-a"]
    assert [r.outcome for r in results] == [Outcome.OK]
    warnings = "\n".join(sink(ctx).texts(logging.WARNING))
    for name in leftovers:
        assert name in warnings
    assert ".hidden" not in warnings


def test_subdirectories_are_skipped(hookdir: HookDir) -> None:
    (hookdir.path / "20-sub").mkdir()
    hookdir.module("10-a")
    results = DirectoryHook(path="pre-backup.d").run(hookdir.ctx())
    assert [r.name for r in results] == ["pre-backup.d/10-a"]


def test_non_executable_module_is_skipped_with_a_warning(hookdir: HookDir) -> None:
    hookdir.module("10-a")
    disabled = hookdir.module("20-disabled", mode=0o600)
    hookdir.module("30-c")
    ctx = hookdir.ctx()
    results = DirectoryHook(path="pre-backup.d").run(ctx)
    assert hookdir.ran() == ["10-a", "30-c"]
    assert not any(r.failed for r in results)
    assert any(
        "not executable" in t and f"chmod u+x {disabled}" in t
        for t in sink(ctx).texts(logging.WARNING)
    )


def test_stops_at_first_failure(hookdir: HookDir) -> None:
    hookdir.module("10-ok")
    hookdir.module("20-fail", "echo 'dump failed' >&2\nexit 1\n")
    hookdir.module("30-after")
    ctx = hookdir.ctx()
    results = DirectoryHook(path="pre-backup.d").run(ctx)
    assert hookdir.ran() == ["10-ok", "20-fail"]
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.FAILED]
    assert results[1].name == "pre-backup.d/20-fail"
    assert "exited with status 1" in results[1].error
    assert any("not run: 30-after" in t for t in sink(ctx).texts(logging.WARNING))


def test_continue_on_error_runs_the_rest(hookdir: HookDir) -> None:
    hookdir.module("10-fail", "exit 2\n")
    hookdir.module("20-ok")
    hookdir.module("30-fail", "exit 3\n")
    results = DirectoryHook(path="pre-backup.d", continue_on_error=True).run(hookdir.ctx())
    assert hookdir.ran() == ["10-fail", "20-ok", "30-fail"]
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.OK, Outcome.FAILED]


def test_exit_75_in_pre_backup_skips_the_rest(hookdir: HookDir) -> None:
    hookdir.module("10-ok")
    hookdir.module("20-maintenance", "exit 75\n")
    hookdir.module("30-dump")
    results = DirectoryHook(path="pre-backup.d", continue_on_error=True).run(hookdir.ctx())
    assert hookdir.ran() == ["10-ok", "20-maintenance"]
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.SOFT_SKIP]


def test_exit_75_in_post_backup_is_success(hookdir: HookDir) -> None:
    hookdir.module("10-a", "exit 75\n")
    hookdir.module("20-b")
    results = DirectoryHook(path="pre-backup.d").run(hookdir.ctx(Phase.POST_BACKUP))
    assert hookdir.ran() == ["10-a", "20-b"]
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.OK]


def test_timeout_applies_per_module(hookdir: HookDir) -> None:
    hookdir.module("10-hang", "sleep 60\n")
    hookdir.module("20-after")
    results = DirectoryHook(path="pre-backup.d", timeout=0.5, continue_on_error=True).run(
        hookdir.ctx(kill_grace=1)
    )
    assert results[0].timed_out and results[0].failed
    assert results[1].outcome is Outcome.OK


def test_module_env_and_hook_env(hookdir: HookDir) -> None:
    out = hookdir.config_dir / "env"
    hookdir.module("10-env", f'echo "$DUMP_DIR $RESTICM_PHASE" > {out}\n')
    ctx = hookdir.ctx()
    ctx = ctx.with_env({"RESTICM_PHASE": "pre_backup"})
    DirectoryHook(path="pre-backup.d", env={"DUMP_DIR": "/dumps"}).run(ctx)
    assert out.read_text() == "/dumps pre_backup\n"


def test_module_writable_by_others_fails(hookdir: HookDir) -> None:
    hookdir.module("10-ok")
    bad = hookdir.module("20-bad", mode=0o777)
    hook = DirectoryHook(path="pre-backup.d")
    results = hook.run(hookdir.ctx())
    assert hookdir.ran() == ["10-ok"]
    assert results[1].failed and f"chmod go-w {bad}" in results[1].error
    assert any(f"chmod go-w {bad}" in p for p in hook.check(hookdir.ctx()))


def test_dangling_symlink_module_fails(hookdir: HookDir) -> None:
    (hookdir.path / "10-link").symlink_to(hookdir.config_dir / "deleted-dump.sh")
    [result] = DirectoryHook(path="pre-backup.d").run(hookdir.ctx())
    assert result.failed and "does not exist" in result.error


def test_symlinked_module_runs(hookdir: HookDir) -> None:
    target = hookdir.config_dir / "shared.sh"
    target.write_text(f"#!/bin/sh\necho shared >> {hookdir.log}\n")
    target.chmod(0o700)
    (hookdir.path / "10-link").symlink_to(target)
    [result] = DirectoryHook(path="pre-backup.d").run(hookdir.ctx())
    assert result.outcome is Outcome.OK and hookdir.ran() == ["shared"]


def test_missing_directory_fails(tmp_path: Path) -> None:
    ctx = HookDir(tmp_path).ctx()
    hook = DirectoryHook(path="post-backup.d")
    [result] = hook.run(ctx)
    assert result.failed and result.name == "post-backup.d"
    assert result.error == f"hook directory {tmp_path / 'post-backup.d'} does not exist"
    assert hook.check(ctx) == [result.error]


def test_file_instead_of_directory_fails(hookdir: HookDir) -> None:
    hookdir.module("10-a")
    [result] = DirectoryHook(path="pre-backup.d/10-a").run(hookdir.ctx())
    assert result.failed and "is not a directory" in result.error


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_directory_writable_by_others_fails(hookdir: HookDir, mode: int) -> None:
    hookdir.module("10-a")
    hookdir.path.chmod(mode)
    hook = DirectoryHook(path="pre-backup.d")
    [result] = hook.run(hookdir.ctx())
    assert result.failed
    assert f"chmod go-w {hookdir.path}" in result.error
    assert hookdir.ran() == []
    assert len(hook.check(hookdir.ctx())) == 1  # not repeated for each module


def test_empty_directory_runs_nothing(hookdir: HookDir) -> None:
    (hookdir.path / ".keep").touch()
    ctx = hookdir.ctx()
    assert DirectoryHook(path="pre-backup.d").run(ctx) == []
    assert any("nothing to run" in t for t in sink(ctx).texts(logging.INFO))


def test_check_lists_problems_of_modules_only(hookdir: HookDir) -> None:
    hookdir.module("10-ok")
    hookdir.module("20-disabled", mode=0o600)  # skipped, not a problem
    hookdir.module("30-bad", mode=0o772)
    problems = DirectoryHook(path="pre-backup.d").check(hookdir.ctx())
    assert len(problems) == 1 and "30-bad" in problems[0]
    assert hookdir.ran() == []


def test_dry_run_runs_nothing_but_checks(hookdir: HookDir) -> None:
    hookdir.module("10-a")
    hookdir.module("20-bad", mode=0o777)
    ctx = hookdir.ctx(dry_run=True)
    results = DirectoryHook(path="pre-backup.d").run(ctx)
    assert hookdir.ran() == []
    assert [r.outcome for r in results] == [Outcome.SKIPPED, Outcome.FAILED]
    assert "[dry-run] would run directory hook pre-backup.d/10-a" in sink(ctx).texts(logging.INFO)


def test_cancel_stops_the_directory_even_with_continue_on_error(hookdir: HookDir) -> None:
    hookdir.module("10-a")
    hookdir.module("20-b")
    ctx = hookdir.ctx()
    ctx.cancel.set()
    results = DirectoryHook(path="pre-backup.d", continue_on_error=True).run(ctx)
    assert [r.outcome for r in results] == [Outcome.FAILED]
    assert hookdir.ran() == []


def test_module_output_is_streamed_under_the_module_name(hookdir: HookDir) -> None:
    hookdir.module("10-a", "echo hello\n")
    ctx = hookdir.ctx()
    DirectoryHook(path="pre-backup.d").run(ctx)
    assert sink(ctx).lines == [("pre-backup.d/10-a", "hello")]


def test_registered_as_a_plugin() -> None:
    assert list(directory_module.resticm_hook_types()) == [DirectoryHook]


def test_leftover_patterns_are_the_documented_ones() -> None:
    # DESIGN §10 "Directory runner": exactly these, nothing more.
    assert directory_module.LEFTOVER_PATTERNS == ("*~", "*.dpkg-*", "*.rpm*", "*.swp", "*.bak")
