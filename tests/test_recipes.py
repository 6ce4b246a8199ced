"""The builtin recipes ``verify-files``, ``docker-stop`` and ``docker-start``, for real.

Runs go through :func:`resticm_core.run` with the real restic and a temporary
repository; ``docker`` is the recording fake of ``tool_fakes`` first on PATH, so
every test asserts the exact docker commands, what ran and the snapshot made.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resticm_core import ConfigError, HookContext, Phase, RunReport, config_from_dict, run
from resticm_core.builtins.docker_stop import DockerStopHook, state_key
from resticm_core.builtins.verify_files import human_age, human_size, parse_size
from resticm_core.locking import default_lock_dir
from resticm_core.phases import BackupStatus
from resticm_core.plugin_manager import PluginRegistry
from resticm_core.testing import RecordingSink

from .conftest import PASSWORD, requires_restic, restic_env
from .tool_fakes import FakeTools, install_fakes


@pytest.fixture
def fakes(tmp_path: Path) -> FakeTools:
    return install_fakes(tmp_path / "fakes", ["docker"])


def make_config(tmp_path: Path, repo: Path, sources: list[Path], hooks: dict[str, Any]) -> Any:
    return config_from_dict(
        {
            "repository": str(repo),
            "password": PASSWORD,
            "directories": [str(s) for s in sources],
            "hooks": hooks,
            "logging": {"file": "", "console": False},
        },
        base_dir=tmp_path,
    )


@pytest.fixture
def go(
    environ: dict[str, str], lock_dir: Path, fakes: FakeTools
) -> Callable[..., tuple[RunReport, RecordingSink, list[str]]]:
    """Run *config*; returns the report, the output and what on_error saw (ERROR)."""

    def do(
        config: Any, fail: tuple[str, ...] = (), extra: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        sink = RecordingSink()
        errors: list[str] = []

        def on_error(ctx: HookContext) -> None:
            errors.append(ctx.env.get("ERROR", ""))

        report = run(
            config,
            "backup",
            environ=fakes.env(environ, fail=fail),
            lock_dir=lock_dir,
            output=sink,
            hooks={"on_error": [on_error], **(extra or {})},
            **kwargs,
        )
        return report, sink, errors

    return do


def snapshots_in(repo: Path) -> list[str]:
    """The snapshot ids of a local repository, without a restic call (no key derivation)."""
    return sorted(p.name for p in (repo / "snapshots").iterdir())


def snapshot_paths(repo: Path, cache: Path) -> list[str]:
    out = subprocess.run(
        ["restic", "--no-lock", "ls", "latest"],
        env=restic_env(cache, repo),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.splitlines()[1:]


# -- verify-files --------------------------------------------------------------------------


def test_parse_size_and_humans() -> None:
    assert parse_size(1024) == 1024
    assert parse_size("1M") == 1024**2
    assert parse_size("1.5KiB") == 1536
    assert parse_size("2 GB") == 2 * 1024**3
    for bad in ("lots", "-1", True, 1.5, "1X"):
        with pytest.raises(ValueError, match="min_size"):
            parse_size(bad)
    assert human_size(12) == "12 bytes"
    assert human_size(1536) == "1.5 KiB"
    assert human_age(5400) == "1h30m"
    assert human_age(42) == "42s"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"paths": []}, "paths: list at least one file or glob"),
        ({"paths": ["x"], "min_size": "lots"}, "min_size: expected bytes"),
        ({"paths": ["x"], "max_age": "soon"}, "max_age"),
        ({"paths": ["x"], "bogus": 1}, "bogus"),
    ],
)
def test_verify_files_config_errors_are_located(
    tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(
            tmp_path, tmp_path, [tmp_path], {"pre_backup": [{"kind": "verify-files", **entry}]}
        )
    assert "hooks.pre_backup[0]" in str(caught.value)
    assert message in str(caught.value)


@requires_restic
@pytest.mark.restic
def test_verify_files_passes_good_dumps_and_the_backup_runs(
    tmp_path: Path, repo: Path, environ: dict[str, str], go: Any
) -> None:
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "mariadb.sql.gz").write_bytes(b"x" * 2048)
    old = dumps / "postgres-20250101.sql.gz"
    old.write_bytes(b"y" * 2048)
    os.utime(old, (time.time() - 86400, time.time() - 86400))
    (dumps / "postgres-20250102.sql.gz").write_bytes(b"z" * 2048)
    config = make_config(
        tmp_path,
        repo,
        [dumps],
        {
            "environment": {"BACKUP_DIR": str(dumps)},
            "pre_backup": [
                {
                    "kind": "verify-files",
                    "paths": ["${BACKUP_DIR}/mariadb.sql.gz", "dumps/postgres-*.sql.gz"],
                    "min_size": "1K",
                    "max_age": "2h",
                    "newest": True,  # the day-old dump is kept, and not checked
                }
            ],
        },
    )
    report, sink, errors = go(config)
    assert report.exit_code == 0, report.errors
    assert errors == []
    (hook,) = report.phase(Phase.PRE_BACKUP).hooks
    assert hook.kind == "verify-files" and hook.outcome == "ok"
    oks = [line for _, line in sink.lines if line.startswith("ok: ")]
    assert [o.split(" ")[1] for o in oks] == [
        str(dumps / "mariadb.sql.gz"),
        str(dumps / "postgres-20250102.sql.gz"),
    ]
    assert "2.0 KiB" in oks[0]
    assert str(dumps / "mariadb.sql.gz") in snapshot_paths(repo, Path(environ["RESTIC_CACHE_DIR"]))


@requires_restic
@pytest.mark.restic
def test_verify_files_reports_every_bad_file_and_skips_the_backup(
    tmp_path: Path, repo: Path, environ: dict[str, str], go: Any
) -> None:
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "empty.sql.gz").write_bytes(b"")
    (dumps / "small.sql.gz").write_bytes(b"x" * 100)
    stale = dumps / "stale.sql.gz"
    stale.write_bytes(b"x" * 4096)
    os.utime(stale, (time.time() - 3 * 3600, time.time() - 3 * 3600))
    (dumps / "subdir").mkdir()
    config = make_config(
        tmp_path,
        repo,
        [dumps],
        {
            "pre_backup": [
                {
                    "kind": "verify-files",
                    "paths": [
                        str(dumps / "empty.sql.gz"),
                        str(dumps / "small.sql.gz"),
                        str(dumps / "stale.sql.gz"),
                        str(dumps / "missing.sql.gz"),
                        str(dumps / "*.archive"),
                        str(dumps / "subdir"),
                        "${NOT_SET}/x",
                    ],
                    "min_size": "1K",
                    "max_age": "2h",
                }
            ],
        },
    )
    report, sink, errors = go(config)
    assert report.exit_code == 1
    assert report.backup_status is BackupStatus.NOT_RUN
    assert snapshots_in(repo) == []
    (hook,) = report.phase(Phase.PRE_BACKUP).hooks
    printed = [line for _, line in sink.lines if line.startswith("ERROR: ")]
    assert printed == [
        f"ERROR: {dumps}/empty.sql.gz is empty",
        f"ERROR: {dumps}/small.sql.gz is too small: 100 bytes, expected at least 1.0 KiB",
        f"ERROR: {dumps}/stale.sql.gz is too old: modified 3h00m ago, expected less than 2h00m",
        f"ERROR: {dumps}/missing.sql.gz does not exist",
        f"ERROR: no file matches {dumps}/*.archive",
        f"ERROR: {dumps}/subdir is not a regular file",
        "ERROR: ${NOT_SET}/x: $NOT_SET is not set (set it in hooks.environment)",
    ]
    assert hook.error == "; ".join(p.removeprefix("ERROR: ") for p in printed)
    assert len(errors) == 1 and "pre_backup failed" in errors[0]
    assert "small.sql.gz is too small" in errors[0]


@requires_restic
@pytest.mark.restic
def test_verify_files_dry_run_checks_nothing(tmp_path: Path, repo: Path, go: Any) -> None:
    config = make_config(
        tmp_path, repo, [tmp_path], {"pre_backup": [{"kind": "verify-files", "paths": ["nope"]}]}
    )
    report, sink, _ = go(config, dry_run=True)
    assert report.exit_code == 0, report.errors
    assert any("[dry-run] would run verify-files hook" in t for t in sink.texts())


# -- docker-stop / docker-start ------------------------------------------------------------


def docker_hooks(state_dir: Path, **stop: Any) -> dict[str, Any]:
    start = {"kind": "docker-start", "state_dir": str(state_dir)}
    return {
        "pre_backup": [{"kind": "docker-stop", "state_dir": str(state_dir), **stop}],
        "post_backup": [start],
        "finally": [start],
    }


@pytest.fixture
def stack(fakes: FakeTools) -> FakeTools:
    fakes.add_container("webapp", "backup-stop=true", "tier=web")
    fakes.add_container("redis", "backup-stop=true")
    fakes.add_container("worker", "backup-stop=true", running=False)  # not running: untouched
    fakes.add_container("monitoring")  # no label: keeps running
    return fakes


def test_registered_as_builtins() -> None:
    registry = PluginRegistry.default(entry_points=False)
    assert {"verify-files", "docker-stop", "docker-start"} <= registry.hook_types.keys()
    owners = {p.name: p.hook_kinds for p in registry.plugins()}
    assert owners["docker-stop"] == ("docker-stop", "docker-start")
    assert owners["verify-files"] == ("verify-files",)


def test_default_state_file_is_keyed_by_the_config(tmp_path: Path) -> None:
    """Without state_dir: resticm's private runtime directory, one file per config."""

    def ctx(config: str) -> HookContext:
        return HookContext(
            phase=Phase.PRE_BACKUP,
            command="backup",
            env={},
            variables={"RESTICM_CONFIG": config, "RESTICM_REPOSITORY": "/r"},
            config_dir=tmp_path,
        )

    a, b = ctx(str(tmp_path / "a.yaml")), ctx(str(tmp_path / "b.yaml"))
    path = DockerStopHook().state_file(a)
    assert path.parent == default_lock_dir()
    assert path.name == f"docker-stopped-{state_key(a)}.json"
    assert path.name.startswith("docker-stopped-a-")
    assert state_key(a) != state_key(b)
    assert DockerStopHook(state_dir="state").state_file(a).parent == tmp_path / "state"


@requires_restic
@pytest.mark.restic
def test_docker_stop_then_start_exactly_those(
    tmp_path: Path, repo: Path, source: Path, stack: FakeTools, go: Any, environ: dict[str, str]
) -> None:
    state_dir = tmp_path / "run"
    seen: list[list[str]] = []

    def during_backup(ctx: HookContext) -> None:  # runs last in pre_backup: all stopped
        seen.append(sorted(n for n, s in stack.containers().items() if s == "running"))
        record = next(state_dir.glob("docker-stopped-*.json"))
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
        seen.append(json.loads(record.read_text())["containers"])

    config = make_config(tmp_path, repo, [source], docker_hooks(state_dir, grace="45s"))
    report, sink, errors = go(config, extra={"pre_backup": [during_backup]})
    assert report.exit_code == 0, report.errors
    assert errors == []
    # While the backup ran: only what must keep running ran; the record was private.
    assert seen == [["monitoring"], ["redis", "webapp"]]
    assert stack.calls() == [
        "docker ps --format {{.Names}}",
        "docker ps --filter label=backup-stop=true --format {{.Names}}",
        "docker stop --time 45 redis",
        "docker stop --time 45 webapp",
        "docker start redis",  # post_backup
        "docker start webapp",
        # finally: nothing recorded any more, so no docker call at all
    ]
    assert stack.containers() == {
        "monitoring": "running",
        "redis": "running",
        "webapp": "running",
        "worker": "exited",
    }
    assert list(state_dir.iterdir()) == [], "the record is removed once all restarted"
    assert ("docker-start", "no container to restart") in sink.lines
    assert len(snapshots_in(repo)) == 1

    # Named containers only: no label filter.
    stack.reset_calls()
    run_again = make_config(
        tmp_path,
        repo,
        [source],
        {
            **docker_hooks(state_dir),
            "pre_backup": [
                {"kind": "docker-stop", "state_dir": str(state_dir), "containers": ["webapp"]},
            ],
        },
    )
    report, _, _ = go(run_again)
    assert report.exit_code == 0
    assert stack.calls() == [
        "docker ps --format {{.Names}}",
        "docker stop --time 30 webapp",
        "docker start webapp",
    ]


@requires_restic
@pytest.mark.restic
def test_pre_backup_failure_restarts_in_finally(
    tmp_path: Path, repo: Path, source: Path, stack: FakeTools, go: Any, environ: dict[str, str]
) -> None:
    """A dump after the stop fails: no backup, no post_backup, finally restarts, on_error ran."""
    state_dir = tmp_path / "run"
    hooks = docker_hooks(state_dir)
    dump = tmp_path / "dump.sh"
    dump.write_text("#!/bin/sh\necho 'ERROR: dump failed' >&2\nexit 1\n")
    dump.chmod(0o700)
    hooks["pre_backup"].append(str(dump))
    report, _, errors = go(make_config(tmp_path, repo, [source], hooks))
    assert report.exit_code == 1
    assert snapshots_in(repo) == []
    assert report.phase(Phase.POST_BACKUP) is None
    assert stack.calls("docker")[-2:] == ["docker start redis", "docker start webapp"]
    assert stack.containers()["webapp"] == "running"
    assert len(errors) == 1 and "ERROR: dump failed" in errors[0]
    assert list(state_dir.iterdir()) == []


@requires_restic
@pytest.mark.restic
def test_a_container_that_will_not_stop(
    tmp_path: Path, repo: Path, source: Path, stack: FakeTools, go: Any
) -> None:
    """redis stopped, webapp will not: the hook fails, finally restarts redis only."""
    state_dir = tmp_path / "run"
    config = make_config(tmp_path, repo, [source], docker_hooks(state_dir))
    report, _, errors = go(config, fail=("docker-stop:webapp",))
    assert report.exit_code == 1
    (hook,) = report.phase(Phase.PRE_BACKUP).hooks
    assert hook.error.startswith("cannot stop webapp: exited with status 1 (Error response")
    assert "cannot stop webapp" in errors[0]
    assert stack.calls()[-3:] == [
        "docker stop --time 30 redis",
        "docker stop --time 30 webapp",
        "docker start redis",
    ]


@requires_restic
@pytest.mark.restic
def test_failed_restart_stays_recorded_for_finally(
    tmp_path: Path, repo: Path, source: Path, stack: FakeTools, go: Any
) -> None:
    state_dir = tmp_path / "run"
    config = make_config(tmp_path, repo, [source], docker_hooks(state_dir))
    report, _, _ = go(config, fail=("docker-start:redis",))
    # post_backup and finally failures are warnings: the backup itself is fine.
    assert report.exit_code == 0
    assert any("cannot start redis" in w for w in report.warnings)
    # post_backup: redis fails, webapp starts; finally tries redis again, and only redis.
    starts = [c for c in stack.calls() if c.startswith("docker start")]
    assert starts == ["docker start redis", "docker start webapp", "docker start redis"]
    record = next(state_dir.glob("docker-stopped-*.json"))
    assert json.loads(record.read_text())["containers"] == ["redis"]


@requires_restic
@pytest.mark.restic
def test_stale_record_of_a_killed_run_is_restarted(
    tmp_path: Path, repo: Path, source: Path, stack: FakeTools, go: Any
) -> None:
    state_dir = tmp_path / "run"
    config = make_config(tmp_path, repo, [source], docker_hooks(state_dir))
    stack.add_container("legacy", running=False)
    ctx = HookContext(
        phase=Phase.PRE_BACKUP,
        command="backup",
        env={},
        variables={"RESTICM_CONFIG": "", "RESTICM_REPOSITORY": str(repo)},
        config_dir=config.config_dir,
    )
    DockerStopHook(state_dir=str(state_dir)).write_state(ctx, ["legacy"])
    report, sink, _ = go(config)
    assert report.exit_code == 0, report.errors
    assert any("never restarted: legacy" in t for t in sink.texts())
    starts = [c for c in stack.calls() if c.startswith("docker start")]
    assert starts == ["docker start legacy", "docker start redis", "docker start webapp"]


@requires_restic
@pytest.mark.restic
def test_docker_missing_and_dry_run(
    tmp_path: Path,
    repo: Path,
    source: Path,
    stack: FakeTools,
    environ: dict[str, str],
    lock_dir: Path,
) -> None:
    config = make_config(tmp_path, repo, [source], docker_hooks(tmp_path / "run"))
    dry = run(
        config,
        "backup",
        environ=stack.env(environ),
        lock_dir=lock_dir,
        dry_run=True,
        output=RecordingSink(),
    )
    assert dry.exit_code == 0, dry.errors
    assert stack.calls() == [], "a dry run runs no docker command"

    # A PATH with restic and no docker at all.
    only_restic = tmp_path / "only-restic"
    only_restic.mkdir()
    (only_restic / "restic").symlink_to(shutil.which("restic") or "restic")
    env = {**stack.env(environ), "PATH": str(only_restic)}
    report = run(config, "backup", environ=env, lock_dir=lock_dir, output=RecordingSink())
    assert report.exit_code == 1
    (hook,) = report.phase(Phase.PRE_BACKUP).hooks
    assert hook.error == "docker-stop: the command 'docker' was not found on PATH"


def test_config_validate_lists_the_recipes(tmp_path: Path) -> None:
    """`resticm plugins` shows the new builtins (loaded via entry points or the fallback)."""
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    kinds = {k for p in json.loads(result.stdout) for k in p["hook_kinds"]}
    assert {"verify-files", "docker-stop", "docker-start"} <= kinds
