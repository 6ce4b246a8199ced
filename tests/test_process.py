"""run_process and OutputTail: bounded output, timeouts, kills, cancellation, strays."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from resticm_core import process
from resticm_core.process import MAX_LINE_BYTES, OutputTail, run_process

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def alive(pid: int) -> bool:
    """True while *pid* runs (a zombie waiting for a reaper counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def wait_gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


# --- OutputTail ---------------------------------------------------------------------


def test_output_tail_keeps_head_and_tail_with_omitted_marker() -> None:
    tail = OutputTail(head=2, tail=3)
    for i in range(10):
        tail.add(f"line {i}")
    assert tail.total == 10
    assert tail.omitted == 5
    assert tail.lines() == [
        "line 0", "line 1", "... 5 lines omitted ...", "line 7", "line 8", "line 9"
    ]
    assert tail.last(2) == ["line 8", "line 9"]
    assert tail.last(0) == []


def test_output_tail_short_stream_has_no_marker() -> None:
    tail = OutputTail(head=2, tail=3)
    for i in range(4):
        tail.add(str(i))
    assert tail.omitted == 0
    assert tail.lines() == ["0", "1", "2", "3"]
    assert tail.last(3) == ["1", "2", "3"]


# --- run_process --------------------------------------------------------------------


def test_streams_lines_to_callbacks_and_keeps_tails() -> None:
    out: list[str] = []
    err: list[str] = []
    result = run_process(
        sh("echo one; echo two; echo oops >&2; exit 0"),
        env=ENV, timeout=3, on_stdout=out.append, on_stderr=err.append,
    )
    assert result.ok and result.returncode == 0
    assert out == ["one", "two"] and err == ["oops"]
    assert result.stdout_tail == ("one", "two")
    assert result.stderr_tail == ("oops",)
    assert result.describe_failure() == ""


def test_environment_is_exactly_the_one_given() -> None:
    out: list[str] = []
    run_process(sh("env"), env={**ENV, "ONLY_THIS": "1"}, timeout=3, on_stdout=out.append)
    names = {line.split("=", 1)[0] for line in out}
    assert "ONLY_THIS" in names
    assert "HOME" not in names  # nothing inherited implicitly


def test_exit_status_is_a_failure() -> None:
    result = run_process(sh("exit 3"), env=ENV, timeout=3)
    assert not result.ok
    assert result.returncode == 3
    assert result.killed_by is None
    assert result.describe_failure() == "exited with status 3"


def test_head_and_tail_of_long_output_with_marker() -> None:
    result = run_process(
        sh("i=0; while [ $i -lt 100 ]; do echo $i; i=$((i+1)); done"),
        env=ENV, timeout=3, head_lines=2, tail_lines=3,
    )
    assert result.stdout_tail == ("0", "1", "... 95 lines omitted ...", "97", "98", "99")


def test_over_long_line_is_truncated_and_the_next_line_kept() -> None:
    lines: list[str] = []
    result = run_process(
        sh("head -c 300000 /dev/zero | tr '\\0' x; echo; echo next"),
        env=ENV, timeout=3, on_stdout=lines.append,
    )
    assert result.ok
    assert len(lines) == 2
    assert lines[0].endswith(" [line truncated]")
    assert lines[0].startswith("x" * 100)
    assert len(lines[0]) <= MAX_LINE_BYTES + len(" [line truncated]")
    assert lines[1] == "next"


def test_undecodable_bytes_are_replaced() -> None:
    lines: list[str] = []
    run_process(sh("printf 'caf\\351\\n'"), env=ENV, timeout=3, on_stdout=lines.append)
    assert lines == ["caf\ufffd"]


def test_missing_binary_is_a_start_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-program"
    result = run_process([str(missing)], env=ENV, timeout=3)
    assert result.returncode is None
    assert not result.ok
    assert result.start_error.startswith(f"cannot execute {missing}: ")
    assert "No such file" in result.start_error
    assert result.describe_failure() == result.start_error


def test_killed_by_signal() -> None:
    result = run_process(sh("kill -KILL $$"), env=ENV, timeout=3)
    assert result.killed_by == signal.SIGKILL
    assert result.returncode == -signal.SIGKILL
    assert result.describe_failure() == "killed by signal SIGKILL"


def test_timeout_stops_the_whole_group() -> None:
    pids: list[str] = []
    started = time.monotonic()
    result = run_process(
        sh("sleep 60 & echo $!; wait"), env=ENV, timeout=0.5, kill_grace=1,
        on_stdout=pids.append,
    )
    assert time.monotonic() - started < 3
    assert result.timed_out and not result.ok
    assert "timed out" in result.describe_failure()
    assert wait_gone(int(pids[0]))


def test_term_ignored_is_killed_after_grace() -> None:
    started = time.monotonic()
    result = run_process(
        sh("trap '' TERM; sleep 60"), env=ENV, timeout=0.3, kill_grace=0.5
    )
    elapsed = time.monotonic() - started
    assert result.timed_out
    assert result.killed_by == signal.SIGKILL
    assert 0.7 <= elapsed < 3


def test_cancel_event_stops_the_child() -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = run_process(sh("sleep 60"), env=ENV, timeout=10, kill_grace=1, cancel=cancel)
    assert result.cancelled and not result.timed_out
    assert result.duration < 3
    assert result.describe_failure() == "stopped because resticm was interrupted"


def test_stray_grandchild_holding_the_pipes_is_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(process, "DRAIN_SECONDS", 0.5)
    pids: list[str] = []
    started = time.monotonic()
    # The background sleep inherits stdout and keeps it open after sh exits.
    result = run_process(
        sh("sleep 60 & echo $!; exit 0"), env=ENV, timeout=5, kill_grace=1,
        on_stdout=pids.append,
    )
    assert time.monotonic() - started < 0.5 + 2 + 1  # drain + stop grace + slack
    assert result.ok
    assert result.stray_children_stopped
    assert wait_gone(int(pids[0]))


class _InterruptingEvent(threading.Event):
    """A cancel event whose check raises, as a signal handler raising would."""

    def __init__(self, after_checks: int) -> None:
        super().__init__()
        self.checks = after_checks

    def is_set(self) -> bool:
        self.checks -= 1
        if self.checks < 0:
            raise KeyboardInterrupt
        return False


def test_child_is_stopped_when_run_process_is_left_by_an_exception() -> None:
    pids: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_process(
            sh("echo $$; exec sleep 60"), env=ENV, timeout=10, kill_grace=1,
            on_stdout=pids.append, cancel=_InterruptingEvent(after_checks=10),
        )
    assert pids, "the child printed its pid before the interruption"
    assert wait_gone(int(pids[0]))


def test_argv_is_not_split_or_interpreted_by_a_shell(tmp_path: Path) -> None:
    lines: list[str] = []
    run_process(
        [sys.executable, "-c", "import sys; print(sys.argv[1:])", "a b", "$HOME", "*"],
        env=ENV, timeout=3, on_stdout=lines.append, cwd=tmp_path,
    )
    assert lines == ["['a b', '$HOME', '*']"]
