"""Hook output taken a read at once (process.py ``on_stdout_text``, logs.HookOutputLog
``hook_text``): the console still gets every line, the log file its head and tail, and
a secret is redacted even when a read boundary cuts it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from resticm_core.config import Logging
from resticm_core.hooks import HookContext
from resticm_core.logs import LOGGER_NAME, HookOutputLog, setup_logging
from resticm_core.phases import Phase
from resticm_core.process import MAX_LINE_BYTES, run_process
from resticm_core.secrets import Redactor

from .conftest import write_script

SECRET = "s3cr3t-token-value"


@pytest.fixture
def logged(
    tmp_path: Path, restore_logger: logging.Logger
) -> Iterator[tuple[io.StringIO, Path]]:
    """The CLI's logging into a string console and a log file; conftest's
    restore_logger puts the process-wide logger back afterwards."""
    console = io.StringIO()
    log_file = tmp_path / "resticm.log"
    setup_logging(Logging(file=str(log_file)), redactor=Redactor([SECRET]), stream=console)
    yield console, log_file


def _sink() -> HookOutputLog:
    return HookOutputLog(logging.getLogger(LOGGER_NAME))


def test_batches_keep_every_console_line_and_the_log_head_and_tail(
    logged: tuple[io.StringIO, Path],
) -> None:
    console, log_file = logged
    sink = _sink()
    lines = [str(n) for n in range(1, 1001)]
    for start in range(0, 1000, 7):  # batches that straddle the 20-line head
        sink.hook_text("h", "\n".join(lines[start : start + 7]))
    sink.hook_finished("h")
    assert console.getvalue().splitlines() == [f"[h] {n}" for n in lines]
    kept = [line.split("] ", 2)[-1] for line in log_file.read_text().splitlines()]
    assert kept[:20] == lines[:20]
    assert kept[20] == "... 960 lines omitted ..."
    assert kept[21:] == lines[-20:]


def test_a_secret_cut_by_a_read_boundary_is_redacted(
    tmp_path: Path, logged: tuple[io.StringIO, Path]
) -> None:
    console, log_file = logged
    half = len(SECRET) // 2
    # Two writes with a pause between: two reads, the secret split across them. The
    # lines before it fill the log's head, so it reaches the console in a batch.
    script = write_script(
        tmp_path / "leak.sh",
        f"seq 1 30\nprintf 'token={SECRET[:half]}'\nsleep 0.3\n"
        f"printf '{SECRET[half:]} end\\nlast\\n'\n",
    )
    ctx = HookContext(phase=Phase.PRE_BACKUP, command="backup", env={"PATH": "/usr/bin:/bin"},
                      output=_sink())
    result = ctx.run_command([str(script)], name="leak", timeout=30)
    ctx.output.hook_finished("leak")  # type: ignore[attr-defined]
    assert result.returncode == 0
    shown = console.getvalue().splitlines()
    assert "[leak] token=*** end" in shown and shown[-1] == "[leak] last"
    assert len([line for line in shown if line.startswith("[leak] ")]) == 32
    for text in (console.getvalue(), log_file.read_text()):
        assert SECRET[:half] not in text and SECRET[half:] not in text


def test_batched_lines_are_the_lines_read_one_by_one(tmp_path: Path) -> None:
    """CR LF endings, invalid UTF-8 and an over-long line in the middle of short ones."""
    script = write_script(
        tmp_path / "mixed.sh",
        "printf 'a\\r\\nb\\377c\\n'\n"
        f"head -c {MAX_LINE_BYTES + 10} /dev/zero | tr '\\0' x\n"
        "printf '\\nafter\\nno-newline'\n",
    )
    batches: list[str] = []
    singles: list[str] = []
    batched = run_process([str(script)], env={"PATH": "/usr/bin:/bin"},
                          on_stdout_text=batches.append)
    single = run_process([str(script)], env={"PATH": "/usr/bin:/bin"}, on_stdout=singles.append)
    flat = [line for batch in batches for line in batch.split("\n")]
    assert flat == singles
    assert flat[:2] == ["a", "b\ufffdc"]
    assert flat[2] == "x" * MAX_LINE_BYTES + " [line truncated]"
    assert flat[3:] == ["after", "no-newline"]
    assert batched.stdout_tail == single.stdout_tail
