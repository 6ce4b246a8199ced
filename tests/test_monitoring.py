"""The observers: Prometheus textfile (parsed by prometheus_client) and the status file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resticm_core import RunReport, config_from_dict, run
from resticm_core.testing import FakeRestic

from .conftest import PASSWORD, requires_restic

parser = pytest.importorskip("prometheus_client.parser")


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in parser.text_string_to_metric_families(path.read_text()):
        assert family.type == "gauge" and family.documentation
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def make_config(tmp_path: Path, repository: str, sources: list[Path]) -> Any:
    return config_from_dict(
        {
            "repository": repository,
            "password": PASSWORD,
            "directories": [str(s) for s in sources],
            "host": "web1",
            "logging": {"file": "", "console": False},
            "monitoring": {"prometheus_textfile": "metrics/resticm.prom", "status_file": "st.json"},
        },
        base_dir=tmp_path,
    )


@pytest.fixture
def do_run(environ: dict[str, str], lock_dir: Path) -> Callable[..., RunReport]:
    def go(config: Any, command: str = "backup", **kwargs: Any) -> RunReport:
        return run(config, command, environ=environ, lock_dir=lock_dir, **kwargs)

    return go


@requires_restic
def test_textfile_and_status_after_real_runs(
    tmp_path: Path, repo: Path, source: Path, do_run: Callable[..., RunReport]
) -> None:
    config = make_config(tmp_path, str(repo), [source])
    prom = tmp_path / "metrics" / "resticm.prom"
    assert do_run(config, dry_run=True).exit_code == 0
    assert not prom.exists()  # a dry run writes nothing
    backup = do_run(config)
    assert backup.exit_code == 0
    step = backup.steps[-1]
    assert step.summary is not None
    found = samples(prom)
    host = ("host", "web1")
    run_labels = (("command", "backup"), host)
    repo_labels = (host, ("repository", "primary"))
    step_labels = (host, ("repository", "primary"), ("step", "backup"))
    assert found[("resticm_run_success", run_labels)] == 1.0
    assert found[("resticm_run_exit_code", run_labels)] == 0.0
    assert found[("resticm_run_last_timestamp_seconds", run_labels)] == backup.finished_at
    assert found[("resticm_run_duration_seconds", run_labels)] == pytest.approx(backup.duration)
    assert found[("resticm_step_success", step_labels)] == 1.0
    assert found[("resticm_step_duration_seconds", step_labels)] == pytest.approx(step.duration)
    assert found[("resticm_backup_files_new", repo_labels)] == step.summary.files_new > 0
    assert found[("resticm_backup_added_bytes", repo_labels)] == step.summary.data_added
    processed = found[("resticm_backup_processed_bytes", repo_labels)]
    assert processed == step.summary.total_bytes_processed
    # A later failing forget run keeps the backup series and adds its own.
    (tmp_path / "x").mkdir()
    broken = make_config(tmp_path, str(tmp_path / "x"), [source])
    failed = do_run(broken, "default", options=_opts(no_backup=True))
    assert failed.exit_code == 1
    found = samples(prom)
    assert found[("resticm_run_success", (("command", "default"), host))] == 0.0
    assert (
        found[("resticm_step_success", (host, ("repository", "primary"), ("step", "forget")))]
        == 0.0
    )
    assert found[("resticm_run_success", run_labels)] == 1.0
    assert [p.name for p in prom.parent.iterdir()] == ["resticm.prom"]  # no temp file left

    status = json.loads((tmp_path / "st.json").read_text())
    assert status["version"] == 1
    assert status["commands"]["backup"]["success"] is True
    assert status["commands"]["backup"]["snapshot_id"] == backup.snapshot_id
    assert status["commands"]["default"]["exit_code"] == 1
    primary = status["repositories"]["primary"]
    assert primary["backup"]["success"] is True
    assert primary["backup"]["summary"]["snapshot_id"] == backup.snapshot_id
    assert primary["forget"]["success"] is False and primary["forget"]["error"]


def _opts(**kwargs: Any) -> Any:
    from resticm_core.workflow import RunOptions

    return RunOptions(**kwargs)


def test_partial_backup_metric_and_atomic_replace(
    tmp_path: Path, do_run: Callable[..., RunReport]
) -> None:
    fake = FakeRestic()
    fake.respond("backup", exit_code=3, stdout=[FakeRestic.summary_line("ab12")])
    config = make_config(tmp_path, "/r", [tmp_path])
    prom = tmp_path / "metrics" / "resticm.prom"
    prom.parent.mkdir()
    prom.write_text("garbage that is not ours\n")
    before = os.stat(prom).st_ino
    assert do_run(config, runner=fake).exit_code == 3
    assert os.stat(prom).st_ino != before  # replaced by rename, never rewritten in place
    found = samples(prom)
    labels = (("host", "web1"), ("repository", "primary"), ("step", "backup"))
    assert found[("resticm_step_success", labels)] == 0.5
    assert found[("resticm_run_exit_code", (("command", "backup"), ("host", "web1")))] == 3.0
