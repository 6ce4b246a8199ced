"""The ``resticm_snapshots`` metric: counted by the real restic after runs that changed
the snapshot list, checked value by value through prometheus_client's parser."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resticm_core import RunReport, config_from_dict, run
from resticm_core.testing import FakeRestic

from .conftest import PASSWORD, requires_restic, restic_env

parser = pytest.importorskip("prometheus_client.parser")

HOST = "web1"
NO_POLICY = {
    "keep_within": "",
    "keep_hourly": 0,
    "keep_daily": 0,
    "keep_weekly": 0,
    "keep_monthly": 0,
    "keep_yearly": 0,
}


def metric(path: Path, name: str, repository: str = "primary") -> float | None:
    """The value of *name* for (host, repository) in the textfile, None when absent."""
    for family in parser.text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if sample.name == name and sample.labels == {"host": HOST, "repository": repository}:
                return float(sample.value)
    return None


def make_config(tmp_path: Path, repository: str, source: Path, **extra: Any) -> Any:
    data = {
        "repository": repository,
        "password": PASSWORD,
        "directories": [str(source)],
        "host": HOST,
        "logging": {"file": "", "console": False},
        "monitoring": {"prometheus_textfile": "resticm.prom"},
        **extra,
    }
    return config_from_dict(data, base_dir=tmp_path)


@pytest.fixture
def do_run(environ: dict[str, str], lock_dir: Path) -> Callable[..., RunReport]:
    def go(config: Any, command: str = "backup", **kwargs: Any) -> RunReport:
        return run(config, command, environ=environ, lock_dir=lock_dir, **kwargs)

    return go


@requires_restic
def test_snapshot_count_after_real_backups_and_forget(
    tmp_path: Path, repo: Path, source: Path, do_run: Callable[..., RunReport]
) -> None:
    config = make_config(tmp_path, str(repo), source, retention={**NO_POLICY, "keep_last": 1})
    prom = tmp_path / "resticm.prom"
    first = do_run(config)
    assert first.exit_code == 0 and first.snapshot_counts == {"primary": 1}
    assert metric(prom, "resticm_snapshots") == 1.0
    # Another host's snapshot in the same repository is not this host's to count.
    (source / "c.txt").write_text("gamma\n")
    subprocess.run(
        ["restic", "backup", "-q", "--host", "other", str(source)],
        env=restic_env(tmp_path / "cache", repo),
        check=True,
        capture_output=True,
    )
    second = do_run(config)
    assert second.exit_code == 0 and second.snapshot_counts == {"primary": 2}
    assert metric(prom, "resticm_snapshots") == 2.0
    stamp = metric(prom, "resticm_snapshots_timestamp_seconds")
    assert stamp == second.finished_at
    # A dry run neither counts nor touches the metric.
    assert do_run(config, dry_run=True).snapshot_counts == {}
    assert metric(prom, "resticm_snapshots") == 2.0
    # `resticm` (backup + forget --keep-last 1): the count is taken after forget.
    third = do_run(config, "default")
    assert third.exit_code == 0, third.errors
    assert [s.name for s in third.steps if s.name in ("backup", "forget")] == ["backup", "forget"]
    assert third.snapshot_counts == {"primary": 1}
    assert metric(prom, "resticm_snapshots") == 1.0
    assert third.to_dict()["snapshot_counts"] == {"primary": 1}


def test_count_only_when_wanted_and_never_fatal(
    tmp_path: Path, do_run: Callable[..., RunReport], caplog: pytest.LogCaptureFixture
) -> None:
    prom = tmp_path / "resticm.prom"
    without = make_config(tmp_path, "/r", tmp_path, monitoring={})
    fake = FakeRestic()
    fake.respond("backup", stdout=[FakeRestic.summary_line("ab12")])
    assert do_run(without, runner=fake).exit_code == 0
    assert "snapshots" not in fake.commands()  # no textfile: no extra restic call

    config = make_config(
        tmp_path,
        "/r",
        tmp_path,
        backends={"offsite": {"repository": "/b", "password": "pw-offsite"}},
        copy_to_backends=["offsite"],
    )
    fake = FakeRestic()
    fake.respond("backup", stdout=[FakeRestic.summary_line("ab12")])
    fake.respond("snapshots", stdout=['[{"id": "a"}, {"id": "b"}, {"id": "c"}]'])
    report = do_run(config, runner=fake)
    assert report.exit_code == 0
    (count,) = [c for c in fake.calls if c.command == "snapshots"]
    assert count.args == ("--no-lock", "snapshots", "--json", "--host", HOST)
    assert metric(prom, "resticm_snapshots") == 3.0

    # `full` changes both repositories (backup, forget, copy); the offsite count fails:
    # the run's outcome is unchanged and the primary is still counted.
    fake = FakeRestic()
    fake.respond("backup", stdout=[FakeRestic.summary_line("cd34")])
    fake.respond("snapshots", stdout=['[{"id": "a"}]'], repository="primary")
    fake.respond(
        "snapshots",
        exit_code=1,
        stderr=["Fatal: unable to open repository /b"],
        repository="offsite",
    )
    with caplog.at_level(logging.WARNING, logger="resticm_core"):
        report = do_run(config, "full", runner=fake)
    assert report.exit_code == 0, report.errors
    assert [c.repository for c in fake.calls if c.command == "snapshots"] == [
        "primary",
        "offsite",
    ]
    assert report.snapshot_counts == {"primary": 1}
    assert metric(prom, "resticm_snapshots") == 1.0
    assert metric(prom, "resticm_snapshots", "offsite") is None
    assert "cannot count the snapshots of offsite" in caplog.text
    assert "pw-offsite" not in caplog.text


def test_a_failed_backup_is_not_counted(tmp_path: Path, do_run: Callable[..., RunReport]) -> None:
    config = make_config(tmp_path, "/r", tmp_path)
    fake = FakeRestic()
    fake.respond("backup", exit_code=1, stderr=["Fatal: unable to open config file"])
    assert do_run(config, runner=fake).exit_code == 1
    assert "snapshots" not in fake.commands()


def test_which_repositories_are_counted_and_how_output_is_read() -> None:
    from resticm_core.phases import Outcome, StepResult
    from resticm_core.snapshot_count import parse_count, repositories_changed

    def step(name: str, repository: str, outcome: Outcome = Outcome.OK) -> StepResult:
        return StepResult(name=name, repository=repository, outcome=outcome)

    steps = [
        step("preflight", "a"),
        step("check", "a"),
        step("prune", "a"),
        step("backup", "b", Outcome.FAILED),
        step("dump pg-main", "c"),
        step("backup", "d", Outcome.PARTIAL),
        step("copy", "e"),
        step("forget", "d"),
        step("forget", "f", Outcome.SKIPPED),
    ]
    assert repositories_changed(steps) == ["c", "d", "e"]
    assert [parse_count(s) for s in ('[{"id": "x"}]', "[]", "null", "", "{}", "[1]", "x")] == [
        1,
        0,
        0,
        None,
        None,
        None,
        None,
    ]


@requires_restic
def test_the_status_file_carries_the_snapshot_count_too(
    tmp_path: Path, repo: Path, source: Path, do_run: Callable[..., RunReport]
) -> None:
    import json

    config = make_config(tmp_path, str(repo), source, monitoring={"status_file": "status.json"})
    assert do_run(config).exit_code == 0
    assert do_run(config).exit_code == 0
    status = json.loads((tmp_path / "status.json").read_text())
    snapshots = status["repositories"]["primary"]["snapshots"]
    assert snapshots["count"] == 2
    assert snapshots["time"] == status["commands"]["backup"]["time"]
    assert status["repositories"]["primary"]["backup"]["success"] is True
