"""JSON log lines carry their context; ``logging.file: syslog`` reaches a real syslog socket."""

from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from resticm_core.config import Logging
from resticm_core.logcontext import ContextFilter, current_context, log_context
from resticm_core.logs import setup_logging
from resticm_core.secrets import Redactor

from .conftest import PASSWORD, requires_restic, write_script


def run_cli(cfg: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args, "-c", str(cfg)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def config_text(repo: Path, source: Path, logging_block: str, hooks: str = "") -> str:
    return (
        f"repository: {repo}\npassword: {PASSWORD}\ndirectories:\n  - {source}\n"
        f"{logging_block}{hooks}"
    )


@requires_restic
@pytest.mark.restic
def test_json_log_lines_carry_command_repository_phase_and_hook(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    hook = write_script(tmp_path / "hooks" / "pre.sh", "echo stopping the database\n")
    log_file = tmp_path / "log" / "resticm.json"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        config_text(
            repo,
            source,
            f"logging:\n  file: {log_file}\n  json: true\n  level: debug\n",
            f"hooks:\n  pre_backup: {hook}\n",
        )
    )
    cfg.chmod(0o600)
    result = run_cli(cfg, "-v", "backup", env=environ)
    assert result.returncode == 0, result.stderr

    lines = log_file.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(entries) >= 4
    for entry in entries:
        when = datetime.datetime.fromisoformat(entry["time"])
        assert when.utcoffset() == datetime.timedelta(0), entry["time"]
        assert entry["level"] in ("DEBUG", "INFO", "WARNING", "ERROR")
        # Every line of the run belongs to the command.
        assert entry.get("command") == "backup", entry
    started = next(e for e in entries if "resticm backup started" in e["message"])
    assert "phase" not in started and "hook" not in started, "no phase before one starts"
    echoed = next(e for e in entries if "stopping the database" in e["message"])
    assert echoed["phase"] == "pre_backup"
    assert echoed["hook"].endswith("pre.sh")
    assert "repository" not in echoed
    commands = [e for e in entries if e["message"].startswith("$ restic")]
    assert [(e["phase"], e["repository"]) for e in commands] == [
        ("preflight", "primary"),
        ("backup", "primary"),
    ]
    assert not any("hook" in e for e in commands)
    assert PASSWORD not in log_file.read_text()


def test_context_is_per_thread_and_nested() -> None:
    seen: dict[str, dict[str, str]] = {}

    def worker() -> None:
        seen["thread"] = dict(current_context())

    with log_context(command="default"), log_context(repository="s3", phase="copy"):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        seen["main"] = dict(current_context())
    assert seen["main"] == {"command": "default", "repository": "s3", "phase": "copy"}
    assert seen["thread"] == {}, "a worker thread starts without another chain's fields"
    assert current_context() == {}
    with (
        pytest.raises(ValueError, match="unknown log context fields: colour"),
        log_context(colour="blue"),
    ):
        pass


def test_a_field_passed_with_the_record_wins_over_the_context() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.hook = "explicit.sh"
    with log_context(hook="from-context", phase="post_backup"):
        ContextFilter().filter(record)
    assert (record.hook, record.phase, record.repository) == ("explicit.sh", "post_backup", "")


# -- syslog ------------------------------------------------------------------------------------


@pytest.fixture
def syslog_socket(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A real unix datagram socket standing in for /dev/log; collects what arrives."""
    path = tmp_path / "log.sock"
    if len(str(path)) > 100:  # AF_UNIX path limit
        pytest.skip("tmp_path too long for a unix socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                received.append(server.recv(65536))
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, received
    stop.set()
    thread.join(timeout=5)
    server.close()


@requires_restic
@pytest.mark.restic
def test_logging_file_syslog_sends_records_to_the_syslog_socket(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
    syslog_socket: tuple[Path, list[bytes]],
) -> None:
    path, received = syslog_socket
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config_text(repo, source, "logging:\n  file: syslog\n"))
    cfg.chmod(0o600)
    result = run_cli(cfg, "backup", env={**environ, "RESTICM_SYSLOG_SOCKET": str(path)})
    assert result.returncode == 0, result.stderr
    assert "cannot" not in result.stderr
    messages = [m.decode() for m in received]
    started = next(m for m in messages if "resticm backup started" in m)
    # <PRI>: facility daemon (3) * 8 + severity info (6) = 30; then the syslog tag.
    assert started.startswith("<30>resticm[")
    finished = next(m for m in messages if "finished with exit code 0" in m)
    assert finished.startswith("<30>")
    assert not (tmp_path / "syslog").exists(), "'syslog' is not a file name"
    assert all(PASSWORD not in m for m in messages)


def test_syslog_errors_use_the_error_priority_and_json_when_asked(
    syslog_socket: tuple[Path, list[bytes]], restore_logger: None
) -> None:
    path, received = syslog_socket
    logger = setup_logging(
        Logging(file="journald", json=True, console=False),
        redactor=Redactor(["hunter22"]),
        syslog_address=str(path),
    )
    try:
        with log_context(command="backup", repository="primary", phase="backup"):
            logger.error("restic failed; password hunter22")
        for handler in logger.handlers:
            handler.flush()
        deadline = threading.Event()
        for _ in range(50):
            if received:
                break
            deadline.wait(0.1)
        message = received[0].decode()
        assert message.startswith("<27>resticm[")  # daemon (3) * 8 + err (3)
        entry = json.loads(message.split("]: ", 1)[1].rstrip("\0"))
        assert entry["message"] == "restic failed; password ***"
        assert (entry["command"], entry["repository"], entry["phase"]) == (
            "backup",
            "primary",
            "backup",
        )
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()


def test_an_unreachable_syslog_socket_is_reported_not_fatal(
    tmp_path: Path, restore_logger: None
) -> None:
    import io

    console = io.StringIO()
    logger = setup_logging(
        Logging(file="syslog"),
        redactor=Redactor([]),
        stream=console,
        syslog_address=str(tmp_path / "no-such-socket"),
    )
    try:
        assert "cannot reach syslog at" in console.getvalue()
        # The console only (the run-capture dispatch, if a run added it, is not ours).
        assert not any(isinstance(h, logging.handlers.SysLogHandler) for h in logger.handlers)
        assert any(type(h) is logging.StreamHandler for h in logger.handlers)
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()


def test_a_failed_backend_copy_is_logged_with_its_repository_and_phase(
    tmp_path: Path, restore_logger: None
) -> None:
    from resticm_core import config_from_dict, run
    from resticm_core.testing import FakeRestic, RecordingSink

    log_file = tmp_path / "resticm.json"
    config = config_from_dict(
        {
            "repository": str(tmp_path / "repo"),
            "password": "primary-pw",
            "directories": [str(tmp_path)],
            "backends": {"offsite": {"repository": str(tmp_path / "off"), "password": "pw-2"}},
            "copy_to_backends": ["offsite"],
            "logging": {"file": str(log_file), "json": True, "console": False},
        }
    )
    logger = setup_logging(config.logging, redactor=Redactor(config.secrets()))
    fake = FakeRestic()
    fake.respond(
        "copy", exit_code=1, stderr=["Fatal: wrong password or no key found"], repository="offsite"
    )
    try:
        report = run(
            config, "default", runner=fake, output=RecordingSink(), lock_dir=tmp_path / "locks"
        )
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
    assert report.exit_code == 1
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    [error] = [e for e in entries if e["level"] == "ERROR"]
    assert error["message"].startswith("restic copy failed on offsite: wrong password")
    assert (error["command"], error["repository"], error["phase"]) == (
        "default",
        "offsite",
        "copy",
    )
