"""A run is a value (issue 14): runs in one process share nothing, and the engine owns
the hook lifecycle.

- two concurrent runs (threads, two configs) each notify only their own log lines,
  and never the other's secret;
- a lock file that cannot be opened is a report with an exit code, not a
  traceback, and leaves no handler on the ``resticm_core`` logger;
- ``setup_logging`` replaces its own handlers only, never an embedding application's;
- a third-party hook kind is never run under ``--dry-run`` unless it says it is safe.

Real processes (script hooks), a real HTTP server for the notifications;
restic is the FakeRestic of resticm_core.testing (the point is the engine).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from resticm_core import Hook, HookContext, HookResult, Outcome, RunReport, config_from_dict, run
from resticm_core.builtins.script import ScriptHook
from resticm_core.locking import lock_key
from resticm_core.logcontext import CAPTURED_LOGGER
from resticm_core.logs import setup_logging
from resticm_core.notifiers import LogTail
from resticm_core.secrets import Redactor
from resticm_core.testing import FakeRestic, RecordingSink

from . import http_recorder
from .conftest import write_script


@pytest.fixture
def server() -> Iterator[http_recorder.Recorder]:
    yield from http_recorder.serve()


@pytest.fixture
def info_logging() -> Iterator[logging.Logger]:
    """The package logger at INFO (hook output is INFO), handlers and level put back."""
    logger = logging.getLogger(CAPTURED_LOGGER)
    saved = (logger.level, list(logger.handlers))
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(saved[0])
    for handler in list(logger.handlers):
        if handler not in saved[1]:
            logger.removeHandler(handler)


def notified_config(tmp_path: Path, name: str, password: str, url: str) -> Any:
    source = tmp_path / f"src-{name}"
    source.mkdir()
    return config_from_dict(
        {
            "repository": str(tmp_path / f"repo-{name}"),
            "password": password,
            "directories": [str(source)],
            "notifications": {
                "enabled": True,
                "notify_on_success": True,
                "notify_on_error": True,
                "providers": [{"type": "healthchecks", "url": f"{url}/hc-{name}"}],
            },
        },
        base_dir=tmp_path,
    )


def test_concurrent_runs_notify_only_their_own_log_lines(
    tmp_path: Path, server: http_recorder.Recorder, info_logging: logging.Logger
) -> None:
    secrets = {"alpha": "secret-alpha-8c1f", "bravo": "secret-bravo-42d9"}
    # Both runs are inside their pre_backup phase before either prints, and both
    # have printed before either finishes: each run's log capture is live while
    # the other run logs its secret.
    before, after = threading.Barrier(2, timeout=60), threading.Barrier(2, timeout=60)
    reports: dict[str, RunReport] = {}

    def one_run(name: str) -> None:
        script = write_script(
            tmp_path / f"say-{name}.sh",
            f'echo "marker-{name} says {secrets[name]}"\n',
        )
        config = notified_config(tmp_path, name, secrets[name], server.url)
        reports[name] = run(
            config,
            "backup",
            runner=FakeRestic(),
            lock_dir=tmp_path / "locks",
            environ={"PATH": "/usr/bin:/bin"},
            hooks={
                "pre_backup": [
                    lambda ctx: before.wait(),
                    ScriptHook(path=str(script)),
                    lambda ctx: after.wait(),
                ]
            },
        )

    threads = [threading.Thread(target=one_run, args=(name,)) for name in secrets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert {name: r.exit_code for name, r in reports.items()} == {"alpha": 0, "bravo": 0}
    for name, other in (("alpha", "bravo"), ("bravo", "alpha")):
        [ping] = server.by_path(f"/hc-{name}")[-1:]
        body = ping.body.decode()
        assert f"marker-{name} says ***" in body, body  # its own line, its own secret masked
        assert f"marker-{other}" not in body, f"{name}'s notification holds {other}'s records"
        assert secrets[other] not in body and secrets[name] not in body
    assert not any(isinstance(h, LogTail) for h in info_logging.handlers)


def test_an_unusable_lock_file_is_a_report_not_a_traceback(
    tmp_path: Path, server: http_recorder.Recorder, info_logging: logging.Logger
) -> None:
    config = notified_config(tmp_path, "locked", "secret-lock-77aa", server.url)
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o700)
    # A directory where the lock file should be: opening it fails (EISDIR), also as root.
    (locks / f"{lock_key(config.source_path, config.repository)}.lock").mkdir()
    handlers = list(info_logging.handlers)
    fake = FakeRestic()
    report = run(config, "backup", runner=fake, lock_dir=locks, environ={"PATH": "/usr/bin:/bin"})
    assert report.exit_code == 1
    assert len(report.errors) == 1 and "cannot take the process lock" in report.errors[0]
    assert fake.calls == [], "nothing ran without the lock"
    assert not any(isinstance(h, LogTail) for h in info_logging.handlers)
    added = [h for h in info_logging.handlers if h not in handlers]
    assert all(type(h).__name__ == "_CaptureDispatch" for h in added), added
    # The failure was notified, as any early failure.
    [ping] = server.by_path("/hc-locked/fail")
    assert "cannot take the process lock" in ping.body.decode()


def test_setup_logging_leaves_an_applications_handlers_alone(info_logging: logging.Logger) -> None:
    import io

    mine = logging.StreamHandler(io.StringIO())
    info_logging.addHandler(mine)
    console = io.StringIO()
    setup_logging(None, redactor=Redactor(["hunter22"]), stream=console)
    setup_logging(None, redactor=Redactor(["hunter22"]), stream=console)  # again: replaced
    ours = [h for h in info_logging.handlers if h is not mine and type(h) is logging.StreamHandler]
    try:
        assert mine in info_logging.handlers
        assert len(ours) == 1, "a second call replaces its own console handler"
        logging.getLogger("resticm_core.test").warning("password hunter22")
        assert console.getvalue() == "WARNING: password ***\n"
    finally:
        for handler in ours:
            info_logging.removeHandler(handler)
        info_logging.propagate = True


# -- the hook lifecycle ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MarkerHook(Hook):
    """A third-party kind that forgets about dry runs: run() always writes its marker."""

    kind: ClassVar[str] = "marker"
    marker: str

    def describe(self) -> str:
        return f"marker:{self.marker}"

    def run(self, ctx: HookContext) -> Sequence[HookResult]:
        Path(self.marker).write_text(f"dry_run={ctx.dry_run}")
        return [
            HookResult(name=self.describe(), kind=self.kind, phase=ctx.phase, outcome=Outcome.OK)
        ]


@attrs.frozen(kw_only=True)
class SafeMarkerHook(MarkerHook):
    """The same kind, declared safe: its run() is called in a dry run too."""

    kind: ClassVar[str] = "safe-marker"
    dry_run_safe: ClassVar[bool] = True


@attrs.frozen(kw_only=True)
class BrokenCheckHook(MarkerHook):
    kind: ClassVar[str] = "broken-check"

    def check(self, ctx: HookContext) -> list[str]:
        return [f"marker directory for {self.marker} is missing"]


def lifecycle_run(tmp_path: Path, hook: Hook, *, dry_run: bool) -> tuple[RunReport, RecordingSink]:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    config = config_from_dict(
        {"repository": str(tmp_path / "repo"), "password": "pw-1234", "directories": [str(source)]}
    )
    sink = RecordingSink()
    report = run(
        config,
        "backup",
        dry_run=dry_run,
        runner=FakeRestic(),
        output=sink,
        lock_dir=tmp_path / "locks",
        environ={"PATH": "/usr/bin:/bin"},
        hooks={"pre_backup": [hook]},
    )
    return report, sink


def test_a_third_party_kind_is_not_run_in_a_dry_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    report, sink = lifecycle_run(tmp_path, MarkerHook(marker=str(marker)), dry_run=True)
    assert not marker.exists(), "run() was called under --dry-run"
    assert report.exit_code == 0
    assert f"[dry-run] would run marker hook marker:{marker}" in sink.texts(logging.INFO)
    [result] = report.phases[0].hooks
    assert result.outcome is Outcome.SKIPPED and result.name == f"marker:{marker}"
    # And without --dry-run the same hook does run: the test above is not vacuous.
    lifecycle_run(tmp_path, MarkerHook(marker=str(marker)), dry_run=False)
    assert marker.read_text() == "dry_run=False"


def test_a_kind_declared_dry_run_safe_runs_with_dry_run_set(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    lifecycle_run(tmp_path, SafeMarkerHook(marker=str(marker)), dry_run=True)
    assert marker.read_text() == "dry_run=True"


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_engine_checks_before_run_and_dry_run(tmp_path: Path, dry_run: bool) -> None:
    marker = tmp_path / "ran"
    report, _ = lifecycle_run(tmp_path, BrokenCheckHook(marker=str(marker)), dry_run=dry_run)
    assert not marker.exists()
    assert report.exit_code == 1
    [result] = report.phases[0].hooks
    assert result.failed and result.error == f"marker directory for {marker} is missing"


def test_an_interrupted_run_starts_no_hook(tmp_path: Path) -> None:
    from resticm_core.hook_lifecycle import run_hook
    from resticm_core.phases import Phase

    marker = tmp_path / "ran"
    ctx = HookContext(phase=Phase.PRE_BACKUP, command="backup", env={}, output=RecordingSink())
    ctx.cancel.set()
    [result] = run_hook(MarkerHook(marker=str(marker)), ctx)
    assert result.failed and result.error == "interrupted: not started"
    assert not marker.exists()


# -- step identity ----------------------------------------------------------------------------


def test_steps_are_typed_and_shown_as_before(tmp_path: Path) -> None:
    from resticm_core import StepKind, StepResult

    typed = StepResult(
        kind=StepKind.DUMP, subject="postgresql:app", repository="primary", outcome=Outcome.OK
    )
    named = StepResult(name="dump postgresql:app", repository="primary", outcome=Outcome.OK)
    assert typed == named and str(typed) == "dump postgresql:app"
    assert typed.to_dict()["name"] == "dump postgresql:app"
    assert (typed.to_dict()["kind"], typed.to_dict()["subject"]) == ("dump", "postgresql:app")
    # A name the engine does not know (a plugin's, an application's) is kept as given.
    other = StepResult(name="replicate offsite", repository="primary", outcome=Outcome.OK)
    assert other.kind is StepKind.OTHER and str(other) == "replicate offsite"
    with pytest.raises(ValueError):
        StepResult(kind=StepKind.BACKUP, name="forget", repository="primary", outcome=Outcome.OK)

    source = tmp_path / "src"
    source.mkdir()
    config = config_from_dict(
        {"repository": str(tmp_path / "repo"), "password": "pw-1234", "directories": [str(source)]}
    )
    report = run(
        config,
        "default",
        runner=FakeRestic(),
        lock_dir=tmp_path / "locks",
        environ={"PATH": "/usr/bin:/bin"},
    )
    assert [(s.kind, s.name) for s in report.steps] == [
        (StepKind.BACKUP, "backup"),
        (StepKind.FORGET, "forget"),
    ]
    assert report.command == "default" and report.to_dict()["command"] == "default"
