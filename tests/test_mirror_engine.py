"""Unit tests of mirror sync, deep-check state and lock verification (FakeRestic, no restic).

The integration tests are in test_mirror_sync.py; these pin the step matrix,
the parallelism and the decisions that are slow to reach with real repositories.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from resticm_core import RunOptions, config_from_dict, run
from resticm_core.commands import split_run_argv
from resticm_core.config import Repository
from resticm_core.errors import UsageError
from resticm_core.lockcheck import parse_lock_time, verify_locks
from resticm_core.mirror import copy_destination
from resticm_core.restic import Restic, ResticResult
from resticm_core.state import DeepCheckState, default_state_dir
from resticm_core.testing import FakeRestic, RecordingSink

LOCK_A = "a" * 64
LOCK_B = "b" * 64


def make_config(tmp_path: Path, **extra: Any) -> Any:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    data = {
        "repository": str(tmp_path / "repo"),
        "password": "s3cret-pass",
        "directories": [str(source)],
        "host": "web1",
        "backends": {
            "b1": {"repository": str(tmp_path / "b1"), "password": "b1-pass"},
            "b2": {"repository": str(tmp_path / "b2"), "password": "b2-pass"},
        },
        "copy_to_backends": ["b1", "b2"],
        **extra,
    }
    return config_from_dict(data, base_dir=tmp_path)


def go(config: Any, fake: FakeRestic, tmp_path: Path, command: str, **flags: Any) -> Any:
    return run(
        config,
        command,
        runner=fake,
        environ={},
        lock_dir=tmp_path / "locks",
        output=RecordingSink(),
        options=RunOptions(state_dir=tmp_path / "state", **flags),
    )


def done(fake: FakeRestic) -> list[tuple[str, str]]:
    """(command, repository) of every restic call but the id probe."""
    return [(c.command, c.repository) for c in fake.calls if c.command != "cat"]


def test_default_workflow_syncs_every_backend_after_the_primary(tmp_path: Path) -> None:
    fake = FakeRestic()
    report = go(make_config(tmp_path), fake, tmp_path, "default", prune=True)
    assert report.exit_code == 0
    calls = done(fake)
    assert calls[:3] == [("backup", "primary"), ("forget", "primary"), ("prune", "primary")]
    for name in ("b1", "b2"):
        chain = [c for c in calls if c[1] == name]
        assert chain == [("copy", name), ("forget", name), ("prune", name)]
    [copy] = [c for c in fake.calls if c.command == "copy" and c.repository == "b1"]
    assert copy.args == ("copy", "--host", "web1")
    assert copy.extra_env["RESTIC_FROM_REPOSITORY"] == str(tmp_path / "repo")
    assert copy.extra_env["RESTIC_FROM_PASSWORD"] == "s3cret-pass"
    # Recorded in copy_to_backends order whatever the finishing order.
    assert [s.repository for s in report.steps if s.name == "copy"] == ["b1", "b2"]


@pytest.mark.parametrize(
    ("flags", "absent", "present"),
    [
        ({"no_forget": True}, {"forget"}, {"copy"}),
        ({"no_copy": True}, {"copy"}, {"forget"}),
        ({"copy_all": True}, set(), {"copy"}),
    ],
)
def test_default_workflow_flags_apply_to_backends_too(
    tmp_path: Path, flags: dict[str, bool], absent: set[str], present: set[str]
) -> None:
    fake = FakeRestic()
    go(make_config(tmp_path), fake, tmp_path, "default", **flags)
    commands = {c for c, _ in done(fake)}
    assert not commands & absent and present <= commands
    if flags.get("copy_all"):
        assert all("--host" not in c.args for c in fake.calls if c.command == "copy")
    if flags.get("no_copy"):
        assert {r for _, r in done(fake)} == {"primary"}


def test_a_failed_copy_skips_that_backends_maintenance_only(tmp_path: Path) -> None:
    fake = FakeRestic()
    fake.respond("copy", exit_code=1, stderr=["Fatal: unable to open repository"], repository="b1")
    report = go(make_config(tmp_path), fake, tmp_path, "full")
    assert report.exit_code == 1
    outcomes = {(s.name, s.repository): s.outcome.value for s in report.steps}
    assert outcomes[("copy", "b1")] == "failed"
    assert outcomes[("forget", "b1")] == outcomes[("prune", "b1")] == "skipped"
    assert outcomes[("check", "b1")] == "skipped"
    assert [outcomes[(n, "b2")] for n in ("copy", "forget", "prune", "check")] == ["ok"] * 4
    assert len(report.errors) == 1 and "b1" in report.errors[0]


class BarrierRestic(FakeRestic):
    """Every copy waits until *parties* copies run at the same time (a hang guard only)."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=30)

    def execute(self, args: Sequence[str], repository: Repository, **kw: Any) -> ResticResult:
        if args and args[0] == "copy":
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                return ResticResult.from_exit(args, repository.name, 1, stderr=["not parallel"])
        return super().execute(args, repository, **kw)


def test_copies_run_in_parallel_up_to_copy_concurrency(tmp_path: Path) -> None:
    report = go(make_config(tmp_path), BarrierRestic(2), tmp_path, "copy")
    assert report.exit_code == 0, report.errors
    assert [s.outcome.value for s in report.steps] == ["ok", "ok"]


def test_forget_prune_check_commands_primary_only_and_active_backend(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    fake = FakeRestic()
    go(config, fake, tmp_path, "forget", primary_only=True, prune=True, all_hosts=True)
    assert done(fake) == [("forget", "primary")]
    assert "--prune" in fake.calls[-1].args and "--host" not in fake.calls[-1].args
    fake = FakeRestic()
    go(config, fake, tmp_path, "prune")
    assert done(fake) == [("prune", "primary"), ("prune", "b1"), ("prune", "b2")]
    fake = FakeRestic()
    go(config, fake, tmp_path, "check", target="b2", subset="1/5")
    assert done(fake) == [("check", "b2")]
    assert fake.calls[-1].args == ("check", "--read-data-subset", "1/5")
    fake = FakeRestic()
    go(config, fake, tmp_path, "copy", copy_to=("b2",))
    assert done(fake) == [("copy", "b2")]
    with pytest.raises(UsageError, match="backend 'nope' not found"):
        go(config, FakeRestic(), tmp_path, "copy", copy_to=("nope",))


def test_dry_run_runs_no_restic_command(tmp_path: Path) -> None:
    fake = FakeRestic()
    report = go(
        make_config(tmp_path, verify_no_locks=True),
        fake,
        tmp_path,
        "full",
        dry_run=True,
    )
    assert fake.calls == []
    assert {s.outcome.value for s in report.steps} == {"skipped"}
    assert {s.name for s in report.steps} == {"backup", "forget", "prune", "check", "copy"}


def config_line(repo_id: str) -> str:
    return json.dumps({"version": 2, "id": repo_id, "chunker_polynomial": "1"})


def test_check_auto_reads_all_data_when_the_interval_elapsed(tmp_path: Path) -> None:
    config = make_config(tmp_path, deep_check_interval_days=7)

    def check_run(now: float) -> list[bool]:
        fake = FakeRestic()
        for repo_id, name in (("id-p", "primary"), ("id-1", "b1"), ("id-2", "b2")):
            fake.respond("cat", stdout=[config_line(repo_id)], repository=name)
        go(config, fake, tmp_path, "check", auto=True)
        return [("--read-data" in c.args) for c in fake.calls if c.command == "check"]

    assert check_run(0) == [True, True, True]  # never checked: due
    state = DeepCheckState(tmp_path / "state")
    assert state.last_deep_check("id-1") is not None
    assert check_run(0) == [False, False, False]  # just recorded
    # Keyed by repository id: another URL for b1 would share it; a record of
    # another id does not count for this one.
    assert not state.is_due("id-1", 7) and state.is_due("id-other", 7)
    assert not state.is_due("id-other", 0)  # interval 0: never due


def test_state_file_is_private_atomic_and_survives_corruption(tmp_path: Path) -> None:
    state = DeepCheckState(tmp_path / "s", clock=lambda: 1000.0)
    state.record_deep_check("abc", "primary")
    assert (tmp_path / "s" / "state.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700
    assert state.last_deep_check("abc") == 1000.0
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["state.json"]
    (tmp_path / "s" / "state.json").write_text("{not json")
    assert state.is_due("abc", 30)  # unreadable: a deep check runs rather than being skipped
    later = DeepCheckState(tmp_path / "s", clock=lambda: 1000.0 + 31 * 86400)
    later.record_deep_check("abc", "primary")
    assert not later.is_due("abc", 30)


@pytest.mark.parametrize(
    ("env", "euid", "expected"),
    [
        ({"RESTICM_STATE_DIR": "/x"}, 0, "/x"),
        ({"XDG_STATE_HOME": "/xdg", "HOME": "/h"}, 0, "/var/lib/resticm"),
        ({"XDG_STATE_HOME": "/xdg", "HOME": "/h"}, 1000, "/xdg/resticm"),
        ({"HOME": "/h"}, 1000, "/h/.local/state/resticm"),
    ],
)
def test_default_state_dir(env: Mapping[str, str], euid: int, expected: str) -> None:
    assert default_state_dir(env, euid=euid) == Path(expected)


def lock_json(host: str, pid: int, when: str) -> str:
    return json.dumps({"time": when, "exclusive": False, "hostname": host, "pid": pid})


def test_verify_locks_classifies_own_stale_live_and_foreign_locks() -> None:
    fake = FakeRestic()
    restic = Restic(fake)
    repo = Repository(name="primary", url="/r", password="pw")
    started = parse_lock_time("2026-01-01T10:00:00.123456789+00:00")
    assert started is not None
    fake.respond("list", stdout=[LOCK_A, LOCK_B, "garbage"])
    fake.respond("cat", stdout=[lock_json("me", 4242, "2026-01-01T10:00:05.5Z")])
    fake.respond("cat", stdout=[lock_json("other", 1, "2026-01-01T09:00:00Z")])
    live = verify_locks(
        restic, repo, run_started=started, hostname="me", alive=lambda pid: pid == 4242
    )
    assert live.ok and [lock.hostname for lock in live.foreign] == ["other"]
    restic = Restic(fake := FakeRestic())  # a fresh fake: the last response is sticky
    fake.respond("list", stdout=[LOCK_A])
    fake.respond("cat", stdout=[lock_json("me", 4242, "2026-01-01T10:00:05Z")])
    dead = verify_locks(restic, repo, run_started=started, hostname="me", alive=lambda pid: False)
    assert not dead.ok and "stale lock from this host on primary" in dead.message()
    assert "PID 4242" in dead.message()
    restic = Restic(fake := FakeRestic())
    fake.respond("list", stdout=[LOCK_A])
    fake.respond("cat", stdout=[lock_json("me", 4242, "2026-01-01T09:59:00Z")])
    older = verify_locks(restic, repo, run_started=started, hostname="me", alive=lambda pid: True)
    assert not older.ok  # alive but older than the run: not ours to keep
    restic = Restic(fake := FakeRestic())
    fake.respond("list", exit_code=1, stderr=["Fatal: unable to open config file"])
    broken = verify_locks(restic, repo, run_started=started, hostname="me")
    assert not broken.ok and broken.message().startswith("could not verify locks on primary")


def test_copy_destination_keeps_its_own_credentials() -> None:
    source = Repository(
        name="primary",
        url="s3:h/src",
        aws_access_key_id="SRC-ID",
        aws_secret_access_key="SRC-SECRET",
        env={"AWS_DEFAULT_REGION": "eu", "RESTIC_COMPRESSION": "max"},
    )
    local = Repository(name="usb", url="/mnt/usb")
    assert copy_destination(local, source).env == {
        "AWS_DEFAULT_REGION": "eu",
        "AWS_ACCESS_KEY_ID": "SRC-ID",
        "AWS_SECRET_ACCESS_KEY": "SRC-SECRET",
    }
    own = Repository(
        name="s3b", url="s3:h/dst", aws_access_key_id="DST-ID", env={"AWS_SECRET_ACCESS_KEY": "D"}
    )
    env = copy_destination(own, source).env
    assert "AWS_ACCESS_KEY_ID" not in env and env["AWS_SECRET_ACCESS_KEY"] == "D"


@pytest.mark.parametrize(
    ("argv", "ours", "theirs"),
    [
        (["run", "snapshots", "-c"], ["run"], ["snapshots", "-c"]),
        (["-c", "x.yaml", "-v", "run", "-h"], ["-c", "x.yaml", "-v", "run"], ["-h"]),
        (["--config=run", "run", "ls"], ["--config=run", "run"], ["ls"]),
        (["forget", "run"], ["forget", "run"], None),
        (["-c", "run", "backup"], ["-c", "run", "backup"], None),
        # the Go spelling: resticm's flags right after `run`, before restic's first argument
        (["run", "-c", "x.yaml", "-v", "snapshots", "-c"], ["run", "-c", "x.yaml", "-v"],
         ["snapshots", "-c"]),
        (["run", "--config=x.yaml", "ls", "latest"], ["run", "--config=x.yaml"], ["ls", "latest"]),
        (["run", "--no-lock", "-c", "snapshots"], ["run"], ["--no-lock", "-c", "snapshots"]),
    ],
)
def test_split_run_argv(argv: list[str], ours: list[str], theirs: list[str] | None) -> None:
    assert split_run_argv(argv) == (ours, theirs)


def test_state_dir_from_the_run_environment(tmp_path: Path) -> None:
    fake = FakeRestic()
    fake.respond("cat", stdout=[config_line("id-env")])
    run(
        make_config(tmp_path, copy_to_backends=[]),
        "check",
        runner=fake,
        environ={"RESTICM_STATE_DIR": str(tmp_path / "env-state")},
        lock_dir=tmp_path / "locks",
        output=RecordingSink(),
        options=RunOptions(deep=True),
    )
    data = json.loads((tmp_path / "env-state" / "state.json").read_text())
    assert set(data["deep_check"]) == {"id-env"}
    assert not os.path.exists(tmp_path / "state")
