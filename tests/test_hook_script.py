"""``kind: script`` with real shell scripts: checks, exit codes, environment, stopping."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from resticm_core import process
from resticm_core.builtins import script as script_module
from resticm_core.builtins.script import ScriptHook
from resticm_core.hook_lifecycle import run_hook
from resticm_core.hooks import HookContext
from resticm_core.phases import HookResult, Outcome, Phase
from resticm_core.testing import RecordingSink

BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def make_ctx(
    tmp_path: Path,
    *,
    phase: Phase = Phase.PRE_BACKUP,
    env: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> HookContext:
    return HookContext(
        phase=phase,
        command="backup",
        env={**BASE_ENV, **(env or {})},
        config_dir=tmp_path,
        output=RecordingSink(),
        **kwargs,
    )


def sink(ctx: HookContext) -> RecordingSink:
    assert isinstance(ctx.output, RecordingSink)
    return ctx.output


def write_script(path: Path, body: str, mode: int = 0o700) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(mode)
    return path


def run_one(hook: ScriptHook, ctx: HookContext) -> HookResult:
    [result] = hook.run(ctx)
    return result


def run_engine(hook: ScriptHook, ctx: HookContext) -> HookResult:
    """Through the engine's lifecycle: check, then dry_run() in a dry run, else run()."""
    [result] = run_hook(hook, ctx)
    return result


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# --- exit codes ---------------------------------------------------------------------


def test_success_streams_output_with_the_hook_name(tmp_path: Path) -> None:
    write_script(tmp_path / "pre.sh", "echo dumping\necho warn >&2\n")
    ctx = make_ctx(tmp_path)
    result = run_one(ScriptHook(path=str(tmp_path / "pre.sh")), ctx)
    name = str(tmp_path / "pre.sh")
    assert result.outcome is Outcome.OK
    assert result.exit_code == 0 and result.error == ""
    assert result.name == name and result.kind == "script" and result.phase is Phase.PRE_BACKUP
    assert sorted(sink(ctx).lines) == [(name, "dumping"), (name, "warn")]
    assert f"running hook {name}" in sink(ctx).texts(logging.INFO)
    assert any(t.startswith(f"hook {name} finished in ") for t in sink(ctx).texts(logging.INFO))


def test_exit_1_fails_with_last_output_line(tmp_path: Path) -> None:
    write_script(tmp_path / "pre.sh", "echo 'ERROR: dump failed' >&2\nexit 1\n")
    ctx = make_ctx(tmp_path)
    result = run_one(ScriptHook(path="pre.sh"), ctx)
    assert result.outcome is Outcome.FAILED
    assert result.exit_code == 1
    assert "exited with status 1" in result.error
    assert "ERROR: dump failed" in result.error
    assert any("failed" in t for t in sink(ctx).texts(logging.ERROR))


def test_exit_75_in_pre_backup_is_a_soft_skip(tmp_path: Path) -> None:
    write_script(tmp_path / "pre.sh", "exit 75\n")
    result = run_one(ScriptHook(path="pre.sh"), make_ctx(tmp_path, phase=Phase.PRE_BACKUP))
    assert result.outcome is Outcome.SOFT_SKIP
    assert result.exit_code == 75 and not result.failed


@pytest.mark.parametrize("phase", [Phase.POST_BACKUP, Phase.ON_SUCCESS, Phase.FINALLY])
def test_exit_75_elsewhere_is_success(tmp_path: Path, phase: Phase) -> None:
    write_script(tmp_path / "hook.sh", "exit 75\n")
    result = run_one(ScriptHook(path="hook.sh"), make_ctx(tmp_path, phase=phase))
    assert result.outcome is Outcome.OK


# --- static checks --------------------------------------------------------------------


def test_missing_file_is_a_failure(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    hook = ScriptHook(path="gone.sh")
    result = run_one(hook, ctx)
    assert result.outcome is Outcome.FAILED
    assert result.error == f"hook {tmp_path / 'gone.sh'} does not exist"
    assert hook.check(ctx) == [result.error]


def test_missing_path_with_a_space_hints_at_args(tmp_path: Path) -> None:
    result = run_one(ScriptHook(path="pre.sh --quiet"), make_ctx(tmp_path))
    assert result.failed
    assert "args:" in result.error


def test_not_executable_fails_with_the_fix(tmp_path: Path) -> None:
    path = write_script(tmp_path / "pre.sh", "exit 0\n", mode=0o600)
    result = run_one(ScriptHook(path="pre.sh"), make_ctx(tmp_path))
    assert result.failed
    assert "not executable" in result.error
    assert f"chmod u+x {path}" in result.error


@pytest.mark.parametrize("mode", [0o702, 0o720, 0o777])
def test_writable_by_others_fails_with_the_fix(tmp_path: Path, mode: int) -> None:
    marker = tmp_path / "ran"
    path = write_script(tmp_path / "pre.sh", f"touch {marker}\n", mode=mode)
    result = run_one(ScriptHook(path="pre.sh"), make_ctx(tmp_path))
    assert result.failed
    assert f"chmod go-w {path}" in result.error
    assert not marker.exists()


def test_directory_writable_by_others_fails(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    write_script(hooks / "pre.sh", "exit 0\n")
    hooks.chmod(0o777)
    result = run_one(ScriptHook(path="hooks/pre.sh"), make_ctx(tmp_path))
    assert result.failed
    assert f"hook directory {hooks} is writable by group or others" in result.error
    assert f"chmod go-w {hooks}" in result.error


def test_sticky_directory_is_accepted(tmp_path: Path) -> None:
    # Like /tmp: others may add files there but cannot replace ours.
    hooks = tmp_path / "shared"
    write_script(hooks / "pre.sh", "exit 0\n")
    hooks.chmod(0o1777)
    assert run_one(ScriptHook(path="shared/pre.sh"), make_ctx(tmp_path)).outcome is Outcome.OK


def test_several_problems_are_joined(tmp_path: Path) -> None:
    write_script(tmp_path / "pre.sh", "exit 0\n", mode=0o666)
    result = run_one(ScriptHook(path="pre.sh"), make_ctx(tmp_path))
    assert "not executable" in result.error and "; " in result.error
    assert "chmod go-w" in result.error


# --- paths, args, environment ---------------------------------------------------------


def test_relative_path_resolves_against_config_dir(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc"
    marker = tmp_path / "ran"
    write_script(config_dir / "hooks" / "pre.sh", f"touch {marker}\n")
    ctx = make_ctx(config_dir)
    result = run_one(ScriptHook(path="hooks/pre.sh"), ctx)
    assert result.outcome is Outcome.OK and marker.exists()
    assert result.name == "hooks/pre.sh"


def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    marker = tmp_path / "ran"
    write_script(tmp_path / "bin" / "hook", f"touch {marker}\n")
    result = run_one(ScriptHook(path="~/bin/hook"), make_ctx(tmp_path / "elsewhere"))
    assert result.outcome is Outcome.OK and marker.exists()


def test_args_are_passed_verbatim(tmp_path: Path) -> None:
    out = tmp_path / "argv"
    write_script(tmp_path / "pre.sh", f"printf '%s\\n' \"$@\" > {out}\n")
    hook = ScriptHook(path="pre.sh", args=("--quiet", "two words", "$HOME", "*"))
    assert run_one(hook, make_ctx(tmp_path)).outcome is Outcome.OK
    assert out.read_text().splitlines() == ["--quiet", "two words", "$HOME", "*"]


def test_environment_from_context_and_hook_env(tmp_path: Path) -> None:
    out = tmp_path / "env"
    write_script(tmp_path / "post.sh", f"env > {out}\n")
    ctx = make_ctx(
        tmp_path,
        phase=Phase.POST_BACKUP,
        env={"BACKUP_STATUS": "failure", "BACKUP_ERROR": "boom", "RESTICM_PHASE": "post_backup"},
    )
    hook = ScriptHook(path="post.sh", env={"DUMP_DIR": "/var/dumps", "BACKUP_ERROR": "mine"})
    assert run_one(hook, ctx).outcome is Outcome.OK
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert seen["BACKUP_STATUS"] == "failure"
    assert seen["RESTICM_PHASE"] == "post_backup"
    assert seen["DUMP_DIR"] == "/var/dumps"
    assert seen["BACKUP_ERROR"] == "mine"  # the hook's own env: wins
    assert "DUMP_DIR" not in os.environ


# --- exec failures --------------------------------------------------------------------


def test_file_without_shebang_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "pre.sh"
    path.write_text("echo no shebang\n")
    path.chmod(0o700)
    result = run_one(ScriptHook(path="pre.sh"), make_ctx(tmp_path))
    assert result.failed
    assert "Exec format error" in result.error
    assert "add a #!/bin/sh line" in result.error


def test_missing_interpreter_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pre.sh"
    path.write_text("#!/no/such/shell\nexit 0\n")
    path.chmod(0o700)
    result = run_one(ScriptHook(path="pre.sh"), make_ctx(tmp_path))
    assert result.failed
    assert "interpreter /no/such/shell" in result.error


def test_windows_line_ending_in_shebang_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "pre.sh"
    path.write_bytes(b"#!/bin/sh\r\nexit 0\r\n")
    path.chmod(0o700)
    result = run_one(ScriptHook(path="pre.sh"), make_ctx(tmp_path))
    assert result.failed
    assert "carriage return" in result.error


# --- dry run --------------------------------------------------------------------------


def test_dry_run_does_not_execute(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write_script(tmp_path / "pre.sh", f"touch {marker}\n")
    ctx = make_ctx(tmp_path, dry_run=True)
    result = run_engine(ScriptHook(path="pre.sh"), ctx)
    assert result.outcome is Outcome.SKIPPED and result.error == ""
    assert not marker.exists()
    assert "[dry-run] would run script hook pre.sh" in sink(ctx).texts(logging.INFO)


def test_dry_run_still_fails_static_problems(tmp_path: Path) -> None:
    write_script(tmp_path / "pre.sh", "exit 0\n", mode=0o600)
    assert run_engine(ScriptHook(path="pre.sh"), make_ctx(tmp_path, dry_run=True)).failed
    assert run_engine(ScriptHook(path="gone.sh"), make_ctx(tmp_path, dry_run=True)).failed


# --- stopping -------------------------------------------------------------------------


def test_hanging_hook_times_out(tmp_path: Path) -> None:
    write_script(tmp_path / "pre.sh", "sleep 60\n")
    started = time.monotonic()
    result = run_one(ScriptHook(path="pre.sh", timeout=1), make_ctx(tmp_path, kill_grace=1))
    assert time.monotonic() - started < 3.5
    assert result.failed and result.timed_out
    assert "timed out" in result.error


def test_default_timeout_comes_from_the_context(tmp_path: Path) -> None:
    write_script(tmp_path / "pre.sh", "sleep 60\n")
    ctx = make_ctx(tmp_path, default_timeout=0.5, kill_grace=1)
    result = run_one(ScriptHook(path="pre.sh"), ctx)
    assert result.timed_out and result.duration < 3


def test_hook_ignoring_term_is_killed_after_grace(tmp_path: Path) -> None:
    write_script(tmp_path / "pre.sh", "trap '' TERM\nsleep 60\n")
    started = time.monotonic()
    result = run_one(ScriptHook(path="pre.sh", timeout=0.5), make_ctx(tmp_path, kill_grace=0.5))
    elapsed = time.monotonic() - started
    assert result.timed_out and result.failed
    assert result.exit_code == -9  # SIGKILL: TERM was ignored
    assert 1.0 <= elapsed < 3.5


def test_background_grandchild_holding_stdout_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "DRAIN_SECONDS", 0.5)
    pidfile = tmp_path / "pid"
    write_script(tmp_path / "pre.sh", f"sleep 60 &\necho $! > {pidfile}\nexit 0\n")
    ctx = make_ctx(tmp_path, kill_grace=1)
    started = time.monotonic()
    result = run_one(ScriptHook(path="pre.sh"), ctx)
    assert time.monotonic() - started < 0.5 + 2 + 1.5
    assert result.outcome is Outcome.OK
    assert any("background processes" in t for t in sink(ctx).texts(logging.WARNING))
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_cancel_stops_a_running_hook(tmp_path: Path) -> None:
    write_script(tmp_path / "pre.sh", "sleep 60\n")
    ctx = make_ctx(tmp_path, kill_grace=1)
    threading.Timer(0.3, ctx.cancel.set).start()
    result = run_one(ScriptHook(path="pre.sh", timeout=30), ctx)
    assert result.failed and not result.timed_out
    assert "interrupted" in result.error
    assert result.duration < 3


def test_cancelled_before_start_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write_script(tmp_path / "pre.sh", f"touch {marker}\n")
    ctx = make_ctx(tmp_path)
    ctx.cancel.set()
    result = run_one(ScriptHook(path="pre.sh"), ctx)
    assert result.failed and "interrupted" in result.error
    assert not marker.exists()


# --- bounded memory -------------------------------------------------------------------

_FLOOD_PROBE = """
import os, resource, sys
from pathlib import Path
from resticm_core.builtins.script import ScriptHook
from resticm_core.hooks import HookContext
from resticm_core.phases import Phase

class NullSink:
    def hook_line(self, hook, line): pass
    def message(self, level, text): pass

ctx = HookContext(phase=Phase.PRE_BACKUP, command="backup", env={"PATH": os.environ["PATH"]},
                  config_dir=Path(sys.argv[1]), output=NullSink())
ScriptHook(path="small.sh").run(ctx)  # warm up: threads, imports
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
[result] = ScriptHook(path="flood.sh", timeout=120).run(ctx)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(result.outcome.value, after - before, len(result.output_tail))
"""


def test_huge_output_keeps_memory_bounded(tmp_path: Path) -> None:
    write_script(tmp_path / "small.sh", "echo hi\n")
    # ~200 MB in 1000-byte lines, then a 50 MB line without a newline (truncated).
    # (`yes | head -c 200000000` would be 100 million 2-byte lines: minutes of callbacks.)
    write_script(
        tmp_path / "flood.sh",
        "yes \"$(printf '%0999d' 0)\" | head -c 200000000\n"
        "head -c 50000000 /dev/zero | tr '\\0' x\n",
    )
    probe = subprocess.run(
        [sys.executable, "-c", _FLOOD_PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    outcome, growth_kib, tail_len = probe.stdout.split()
    assert outcome == "ok"
    assert int(growth_kib) < 50 * 1024, f"peak RSS grew by {growth_kib} KiB"
    assert int(tail_len) <= 40


def test_registered_as_a_plugin() -> None:
    assert list(script_module.resticm_hook_types()) == [ScriptHook]
