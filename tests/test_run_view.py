"""What a sysadmin sees (issue 17): the progress line on a terminal, and the end of a
run saying what happened (forget's removed snapshots, copies, what check read).

Real processes, real restic, a real pseudo-terminal.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from resticm_core.progress import Progress, TerminalProgress, format_progress, parse_line
from resticm_core.restic.summaries import check_summary, parse_copy, parse_forget

from .conftest import PASSWORD, RESTIC_VERSION, requires_restic, restic_env, snapshot_ids

#: A progress line of the backup: ``backup primary 42% ...``.
BACKUP_PROGRESS = re.compile(r"backup primary \d{1,3}% ")


def write_config(tmp_path: Path, repo: Path, source: Path, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"repository: {repo}\n"
        f"password: {PASSWORD}\n"
        f"directories:\n  - {source}\n"
        f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n"
        + extra
    )
    path.chmod(0o600)
    return path


def resticm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )


def on_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run resticm with stdout and stderr on a pseudo-terminal; its exit code and output."""
    import pty

    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "resticm_core", *args],
        env=env, stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    return proc.wait(timeout=240), b"".join(chunks).decode(errors="replace")


@pytest.fixture
def big_source(source: Path) -> Path:
    # restic reports status while it works: a backup must last long enough for a few
    # status lines on both versions; random data, so nothing deduplicates or compresses.
    with (source / "big.bin").open("wb") as out:
        for _ in range(16):
            out.write(os.urandom(8 * 1024 * 1024))
    return source


# -- progress -------------------------------------------------------------------------


@requires_restic
def test_progress_on_a_terminal_and_never_in_the_log(
    tmp_path: Path, repo: Path, big_source: Path, environ: dict[str, str]
) -> None:
    hook = tmp_path / "hooks" / "post.sh"
    hook.parent.mkdir()
    hook.write_text("#!/bin/sh\necho hook says hello\n")
    hook.chmod(0o700)
    cfg = write_config(tmp_path, repo, big_source, extra=f"hooks:\n  post_backup: {hook}\n")
    code, output = on_a_terminal("-c", str(cfg), "backup", env=environ)
    assert code == 0, output
    assert BACKUP_PROGRESS.search(output), output[-2000:]
    assert "\r\x1b[K" in output, "the line is redrawn in place"
    # The hook's line is whole, on a line of its own (the progress line was cleared).
    assert re.search(r"(^|\n|\x1b\[K)\[[^\]]*post\.sh\] hook says hello\r?\n", output), output
    log = (tmp_path / "log" / "resticm.log").read_text()
    assert "hook says hello" in log and "finished with exit code 0" in log
    assert not BACKUP_PROGRESS.search(log) and "\x1b" not in log and "\r" not in log
    # One summary on the console: the log file's end line stays in the log file.
    assert "completed successfully" in output and "finished with exit code" not in output


@requires_restic
def test_no_progress_without_a_terminal_or_with_quiet_and_forced_by_progress(
    tmp_path: Path, repo: Path, big_source: Path, environ: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, repo, big_source)
    piped = resticm("-c", str(cfg), "backup", env=environ)
    assert piped.returncode == 0, piped.stderr
    assert not BACKUP_PROGRESS.search(piped.stderr) and "\x1b" not in piped.stderr
    assert "completed successfully" in piped.stderr
    code, output = on_a_terminal("-c", str(cfg), "backup", "--quiet", env=environ)
    assert code == 0, output
    assert not BACKUP_PROGRESS.search(output) and "\x1b[K" not in output
    assert "resticm backup completed successfully" in output
    assert "files:" not in output, "--quiet: the verdict only"
    (big_source / "more.bin").write_bytes(os.urandom(64 * 1024 * 1024))
    forced = resticm("-c", str(cfg), "backup", "--progress", env=environ)
    assert forced.returncode == 0, forced.stderr
    assert BACKUP_PROGRESS.search(forced.stderr), "--progress draws it on a pipe too"
    assert not BACKUP_PROGRESS.search((tmp_path / "log" / "resticm.log").read_text())


def test_a_log_line_clears_the_progress_line_and_it_is_drawn_again() -> None:
    terminal = io.StringIO()
    display = TerminalProgress(terminal, delay=0.0, interval=60)
    token = display.started("backup", "primary")
    display.update(token, Progress(command="backup", repository="primary", fraction=0.5,
                                   bytes_done=1024, bytes_total=2048, elapsed=2.0))
    display.write("[pre.sh] a hook line\n")
    display.finished(token)
    display.close()
    text = terminal.getvalue()
    drawn = "backup primary 50% 1.0 KiB/2.0 KiB 512 B/s 0:02"
    assert text.startswith(drawn)
    assert f"{drawn}\r\x1b[K[pre.sh] a hook line\n{drawn}" in text
    assert text.endswith("\r\x1b[K"), "nothing is left on the line at the end"


def test_progress_lines_of_each_restic_output() -> None:
    status = json.dumps({"message_type": "status", "percent_done": 0.25, "total_files": 8,
                         "files_done": 2, "total_bytes": 4096, "bytes_done": 1024,
                         "seconds_remaining": 75, "current_files": ["/srv/a"]})
    found = parse_line(status, "backup", "primary", 1.0)
    assert found is not None
    assert format_progress(found) == (
        "backup primary 25% 2/8 files 1.0 KiB/4.0 KiB 1.0 KiB/s ETA 1:15 /srv/a"
    )
    restore = json.dumps({"message_type": "status", "percent_done": 0.5, "total_files": 4,
                          "files_restored": 2, "total_bytes": 100, "bytes_restored": 50})
    found = parse_line(restore, "restore", "primary", 0.0)
    assert found is not None and found.files_done == 2 and found.percent == 50
    text = parse_line("[0:05] 61.54%  8 / 13 packs copied", "copy", "b", 4.0)
    assert text is not None
    assert format_progress(text) == "copy b 61% 8/13 packs copied 0:05"
    assert parse_line("snapshot 1a2b3c4d saved", "copy", "b", 1.0) is None
    assert parse_line('{"message_type":"summary"}', "backup", "primary", 1.0) is None
    spinner = Progress(command="check", repository="primary", elapsed=12)
    assert format_progress(spinner, tick=1) == "check primary ⠙ 0:12"


# -- what the run did -----------------------------------------------------------------


def test_forget_copy_and_check_output_parsers() -> None:
    # restic 0.14: reasons name the kept snapshot by time and tree, without an id;
    # --prune's text follows the JSON on stdout.
    groups = [{
        "keep": [{"time": "2026-01-02T10:00:00Z", "tree": "t3", "id": "c" * 64,
                  "short_id": "cccccccc", "hostname": "h", "tags": ["x"]}],
        "remove": [{"time": "2026-01-01T10:00:00Z", "tree": "t1", "id": "a" * 64},
                   {"time": "2026-01-01T11:00:00Z", "tree": "t2", "id": "b" * 64}],
        "reasons": [{"snapshot": {"time": "2026-01-02T10:00:00Z", "tree": "t3"},
                     "matches": ["last snapshot"]}],
    }]
    forget = parse_forget(json.dumps(groups) + "\nloading indexes...\n")
    assert forget is not None
    assert [s.id for s in forget.removed] == ["aaaaaaaa", "bbbbbbbb"]
    assert [(s.id, s.reasons, s.tags) for s in forget.kept] == [
        ("cccccccc", ("last snapshot",), ("x",))
    ]
    assert parse_forget("null\n") is not None and parse_forget("no JSON here\n") is None
    copy = parse_copy(
        "\nsnapshot 1a2b3c4d of [/src] at 2026-01-01 10:00:00 +0000 UTC)\n"
        "  copy started, this may take a while...\n[0:01] 100.00%  3 / 3 packs copied\n\n"
        "snapshot 5e6f7a8b saved\n"
        "\nsnapshot 9999aaaa of [/src] at 2026-01-01 11:00:00 +0000 UTC by root@h\n"
    )
    assert [(c.source_id, c.id) for c in copy.copied] == [("1a2b3c4d", "5e6f7a8b")]
    assert check_summary(["check"]).read == "metadata"
    assert check_summary(["check", "--read-data"]).read == "all data"
    assert check_summary(["check", "--read-data-subset", "1/5"]).subset == "1/5"


def _ids(path: Path, cache: Path) -> set[str]:
    return set(snapshot_ids(path, cache))


@requires_restic
def test_the_end_of_a_run_names_what_forget_removed_and_what_copy_copied(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    mirror = tmp_path / "mirror"
    subprocess.run(["restic", "init", "-q"], env=restic_env(tmp_path / "c", mirror), check=True)
    retention = ", ".join(
        f"{k}: {v}" for k, v in {
            "keep_last": 1, "keep_within": "''", "keep_hourly": 0, "keep_daily": 0,
            "keep_weekly": 0, "keep_monthly": 0, "keep_yearly": 0,
        }.items()
    )
    cfg = write_config(
        tmp_path, repo, source,
        extra=(
            f"retention: {{{retention}}}\n"
            f"backends:\n  mirror:\n    repository: {mirror}\n    password: {PASSWORD}\n"
            "copy_to_backends: [mirror]\n"
        ),
    )
    cache = tmp_path / "cache"
    first: list[str] = []
    for _ in range(2):
        done = resticm("-c", str(cfg), "--json", "backup", env=environ)
        assert done.returncode == 0, done.stderr
        first.append(json.loads(done.stdout)["snapshot_id"])
    # The bare resticm: a third backup, forget (keep_last 1 of 3), copy, forget on the mirror.
    result = resticm("-c", str(cfg), "--json", env=environ)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    steps = {(s["name"], s["repository"]): s for s in report["steps"]}
    third = report["snapshot_id"]
    backup = steps[("backup", "primary")]
    assert backup["repository_url"] == str(repo)
    assert backup["summary"]["files_unmodified"] == 2  # a.txt and sub/b.txt, seen before
    if RESTIC_VERSION >= (0, 17, 0):
        assert backup["summary"]["data_added_packed"] is not None
    forget = steps[("forget", "primary")]["forget"]
    removed = {s["id"] for s in forget["removed"]}
    assert removed == set(first)
    assert [(s["id"], s["reasons"]) for s in forget["kept"]] == [(third, ["last snapshot"])]
    assert all(s["time"] for s in forget["removed"])
    assert _ids(repo, cache) == {third}, "restic no longer lists the removed snapshots"
    copy = steps[("copy", "mirror")]["copy"]
    assert copy["count"] == 1 and copy["copied"][0]["source_id"] == third
    assert _ids(mirror, cache) == {copy["copied"][0]["id"]}

    # The console says the same, each fact once.
    fourth_run = resticm("-c", str(cfg), "--no-copy", env=environ)
    assert fourth_run.returncode == 0, fourth_run.stderr
    console = fourth_run.stderr
    fourth = re.search(r"backup +primary +ok +[\d.]+s snapshot ([0-9a-f]{8})", console)
    assert fourth is not None, console
    assert f"removed {third} " in console and f"kept    {fourth[1]} " in console
    assert "removed 1, kept 1 snapshot(s)" in console
    assert "files: " in console and "added: " in console and f"repository: {repo}" in console
    assert console.count("completed successfully") == 1
    assert "finished with exit code" not in console
    assert _ids(repo, cache) == {fourth[1]}


@requires_restic
def test_check_says_what_it_read_and_the_webhook_event_names_removed_snapshots(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    from resticm_core import config_from_dict, run
    from resticm_core.notifiers import event_for_report

    config = config_from_dict({
        "repository": str(repo),
        "password": PASSWORD,
        "directories": [str(source)],
        "retention": {"keep_last": 1, "keep_within": "", "keep_hourly": 0, "keep_daily": 0,
                      "keep_weekly": 0, "keep_monthly": 0, "keep_yearly": 0},
        "logging": {"file": str(tmp_path / "log" / "resticm.log")},
    })
    lock_dir = tmp_path / "locks"
    ids = []
    for _ in range(2):
        report = run(config, "backup", environ=environ, lock_dir=lock_dir)
        assert report.ok, report.errors
        ids.append(report.snapshot_id)
    forgotten = run(config, "forget", environ=environ, lock_dir=lock_dir)
    assert forgotten.ok, forgotten.errors
    (step,) = [s for s in forgotten.steps if s.name == "forget"]
    assert step.forget is not None and [s.id for s in step.forget.removed] == [ids[0]]
    event = event_for_report(forgotten, config)
    assert event.details["snapshots_removed"] == f"primary: {ids[0]}"
    payload: dict[str, Any] = forgotten.to_dict()
    assert payload["steps"][0]["forget"]["removed"][0]["id"] == ids[0]
    checked = run(config, "check", environ=environ, lock_dir=lock_dir)
    (check,) = [s for s in checked.steps if s.name == "check"]
    assert check.check is not None and check.check.read == "metadata"


@requires_restic
def test_each_error_is_printed_once(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, repo, source)
    cfg.write_text(cfg.read_text().replace(PASSWORD, "not-the-password"))
    result = resticm("-c", str(cfg), "backup", env=environ)
    assert result.returncode == 1
    (line,) = [x for x in result.stderr.splitlines() if "wrong password" in x]
    assert line.lstrip().startswith("backup"), "on its step's line, in the summary"
    assert "resticm backup FAILED (exit 1" in result.stderr
    log = (tmp_path / "log" / "resticm.log").read_text()
    assert "[ERROR]" in log and "wrong password" in log, "the log file keeps the error"
    assert "not-the-password" not in result.stderr + log
