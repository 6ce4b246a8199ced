"""``resticm restore`` with real restic: the primary, a local mirror and an S3 mirror on moto.

Every test drives ``python -m resticm_core -c cfg restore ...`` as a user would
and checks the restored tree byte for byte (modes and mtimes too).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORD, json_config, requires_restic, run_config, write_script
from .test_mirror_sync import S3_ENV, moto  # noqa: F401  (the moto_server fixture)

pytestmark = [requires_restic, pytest.mark.restic]

HOST = "restore-host"


def write_config(tmp_path: Path, source: Path, **extra: Any) -> Path:
    return json_config(tmp_path, source, host=HOST, **extra)


def resticm(cfg: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_config(cfg, *args, env=env)


def make_tree(root: Path) -> Path:
    """A source tree with modes, old mtimes, a nested subtree, a symlink and binary bytes."""
    (root / "etc" / "app").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "etc" / "app" / "app.conf").write_text("listen 8080\n")
    (root / "etc" / "app" / "secret.key").write_bytes(b"\x00\x01\r\n\xff" * 50)
    (root / "etc" / "app" / "secret.key").chmod(0o600)
    (root / "data" / "big.bin").write_bytes(os.urandom(200_000))
    (root / "data" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "data" / "run.sh").chmod(0o750)
    (root / "top.txt").write_text("top\n")
    (root / "link").symlink_to("top.txt")
    for i, path in enumerate(sorted(root.rglob("*"))):
        if not path.is_symlink():
            os.utime(path, (1_600_000_000 + i, 1_600_000_000 + i * 1000))
    return root


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry below *root*: kind, content hash (files) or target (links), mode, mtime."""
    out: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = ("file", digest, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def entries(root: Path) -> int:
    """Everything below *root*: what restic (>= 0.16) counts as restored."""
    return sum(1 for _ in root.rglob("*"))


def restored(target: Path, source: Path) -> Path:
    """restic restores a snapshot's absolute paths below the target."""
    return target / str(source).lstrip("/")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


@pytest.fixture
def env(environ: dict[str, str]) -> dict[str, str]:
    return environ


def local_mirror(tmp_path: Path, template_repo: Path, name: str = "mirror") -> dict[str, Any]:
    shutil.copytree(template_repo, tmp_path / name)
    return {"repository": str(tmp_path / name), "password": PASSWORD}


def backup(cfg: Path, env: dict[str, str]) -> None:
    """The default workflow: backup, forget, and copy to copy_to_backends."""
    done = resticm(cfg, env=env)
    assert done.returncode == 0, done.stderr


# -- restore into a target ------------------------------------------------------------------------


def test_restore_latest_is_byte_identical_with_modes_and_mtimes(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, src)
    backup(cfg, env)
    target = tmp_path / "target"
    done = resticm(cfg, "restore", "--target", str(target), env=env)
    assert done.returncode == 0, done.stderr
    assert tree(restored(target, src)) == tree(src)
    assert f"restored {entries(target)} files and directories" in done.stdout
    assert "using primary" in done.stdout

    # --include restores exactly the named subtree.
    only = tmp_path / "only"
    sub = src / "etc" / "app"
    done = resticm(cfg, "restore", "--target", str(only), "--include", str(sub), env=env)
    assert done.returncode == 0, done.stderr
    files = {str(p.relative_to(only)) for p in only.rglob("*") if not p.is_dir()}
    assert files == {str(restored(Path(""), sub / n)) for n in ("app.conf", "secret.key")}
    assert tree(restored(only, sub)) == tree(sub)


def test_json_report_and_library_api_agree(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str]
) -> None:
    import resticm_core

    cfg = write_config(tmp_path, src)
    backup(cfg, env)
    done = resticm(cfg, "restore", "--target", str(tmp_path / "t1"), "--json", env=env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["repository"] == "primary" and doc["files_restored"] == entries(tmp_path / "t1")
    assert doc["bytes_restored"] == sum(
        p.stat().st_size for p in src.rglob("*") if p.is_file() and not p.is_symlink()
    )

    config = resticm_core.load_config(str(cfg), environ=env)
    report = resticm_core.restore(config, "latest", target=tmp_path / "t2", environ=env)
    assert isinstance(report, resticm_core.RestoreReport) and report.ok
    assert report.snapshot_id == doc["snapshot_id"]
    assert report.files_restored == doc["files_restored"]
    assert tree(restored(tmp_path / "t2", src)) == tree(src)
    listing = resticm_core.ls(config, "latest", environ=env)
    paths = {n.path: n for n in listing.nodes}
    assert paths[str(src / "data" / "big.bin")].size == 200_000
    assert paths[str(src / "link")].type == "symlink"
    found = resticm_core.find(config, "run.sh", environ=env)
    assert [(m.snapshot_id, m.node.path, m.node.type) for m in found.matches] == [
        (report.snapshot_id, str(src / "data" / "run.sh"), "file")
    ]


# -- falling back on a mirror ---------------------------------------------------------------------


@pytest.mark.parametrize("broken", ["removed", "wrong_password"])
def test_primary_broken_restore_falls_back_on_the_mirror(
    tmp_path: Path, repo: Path, template_repo: Path, src: Path, env: dict[str, str], broken: str
) -> None:
    cfg = write_config(
        tmp_path,
        src,
        backends={"mirror": local_mirror(tmp_path, template_repo)},
        copy_to_backends=["mirror"],
    )
    backup(cfg, env)
    if broken == "removed":
        shutil.rmtree(repo)
    else:
        data = json.loads(cfg.read_text())
        data["password"] = "not the password"
        cfg.write_text(json.dumps(data))
    target = tmp_path / "target"
    done = resticm(cfg, "restore", "--target", str(target), env=env)
    assert done.returncode == 0, done.stderr
    assert tree(restored(target, src)) == tree(src)
    assert "using mirror" in done.stdout
    reason = "does not exist" if broken == "removed" else "wrong password"
    assert f"skipped primary ({repo})" in done.stdout and reason in done.stdout

    # --from primary: the primary's own error, exit 1, nothing restored.
    forced = tmp_path / "forced"
    done = resticm(cfg, "restore", "--from", "primary", "--target", str(forced), env=env)
    assert done.returncode == 1
    assert reason in done.stderr and not forced.exists()
    assert "not the password" not in done.stderr + done.stdout


# -- find and latest~N ----------------------------------------------------------------------------


def test_find_names_the_snapshots_holding_a_deleted_file_and_latest_1_brings_it_back(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, src)
    backup(cfg, env)
    (src / "top.txt").write_text("top, second version\n")
    backup(cfg, env)
    lost = src / "top.txt"
    kept = tree(src)[str(lost.relative_to(src))]
    lost.unlink()
    backup(cfg, env)
    listed = json.loads(resticm(cfg, "snapshots", "--json", env=env).stdout)
    by_time = [s["id"] for s in sorted(listed, key=lambda s: s["time"])]

    found = resticm(cfg, "find", str(lost), "--json", env=env)
    assert found.returncode == 0, found.stderr
    ids = [m["snapshot_id"] for m in json.loads(found.stdout)["matches"]]
    assert ids == [by_time[1], by_time[0]]  # newest first; not the latest
    newest = json.loads(resticm(cfg, "find", str(lost), "--newest", "1", "--json", env=env).stdout)
    assert [m["snapshot_id"] for m in newest["matches"]] == [by_time[1]]

    target = tmp_path / "target"
    done = resticm(cfg, "restore", "latest~1", "--target", str(target), env=env)
    assert done.returncode == 0, done.stderr
    back = restored(target, lost)
    assert back.read_text() == "top, second version\n"
    assert tree(restored(target, src))[lost.name] == kept

    diff = resticm(cfg, "diff", "latest~1", "latest", "--json", env=env)
    assert diff.returncode == 0, diff.stderr
    changes = json.loads(diff.stdout)["changes"]
    assert {"path": str(lost), "modifier": "-"} in changes

    too_far = resticm(cfg, "restore", "latest~3", "--target", str(tmp_path / "x"), env=env)
    assert too_far.returncode == 1 and "only 3 snapshot(s)" in too_far.stderr


# -- hooks ----------------------------------------------------------------------------------------


def _hook(tmp_path: Path, name: str, body: str = "") -> str:
    log = tmp_path / "calls.log"
    script = write_script(
        tmp_path / "hooks" / f"{name}.sh",
        f'echo "{name} status=${{RESTICM_RESTORE_STATUS-}} target=$RESTICM_RESTORE_TARGET '
        f'snap=$RESTICM_SNAPSHOT_ID repo=$RESTICM_REPOSITORY" >> {log}\n{body}',
    )
    return str(script)


def _calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_pre_restore_failure_restores_nothing_and_runs_on_error_and_finally(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str]
) -> None:
    hooks = {
        "pre_restore": _hook(tmp_path, "pre", "exit 4\n"),
        "post_restore": _hook(tmp_path, "post"),
        "on_error": _hook(tmp_path, "on_error"),
        "on_success": _hook(tmp_path, "on_success"),
        "finally": _hook(tmp_path, "finally"),
    }
    cfg = write_config(tmp_path, src, hooks=hooks)
    backup(cfg, env)
    (tmp_path / "calls.log").unlink()  # the backup's own on_success/finally
    target = tmp_path / "target"
    done = resticm(cfg, "restore", "--target", str(target), env=env)
    assert done.returncode == 1
    assert "pre_restore failed, nothing was restored" in done.stderr
    assert not target.exists()
    assert [c.split()[0] for c in _calls(tmp_path)] == ["pre", "on_error", "finally"]

    # --no-hooks: no hook runs, the restore does.
    (tmp_path / "calls.log").unlink()
    done = resticm(cfg, "restore", "--target", str(target), "--no-hooks", env=env)
    assert done.returncode == 0, done.stderr
    assert _calls(tmp_path) == [] and tree(restored(target, src)) == tree(src)


def test_post_restore_runs_after_a_failed_restore_and_sees_the_used_repository(
    tmp_path: Path, repo: Path, template_repo: Path, src: Path, env: dict[str, str]
) -> None:
    mirror = local_mirror(tmp_path, template_repo)
    hooks = {
        # The key disappears between the choice and restic restore: restic cannot open it.
        "pre_restore": _hook(tmp_path, "pre", f"rm -f {tmp_path}/mirror/keys/*\n"),
        "post_restore": _hook(tmp_path, "post"),
        "on_error": _hook(tmp_path, "on_error"),
        "finally": _hook(tmp_path, "finally"),
    }
    cfg = write_config(
        tmp_path, src, hooks=hooks, backends={"mirror": mirror}, copy_to_backends=["mirror"]
    )
    backup(cfg, env)
    (tmp_path / "calls.log").unlink()
    shutil.rmtree(repo)
    target = tmp_path / "target"
    done = resticm(cfg, "restore", "--target", str(target), env=env)
    assert done.returncode == 1, done.stdout
    calls = _calls(tmp_path)
    assert [c.split()[0] for c in calls] == ["pre", "post", "on_error", "finally"]
    post = calls[1]
    assert "status=failure" in post and f"target={target}" in post
    assert f"repo={tmp_path}/mirror" in post and "snap=" in post and "snap= " not in post


# -- dry run and a non-empty target ---------------------------------------------------------------


def test_non_empty_target_is_refused_without_overwrite_and_dry_run_writes_nothing(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, src)
    backup(cfg, env)
    target = tmp_path / "target"
    (restored(target, src) / "etc" / "app").mkdir(parents=True)
    (restored(target, src) / "etc" / "app" / "app.conf").write_text("local edit\n")
    (target / "unrelated").write_text("mine\n")
    before = tree(target)

    refused = resticm(cfg, "restore", "--target", str(target), env=env)
    assert refused.returncode == 2
    assert "is not empty" in refused.stderr and "--overwrite" in refused.stderr
    assert tree(target) == before

    for policy in ("always", "never", "if-changed"):
        dry = resticm(cfg, "restore", "--target", str(target), "--overwrite", policy, "-n", env=env)
        assert dry.returncode == 0, dry.stderr
        assert "[dry-run] would restore" in dry.stdout
        assert tree(target) == before
    dry = resticm(cfg, "restore", "--target", str(tmp_path / "new"), "--dry-run", env=env)
    assert not (tmp_path / "new").exists()
    real = resticm(cfg, "restore", "--target", str(tmp_path / "new"), env=env)
    assert real.returncode == 0, real.stderr
    assert dry.returncode == 0, dry.stderr
    assert f"would restore {entries(tmp_path / 'new')} files and directories" in dry.stdout


def test_overwrite_never_keeps_existing_files_and_always_replaces_them(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, src)
    backup(cfg, env)
    target = tmp_path / "target"
    edited = restored(target, src) / "etc" / "app" / "app.conf"
    edited.parent.mkdir(parents=True)
    edited.write_text("local edit\n")
    (target / "unrelated").write_text("mine\n")

    done = resticm(cfg, "restore", "--target", str(target), "--overwrite", "never", env=env)
    assert done.returncode == 0, done.stderr
    assert edited.read_text() == "local edit\n"
    assert "1 existing file(s) kept" in done.stdout
    expected = tree(src)
    expected.pop("etc/app/app.conf")
    got = tree(restored(target, src))
    got.pop("etc/app/app.conf")
    assert {k: v for k, v in got.items() if v[0] != "dir"} == {
        k: v for k, v in expected.items() if v[0] != "dir"
    }
    assert not list(target.glob(".resticm-restore-*"))  # the staging directory is gone

    done = resticm(cfg, "restore", "--target", str(target), "--overwrite", "if-changed", env=env)
    assert done.returncode == 0, done.stderr
    assert tree(restored(target, src)) == tree(src)  # the edited file differed: replaced
    # Kept: the four regular files that did not change (a link is always recreated).
    assert "4 existing file(s) kept" in done.stdout
    assert (target / "unrelated").read_text() == "mine\n"


def test_options_this_restic_lacks_are_refused_with_the_version_needed(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str]
) -> None:
    version = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout
    if not version.startswith("restic 0.1") or int(version.split(".")[1]) >= 17:
        pytest.skip("restic >= 0.17 has --delete")
    cfg = write_config(tmp_path, src)
    backup(cfg, env)
    done = resticm(
        cfg, "restore", "--target", str(tmp_path / "t"), "--delete", "--overwrite", "always",
        env=env,
    )
    assert done.returncode == 2 and "--delete needs restic >= 0.17" in done.stderr
    assert not (tmp_path / "t").exists()


# -- dump and mount -------------------------------------------------------------------------------


def test_dump_writes_the_exact_bytes_to_stdout(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str]
) -> None:
    blob = src / "data" / "raw.bin"
    blob.write_bytes(b"no newline\r\n\x00\x1b[31m" + os.urandom(70_000) + b"\r")
    cfg = write_config(tmp_path, src)
    backup(cfg, env)
    done = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), "dump", "latest", str(blob)],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == blob.read_bytes()
    missing = resticm(cfg, "dump", "latest", str(src / "nope"), env=env)
    assert missing.returncode == 1 and "nope" in missing.stderr


def test_mount_without_fuse_is_a_clear_usage_error(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, src)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    restic = shutil.which("restic")
    assert restic is not None
    (bin_dir / "restic").symlink_to(restic)
    (tmp_path / "mnt").mkdir()
    done = resticm(cfg, "mount", str(tmp_path / "mnt"), env={**env, "PATH": str(bin_dir)})
    assert done.returncode == 2
    assert "FUSE is not available" in done.stderr and "Traceback" not in done.stderr


# -- disaster recovery: a fresh machine, the primary gone, the S3 mirror ---------------------------


def test_fresh_machine_restores_from_the_s3_mirror_with_config_and_password_only(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str], moto: str  # noqa: F811
) -> None:
    s3_url = f"s3:{moto}/dr-{uuid.uuid4().hex[:12]}"
    cfg = write_config(
        tmp_path,
        src,
        backends={"s3": {"repository": s3_url, "password": "s3-password", "env": S3_ENV}},
        copy_to_backends=["s3"],
    )
    # restic itself creates the mirror (resticm init's probe of a missing bucket is
    # retried for minutes by restic 0.18: setup only, not what is tested here).
    init = subprocess.run(
        ["restic", "init", "--copy-chunker-params"],
        env={
            **env,
            **S3_ENV,
            "RESTIC_REPOSITORY": s3_url,
            "RESTIC_PASSWORD": "s3-password",
            "RESTIC_FROM_REPOSITORY": str(repo),
            "RESTIC_FROM_PASSWORD": PASSWORD,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert init.returncode == 0, init.stderr
    backup(cfg, env)

    # The server is gone: its repository, state, cache and logs with it.
    shutil.rmtree(repo)
    for gone in ("cache", "state", "log"):
        shutil.rmtree(tmp_path / gone, ignore_errors=True)
    fresh = tmp_path / "fresh"
    home = fresh / "home"
    dirs = {v: fresh / v.lower() for v in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME")}
    for path in (home, *dirs.values()):
        path.mkdir(parents=True)
    clean = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        **{k: str(v) for k, v in dirs.items()},
    }
    target = tmp_path / "target"
    done = resticm(cfg, "restore", "--target", str(target), env=clean)
    assert done.returncode == 0, done.stderr
    assert tree(restored(target, src)) == tree(src)
    assert f"using s3 ({s3_url})" in done.stdout and "skipped primary" in done.stdout
    assert not (tmp_path / "state").exists() and "testing-secret" not in done.stdout + done.stderr


# -- notifications, an unreachable primary, the emulated dry run with --include --------------------


def test_restore_sends_a_restore_event_without_secrets(
    tmp_path: Path, repo: Path, template_repo: Path, src: Path, env: dict[str, str]
) -> None:
    from .http_recorder import serve

    for server in serve():
        cfg = write_config(
            tmp_path,
            src,
            backends={"mirror": local_mirror(tmp_path, template_repo)},
            copy_to_backends=["mirror"],
            notifications={
                "enabled": True,
                "notify_on_success": True,
                "notify_on_error": True,
                "providers": [{"type": "webhook", "url": f"{server.url}/hook"}],
            },
        )
        backup(cfg, env)
        server.requests.clear()
        shutil.rmtree(repo)
        done = resticm(cfg, "restore", "--target", str(tmp_path / "t"), env=env)
        assert done.returncode == 0, done.stderr
        dry = resticm(cfg, "restore", "--target", str(tmp_path / "d"), "-n", env=env)
        assert dry.returncode == 0, dry.stderr  # a dry run notifies nothing
        failed = resticm(
            cfg, "restore", "--from", "primary", "--target", str(tmp_path / "f"), env=env
        )
        assert failed.returncode == 1
        events = [r.json() for r in server.requests]
        assert [(e["title"], e["command"], e["status"]) for e in events] == [
            ("✅ Restore Completed", "restore", "success"),
            ("❌ Restore Failed", "restore", "error"),
        ]
        details = events[0]["details"]
        assert details["repository"] == f"mirror ({tmp_path / 'mirror'})"
        assert details["target"] == str(tmp_path / "t") and "primary" in details["skipped"]
        assert "does not exist" in events[1]["body"]
        assert PASSWORD not in server.all_text()


def test_an_unreachable_primary_is_skipped_as_unreachable(
    tmp_path: Path, template_repo: Path, src: Path, env: dict[str, str]
) -> None:
    from .http_recorder import refused_url

    mirror = local_mirror(tmp_path, template_repo)
    # The snapshot is made straight into the mirror (its own config: the primary never answers).
    direct = write_config(tmp_path, src, repository=mirror["repository"])
    backup(direct, env)
    cfg = write_config(
        tmp_path,
        src,
        repository="rest:" + refused_url(),
        retries=0,
        # restic >= 0.17 retries an unreachable backend for minutes: bound the probe.
        timeouts={"snapshots": 15},
        backends={"mirror": mirror},
        copy_to_backends=["mirror"],
    )
    done = resticm(cfg, "restore", "--target", str(tmp_path / "t"), "--json", env=env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["repository"] == "mirror"
    assert [(s["name"], s["kind"]) for s in doc["skipped_repositories"]] == [
        ("primary", "unreachable")
    ]
    assert tree(restored(tmp_path / "t", src)) == tree(src)


def test_emulated_dry_run_counts_what_the_restore_then_restores(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str]
) -> None:
    cfg = write_config(tmp_path, src)
    backup(cfg, env)
    for pattern in (str(src / "etc"), "*.sh", "app"):
        target = tmp_path / f"t-{uuid.uuid4().hex[:6]}"
        args = ("restore", "--target", str(target), "--include", pattern, "--json")
        dry = json.loads(resticm(cfg, *args, "-n", env=env).stdout)
        assert not target.exists()
        real = json.loads(resticm(cfg, *args, env=env).stdout)
        assert real["exit_code"] == 0 and dry["exit_code"] == 0
        assert dry["files_restored"] == real["files_restored"] == entries(target), pattern
        assert dry["bytes_restored"] == real["bytes_restored"], pattern


def test_sigterm_during_pre_restore_stops_it_and_cleanup_hooks_still_run(
    tmp_path: Path, repo: Path, src: Path, env: dict[str, str]
) -> None:
    import signal
    import time

    started = tmp_path / "pre-started"
    hooks = {
        "pre_restore": _hook(tmp_path, "pre", f"touch {started}\nsleep 60\n"),
        "on_error": _hook(tmp_path, "on_error"),
        "finally": _hook(tmp_path, "finally"),
    }
    cfg = write_config(tmp_path, src, hooks=hooks)
    backup(cfg, env)
    (tmp_path / "calls.log").unlink()
    target = tmp_path / "target"
    proc = subprocess.Popen(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), "restore", "--target", str(target)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120  # a hang guard only
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "pre_restore never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert not target.exists()
    assert [c.split()[0] for c in _calls(tmp_path)] == ["pre", "on_error", "finally"]
