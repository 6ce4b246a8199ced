"""Several jobs in one config (issue 18), as a user runs them: a real resticm process,
real restic, real repositories and hook scripts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from resticm_core.locking import ProcessLock, lock_key

from .conftest import PASSWORD, requires_restic, restic_env, write_script

pytestmark = [requires_restic, pytest.mark.restic]


def resticm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def snapshots(repo: Path, cache: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["restic", "snapshots", "--json", "--no-lock"],
        env=restic_env(cache, repo), capture_output=True, text=True, check=True,
    )  # fmt: skip
    found: list[dict[str, Any]] = json.loads(out.stdout) or []
    return found


@pytest.fixture
def two(tmp_path: Path, template_repo: Path) -> dict[str, Path]:
    """Two repositories, two source trees, a hook log."""
    paths = {"log": tmp_path / "hooks.log"}
    for name in ("web", "db"):
        shutil.copytree(template_repo, tmp_path / f"repo-{name}")
        src = tmp_path / f"src-{name}"
        src.mkdir()
        (src / f"{name}.txt").write_text(f"{name} data\n")
        paths[f"repo-{name}"], paths[f"src-{name}"] = tmp_path / f"repo-{name}", src
        write_script(
            tmp_path / "hooks" / f"{name}.sh",
            f'echo "{name} $RESTICM_PHASE job=$RESTICM_JOB" >> {paths["log"]}\n'
            f'[ "${{FAIL_JOB-}}" = {name} ] && exit 1\nexit 0\n',
        )
    return paths


def job_yaml(name: str, paths: dict[str, Path], tmp_path: Path, indent: str = "  ") -> str:
    hook = tmp_path / "hooks" / f"{name}.sh"
    return (
        f"{indent}{name}:\n"
        f"{indent}  repository: {paths[f'repo-{name}']}\n"
        f"{indent}  directories: [{paths[f'src-{name}']}]\n"
        f"{indent}  default_tags: [{name}]\n"
        f"{indent}  hooks:\n{indent}    pre_backup: {hook}\n"
    )


def common(tmp_path: Path) -> str:
    return (
        f"password: {PASSWORD}\n"
        f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n"
        "default_tags: [common]\n"
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("layout", ["one file", "conf.d"])
def test_each_job_backs_up_its_paths_into_its_repository(
    layout: str, tmp_path: Path, two: dict[str, Path], environ: dict[str, str]
) -> None:
    if layout == "one file":
        cfg = write(
            tmp_path / "config.yaml",
            common(tmp_path) + "jobs:\n" + job_yaml("web", two, tmp_path)
            + job_yaml("db", two, tmp_path),
        )  # fmt: skip
    else:
        cfg = write(tmp_path / "config.yaml", common(tmp_path))
        write(tmp_path / "conf.d" / "20-db.yaml", "jobs:\n" + job_yaml("db", two, tmp_path))
        write(tmp_path / "conf.d" / "10-web.yaml", "jobs:\n" + job_yaml("web", two, tmp_path))
    listed = resticm("-c", str(cfg), "jobs", "--json", env=environ)
    assert listed.returncode == 0, listed.stderr
    assert [j["name"] for j in json.loads(listed.stdout)["jobs"]] == ["web", "db"]
    result = resticm("-c", str(cfg), "--json", "backup", env=environ)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(j["job"], j["exit_code"]) for j in report["jobs"]] == [("web", 0), ("db", 0)]
    cache = tmp_path / "cache"
    for name, other in (("web", "db"), ("db", "web")):
        (snapshot,) = snapshots(two[f"repo-{name}"], cache)
        assert snapshot["paths"] == [str(two[f"src-{name}"])]
        assert snapshot["tags"] == [name]  # the job's list replaced the top-level one
        assert str(two[f"src-{other}"]) not in json.dumps(snapshot)
    # each job ran its own hook, in job order, and the hook knows its job
    assert two["log"].read_text().splitlines() == [
        "web pre_backup job=web", "db pre_backup job=db",
    ]  # fmt: skip


def test_a_failing_job_does_not_stop_the_next_and_the_exit_code_is_the_worst(
    tmp_path: Path, two: dict[str, Path], environ: dict[str, str]
) -> None:
    cfg = write(
        tmp_path / "config.yaml",
        common(tmp_path) + "jobs:\n" + job_yaml("web", two, tmp_path)
        + job_yaml("db", two, tmp_path),
    )  # fmt: skip
    result = resticm("-c", str(cfg), "backup", env={**environ, "FAIL_JOB": "web"})
    assert result.returncode == 1, result.stderr
    assert "backup: 2 job(s), exit 1 (web: 1, db: 0)" in result.stderr
    cache = tmp_path / "cache"
    assert snapshots(two["repo-web"], cache) == []
    assert len(snapshots(two["repo-db"], cache)) == 1
    # a job whose lock another run holds exits 75; the others still run
    with ProcessLock(lock_key(cfg, str(two["repo-db"]), "db")):
        held = resticm("-c", str(cfg), "backup", env=environ)
    assert held.returncode == 75, held.stderr
    assert "(web: 0, db: 75)" in held.stderr
    assert len(snapshots(two["repo-web"], cache)) == 1


def test_j_picks_one_job_and_one_repository_commands_need_it(
    tmp_path: Path, two: dict[str, Path], environ: dict[str, str]
) -> None:
    cfg = write(
        tmp_path / "config.yaml",
        common(tmp_path) + "jobs:\n" + job_yaml("web", two, tmp_path)
        + job_yaml("db", two, tmp_path),
    )  # fmt: skip
    result = resticm("-c", str(cfg), "-j", "db", "backup", env=environ)
    assert result.returncode == 0, result.stderr
    cache = tmp_path / "cache"
    assert snapshots(two["repo-web"], cache) == [] and len(snapshots(two["repo-db"], cache)) == 1
    listing = resticm("-c", str(cfg), "snapshots", "--job=db", "--json", env=environ)
    assert listing.returncode == 0, listing.stderr
    assert len(json.loads(listing.stdout)) == 1
    ambiguous = resticm("-c", str(cfg), "snapshots", env=environ)
    assert ambiguous.returncode == 2
    assert "defines 2 jobs; choose one with -j NAME (jobs: web, db)" in ambiguous.stderr
    unknown = resticm("-c", str(cfg), "-j", "mail", "backup", env=environ)
    assert unknown.returncode == 2 and "no such job" in unknown.stderr
    validated = resticm("-c", str(cfg), "config", "validate", env=environ)
    assert validated.returncode == 0, validated.stderr
    assert f"OK: {cfg} (2 jobs: web, db)" in validated.stdout


def test_a_missing_variable_is_a_located_error_with_exit_2(
    tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = write(
        tmp_path / "config.yaml",
        f"repository: {repo}\npassword: {PASSWORD}\ndirectories: [{source}]\n"
        f"logging:\n  file: {tmp_path / 'resticm.log'}\n"
        "retention:\n  keep_daily: ${DAYS}\n",
    )
    environ.pop("DAYS", None)
    result = resticm("-c", str(cfg), "--json", "backup", env=environ)
    assert result.returncode == 2
    assert f"{cfg}:7: retention.keep_daily: ${{DAYS}}: variable DAYS is not set" in result.stderr
    (error,) = json.loads(result.stdout)["errors"]
    assert (error["line"], error["path"]) == (7, "retention.keep_daily")
    assert resticm("-c", str(cfg), "backup", env={**environ, "DAYS": "3"}).returncode == 0
