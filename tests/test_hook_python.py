"""``kind: python``: in-process and isolated calls, resolution, outcomes, stopping."""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resticm_core.builtins import python_callable as python_module
from resticm_core.builtins.python_callable import PythonHook
from resticm_core.hook_lifecycle import run_hook
from resticm_core.hooks import HookContext
from resticm_core.phases import HookResult, Outcome, Phase
from resticm_core.testing import RecordingSink

BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "BACKUP_STATUS": "success"}


def make_ctx(tmp_path: Path, phase: Phase = Phase.PRE_BACKUP, **kwargs: Any) -> HookContext:
    return HookContext(
        phase=phase,
        command="backup",
        env=dict(BASE_ENV),
        config_dir=tmp_path,
        output=RecordingSink(),
        **kwargs,
    )


def sink(ctx: HookContext) -> RecordingSink:
    assert isinstance(ctx.output, RecordingSink)
    return ctx.output


def run_one(hook: PythonHook, ctx: HookContext) -> HookResult:
    [result] = hook.run(ctx)
    return result


def run_engine(hook: PythonHook, ctx: HookContext) -> HookResult:
    """Through the engine's lifecycle: check, then dry_run() in a dry run, else run()."""
    [result] = run_hook(hook, ctx)
    return result


@pytest.fixture
def hooks_module(tmp_path: Path) -> Iterator[str]:
    """A module beside the "config file", with a unique name (sys.modules is shared)."""
    name = f"resticm_test_hooks_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent("""
        from resticm_core.errors import SkipBackup

        def ok(ctx):
            return None

        def false(ctx):
            return False

        def boom(ctx):
            raise RuntimeError("database unreachable")

        def skip(ctx):
            raise SkipBackup("maintenance")

        def status(ctx):
            if ctx.env["BACKUP_STATUS"] != "success":
                raise AssertionError(ctx.env["BACKUP_STATUS"])

        not_a_function = 42
    """)
    )
    yield name
    sys.modules.pop(name, None)


# --- resolution -----------------------------------------------------------------------


def test_module_beside_the_config_is_importable(tmp_path: Path, hooks_module: str) -> None:
    ctx = make_ctx(tmp_path)
    hook = PythonHook(callable=f"{hooks_module}:ok")
    assert hook.check(ctx) == []
    result = run_one(hook, ctx)
    assert result.outcome is Outcome.OK
    assert result.name == f"python:{hooks_module}:ok" and result.kind == "python"
    assert str(tmp_path) not in sys.path  # appended for the import only


def test_config_dir_already_on_sys_path_is_left_there(
    tmp_path: Path, hooks_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    assert run_one(PythonHook(callable=f"{hooks_module}:ok"), make_ctx(tmp_path)).outcome is (
        Outcome.OK
    )
    assert str(tmp_path) in sys.path


def test_import_error_is_a_clear_failure(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    hook = PythonHook(callable="resticm_no_such_mod:fn")
    expected = (
        "cannot import 'resticm_no_such_mod' for hook python:resticm_no_such_mod:fn: "
        "No module named 'resticm_no_such_mod'"
    )
    assert hook.check(ctx) == [expected]
    result = run_one(hook, ctx)
    assert result.failed and result.error == expected


def test_missing_function_is_reported(tmp_path: Path, hooks_module: str) -> None:
    problems = PythonHook(callable=f"{hooks_module}:nope").check(make_ctx(tmp_path))
    assert len(problems) == 1
    assert "nope" in problems[0] and f"python:{hooks_module}:nope" in problems[0]


def test_not_callable_is_reported(tmp_path: Path, hooks_module: str) -> None:
    [problem] = PythonHook(callable=f"{hooks_module}:not_a_function").check(make_ctx(tmp_path))
    assert "not a function" in problem


def test_module_with_an_error_is_reported(tmp_path: Path) -> None:
    name = f"resticm_test_broken_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('bad deploy')\n")
    [problem] = PythonHook(callable=f"{name}:fn").check(make_ctx(tmp_path))
    assert problem == f"cannot import '{name}' for hook python:{name}:fn: RuntimeError: bad deploy"


def test_invalid_target_syntax(tmp_path: Path) -> None:
    [problem] = PythonHook(callable="not a name").check(make_ctx(tmp_path))
    assert "invalid callable" in problem


# --- outcomes -------------------------------------------------------------------------


def test_returning_false_fails(tmp_path: Path, hooks_module: str) -> None:
    result = run_one(PythonHook(callable=f"{hooks_module}:false"), make_ctx(tmp_path))
    assert result.failed and result.error == "returned False"


def test_exception_fails_with_type_and_message(tmp_path: Path, hooks_module: str) -> None:
    ctx = make_ctx(tmp_path)
    result = run_one(PythonHook(callable=f"{hooks_module}:boom"), ctx)
    assert result.failed
    assert result.error == "RuntimeError: database unreachable"
    [debug] = sink(ctx).texts(logging.DEBUG)
    assert "Traceback" in debug and "in boom" in debug


def test_skip_backup_in_pre_backup_is_a_soft_skip(tmp_path: Path, hooks_module: str) -> None:
    result = run_one(PythonHook(callable=f"{hooks_module}:skip"), make_ctx(tmp_path))
    assert result.outcome is Outcome.SOFT_SKIP and not result.failed


def test_skip_backup_elsewhere_is_success(tmp_path: Path, hooks_module: str) -> None:
    ctx = make_ctx(tmp_path, phase=Phase.ON_ERROR)
    result = run_one(PythonHook(callable=f"{hooks_module}:skip"), ctx)
    assert result.outcome is Outcome.OK


def test_sys_exit_fails_the_hook_only(tmp_path: Path) -> None:
    result = run_one(PythonHook.from_function(lambda ctx: sys.exit(3)), make_ctx(tmp_path))
    assert result.failed and result.error == "SystemExit: 3"


def test_ctx_env_holds_the_hook_environment(tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    def record(ctx: HookContext) -> None:
        seen.update(ctx.env)

    hook = PythonHook(callable="x:y", function=record, env={"DUMP_DIR": "/dumps"})
    assert run_one(hook, make_ctx(tmp_path)).outcome is Outcome.OK
    assert seen["BACKUP_STATUS"] == "success" and seen["DUMP_DIR"] == "/dumps"
    assert "DUMP_DIR" not in os.environ


def test_context_is_passed_positionally(tmp_path: Path) -> None:
    received: list[HookContext] = []
    ctx = make_ctx(tmp_path, phase=Phase.POST_BACKUP)
    run_one(PythonHook.from_function(received.append), ctx)
    assert received[0].phase is Phase.POST_BACKUP


# --- from_function --------------------------------------------------------------------


def _module_level_hook(ctx: HookContext) -> bool:
    return True


def test_from_function_names_and_options(tmp_path: Path) -> None:
    hook = PythonHook.from_function(_module_level_hook, timeout=5, isolate=True)
    assert hook.callable == f"{__name__}:_module_level_hook"
    assert hook.describe() == f"python:{__name__}:_module_level_hook"
    assert hook.timeout == 5 and hook.isolate and hook.function is _module_level_hook
    assert hook.check(make_ctx(tmp_path)) == []  # no import of the name
    named = PythonHook.from_function(_module_level_hook, name="metrics:push")
    assert named.describe() == "python:metrics:push"


# --- dry run and interruption before start ---------------------------------------------


def test_dry_run_does_not_call(tmp_path: Path) -> None:
    called: list[HookContext] = []
    ctx = make_ctx(tmp_path, dry_run=True)
    result = run_engine(PythonHook.from_function(called.append, name="m:f"), ctx)
    assert result.outcome is Outcome.SKIPPED and not called
    assert "[dry-run] would run python hook python:m:f" in sink(ctx).texts(logging.INFO)


def test_dry_run_still_reports_unresolvable_target(tmp_path: Path) -> None:
    hook = PythonHook(callable="resticm_no_such_mod:f")
    result = run_engine(hook, make_ctx(tmp_path, dry_run=True))
    assert result.failed


# --- timeouts and cancellation --------------------------------------------------------


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets abandoned in-process calls finish when the test ends."""
    event = threading.Event()
    yield event
    event.set()


def test_in_process_timeout_abandons_the_call(tmp_path: Path, release: threading.Event) -> None:
    hook = PythonHook.from_function(lambda ctx: release.wait(10), timeout=0.5)
    started = time.monotonic()
    result = run_one(hook, make_ctx(tmp_path))
    assert time.monotonic() - started < 2
    assert result.failed and result.timed_out
    assert "abandoned" in result.error


def test_in_process_cancel_is_noticed(tmp_path: Path, release: threading.Event) -> None:
    ctx = make_ctx(tmp_path)
    threading.Timer(0.2, ctx.cancel.set).start()
    result = run_one(PythonHook.from_function(lambda c: release.wait(10), timeout=10), ctx)
    assert result.failed and not result.timed_out
    assert result.error.startswith("interrupted")


def _sleep_and_record_pid(path: Path) -> Any:
    def hook(ctx: HookContext) -> None:
        path.write_text(str(os.getpid()))
        time.sleep(30)

    return hook


def _gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_isolated_timeout_kills_the_child(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    hook = PythonHook.from_function(_sleep_and_record_pid(pidfile), timeout=0.5, isolate=True)
    started = time.monotonic()
    result = run_one(hook, make_ctx(tmp_path, kill_grace=1))
    assert time.monotonic() - started < 3
    assert result.failed and result.timed_out
    assert "stopped" in result.error
    pid = int(pidfile.read_text())
    assert pid != os.getpid()
    assert _gone(pid)


def test_isolated_child_ignoring_term_is_killed(tmp_path: Path) -> None:
    def stubborn(ctx: HookContext) -> None:
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(30)

    started = time.monotonic()
    result = run_one(
        PythonHook.from_function(stubborn, timeout=0.3, isolate=True),
        make_ctx(tmp_path, kill_grace=0.5),
    )
    assert result.timed_out
    assert 0.7 <= time.monotonic() - started < 3


def test_isolated_cancel_kills_the_child(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    ctx = make_ctx(tmp_path, kill_grace=1)
    threading.Timer(0.3, ctx.cancel.set).start()
    result = run_one(
        PythonHook.from_function(_sleep_and_record_pid(pidfile), timeout=10, isolate=True), ctx
    )
    assert result.failed and result.error.startswith("interrupted")
    assert _gone(int(pidfile.read_text()))


def test_isolated_timeout_stops_commands_the_hook_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    def dump(ctx: HookContext) -> bool:
        proc = ctx.run_command(
            ["/bin/sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"], name="dump", timeout=None
        )
        return proc.ok

    result = run_one(
        PythonHook.from_function(dump, timeout=0.5, isolate=True), make_ctx(tmp_path, kill_grace=1)
    )
    assert result.timed_out
    assert _gone(int(pidfile.read_text()))


@pytest.mark.parametrize(
    ("target", "phase", "outcome", "error"),
    [
        ("ok", Phase.PRE_BACKUP, Outcome.OK, ""),
        ("false", Phase.PRE_BACKUP, Outcome.FAILED, "returned False"),
        ("boom", Phase.PRE_BACKUP, Outcome.FAILED, "RuntimeError: database unreachable"),
        ("skip", Phase.PRE_BACKUP, Outcome.SOFT_SKIP, ""),
        ("skip", Phase.POST_BACKUP, Outcome.OK, ""),
        ("status", Phase.PRE_BACKUP, Outcome.OK, ""),
    ],
)
def test_isolated_results_come_back_through_the_pipe(
    tmp_path: Path, hooks_module: str, target: str, phase: Phase, outcome: Outcome, error: str
) -> None:
    hook = PythonHook(callable=f"{hooks_module}:{target}", isolate=True, timeout=10)
    result = run_one(hook, make_ctx(tmp_path, phase=phase))
    assert (result.outcome, result.error) == (outcome, error)


def test_isolated_child_dying_is_a_failure(tmp_path: Path) -> None:
    result = run_one(
        PythonHook.from_function(lambda ctx: os._exit(4), isolate=True, timeout=10),
        make_ctx(tmp_path),
    )
    assert result.failed
    assert result.error == "the hook process exited with status 4 without returning a result"


def test_isolated_env_is_visible(tmp_path: Path) -> None:
    def check(ctx: HookContext) -> bool:
        return ctx.env.get("BACKUP_STATUS") == "success" and ctx.env.get("EXTRA") == "1"

    hook = PythonHook(callable="t:check", function=check, isolate=True, env={"EXTRA": "1"})
    assert run_one(hook, make_ctx(tmp_path)).outcome is Outcome.OK


def test_messages_before_and_after(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    run_one(PythonHook.from_function(_module_level_hook, name="m:f"), ctx)
    infos = sink(ctx).texts(logging.INFO)
    assert infos[0] == "running hook python:m:f"
    assert infos[1].startswith("hook python:m:f finished in ")


def test_registered_as_a_plugin() -> None:
    assert list(python_module.resticm_hook_types()) == [PythonHook]
