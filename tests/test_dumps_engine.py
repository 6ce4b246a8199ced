"""The dump engine (resticm_core.dumps) with the real restic and real dump "tools".

A test dump type runs a shell script as its dump tool, so every way a tool can
fail is a few lines of shell; plugins/resticm-dumps/tests run the real
PostgreSQL, MariaDB and SQLite tools against real servers.
"""

from __future__ import annotations

import json
import subprocess
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from resticm_core import config_from_dict, hookimpl, run
from resticm_core.dumps import Command, DumpContext, DumpError, DumpSource, DumpTarget
from resticm_core.errors import ConfigError
from resticm_core.plugin_manager import PluginRegistry
from resticm_core.testing import FakeRestic

from .conftest import PASSWORD, CallLog, dump_path, restic_env, write_script

pytestmark = pytest.mark.restic


@attrs.frozen(kw_only=True)
class ScriptDump(DumpSource):
    """Dumps "databases" by running ``<script> <database>``: stdout is the dump."""

    kind: ClassVar[str] = "script-dump"
    script: str = ""
    databases: tuple[str, ...] = ("one",)
    fail_listing: bool = False
    #: These databases count as found by listing (`all`), not named in the config.
    listed: tuple[str, ...] = ()

    def targets(self, ctx: DumpContext) -> Sequence[DumpTarget]:
        if self.fail_listing and not ctx.dry_run:
            raise DumpError("cannot list the databases: connection refused")
        return [
            DumpTarget(
                database=db,
                command=Command(argv=(self.script, db), env={"DUMP_SECRET": "tool-password"}),
                listed=db in self.listed,
            )
            for db in self.databases
        ]

    def is_error_line(self, line: str) -> bool:
        return line.startswith("ERROR")

    def is_gone(self, database: str, lines: Sequence[str]) -> bool:
        return any(f'database "{database}" does not exist' in line for line in lines)


def dump_plugin(*classes: type[DumpSource]) -> types.ModuleType:
    """A plugin module providing *classes* through ``resticm_dump_types``."""
    module = types.ModuleType("resticm_test_dumps")
    module.resticm_dump_types = hookimpl(lambda: list(classes))  # type: ignore[attr-defined]
    return module


PLUGIN = dump_plugin(ScriptDump)


def registry(plugin: types.ModuleType = PLUGIN) -> PluginRegistry:
    """The builtins and *plugin* only: an installed resticm-dumps must not change these tests."""
    return PluginRegistry.default(plugins=[plugin], entry_points=False)


def make_config(tmp_path: Path, repo: Path, dumps: list[dict[str, Any]], **extra: Any) -> Any:
    data = {"repository": str(repo), "password": PASSWORD, "dumps": dumps, **extra}
    return config_from_dict(data, registry=registry(), base_dir=tmp_path)


def snapshots(tmp_path: Path, repo: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["restic", "snapshots", "--json"],
        env=restic_env(tmp_path / "cache", repo),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out) or []


def restic_dump(tmp_path: Path, repo: Path, snapshot: str, path: str) -> bytes:
    return subprocess.run(
        ["restic", "dump", snapshot, path],
        env=restic_env(tmp_path / "cache", repo),
        capture_output=True,
        check=True,
    ).stdout


def tool(tmp_path: Path, body: str) -> str:
    return str(write_script(tmp_path / "tools" / "dumptool", body))


def test_each_database_streams_into_its_own_tagged_snapshot(
    tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    script = tool(
        tmp_path,
        """
        # a dump bigger than a pipe buffer, with the database name in it
        i=0; while [ $i -lt 20000 ]; do echo "INSERT INTO t VALUES ($i, '$1');"; i=$((i+1)); done
        """,
    )
    config = make_config(
        tmp_path,
        repo,
        [{"type": "script-dump", "name": "app", "script": script, "databases": ["one", "two"]}],
        default_tags=["nightly"],
        host="web1",
    )
    report = run(config, registry=registry(), environ=environ, lock_dir=tmp_path / "locks")
    assert report.exit_code == 0, report.errors
    assert [s.name for s in report.steps] == ["dump app:one", "dump app:two"]
    found = {s["paths"][0]: s for s in snapshots(tmp_path, repo)}
    assert set(found) == {dump_path("app", "one"), dump_path("app", "two")}
    assert found[dump_path("app", "one")]["tags"] == ["dump:app:one", "nightly"]
    assert found[dump_path("app", "one")]["hostname"] == "web1"
    two = dump_path("app", "two")
    restored = restic_dump(tmp_path, repo, found[two]["id"], two)
    lines = restored.decode().splitlines()
    assert len(lines) == 20000 and lines[-1] == "INSERT INTO t VALUES (19999, 'two');"
    # The step's summary is the dump's own snapshot.
    assert report.steps[1].summary is not None
    assert report.steps[1].summary.snapshot_id == found[dump_path("app", "two")]["short_id"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("echo 'partial data'; echo 'FATAL: out of memory' >&2; exit 2", "failed with exit code 2"),
        ("echo 'partial data'; echo 'ERROR: table t is locked' >&2; exit 0", "reported an error"),
        ("exit 0", "produced no output"),
        ("echo 'partial data'; kill -9 $$", "killed by signal 9"),
    ],
    ids=["exit-code", "stderr-error-with-exit-0", "no-output", "killed"],
)
def test_a_failed_dump_leaves_no_snapshot_and_fails_like_pre_backup(
    tmp_path: Path,
    repo: Path,
    environ: dict[str, str],
    source: Path,
    calls: CallLog,
    body: str,
    expected: str,
) -> None:
    script = tool(tmp_path, body)
    hooks = {
        phase: [str(write_script(tmp_path / "hooks" / phase, calls.line(phase)))]
        for phase in ("pre_backup", "post_backup", "on_success", "on_error", "finally")
    }
    config = make_config(
        tmp_path,
        repo,
        [{"type": "script-dump", "script": script, "databases": ["one", "two"]}],
        directories=[str(source)],
        hooks=hooks,
    )
    report = run(config, registry=registry(), environ=environ, lock_dir=tmp_path / "locks")
    assert report.exit_code == 1
    assert calls.tags() == ["pre_backup", "on_error", "finally"]  # no post_backup, no backup
    steps = [s for s in report.steps if s.name != "preflight"]
    assert [s.name for s in steps] == ["dump script-dump:one"]  # stops at the first
    error = steps[0].error
    assert expected in error, error
    assert snapshots(tmp_path, repo) == []  # neither the cut dump nor the file backup
    assert "dump script-dump:one failed" in calls.entry("on_error")["ERROR"]
    assert report.backup_status.value == "failure"


def test_a_dump_past_its_timeout_is_stopped_and_its_snapshot_removed(
    tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    script = tool(tmp_path, "echo 'first rows'; exec sleep 60")
    config = make_config(
        tmp_path, repo, [{"type": "script-dump", "script": script, "timeout": "1s"}]
    )
    report = run(config, registry=registry(), environ=environ, lock_dir=tmp_path / "locks")
    assert report.exit_code == 1
    assert "timed out after 1s" in report.steps[0].error
    assert report.steps[0].duration < 30  # hang guard
    assert snapshots(tmp_path, repo) == []


def test_listing_failure_is_a_located_dump_failure(
    tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    config = make_config(
        tmp_path, repo, [{"type": "script-dump", "script": "/bin/true", "fail_listing": True}]
    )
    report = run(config, registry=registry(), environ=environ, lock_dir=tmp_path / "locks")
    assert report.exit_code == 1
    assert report.errors == (
        "dump script-dump failed: cannot list the databases: connection refused; backup skipped",
    )


def test_a_missing_tool_fails_with_the_reason(
    tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    config = make_config(
        tmp_path, repo, [{"type": "script-dump", "script": str(tmp_path / "nowhere")}]
    )
    report = run(config, registry=registry(), environ=environ, lock_dir=tmp_path / "locks")
    assert report.exit_code == 1
    assert "cannot run nowhere: No such file or directory" in report.errors[0]


def test_dumps_and_directories_both_back_up(
    tmp_path: Path, repo: Path, environ: dict[str, str], source: Path, calls: CallLog
) -> None:
    script = tool(tmp_path, "echo dump-of-$1")
    seen = tmp_path / "dump-snapshots"
    post = str(
        write_script(
            tmp_path / "hooks" / "post",
            calls.line("post_backup") + f'echo "$RESTICM_DUMP_SNAPSHOTS" > {seen}\n',
        )
    )
    config = make_config(
        tmp_path,
        repo,
        [{"type": "script-dump", "script": script}],
        directories=[str(source)],
        hooks={"post_backup": [post]},
    )
    report = run(config, registry=registry(), environ=environ, lock_dir=tmp_path / "locks")
    assert report.exit_code == 0, report.errors
    assert [s.name for s in report.steps] == ["dump script-dump:one", "backup"]
    assert sorted(s["paths"][0] for s in snapshots(tmp_path, repo)) == [
        dump_path("script-dump", "one"),
        str(source),
    ]
    assert calls.entry("post_backup")["BACKUP_STATUS"] == "success"
    dump_snapshot = report.steps[0].summary.snapshot_id  # type: ignore[union-attr]
    assert seen.read_text().strip() == f"script-dump:one={dump_snapshot}"


def test_dry_run_shows_the_pipe_and_runs_nothing(
    tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    marker = tmp_path / "ran"
    script = tool(tmp_path, f"touch {marker}; echo x")
    config = make_config(tmp_path, repo, [{"type": "script-dump", "script": script}])
    report = run(
        config, registry=registry(), environ=environ, lock_dir=tmp_path / "locks", dry_run=True
    )
    assert report.exit_code == 0
    (step,) = report.steps
    assert step.outcome.value == "skipped"
    assert step.command.startswith(f"{script} one | restic -r {repo} backup --json --stdin ")
    assert "--tag dump:script-dump:one" in step.command
    assert "tool-password" not in step.command
    assert not marker.exists()
    assert snapshots(tmp_path, repo) == []


def test_the_tool_gets_its_credentials_in_the_environment_not_restic_s(
    tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    seen = tmp_path / "seen"
    script = tool(
        tmp_path,
        f'echo "DUMP_SECRET=$DUMP_SECRET RESTIC_PASSWORD=${{RESTIC_PASSWORD-unset}}" > {seen}; '
        "echo data",
    )
    environ = {**environ, "RESTIC_PASSWORD": "inherited-secret"}
    config = make_config(tmp_path, repo, [{"type": "script-dump", "script": script}])
    report = run(config, registry=registry(), environ=environ, lock_dir=tmp_path / "locks")
    assert report.exit_code == 0, report.errors
    assert seen.read_text().strip() == "DUMP_SECRET=tool-password RESTIC_PASSWORD=unset"


def test_engine_with_fake_restic_reads_the_stream_and_forgets_a_failed_dump(
    tmp_path: Path,
) -> None:
    script = tool(tmp_path, "printf 'abc\\n'; exit 1")
    config = make_config(tmp_path, tmp_path / "r", [{"type": "script-dump", "script": script}])
    summary = json.dumps(
        {"message_type": "summary", "snapshot_id": "deadbeef", "total_bytes_processed": 4}
    )
    fake = FakeRestic()
    fake.respond("backup", stdout=[summary])
    report = run(config, registry=registry(), runner=fake, lock_dir=tmp_path / "locks")
    assert report.exit_code == 1
    backup, forget = fake.calls
    assert backup.stdin_data == b"abc\n"
    assert "--stdin-filename" in backup.args and "script-dump/one.sql" in backup.args
    assert forget.args == ("forget", "deadbeef")
    assert "its snapshot deadbeef was removed" in report.errors[0]


def test_unknown_type_and_duplicate_names_are_located_config_errors(
    tmp_path: Path, repo: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(tmp_path, repo, [{"type": "oracle"}])
    assert "dumps[0].type: unknown dump type 'oracle' (installed: script-dump)" in str(info.value)
    with pytest.raises(ConfigError) as info:
        make_config(
            tmp_path,
            repo,
            [{"type": "script-dump", "script": "a"}, {"type": "script-dump", "script": "b"}],
        )
    assert "dumps[1].name: dumps[0] already uses the name 'script-dump'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        make_config(tmp_path, repo, [{"script": "a"}])
    assert "dumps[0]: a dump needs 'type' (installed: script-dump)" in str(info.value)
    with pytest.raises(ConfigError) as info:
        make_config(tmp_path, repo, [{"type": "script-dump", "scirpt": "a"}])
    assert "dumps[0].scirpt: unknown key (did you mean 'script'?)" in str(info.value)


def test_an_interrupt_stops_the_dump_and_removes_its_snapshot(
    tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    import threading

    from resticm_core.dump_stream import StreamRequest, stream_dump
    from resticm_core.dumps import dump_environment
    from resticm_core.restic import Restic, SubprocessResticRunner

    started = tmp_path / "started"
    script = tool(tmp_path, f"echo 'first rows'; touch {started}; exec sleep 60")
    config = make_config(tmp_path, repo, [{"type": "script-dump", "script": script}])
    source = config.dumps[0]
    (target,) = source.targets(DumpContext(env=environ))
    cancel = threading.Event()

    def interrupt_when_started() -> None:
        for _ in range(600):
            if started.exists():
                break
            threading.Event().wait(0.05)
        cancel.set()

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    outcome = stream_dump(
        Restic(SubprocessResticRunner(environ=environ)),
        config.primary_repository(),
        StreamRequest(source=source, target=target),
        env=dump_environment(environ),
        cancel=cancel,
    )
    assert not outcome.ok
    assert "dumptool was stopped: resticm was interrupted" in outcome.error
    assert outcome.duration < 30  # hang guard: not the tool's 60 s
    assert snapshots(tmp_path, repo) == []


def test_config_validate_warns_about_a_dump_whose_tool_is_missing(tmp_path: Path) -> None:
    from resticm_core.config_file import config_warnings

    @attrs.frozen(kw_only=True)
    class NeedsTool(ScriptDump):
        kind: ClassVar[str] = "needs-tool"

        def check(self, ctx: DumpContext) -> list[str]:
            return ["pg_dump is not installed or not on PATH"]

    config = config_from_dict(
        {"repository": "/r", "password": "pw", "dumps": [{"type": "needs-tool"}]},
        registry=registry(dump_plugin(NeedsTool)),
    )
    assert config_warnings(config) == ["dumps[0]: pg_dump is not installed or not on PATH"]


def test_a_listed_database_dropped_before_its_dump_is_skipped_with_a_warning(
    tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    script = tool(
        tmp_path,
        """
        if [ "$1" = two ]; then echo "FATAL:  database \\"two\\" does not exist" >&2; exit 1; fi
        echo "dump of $1"
        """,
    )
    entry = {"type": "script-dump", "script": script, "databases": ["one", "two", "three"]}
    config = make_config(tmp_path, repo, [{**entry, "listed": ["two", "three"]}])
    report = run(config, registry=registry(), environ=environ, lock_dir=tmp_path / "locks")
    assert report.exit_code == 0, report.errors
    assert [(s.name, s.outcome.value) for s in report.steps] == [
        ("dump script-dump:one", "ok"),
        ("dump script-dump:two", "skipped"),
        ("dump script-dump:three", "ok"),
    ]
    assert report.warnings == (
        "dump script-dump:two skipped: the database was dropped after it was listed",
    )
    paths = sorted(s["paths"][0] for s in snapshots(tmp_path, repo))
    assert paths == [dump_path("script-dump", "one"), dump_path("script-dump", "three")]

    # Named in the config (not listed), the same error fails the backup.
    named = make_config(tmp_path, repo, [entry])
    report = run(named, registry=registry(), environ=environ, lock_dir=tmp_path / "locks")
    assert report.exit_code == 1
    assert 'database "two" does not exist' in report.errors[0]
