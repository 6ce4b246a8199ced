"""``resticm schedule``: the units it writes, checked by systemd itself, and the cron line."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import resticm_core
from resticm_core.cli import main
from resticm_core.errors import UsageError
from resticm_core.schedule import Schedule, cron_line, service_unit, timer_unit
from resticm_core.schedule import default_executable as REAL_DEFAULT_EXECUTABLE

from .conftest import PASSWORD, write_script

HAVE_ANALYZE = shutil.which("systemd-analyze") is not None
#: Where a server installation puts resticm (README): outside what PrivateTmp= hides.
INSTALLED = "/opt/resticm/bin/resticm"


@pytest.fixture(autouse=True)
def installed_outside_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The units start an installed resticm, wherever this checkout is: CI may clone it
    under /tmp, which install rightly refuses. Tests of that refusal pass --executable."""
    monkeypatch.setattr("resticm_core.schedule.default_executable", lambda: (INSTALLED,))


def _parse(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes="#")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "conf dir" / "config.yaml"
    config.parent.mkdir()
    config.write_text(
        f"repository: {tmp_path / 'repo'}\npassword: {PASSWORD}\ndirectories: [{tmp_path}]\n"
    )
    config.chmod(0o600)
    return config


def test_install_writes_hardened_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    units = tmp_path / "units"
    code = main(
        [
            "schedule", "install", "--unit-dir", str(units),
            "--on-calendar", "*-*-* 02:30", "--command", "backup", "--randomized-delay", "1h",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    service, timer = _parse(units / "resticm.service"), _parse(units / "resticm.timer")
    run = service["Service"]
    assert run["Type"] == "oneshot"
    assert run["ExecStart"].endswith(" backup")
    # a config path with a space is quoted for systemd (a config in tmp_path, under /tmp,
    # would be refused: PrivateTmp hides it)
    quoted = service_unit(Schedule(config="/etc/resticm/conf dir/config.yaml", executable=("r",)))
    assert 'ExecStart=r --config "/etc/resticm/conf dir/config.yaml"' in quoted
    assert (run["Nice"], run["IOSchedulingClass"]) == ("10", "idle")
    assert run["PrivateTmp"] == "true" and run["ProtectSystem"] == "full"
    # the backup must read everything: nothing that hides /home or the disks
    for key in ("ProtectHome", "ReadOnlyPaths", "InaccessiblePaths", "PrivateDevices"):
        assert key not in run
    assert run["SuccessExitStatus"] == "75"
    assert timer["Timer"]["OnCalendar"] == "*-*-* 02:30"
    assert timer["Timer"]["RandomizedDelaySec"] == "1h"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert (units / "resticm.service").stat().st_mode & 0o777 == 0o644
    assert "not enabled (--unit-dir)" in capsys.readouterr().out


def test_a_timer_running_this_checkout_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("resticm_core.schedule.default_executable", REAL_DEFAULT_EXECUTABLE)
    # --user: no PrivateTmp, so a checkout anywhere (CI clones under /tmp) is accepted
    units = tmp_path / "units"
    assert main(["schedule", "install", "--user", "--unit-dir", str(units)]) == 0
    err = capsys.readouterr().err
    if (Path(resticm_core.__file__).parent.parent / "pyproject.toml").is_file():
        # an editable install: the timer would depend on this checkout, and says so
        assert "runs resticm_core from the checkout" in err
    else:
        assert "checkout" not in err


@pytest.mark.skipif(not HAVE_ANALYZE, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
def test_systemd_accepts_the_units(tmp_path: Path, user: bool) -> None:
    schedule = Schedule(
        name="resticm-test",
        on_calendar="Mon..Fri *-*-* 01:15",
        config=str(tmp_path / "a b%c.yaml"),
        user=user,
        executable=(sys.executable, "-m", "resticm_core"),
    )
    service = tmp_path / "resticm-test.service"
    timer = tmp_path / "resticm-test.timer"
    service.write_text(service_unit(schedule))
    timer.write_text(timer_unit(schedule))
    # systemd-analyze exits 0 even for unknown keys: its complaints about our files count.
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(service), str(timer)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    complaints = [line for line in proc.stderr.splitlines() if str(tmp_path) in line]
    assert proc.returncode == 0 and not complaints, proc.stderr
    # the check has teeth: a misspelt key in the same place is reported
    service.write_text(service_unit(schedule).replace("IOSchedulingClass", "IOSchedulingKlass"))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(service), str(timer)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "IOSchedulingKlass" in proc.stderr


def test_user_units_leave_out_namespace_sandboxing() -> None:
    text = service_unit(Schedule(user=True, executable=("/usr/bin/resticm",)))
    assert "Nice=10" in text and "IOSchedulingClass=idle" in text
    assert "PrivateTmp" not in text and "ProtectSystem" not in text
    assert "Wants=network-online.target" not in text


def test_show_and_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    units = tmp_path / "units"
    assert main(["schedule", "show", "--name", "nightly", "--unit-dir", str(units)]) == 0
    shown = capsys.readouterr().out
    assert f"# {units / 'nightly.service'}" in shown and "OnCalendar=daily" in shown
    assert not units.exists()  # show writes nothing
    assert main(["schedule", "install", "--name", "nightly", "--unit-dir", str(units)]) == 0
    assert sorted(p.name for p in units.iterdir()) == ["nightly.service", "nightly.timer"]
    assert main(["schedule", "remove", "--name", "nightly", "--unit-dir", str(units)]) == 0
    assert list(units.iterdir()) == []
    assert main(["schedule", "remove", "--name", "nightly", "--unit-dir", str(units)]) == 0
    assert "no nightly units" in capsys.readouterr().out


def test_cron_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "schedule",
        "show",
        "--cron",
        "--on-calendar",
        "02:30",
        "--executable",
        "/usr/bin/resticm",
    ]
    assert main([*argv, "--command", "full"]) == 0
    assert capsys.readouterr().out.strip() == (
        "30 2 * * * root nice -n 10 ionice -c 3 /usr/bin/resticm full"
    )
    assert main([*argv, "--crontab"]) == 0
    assert capsys.readouterr().out.startswith("30 2 * * * nice -n 10")
    schedule = Schedule(on_calendar="weekly", config="/etc/x%y.yaml", executable=("resticm",))
    assert (
        cron_line(schedule)
        == "0 0 * * 1 root nice -n 10 ionice -c 3 resticm --config /etc/x\\%y.yaml"
    )


def test_cron_needs_fields_for_complex_calendars(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["schedule", "show", "--cron", "--on-calendar", "Mon..Fri 01:00"]
    assert main(argv) == 2
    assert "--cron-schedule" in capsys.readouterr().err
    assert main([*argv, "--cron-schedule", "0 1 * * 1-5", "--executable", "resticm"]) == 0
    assert capsys.readouterr().out.startswith("0 1 * * 1-5 root ")


def test_bad_input_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="schedule name"):
        Schedule(name="../evil")
    assert main(["schedule", "install", "--unit-dir", str(tmp_path), "--on-calendar", " "]) == 2
    assert "--on-calendar" in capsys.readouterr().err
    # a broken config is refused before anything is written
    bad = tmp_path / "bad.yaml"
    bad.write_text("repository: 1\nretention: {keep_daily: soon}\n")
    bad.chmod(0o600)
    units = tmp_path / "units"
    assert main(["-c", str(bad), "schedule", "install", "--unit-dir", str(units)]) == 2
    assert "keep_daily" in capsys.readouterr().err
    assert not units.exists()


def _user_manager(tmp_path: Path, systemctl_body: str) -> tuple[dict[str, str], Path]:
    """A reachable user manager as systemctl --user finds it, and a stand-in systemctl."""
    runtime = tmp_path / "run-user"
    (runtime / "systemd").mkdir(parents=True)
    (runtime / "systemd" / "private").touch()  # the manager's socket
    bin_dir = tmp_path / "bin"
    write_script(bin_dir / "systemctl", systemctl_body)
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "XDG_RUNTIME_DIR": str(runtime),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
    }
    return env, tmp_path / "xdg" / "systemd" / "user"


def test_install_and_remove_drive_systemctl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stand-in systemctl (a real script) records what resticm asks of systemd."""
    log = tmp_path / "systemctl.log"
    env, units = _user_manager(tmp_path, f'echo "$*" >> {log}\n')
    assert main(["schedule", "install", "--user"], environ=env) == 0
    assert (units / "resticm.timer").exists()
    assert log.read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable --now resticm.timer",
    ]
    assert main(["schedule", "remove", "--user"], environ=env) == 0
    assert not (units / "resticm.timer").exists()
    assert log.read_text().splitlines()[2:] == [
        "--user disable --now resticm.timer",
        "--user daemon-reload",
    ]
    # systemctl refusing is a failed step, with its message
    write_script(tmp_path / "bin" / "systemctl", "echo 'Failed to connect to bus' >&2\nexit 1\n")
    assert main(["schedule", "install", "--user"], environ=env) == 1
    assert "Failed to connect to bus" in capsys.readouterr().err


def test_remove_deletes_the_units_even_when_systemctl_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env, units = _user_manager(tmp_path, "echo 'Failed to connect to bus' >&2\nexit 1\n")
    assert main(["schedule", "install", "--user", "--unit-dir", str(units)], environ=env) == 0
    # what `systemctl enable` leaves behind: the timer wanted by timers.target
    wants = units / "timers.target.wants"
    wants.mkdir()
    (wants / "resticm.timer").symlink_to(units / "resticm.timer")
    capsys.readouterr()
    assert main(["schedule", "remove", "--user"], environ=env) == 1
    out, err = capsys.readouterr()
    assert sorted(units.rglob("*")) == [wants], out  # both units and the link are gone
    assert "systemctl --user disable --now resticm.timer failed: Failed to connect" in err
    assert "unit files are removed" in err and "daemon-reload" in err
    assert f"removed {units / 'resticm.service'}" in out


def test_no_user_manager_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the real systemctl, but no manager
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PATH": "/usr/bin:/bin"}
    assert main(["schedule", "install", "--user"], environ=env) == 2
    err = capsys.readouterr().err
    assert "no systemd user manager" in err and "schedule show --cron --crontab" in err
    assert not (tmp_path / "xdg").exists()  # nothing written
    # remove still deletes the files, and has nothing to disable
    units = tmp_path / "xdg" / "systemd" / "user"
    assert main(["schedule", "install", "--user", "--unit-dir", str(units)], environ=env) == 0
    assert main(["schedule", "remove", "--user"], environ=env) == 0
    assert list(units.iterdir()) == []
    assert "nothing to disable" in capsys.readouterr().out


@pytest.mark.skipif(
    Path("/run/systemd/system").exists(), reason="systemd runs here: install would enable"
)
def test_no_running_systemd_writes_nothing(tmp_path: Path) -> None:
    """The real machine's state: no /run/systemd/system (a container, a chroot).

    ``-n``: should the check ever regress, a dry run still writes nothing to /etc.
    """
    before = {p.name for p in Path("/etc/systemd/system").glob("resticm-test-*")}
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-n", "schedule", "install",
         "--name", "resticm-test-x", "--executable", INSTALLED],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "no running systemd here (/run/systemd/system is missing)" in result.stderr
    assert "use `resticm schedule show --cron`" in result.stderr
    assert "Traceback" not in result.stderr
    assert {p.name for p in Path("/etc/systemd/system").glob("resticm-test-*")} == before


def test_refuses_a_program_the_sandbox_hides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tmp_path is under /tmp, which the system unit's PrivateTmp=true replaces."""
    program = write_script(tmp_path / "venv" / "bin" / "resticm", "exit 0\n")
    units = tmp_path / "units"
    argv = ["schedule", "install", "--unit-dir", str(units), "--executable", str(program)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"program {program} is under /tmp, which the service's PrivateTmp=true hides" in err
    assert "/opt/resticm" in err and "Traceback" not in err
    assert not units.exists()
    # show prints the units but says install would refuse them
    assert main(["schedule", "show", "--executable", str(program)]) == 0
    assert "install would refuse this" in capsys.readouterr().err
    # a user unit has no PrivateTmp: the same program is visible to it
    assert main([*argv, "--user"]) == 0
    assert (units / "resticm.service").exists()


def test_refuses_a_config_the_sandbox_hides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    units = tmp_path / "units"
    assert main(["-c", str(config), "schedule", "install", "--unit-dir", str(units)]) == 2
    err = capsys.readouterr().err
    assert f"config {config} is under /tmp" in err and "move the config" in err
    assert not units.exists()


@pytest.mark.skipif(not HAVE_ANALYZE, reason="systemd-analyze is not installed")
@pytest.mark.parametrize(
    ("option", "value", "verb"),
    [("--on-calendar", "dialy", "calendar"), ("--randomized-delay", "soon", "timespan")],
)
def test_systemd_analyze_rejects_a_bad_timer_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, verb: str
) -> None:
    units = tmp_path / "units"
    assert main(["schedule", "install", "--unit-dir", str(units), option, value]) == 2
    err = capsys.readouterr().err
    assert f"{option} {value!r}: not a valid systemd {verb}" in err
    assert "Failed to parse" in err and "Traceback" not in err
    assert not units.exists()
    assert main(["schedule", "show", option, value]) == 2
    # and a value systemd accepts passes the same check
    assert main(["schedule", "install", "--unit-dir", str(units), option, "Mon..Fri 01:15"
                 if verb == "calendar" else "2h 5min"]) == 0  # fmt: skip
