"""run_process's two ways of waiting: a pidfd with one thread, and reader threads.

Linux >= 5.3 waits on a pidfd; elsewhere (or when pidfd_open fails) two reader
threads and a polling loop do the same. Both must behave alike: every test
below runs against both.
"""

from __future__ import annotations

import io
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from resticm_core import process
from resticm_core.process import MAX_LINE_BYTES, OutputTail, run_process

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
HAS_PIDFD = process._open_pidfd(os.getpid()) is not None


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(params=["pidfd", "threads"])
def wait_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with the pidfd wait, then with the threaded fallback."""
    used: list[str] = []
    if request.param == "threads":
        monkeypatch.setattr(process, "_open_pidfd", lambda pid: None)
        monkeypatch.setattr(
            process, "_wait_pidfd", lambda *a: pytest.fail("the pidfd wait was used")
        )
    elif not HAS_PIDFD:
        pytest.skip("this kernel has no pidfd_open")
    else:
        real = process._wait_pidfd

        def spy(*args: object) -> None:
            used.append("pidfd")
            real(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(process, "_wait_pidfd", spy)
    yield request.param
    if request.param == "pidfd":
        assert used, "the pidfd wait was not used"


def test_output_exit_status_and_tails(wait_mode: str) -> None:
    out: list[str] = []
    err: list[str] = []
    result = run_process(
        sh("echo one; echo two >&2; printf 'no newline'; exit 4"),
        env=ENV,
        timeout=5,
        on_stdout=out.append,
        on_stderr=err.append,
    )
    assert result.returncode == 4 and not result.timed_out
    assert out == ["one", "no newline"] and err == ["two"]
    assert result.stdout_tail == ("one", "no newline")


def test_stdin_is_passed_through(wait_mode: str, tmp_path: Path) -> None:
    source = tmp_path / "input"
    source.write_bytes(b"from stdin\n")
    out: list[str] = []
    with source.open("rb") as stdin:
        result = run_process(["cat"], env=ENV, timeout=5, on_stdout=out.append, stdin=stdin)
    assert result.ok and out == ["from stdin"]


def test_long_lines_and_many_lines(wait_mode: str) -> None:
    lines: list[str] = []
    script = (
        f"head -c {3 * MAX_LINE_BYTES} /dev/zero | tr '\\0' x; echo; "
        "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done"
    )
    result = run_process(sh(script), env=ENV, timeout=20, on_stdout=lines.append, tail_lines=5)
    assert result.ok
    assert lines[0] == "x" * MAX_LINE_BYTES + " [line truncated]"
    assert lines[1:] == [f"line{i}" for i in range(2000)]
    assert result.stdout_tail[-1] == "line1999"


def test_timeout_stops_the_group_with_the_stop_signal(wait_mode: str) -> None:
    # The child reports the signal it got: SIGINT, as restic is stopped.
    result = run_process(
        sh("trap 'echo got INT; kill $!; exit 7' INT; sleep 30 & wait"),
        env=ENV,
        # Long enough for sh to set its trap, and a grace that only bounds a hang: on
        # two loaded cores the handler took over 0.5 s and the KILL came first.
        timeout=1.0,
        kill_grace=10,
        stop_signal=signal.SIGINT,
        on_stdout=lambda line: None,
    )
    assert result.timed_out and result.returncode == 7
    assert "got INT" in result.stdout_tail


def test_term_ignored_is_killed_after_grace(wait_mode: str) -> None:
    started = time.monotonic()
    result = run_process(sh("trap '' TERM; sleep 30"), env=ENV, timeout=0.2, kill_grace=0.4)
    assert result.timed_out and result.killed_by == signal.SIGKILL
    assert time.monotonic() - started >= 0.6


def test_grandchild_that_ignores_term_is_killed(wait_mode: str) -> None:
    # The child exits on TERM, its detached grandchild (output elsewhere) ignores it:
    # the group is KILLed after the grace period, and no pipe is left to wait for.
    pids: list[str] = []
    result = run_process(
        sh("(trap '' TERM; exec sleep 30) >/dev/null 2>&1 & echo $!; sleep 30"),
        env=ENV,
        timeout=0.3,
        kill_grace=0.5,
        on_stdout=pids.append,
    )
    assert result.timed_out and not result.stray_children_stopped
    assert gone(int(pids[0]))


def test_cancel_stops_the_child(wait_mode: str) -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    result = run_process(sh("sleep 30"), env=ENV, timeout=10, kill_grace=0.5, cancel=cancel)
    assert result.cancelled and not result.timed_out
    assert result.killed_by == signal.SIGTERM


def test_stray_grandchild_is_stopped(wait_mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "DRAIN_SECONDS", 0.3)
    pids: list[str] = []
    result = run_process(
        sh("sleep 30 & echo $!; exit 0"), env=ENV, timeout=5, kill_grace=0.5, on_stdout=pids.append
    )
    assert result.ok and result.stray_children_stopped
    assert gone(int(pids[0]))


def test_exception_while_waiting_stops_the_child(wait_mode: str) -> None:
    class Interrupting(threading.Event):
        def __init__(self) -> None:
            super().__init__()
            self.checks = 5

        def is_set(self) -> bool:
            self.checks -= 1
            if self.checks < 0:
                raise KeyboardInterrupt
            return False

    pids: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_process(
            sh("echo $$; exec sleep 30"),
            env=ENV,
            timeout=10,
            kill_grace=1,
            on_stdout=pids.append,
            cancel=Interrupting(),
        )
    assert pids and gone(int(pids[0]))


def test_failing_callback_does_not_block_the_child() -> None:
    if not HAS_PIDFD:
        pytest.skip("this kernel has no pidfd_open")

    def broken(line: str) -> None:
        raise BrokenPipeError("console closed")

    # 256 KiB of output: more than a pipe holds, so a stalled reader would hang it.
    result = run_process(
        sh("head -c 262144 /dev/zero | tr '\\0' '\\n'; echo last"),
        env=ENV,
        timeout=20,
        on_stdout=broken,
    )
    assert result.ok and result.stdout_tail[-1] == "last"


def test_exit_is_noticed_without_a_polling_delay() -> None:
    """100 short children: the pidfd wait must not add a polling interval to each."""
    if not HAS_PIDFD:
        pytest.skip("this kernel has no pidfd_open")
    started = time.monotonic()
    for _ in range(100):
        assert run_process(["true"], env=ENV, timeout=5).ok
    # A generous hang guard: 100 x 50 ms of polling would be 5 s.
    assert time.monotonic() - started < 4.5


def _lines_by_reader(data: bytes) -> list[str]:
    tail = OutputTail(head=10_000, tail=0)
    process._reader(io.BufferedReader(io.BytesIO(data)), tail, None)  # type: ignore[arg-type]
    return tail.lines()


def _lines_by_splitter(data: bytes, rng: random.Random) -> list[str]:
    tail = OutputTail(head=10_000, tail=0)
    splitter = process._LineSplitter(tail, None)
    pos = 0
    while pos < len(data):
        size = rng.choice((1, 7, 4096, MAX_LINE_BYTES - 1, MAX_LINE_BYTES, 100_000))
        splitter.feed(data[pos : pos + size])
        pos += size
    splitter.close()
    return tail.lines()


@pytest.mark.parametrize("seed", range(6))
def test_splitter_cuts_lines_exactly_as_the_reader_does(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [0, 1, MAX_LINE_BYTES - 2, MAX_LINE_BYTES - 1, MAX_LINE_BYTES, MAX_LINE_BYTES + 1]
    parts = []
    for _ in range(40):
        length = rng.choice([*lengths, rng.randrange(3 * MAX_LINE_BYTES), rng.randrange(50)])
        body = bytes(rng.choice(b"ab\r\xc3\xa9") for _ in range(length))
        parts.append(body + (b"\n" if rng.random() < 0.9 else b"\r\n"))
    data = b"".join(parts)
    for tail_piece in (b"", b"partial", b"y" * MAX_LINE_BYTES, b"z" * (MAX_LINE_BYTES + 5)):
        assert _lines_by_splitter(data + tail_piece, rng) == _lines_by_reader(data + tail_piece)
