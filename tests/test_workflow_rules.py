"""DESIGN §3, row by row, against the real restic binary and real hook scripts.

Each hook script appends one line to a call log with the variables it saw, so
every test asserts which hooks ran, in which order, and with what environment.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resticm_core import Phase, RunReport, SkipBackup, config_from_dict, run
from resticm_core.phases import BackupStatus, Outcome

from .conftest import PASSWORD, CallLog, requires_restic, snapshot_ids, write_script

pytestmark = [requires_restic, pytest.mark.restic]

PHASES = ("pre_backup", "post_backup", "on_success", "on_error", "finally")


def recording_hooks(tmp_path: Path, calls: CallLog, **bodies: str) -> dict[str, str]:
    """One script per phase that records its call; *bodies* adds shell after the record."""
    hooks = {}
    for phase in PHASES:
        script = write_script(
            tmp_path / "hooks" / f"{phase}.sh", calls.line(phase) + bodies.get(phase, "exit 0\n")
        )
        hooks[phase] = str(script)
    return hooks


def make_config(
    repo: Path, sources: list[Path | str], hooks: dict[str, Any], tmp_path: Path, **extra: Any
) -> Any:
    data = {
        "repository": str(repo),
        "password": PASSWORD,
        "directories": [str(s) for s in sources],
        "hooks": hooks,
        "logging": {"file": "", "console": False},
        **extra,
    }
    return config_from_dict(data, base_dir=tmp_path)


@pytest.fixture
def do_run(environ: dict[str, str], lock_dir: Path) -> Callable[..., RunReport]:
    def go(config: Any, command: str = "backup", **kwargs: Any) -> RunReport:
        return run(config, command, environ=environ, lock_dir=lock_dir, **kwargs)

    return go


def steps(report: RunReport) -> list[tuple[str, str]]:
    return [(s.name, s.outcome.value) for s in report.steps]


# -- pre_backup fails ----------------------------------------------------------------------------

PRE_FAILURES = {
    "exit-1": lambda tmp, calls: calls.line("pre_backup") + "echo 'dump failed' >&2\nexit 1\n",
    "timeout": lambda tmp, calls: calls.line("pre_backup") + "sleep 30\n",
    "missing-file": None,
    "python-exception": "python",
}


def _pre_backup_entry(kind: str, tmp_path: Path, calls: CallLog) -> Any:
    if kind == "missing-file":
        return str(tmp_path / "hooks" / "does-not-exist.sh")
    if kind == "python-exception":
        module = tmp_path / f"prehooks_{os.getpid()}_{abs(hash(str(tmp_path)))}.py"
        module.write_text(
            "import os\n"
            "def boom(ctx):\n"
            f"    log = open({str(calls.path)!r}, 'a')\n"
            "    log.write('pre_backup RESTICM_PHASE=' + ctx.env['RESTICM_PHASE'] + '\\n')\n"
            "    raise RuntimeError('database is down')\n"
        )
        return f"python:{module.stem}:boom"
    body = PRE_FAILURES[kind](tmp_path, calls)  # type: ignore[operator]
    script = write_script(tmp_path / "hooks" / "pre.sh", body)
    return (
        [{"kind": "script", "path": str(script), "timeout": 1}]
        if kind == "timeout"
        else str(script)
    )


@pytest.mark.parametrize("kind", list(PRE_FAILURES))
@pytest.mark.parametrize("command", ["backup", "full"])
def test_pre_backup_failure_aborts_backup_and_full(
    command: str,
    kind: str,
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    environ: dict[str, str],
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls)
    hooks["pre_backup"] = _pre_backup_entry(kind, tmp_path, calls)
    report = do_run(make_config(repo, [source], hooks, tmp_path), command)

    ran = [t for t in calls.tags() if t != "pre_backup"]
    assert ran == ["on_error", "finally"], "post_backup and on_success must not run"
    assert report.exit_code == 1
    assert report.backup_status is BackupStatus.NOT_RUN
    assert [s.name for s in report.steps if s.name != "preflight"] == [], "nothing after it runs"
    assert calls.entry("on_error")["BACKUP_STATUS"] == "not_run"
    assert "pre_backup" in calls.entry("on_error")["ERROR"]
    assert snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"])) == []
    expected = {
        "exit-1": "exited with status 1 (last output: dump failed)",
        "timeout": "timed out after 1s",
        "missing-file": "does not exist",
        "python-exception": "RuntimeError: database is down",
    }[kind]
    assert expected in report.errors[0]


@pytest.mark.parametrize("kind", ["exit-1", "missing-file"])
def test_pre_backup_failure_default_workflow_continues_with_forget(
    kind: str,
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls)
    hooks["pre_backup"] = _pre_backup_entry(kind, tmp_path, calls)
    report = do_run(make_config(repo, [source], hooks, tmp_path), "default")

    assert [t for t in calls.tags() if t != "pre_backup"] == ["on_error", "finally"]
    assert ("forget", "ok") in steps(report)
    assert "backup" not in [s.name for s in report.steps]
    assert report.exit_code == 1


# -- soft skip (exit 75 / SkipBackup) ------------------------------------------------------------


@pytest.mark.parametrize("form", ["script", "directory-module", "python"])
@pytest.mark.parametrize("command", ["backup", "default"])
def test_soft_skip(
    command: str,
    form: str,
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    environ: dict[str, str],
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls)
    if form == "script":
        hooks["pre_backup"] = str(write_script(tmp_path / "hooks" / "skip.sh", "exit 75\n"))
    elif form == "directory-module":
        d = tmp_path / "hooks" / "pre-backup.d"
        write_script(d / "10-check", "exit 75\n")
        write_script(d / "20-never", calls.line("never"))
        d.chmod(0o700)
        hooks["pre_backup"] = str(d) + "/"
    else:
        module = tmp_path / f"skiphooks_{abs(hash(str(tmp_path)))}.py"
        module.write_text(
            "from resticm_core import SkipBackup\n"
            "def maybe(ctx):\n    raise SkipBackup('maintenance window')\n"
        )
        hooks["pre_backup"] = f"python:{module.stem}:maybe"
    report = do_run(make_config(repo, [source], hooks, tmp_path), command)

    assert calls.tags() == ["on_success", "finally"]
    assert calls.entry("on_success")["BACKUP_STATUS"] == "skipped"
    assert report.exit_code == 0 and report.errors == ()
    assert report.backup_status is BackupStatus.SKIPPED
    assert snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"])) == []
    assert (("forget", "ok") in steps(report)) == (command == "default")


def test_exit_75_outside_pre_backup_counts_as_success(
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls, post_backup="exit 75\n")
    report = do_run(make_config(repo, [source], hooks, tmp_path))
    assert calls.tags() == ["pre_backup", "post_backup", "on_success", "finally"]
    assert report.exit_code == 0 and report.warnings == ()


# -- backup fails --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["missing-source", "restic-error"])
@pytest.mark.parametrize("command", ["backup", "default"])
def test_backup_failure_runs_post_backup_with_failure(
    command: str,
    how: str,
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    do_run: Callable[..., RunReport],
) -> None:
    sources: list[Path | str] = [source]
    bodies = {}
    if how == "missing-source":
        sources.append(tmp_path / "dumps-not-created")
    else:
        # The hook breaks the repository after the preflight: restic itself fails.
        bodies["pre_backup"] = f"rm -rf {repo}/keys\nexit 0\n"
    hooks = recording_hooks(tmp_path, calls, **bodies)
    report = do_run(make_config(repo, sources, hooks, tmp_path), command)

    assert calls.tags() == ["pre_backup", "post_backup", "on_error", "finally"]
    post = calls.entry("post_backup")
    assert post["BACKUP_STATUS"] == "failure"
    assert post["BACKUP_ERROR"], "BACKUP_ERROR must say why"
    if how == "missing-source":
        assert "does not exist" in post["BACKUP_ERROR"]
    assert report.exit_code == 1
    assert report.backup_status is BackupStatus.FAILURE
    assert ("forget" in [s.name for s in report.steps]) == (command == "default")


# -- partial backup (restic exit 3) --------------------------------------------------------------


@pytest.mark.parametrize("command", ["backup", "default"])
def test_partial_backup_is_success_with_marker_and_exit_3(
    command: str,
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    sleeper: int,
    environ: dict[str, str],
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls)
    unreadable = f"/proc/{sleeper}/mem"  # read() fails with EIO, even for root
    report = do_run(make_config(repo, [source, unreadable], hooks, tmp_path), command)

    assert calls.tags() == ["pre_backup", "post_backup", "on_success", "finally"]
    assert calls.entry("post_backup")["BACKUP_STATUS"] == "success"
    assert calls.entry("post_backup")["RESTICM_BACKUP_PARTIAL"] == "1"
    assert calls.entry("on_success")["BACKUP_STATUS"] == "partial"
    assert report.exit_code == 3
    assert report.backup_status is BackupStatus.PARTIAL
    assert report.snapshot_id in snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"]))



def test_partial_backup_and_a_failing_step_exit_1(
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    sleeper: int,
    environ: dict[str, str],
    do_run: Callable[..., RunReport],
) -> None:
    """Exit-code precedence: a failure (1) beats a partial backup (3).

    The backup is partial (restic exits 3 on an unreadable file) and the forget after it
    fails (restic refuses the retention policy): the run is a failure, on_error runs.
    """
    hooks = recording_hooks(tmp_path, calls)
    unreadable = f"/proc/{sleeper}/mem"
    config = make_config(
        repo, [source, unreadable], hooks, tmp_path, retention={"keep_within": "not-a-duration"}
    )
    report = do_run(config, "default")

    assert [(s.name, s.outcome) for s in report.steps] == [
        ("preflight", Outcome.OK),
        ("backup", Outcome.PARTIAL),
        ("forget", Outcome.FAILED),
    ]
    assert report.backup_status is BackupStatus.PARTIAL  # the snapshot was written
    assert report.snapshot_id in snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"]))
    assert report.exit_code == 1
    assert calls.tags() == ["pre_backup", "post_backup", "on_error", "finally"]
    assert "restic forget failed on primary" in calls.entry("on_error")["ERROR"]

# -- post_backup fails ---------------------------------------------------------------------------


def test_post_backup_failure_keeps_backup_successful(
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    environ: dict[str, str],
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls, post_backup="echo 'cleanup broke' >&2\nexit 4\n")
    report = do_run(make_config(repo, [source], hooks, tmp_path))

    assert calls.tags() == ["pre_backup", "post_backup", "on_success", "finally"]
    assert report.exit_code == 0, "a post_backup failure does not fail the run"
    assert report.backup_status is BackupStatus.SUCCESS
    assert any("post_backup failed" in w and "cleanup broke" in w for w in report.warnings)
    assert report.phase(Phase.POST_BACKUP) is not None and report.phase(Phase.POST_BACKUP).failed  # type: ignore[union-attr]
    assert len(snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"]))) == 1


# -- on_success / on_error exactly once; ERROR lists every failed step ---------------------------


def test_on_error_runs_once_listing_every_failed_step(
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls)
    config = make_config(
        repo,
        [source, tmp_path / "missing"],
        hooks,
        tmp_path,
        retention={"keep_within": "not-a-duration"},
    )
    report = do_run(config, "default")

    assert calls.tags().count("on_error") == 1 and "on_success" not in calls.tags()
    assert calls.tags()[-2:] == ["on_error", "finally"], "after every step"
    error = calls.entry("on_error")["ERROR"]
    assert "source directory" in error and "restic forget failed on primary" in error
    assert [(s.name, s.outcome) for s in report.steps] == [
        ("preflight", Outcome.OK),
        ("backup", Outcome.FAILED),
        ("forget", Outcome.FAILED),
    ]


def test_success_path_variables(
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    environ: dict[str, str],
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls)
    report = do_run(make_config(repo, [source], hooks, tmp_path), "default")

    assert calls.tags() == ["pre_backup", "post_backup", "on_success", "finally"]
    assert report.exit_code == 0
    snapshot = report.snapshot_id
    assert snapshot and snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"])) == [snapshot]
    assert calls.entry("post_backup")["RESTICM_SNAPSHOT_ID"] == snapshot
    assert calls.entry("on_success")["BACKUP_STATUS"] == "success"
    assert calls.entry("finally")["BACKUP_STATUS"] == "success"
    assert calls.entry("pre_backup")["BACKUP_STATUS"] == ""
    assert [s.name for s in report.steps] == ["preflight", "backup", "forget"]


# -- finally -------------------------------------------------------------------------------------


def test_finally_failure_leaves_exit_code(
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls, **{"finally": "exit 9\n"})
    report = do_run(make_config(repo, [source], hooks, tmp_path))
    assert calls.tags()[-1] == "finally"
    assert report.exit_code == 0
    assert any(w.startswith("finally failed") for w in report.warnings)


# -- --no-hooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["backup", "default", "full"])
def test_no_hooks_runs_no_hook_of_any_phase(
    command: str,
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    environ: dict[str, str],
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls, pre_backup="exit 1\n")
    report = do_run(make_config(repo, [source], hooks, tmp_path), command, no_hooks=True)
    assert calls.tags() == [], "not even finally"
    assert report.exit_code == 0
    assert len(snapshot_ids(repo, Path(environ["RESTIC_CACHE_DIR"]))) == 1


# -- --dry-run -----------------------------------------------------------------------------------


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("command", ["backup", "default", "full"])
def test_dry_run_executes_nothing(
    command: str,
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls)
    before = _tree_digest(repo)
    report = do_run(make_config(repo, [source], hooks, tmp_path), command, dry_run=True)

    assert calls.tags() == [], "no hook executed"
    assert _tree_digest(repo) == before, "repository byte-identical"
    assert report.exit_code == 0 and report.dry_run
    assert all(s.outcome is Outcome.SKIPPED for s in report.steps)
    backup = next(s for s in report.steps if s.name == "backup")
    assert backup.command.startswith("restic ") and str(source) in backup.command
    assert PASSWORD not in backup.command


def test_dry_run_still_checks_hooks_statically(
    tmp_path: Path,
    repo: Path,
    source: Path,
    calls: CallLog,
    do_run: Callable[..., RunReport],
) -> None:
    hooks = recording_hooks(tmp_path, calls)
    Path(hooks["pre_backup"]).chmod(0o600)  # not executable
    report = do_run(make_config(repo, [source], hooks, tmp_path), dry_run=True)
    assert report.exit_code == 1
    assert "not executable" in report.errors[0]
    assert calls.tags() == []


# -- the hook environment ------------------------------------------------------------------------


def test_hook_environment_has_no_secrets_and_no_stale_status(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
    do_run: Callable[..., RunReport],
) -> None:
    dump = tmp_path / "env"
    hooks = {
        p: str(write_script(tmp_path / "hooks" / f"{p}.sh", f"env > {dump}.{p}\n"))
        for p in ("pre_backup", "post_backup")
    }
    environ.update(
        {
            "RESTIC_PASSWORD": "inherited-secret",
            "BACKUP_STATUS": "stale",
            "ERROR": "stale",
            "RESTIC_FROM_PASSWORD": "x-secret",
        }
    )
    config = make_config(repo, [source], {**hooks, "environment": {"SITE": "main"}}, tmp_path)
    report = do_run(config)
    assert report.exit_code == 0
    pre = Path(f"{dump}.pre_backup").read_text()
    post = Path(f"{dump}.post_backup").read_text()
    for text in (pre, post):
        assert PASSWORD not in text and "inherited-secret" not in text and "x-secret" not in text
        assert "RESTIC_PASSWORD" not in text
        assert "ERROR=stale" not in text
        assert "SITE=main" in text and "RESTICM_COMMAND=backup" in text
    assert "BACKUP_STATUS" not in pre
    assert "BACKUP_STATUS=success" in post
    assert "RESTICM_CONFIG=" in post and "RESTICM_DRY_RUN=0" in post


# -- hooks from code -----------------------------------------------------------------------------


def test_python_hooks_registered_from_code(
    tmp_path: Path,
    repo: Path,
    source: Path,
    do_run: Callable[..., RunReport],
) -> None:
    seen: list[tuple[str, str]] = []

    def record(ctx: Any) -> None:
        seen.append((ctx.phase.value, ctx.env.get("BACKUP_STATUS", "")))

    def skip(ctx: Any) -> None:
        raise SkipBackup("not today")

    config = make_config(repo, [source], {}, tmp_path)
    report = do_run(config, hooks={"post_backup": [record], "on_success": [record]})
    assert seen == [("post_backup", "success"), ("on_success", "success")]
    assert report.exit_code == 0

    seen.clear()
    report = do_run(config, hooks={Phase.PRE_BACKUP: [skip], "on_success": [record]})
    assert report.backup_status is BackupStatus.SKIPPED
    assert seen == [("on_success", "skipped")]
