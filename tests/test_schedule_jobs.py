"""``resticm schedule`` for a config with jobs (issue 18): one service and timer per job,
each at its own ``schedule:``, and systemd credentials in the unit, checked by systemd."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from resticm_core.cli import main
from resticm_core.errors import UsageError
from resticm_core.schedule import Schedule, service_unit

from .conftest import PASSWORD

HAVE_ANALYZE = shutil.which("systemd-analyze") is not None
INSTALLED = "/opt/resticm/bin/resticm"


@pytest.fixture(autouse=True)
def installed_outside_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("resticm_core.schedule.default_executable", lambda: (INSTALLED,))


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"password: {PASSWORD}\n"
        f"directories: [{tmp_path}]\n"
        "schedule: daily\n"
        "jobs:\n"
        f"  web:\n    repository: {tmp_path / 'web'}\n    schedule: '*-*-* 02:30'\n"
        f"  db:\n    repository: {tmp_path / 'db'}\n"
    )
    config.chmod(0o600)
    return config


def test_one_timer_per_job_with_its_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, units = _config(tmp_path), tmp_path / "units"
    base = ["schedule", "install", "--user", "--unit-dir", str(units), "-c", str(config)]
    code = main([*base, "--load-credential", "restic:/etc/resticm/restic.pw"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in units.iterdir()) == [
        "resticm-db.service", "resticm-db.timer", "resticm-web.service", "resticm-web.timer",
    ]  # fmt: skip
    web = (units / "resticm-web.service").read_text()
    assert f"ExecStart={INSTALLED} --config {config} --job web\n" in web
    assert "LoadCredential=restic:/etc/resticm/restic.pw\n" in web
    assert "OnCalendar=*-*-* 02:30\n" in (units / "resticm-web.timer").read_text()
    # db has no schedule of its own: it inherits the top level's
    assert "OnCalendar=daily\n" in (units / "resticm-db.timer").read_text()
    assert "Unit=resticm-db.service" in (units / "resticm-db.timer").read_text()
    # -j: that job only; remove takes every job's units away
    assert main(["schedule", "remove", "--user", "--unit-dir", str(units), "-c", str(config),
                 "-j", "db"]) == 0  # fmt: skip
    assert sorted(p.name for p in units.iterdir()) == ["resticm-web.service", "resticm-web.timer"]
    assert main(["schedule", "remove", "--user", "--unit-dir", str(units), "-c", str(config)]) == 0
    assert list(units.iterdir()) == []


@pytest.mark.skipif(not HAVE_ANALYZE, reason="systemd-analyze is not installed")
def test_systemd_accepts_credentials_in_the_unit(tmp_path: Path) -> None:
    schedule = Schedule(
        name="resticm-web",
        job="web",
        executable=("/usr/bin/true",),
        load_credentials=("restic:/etc/resticm/restic.pw",),
        load_credentials_encrypted=("s3:/etc/resticm/s3.cred",),
    )
    service = tmp_path / "resticm-web.service"
    service.write_text(service_unit(schedule))
    text = service.read_text()
    assert "LoadCredentialEncrypted=s3:/etc/resticm/s3.cred" in text
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(service)], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in proc.stderr.splitlines() if str(tmp_path) in line]
    assert proc.returncode == 0 and not complaints, proc.stderr
    # the check has teeth: a misspelt setting is reported
    service.write_text(text.replace("LoadCredential=", "LoadCredentail="))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(service)], capture_output=True, text=True, timeout=60
    )
    assert "LoadCredentail" in proc.stderr


@pytest.mark.parametrize("spec", ["restic", "a/b:/x", "restic:relative", "x:/a b"])
def test_bad_credential_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError, match="--load-credential"):
        Schedule(load_credentials=(spec,))
