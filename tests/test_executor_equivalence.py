"""The hooks guide's orchestrator pattern, three ways, with identical results.

The guide's Pattern 1 is a main script looping over ``pre-backup.d/*.sh``. resticm
offers the same thing three ways, and a user must be able to move between them
without a difference anyone can observe:

- ``kind: script``: the guide's orchestrator script, calling the modules;
- ``kind: directory``: the modules as a ``.d`` directory hook (the loop built in);
- ``kind: python``: one function per module, ``python:<module>:<function>``.

The modules: *dump* writes a "database dump" into a backed-up directory, *stop*
writes a "stopped" marker; post_backup's *cleanup* removes the dump after a
successful backup and *start* removes the marker. Every module appends one line
to a call log, so the order of execution is compared too. Each kind runs a real
backup into a real repository.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resticm_core import Phase, RunReport, config_from_dict, run, run_phase_hooks
from resticm_core.phases import BackupStatus

from .conftest import PASSWORD, requires_restic, restic_env, snapshot_ids, write_script

KINDS = ["script", "directory", "python"]

DUMP = "-- app database\nINSERT INTO customers VALUES ('1','Ada');\n"

SUCCESS_ORDER = [
    "pre:dump",
    "pre:stop",
    "post:cleanup BACKUP_STATUS=success",
    "post:start BACKUP_STATUS=success",
    "on_success BACKUP_STATUS=success",
    "finally BACKUP_STATUS=success",
]
FAILURE_ORDER = [
    "pre:dump",
    "on_error BACKUP_STATUS=not_run",
    "finally BACKUP_STATUS=not_run",
]

# -- the modules as shell scripts (kinds script and directory) ---------------------------------

SH_MODULES = {
    "pre-backup.d/10-dump.sh": """\
        set -e
        echo "pre:dump" >> "$EQUIV_LOG"
        if [ "${EQUIV_FAIL_DUMP:-0}" = 1 ]; then
            echo "ERROR: dump failed: database unreachable" >&2
            exit 1
        fi
        mkdir -p "$EQUIV_DUMPS"
        printf '%s' "$EQUIV_DUMP_TEXT" > "$EQUIV_DUMPS/app.sql"
        [ -s "$EQUIV_DUMPS/app.sql" ]
        """,
    "pre-backup.d/20-stop.sh": """\
        set -e
        echo "pre:stop" >> "$EQUIV_LOG"
        echo stopped > "$EQUIV_MARKER"
        """,
    "post-backup.d/10-cleanup.sh": """\
        echo "post:cleanup BACKUP_STATUS=$BACKUP_STATUS" >> "$EQUIV_LOG"
        if [ "$BACKUP_STATUS" = success ]; then
            rm -f "$EQUIV_DUMPS"/*.sql
        fi
        """,
    "post-backup.d/20-start.sh": """\
        echo "post:start BACKUP_STATUS=$BACKUP_STATUS" >> "$EQUIV_LOG"
        rm -f "$EQUIV_MARKER"
        """,
    "on-success.d/10-report.sh": """\
        echo "on_success BACKUP_STATUS=$BACKUP_STATUS" >> "$EQUIV_LOG"
        """,
    "on-error.d/10-alert.sh": """\
        echo "on_error BACKUP_STATUS=$BACKUP_STATUS" >> "$EQUIV_LOG"
        printf '%s\\n' "$ERROR" > "$EQUIV_LOG.error"
        """,
    "finally.d/10-always.sh": """\
        echo "finally BACKUP_STATUS=$BACKUP_STATUS" >> "$EQUIV_LOG"
        """,
}


def guide_orchestrator(script_dir: Path, log_file: Path, *, pipefail: bool = True) -> str:
    """The hooks guide's main orchestrator (Pattern 1), with its paths filled in.

    With *pipefail* it gets the one line the guide lacks: its modules run as
    ``"$script" 2>&1 | tee -a "$LOG_FILE"``, and without ``pipefail`` the status
    of that pipeline is tee's, so a failing module goes unnoticed (see
    :func:`test_guide_orchestrator_without_pipefail_misses_failures`).
    """
    return textwrap.dedent(f"""\
        #!/bin/bash
        # /etc/resticm/hooks/pre-backup.sh

        set -e  # Exit on any error
        {"set -o pipefail  # a module's failure must not be hidden by tee" if pipefail else ""}

        SCRIPT_DIR="{script_dir}"
        LOG_FILE="{log_file}"

        log() {{
            echo "[$(date '+%Y-%m-%d %H:%M:%S')] $*" | tee -a "$LOG_FILE"
        }}

        log "========================================="
        log "Starting hooks"
        log "========================================="

        # Execute all scripts in numerical order
        for script in "$SCRIPT_DIR"/*.sh; do
            if [ ! -x "$script" ]; then
                log "⚠️  Skipping non-executable: $(basename $script)"
                continue
            fi

            script_name=$(basename "$script")
            log "🔄 Executing: $script_name"

            if ! "$script" 2>&1 | tee -a "$LOG_FILE"; then
                log "❌ Failed: $script_name"
                exit 1  # Stop on first failure
            fi

            log "✅ Completed: $script_name"
        done

        log "========================================="
        log "All hooks completed"
        log "========================================="
        exit 0
        """)


def write_modules(hooks_dir: Path) -> None:
    for name, body in SH_MODULES.items():
        write_script(hooks_dir / name, textwrap.dedent(body))
    for directory in hooks_dir.iterdir():
        directory.chmod(0o700)


# -- the modules as Python functions (kind python) -------------------------------------------------

PY_MODULE = '''\
"""The orchestrator's modules as functions: python:{name}:<function>."""

from pathlib import Path


def _record(ctx, line):
    with open(ctx.env["EQUIV_LOG"], "a") as log:
        log.write(line + "\\n")


def dump(ctx):
    _record(ctx, "pre:dump")
    if ctx.env.get("EQUIV_FAIL_DUMP") == "1":
        raise RuntimeError("dump failed: database unreachable")
    dumps = Path(ctx.env["EQUIV_DUMPS"])
    dumps.mkdir(parents=True, exist_ok=True)
    (dumps / "app.sql").write_text(ctx.env["EQUIV_DUMP_TEXT"])
    return (dumps / "app.sql").stat().st_size > 0


def stop(ctx):
    _record(ctx, "pre:stop")
    Path(ctx.env["EQUIV_MARKER"]).write_text("stopped\\n")


def cleanup(ctx):
    status = ctx.env["BACKUP_STATUS"]
    _record(ctx, "post:cleanup BACKUP_STATUS=" + status)
    if status == "success":
        for dump in Path(ctx.env["EQUIV_DUMPS"]).glob("*.sql"):
            dump.unlink()


def start(ctx):
    _record(ctx, "post:start BACKUP_STATUS=" + ctx.env["BACKUP_STATUS"])
    Path(ctx.env["EQUIV_MARKER"]).unlink(missing_ok=True)


def report(ctx):
    _record(ctx, "on_success BACKUP_STATUS=" + ctx.env["BACKUP_STATUS"])


def alert(ctx):
    _record(ctx, "on_error BACKUP_STATUS=" + ctx.env["BACKUP_STATUS"])
    Path(ctx.env["EQUIV_LOG"] + ".error").write_text(ctx.env["ERROR"] + "\\n")


def always(ctx):
    _record(ctx, "finally BACKUP_STATUS=" + ctx.env["BACKUP_STATUS"])
'''


@pytest.fixture
def module_name() -> Iterator[str]:
    """A module name no other test uses; forgotten by the import system afterwards."""
    name = f"equiv_hooks_{uuid.uuid4().hex}"
    yield name
    sys.modules.pop(name, None)


def hooks_for(kind: str, tmp_path: Path, module_name: str) -> dict[str, Any]:
    """The ``hooks:`` section doing the same work with executors of *kind*."""
    hooks_dir = tmp_path / "hooks"
    if kind == "python":
        (tmp_path / f"{module_name}.py").write_text(PY_MODULE.format(name=module_name))

        def call(*functions: str) -> list[dict[str, str]]:
            return [{"kind": "python", "callable": f"{module_name}:{f}"} for f in functions]

        return {
            "pre_backup": call("dump", "stop"),
            "post_backup": call("cleanup", "start"),
            "on_success": call("report"),
            "on_error": call("alert"),
            "finally": call("always"),
        }
    write_modules(hooks_dir)
    if kind == "directory":
        def directory(name: str) -> list[dict[str, str]]:
            return [{"kind": "directory", "path": str(hooks_dir / name)}]

        return {
            "pre_backup": directory("pre-backup.d"),
            "post_backup": directory("post-backup.d"),
            "on_success": directory("on-success.d"),
            "on_error": directory("on-error.d"),
            "finally": directory("finally.d"),
        }
    # kind: script — one orchestrator per phase, as in the guide.
    entries = {}
    for phase, directory_name in [("pre_backup", "pre-backup.d"), ("post_backup", "post-backup.d"),
                                  ("on_success", "on-success.d"), ("on_error", "on-error.d"),
                                  ("finally", "finally.d")]:
        orchestrator = hooks_dir / f"{directory_name[:-2]}.sh"
        orchestrator.write_text(guide_orchestrator(hooks_dir / directory_name,
                                                   tmp_path / "orchestrator.log"))
        orchestrator.chmod(0o700)
        entries[phase] = [{"kind": "script", "path": str(orchestrator)}]
    return entries


class World:
    """One kind's run: its config, its paths, what it left behind."""

    def __init__(self, kind: str, tmp_path: Path, repo: Path, source: Path,
                 environ: dict[str, str], module_name: str) -> None:
        self.tmp_path = tmp_path
        self.repo = repo
        self.cache = Path(environ["RESTIC_CACHE_DIR"])
        self.environ = environ
        self.log = tmp_path / "calls.log"
        self.dumps = tmp_path / "dumps"
        self.marker = tmp_path / "app.stopped"
        hooks = hooks_for(kind, tmp_path, module_name)
        hooks["environment"] = {
            "EQUIV_LOG": str(self.log),
            "EQUIV_DUMPS": str(self.dumps),
            "EQUIV_MARKER": str(self.marker),
            "EQUIV_DUMP_TEXT": DUMP,
        }
        self.config = config_from_dict({
            "repository": str(repo),
            "password": PASSWORD,
            # The dump directory does not exist yet: the dump module creates it.
            "directories": [str(source), str(self.dumps)],
            "hooks": hooks,
            "logging": {"file": "", "console": False},
        }, base_dir=tmp_path)

    def run(self, **environ: str) -> RunReport:
        return run(self.config, "backup", environ={**self.environ, **environ},
                   lock_dir=self.tmp_path / "locks")

    def order(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def snapshot_paths(self) -> list[str]:
        import subprocess

        out = subprocess.run(["restic", "--no-lock", "ls", "latest"],
                             env=restic_env(self.cache, self.repo), capture_output=True,
                             text=True, check=True)
        return out.stdout.splitlines()

    def snapshot_file(self, path: Path) -> str:
        import subprocess

        out = subprocess.run(["restic", "--no-lock", "dump", "latest", str(path)],
                             env=restic_env(self.cache, self.repo), capture_output=True,
                             text=True, check=True)
        return out.stdout


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path, repo: Path, source: Path,
          environ: dict[str, str], module_name: str) -> World:
    return World(request.param, tmp_path, repo, source, environ, module_name)


pytestmark = [requires_restic, pytest.mark.restic]


@pytest.mark.parametrize("world", KINDS, indirect=True)
def test_same_work_same_result(world: World) -> None:
    report = world.run()

    assert report.exit_code == 0, report.errors
    assert report.backup_status is BackupStatus.SUCCESS
    assert world.order() == SUCCESS_ORDER
    # The dump was in the backed-up directory while restic ran...
    dump = world.dumps / "app.sql"
    assert str(dump) in world.snapshot_paths()
    assert world.snapshot_file(dump) == DUMP
    assert snapshot_ids(world.repo, world.cache) == [report.snapshot_id]
    # ...and post_backup cleaned it up and "started" the app again.
    assert world.dumps.is_dir() and list(world.dumps.iterdir()) == []
    assert not world.marker.exists()
    assert report.warnings == ()


@pytest.mark.parametrize("world", KINDS, indirect=True)
def test_same_failure_same_result(world: World) -> None:
    report = world.run(EQUIV_FAIL_DUMP="1")

    assert report.exit_code == 1
    assert report.backup_status is BackupStatus.NOT_RUN
    assert world.order() == FAILURE_ORDER, "stop never ran, post_backup did not run"
    assert report.phase(Phase.POST_BACKUP) is None
    assert snapshot_ids(world.repo, world.cache) == []
    assert not (world.dumps / "app.sql").exists()
    assert not world.marker.exists()
    error = Path(f"{world.log}.error").read_text()
    assert error.startswith("pre_backup failed:")
    assert "dump" in error


def test_guide_orchestrator_without_pipefail_misses_failures(
    tmp_path: Path, repo: Path, environ: dict[str, str],
) -> None:
    """The guide's orchestrator, verbatim, reports success when a module fails.

    Its modules run as ``"$script" 2>&1 | tee -a "$LOG_FILE"``; without
    ``set -o pipefail`` a pipeline's status is its last command's (tee: 0). The
    ``directory`` kind has no such trap. docs/hooks.md says so.
    """
    modules = tmp_path / "pre-backup.d"
    write_script(modules / "10-dump.sh", "echo 'dump failed' >&2\nexit 1\n")
    write_script(modules / "20-next.sh", f"touch {tmp_path / 'next-ran'}\n")
    results = {}
    for pipefail in (False, True):
        script = tmp_path / f"pre-backup-{pipefail}.sh"
        script.write_text(guide_orchestrator(modules, tmp_path / "o.log", pipefail=pipefail))
        script.chmod(0o700)
        config = config_from_dict({
            "repository": str(repo), "password": PASSWORD, "directories": [str(tmp_path)],
            "hooks": {"pre_backup": str(script)}, "logging": {"file": "", "console": False},
        }, base_dir=tmp_path)
        results[pipefail] = run_phase_hooks(config, "pre_backup", environ=environ)

    assert not results[False].failed, "verbatim: the failing module goes unnoticed"
    assert results[True].failed
    assert "exited with status 1" in results[True].error
    directory = config_from_dict({
        "repository": str(repo), "password": PASSWORD, "directories": [str(tmp_path)],
        "hooks": {"pre_backup": str(modules) + "/"}, "logging": {"file": "", "console": False},
    }, base_dir=tmp_path)
    (tmp_path / "next-ran").unlink()
    result = run_phase_hooks(directory, "pre_backup", environ=environ)
    assert result.failed and [h.outcome.value for h in result.hooks] == ["failed"]
    assert not (tmp_path / "next-ran").exists(), "the directory runner stops at the failure"
