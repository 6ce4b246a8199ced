"""Every pattern of the hooks guide, from ``examples/``, run for real.

Each example directory is copied to tmp_path and adapted the way its README tells
a user to: ``repository``, ``password_file``, ``directories``, ``logging.file`` and
every absolute path in ``hooks.environment`` are moved under a temporary root
(:func:`adapt`). Then the real ``resticm`` CLI runs it against the real restic and
a temporary repository, with the external tools (docker, mariadb-dump,
pg_dumpall, wp, systemctl, mongodump, sudo) replaced by the recording fakes of
``tool_fakes`` first on PATH. Each test asserts the calls made, the files
dumped, the snapshot contents (``restic ls latest``) and the cleanup done, on
the success path and on a failure path.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from resticm_core import load_config
from resticm_core.config_file import config_warnings

from .conftest import PASSWORD, requires_restic, restic_env
from .tool_fakes import install_fakes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PATTERNS = [
    "orchestrator",
    "monolithic",
    "conditional-detection",
    "wordpress",
    "docker-stack",
    "multi-database",
    "python-hooks",
]

pytestmark = [requires_restic, pytest.mark.restic]


def reroot(root: Path, value: str) -> str:
    """``/var/backups/x`` -> ``<root>/var/backups/x``; other values unchanged."""
    return str(root / value.lstrip("/")) if value.startswith("/") else value


def adapt(config: Path, *, root: Path, repo: Path, password_file: Path) -> dict[str, Any]:
    """Point the example's config at test locations, as a user points it at theirs.

    Returns the adapted ``hooks.environment``.
    """
    yaml = YAML()  # round trip: comments and order stay
    data = yaml.load(config)
    data["repository"] = str(repo)
    data["password_file"] = str(password_file)
    data["directories"] = [reroot(root, d) for d in data["directories"]]
    data["logging"]["file"] = reroot(root, data["logging"]["file"])
    hooks = data["hooks"]
    environment = hooks.get("environment", {})
    for key, value in environment.items():
        environment[key] = reroot(root, str(value))
    for phase in ("pre_backup", "post_backup", "on_success", "on_error", "finally"):
        entries = hooks.get(phase)
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict) and str(entry.get("kind", "")).startswith("docker-"):
                entry["state_dir"] = str(root / "run" / "resticm")
    yaml.dump(data, config)
    config.chmod(0o600)
    return dict(environment)


class Example:
    """One example, copied and adapted in a test's own world."""

    def __init__(self, name: str, tmp_path: Path, repo: Path, environ: dict[str, str]) -> None:
        self.dir = tmp_path / name
        shutil.copytree(EXAMPLES / name, self.dir, ignore=shutil.ignore_patterns("__pycache__"))
        self.root = tmp_path / "root"
        self.root.mkdir()
        self.repo = repo
        password = tmp_path / "password"
        password.write_text(PASSWORD + "\n")
        password.chmod(0o600)
        self.config = self.dir / "config.yaml"
        self.env = adapt(self.config, root=self.root, repo=repo, password_file=password)
        self.fakes = install_fakes(tmp_path / "fakes")
        self.environ = environ
        self.cache = Path(environ["RESTIC_CACHE_DIR"])
        self._latest: list[str] | None = None

    def path(self, variable: str) -> Path:
        """A path of hooks.environment, as adapted."""
        return Path(self.env[variable])

    def data(self, absolute: str) -> Path:
        """A directory of the example's config, rerooted and created (the "server's" data)."""
        path = self.root / absolute.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run(
        self, *args: str, fail: tuple[str, ...] = (), active: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        self._latest = None
        self.fakes.reset_calls()
        env = self.fakes.env(self.environ, fail=fail, active=active)
        env.pop("RESTICM_DISABLE_PLUGINS", None)
        return subprocess.run(
            [sys.executable, "-m", "resticm_core", "-c", str(self.config), *(args or ("backup",))],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def restic(self, *args: str) -> str:
        out = subprocess.run(
            ["restic", "--no-lock", *args],
            env=restic_env(self.cache, self.repo),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout

    def snapshots(self) -> list[str]:
        """The snapshot files of the (local) repository: no restic call, no key derivation."""
        return sorted(p.name for p in (self.repo / "snapshots").iterdir())

    def latest(self) -> list[str]:
        """``restic ls latest``: every path of the newest snapshot (once per run)."""
        if self._latest is None:
            self._latest = self.restic("ls", "latest").splitlines()[1:]
        return self._latest

    def names_in_latest(self, directory: Path) -> list[str]:
        prefix = f"{directory}/"
        return sorted(p.removeprefix(prefix) for p in self.latest() if p.startswith(prefix))

    def dump_in_latest(self, path: Path) -> bytes:
        out = subprocess.run(
            ["restic", "--no-lock", "dump", "latest", str(path)],
            env=restic_env(self.cache, self.repo),
            capture_output=True,
            timeout=60,
            check=True,
        )
        return out.stdout

    def hook_lines(self, result: subprocess.CompletedProcess[str], hook: str) -> list[str]:
        """What a hook printed, from resticm's console output (``[name] line``)."""
        lines = []
        for line in result.stderr.splitlines():
            _, sep, rest = line.partition("] ")
            if sep and line.split("] ", 1)[0].endswith(hook):
                lines.append(rest)
        return lines


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture
def example(
    request: pytest.FixtureRequest, tmp_path: Path, repo: Path, environ: dict[str, str]
) -> Example:
    return Example(request.param, tmp_path, repo, environ)


def patterns(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("example", names, indirect=True)


# -- the examples as shipped --------------------------------------------------------------------


@pytest.mark.parametrize("name", PATTERNS)
def test_example_is_complete_and_safe(name: str) -> None:
    """A README, a config that loads, hooks resticm accepts (executable, not writable by others)."""
    directory = EXAMPLES / name
    assert (directory / "README.md").is_file()
    assert (directory / "config.yaml").is_file()
    for path in [directory, *directory.rglob("*")]:
        if "__pycache__" in path.parts:
            continue
        mode = path.stat().st_mode
        assert not mode & (stat.S_IWGRP | stat.S_IWOTH), f"{path} is writable by others"
        if path.suffix == ".sh":
            assert mode & stat.S_IXUSR, f"{path} must be executable"
            text = path.read_text()
            assert text.startswith("#!/bin/bash\n"), path
            assert "set -euo pipefail" in text, f"{path}: set -euo pipefail"
            check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
            assert check.returncode == 0, check.stderr


@patterns(*PATTERNS)
def test_config_validates(example: Example, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `resticm config validate` checks: the config loads, no hook has a problem."""
    monkeypatch.setenv("PATH", example.fakes.env(dict(os.environ))["PATH"])  # docker's check
    config = load_config(example.config)
    assert config_warnings(config) == []
    assert config.hooks.any


# -- orchestrator -------------------------------------------------------------------------------


@patterns("orchestrator")
def test_orchestrator(example: Example) -> None:
    fakes = example.fakes
    for name in ("webapp-prod", "redis-cache"):
        fakes.add_container(name)
    fakes.add_container("worker-queue", running=False)
    app = example.data("/srv/app/data")
    (app / "uploads.txt").write_text("user files\n")
    dumps = example.path("BACKUP_DIR")
    dumps.mkdir(parents=True)
    old = dumps / "postgres-20200101-000000.sql.gz"
    old.write_bytes(gzip.compress(b"old"))
    os.utime(old, (time.time() - 3 * 3600,) * 2)

    result = example.run("backup", "-v")
    assert result.returncode == 0, explain(result)
    assert fakes.calls() == [
        "mariadb-dump --all-databases --single-transaction --quick --lock-tables=false "
        "--events --routines --triggers",
        "sudo -u postgres pg_dumpall",
        "pg_dumpall",
        "docker ps --format {{.Names}}",
        "docker stop --time 30 webapp-prod",
        "docker stop --time 30 redis-cache",
        "docker start webapp-prod",  # post_backup
        "docker start redis-cache",
        # finally: nothing left to restart, no docker call
    ]
    made = sorted(p.name for p in dumps.iterdir())
    assert [n.split("-")[0] for n in made] == ["mariadb", "postgres"], made
    assert b"-- Dump completed" in gzip.decompress((dumps / made[0]).read_bytes())
    # The snapshot has the fresh dumps and the app data; the 3 h old dump was in it too,
    # and 10-cleanup-dumps.sh removed it after the successful backup.
    assert example.names_in_latest(dumps) == sorted([*made, old.name])
    assert str(app / "uploads.txt") in example.latest()
    assert not old.exists()
    assert fakes.containers() == {
        "redis-cache": "running",
        "webapp-prod": "running",
        "worker-queue": "exited",
    }
    assert not example.path("STOPPED_FILE").exists()
    assert "worker-queue is not running, skipping" in example.hook_lines(
        result, "30-stop-containers.sh"
    )
    assert example.hook_lines(result, "20-start-containers.sh")[-1] == (
        "No containers to restart (finally)"
    )


@patterns("orchestrator")
def test_orchestrator_dump_failure_is_not_hidden_by_gzip(example: Example) -> None:
    """mariadb-dump fails inside `| gzip`: pipefail fails the module, no partial dump."""
    example.fakes.add_container("webapp-prod")
    example.data("/srv/app/data")
    result = example.run(fail=("mariadb-dump",))
    assert result.returncode == 1, explain(result)
    assert example.snapshots() == []
    assert example.fakes.calls() == [
        "mariadb-dump --all-databases --single-transaction "
        "--quick --lock-tables=false --events --routines --triggers"
    ]
    assert list(example.path("BACKUP_DIR").iterdir()) == [], "no partial dump left behind"
    alert = example.hook_lines(result, "on-error.sh")
    assert alert[0].startswith("ALERT: backup on ") and "(backup: not_run)" in alert[0]
    assert "10-dump-mariadb.sh: exited with status 2" in "\n".join(alert)
    assert "Can't connect to local server" in "\n".join(alert)


@patterns("orchestrator")
def test_orchestrator_container_that_will_not_stop(example: Example) -> None:
    """webapp-prod stopped, redis-cache will not: no backup, finally restarts webapp-prod."""
    for name in ("webapp-prod", "redis-cache"):
        example.fakes.add_container(name)
    example.data("/srv/app/data")
    result = example.run(fail=("docker-stop:redis-cache",))
    assert result.returncode == 1, explain(result)
    assert example.snapshots() == []
    assert example.fakes.calls("docker")[-3:] == [
        "docker stop --time 30 webapp-prod",
        "docker stop --time 30 redis-cache",
        "docker start webapp-prod",  # by finally: post_backup did not run
    ]
    assert example.fakes.containers()["webapp-prod"] == "running"
    assert not example.path("STOPPED_FILE").exists()
    assert "failed to stop container redis-cache" in result.stderr
    assert example.hook_lines(result, "on-error.sh"), "on_error ran"
    # The dumps of the failed run are kept (post_backup did not run).
    assert len(list(example.path("BACKUP_DIR").glob("*.sql.gz"))) == 2


# -- monolithic ---------------------------------------------------------------------------------


@patterns("monolithic")
def test_monolithic(example: Example) -> None:
    for name in ("webapp-prod", "redis-cache"):
        example.fakes.add_container(name)
    app = example.path("APP_DIR")
    app.mkdir(parents=True)
    (app / "state.db").write_text("app state\n")

    result = example.run()
    assert result.returncode == 0, explain(result)
    assert example.fakes.calls() == [
        "mariadb-dump --all-databases --single-transaction",
        "sudo -u postgres pg_dumpall",
        "pg_dumpall",
        "docker stop --time 30 webapp-prod",
        "docker stop --time 30 redis-cache",
        "docker start webapp-prod redis-cache",  # post_backup; finally finds nothing
    ]
    dumps = example.path("BACKUP_DIR")
    assert example.names_in_latest(dumps) == [
        "app-snapshot.tar.gz",
        "mariadb.sql.gz",
        "postgres.sql.gz",
    ]
    snapshot = example.dump_in_latest(dumps / "postgres.sql.gz")
    assert b"cluster dump complete" in gzip.decompress(snapshot)
    assert list(dumps.iterdir()) == [], "post-backup.sh cleaned up after the success"
    assert set(example.fakes.containers().values()) == {"running"}
    assert not example.path("STOPPED_FILE").exists()


@patterns("monolithic")
def test_monolithic_dump_failure(example: Example) -> None:
    """pg_dumpall fails in its pipe: no containers touched, no partial file, on_error ran."""
    example.fakes.add_container("webapp-prod")
    example.path("APP_DIR").mkdir(parents=True)
    result = example.run(fail=("pg_dumpall",))
    assert result.returncode == 1, explain(result)
    assert example.snapshots() == []
    assert example.fakes.calls("docker") == []
    assert sorted(p.name for p in example.path("BACKUP_DIR").iterdir()) == ["mariadb.sql.gz"]
    assert "PostgreSQL dump failed" in result.stderr
    assert example.hook_lines(result, "on-error.sh")
    assert any(
        "Starting post-backup (finally, backup: not_run)" in line
        for line in example.hook_lines(result, "post-backup.sh")
    )


@patterns("monolithic")
def test_monolithic_failure_after_stop_restarts_in_finally(example: Example) -> None:
    """The app snapshot fails after the containers were stopped: finally restarts them."""
    for name in ("webapp-prod", "redis-cache"):
        example.fakes.add_container(name)
    result = example.run()  # APP_DIR does not exist: tar fails
    assert result.returncode == 1, explain(result)
    assert example.snapshots() == []
    assert example.fakes.calls("docker")[-1] == "docker start webapp-prod redis-cache"
    assert set(example.fakes.containers().values()) == {"running"}
    assert "application snapshot failed" in result.stderr
    assert not list(example.path("BACKUP_DIR").glob("*.partial"))


# -- conditional detection ----------------------------------------------------------------------


@patterns("conditional-detection")
def test_conditional_detection(example: Example) -> None:
    fakes = example.fakes
    fakes.add_container("webapp", "backup-stop=true")
    fakes.add_container("monitoring")
    volumes = example.data("/srv/docker/volumes")
    (volumes / "webapp.db").write_text("rows\n")

    result = example.run(active=("mariadb", "mongod"))
    assert result.returncode == 0, explain(result)
    assert [c for c in fakes.calls() if not c.startswith("systemctl")] == [
        "mariadb-dump --all-databases --single-transaction",
        "docker ps --filter label=backup-stop=true --format {{.Names}}",
        "docker stop --time 30 webapp",
        "mongodump --archive="
        + str(example.path("BACKUP_DIR"))
        + "/mongodb-"
        + time.strftime("%Y%m%d")
        + ".archive.partial --gzip",
        "docker start webapp",
    ]
    assert fakes.calls("systemctl") == [
        "systemctl is-active --quiet mariadb",
        "systemctl is-active --quiet postgresql",
        "systemctl is-active --quiet mongod",
    ]
    day = time.strftime("%Y%m%d")
    dumps = example.path("BACKUP_DIR")
    assert example.names_in_latest(dumps) == [f"mariadb-{day}.sql.gz", f"mongodb-{day}.archive"]
    assert str(volumes / "webapp.db") in example.latest()
    assert fakes.containers() == {"monitoring": "running", "webapp": "running"}
    assert not example.path("STOPPED_FILE").exists()


@patterns("conditional-detection")
def test_conditional_detection_failure_after_stop(example: Example) -> None:
    """mongodump fails after the containers were stopped: finally restarts them."""
    example.fakes.add_container("webapp", "backup-stop=true")
    example.data("/srv/docker/volumes")
    result = example.run(fail=("mongodump",), active=("mongod",))
    assert result.returncode == 1, explain(result)
    assert example.snapshots() == []
    assert example.fakes.calls("docker")[-2:] == [
        "docker stop --time 30 webapp",
        "docker start webapp",
    ]
    assert example.fakes.containers()["webapp"] == "running"
    assert any("no reachable servers" in line for line in example.hook_lines(result, "on-error.sh"))
    assert "No containers to restart" not in result.stderr, "finally did restart"


@patterns("conditional-detection")
def test_conditional_detection_standby_skips_softly(example: Example) -> None:
    flag = example.path("STANDBY_FLAG")
    flag.parent.mkdir(parents=True)
    flag.touch()
    example.data("/srv/docker/volumes")
    result = example.run(active=("mariadb",))
    assert result.returncode == 0, explain(result)
    assert example.snapshots() == []
    assert example.fakes.calls() == [], "nothing dumped, nothing stopped"
    assert "asked to skip the backup" in result.stderr


# -- wordpress ----------------------------------------------------------------------------------


def wordpress_site(example: Example) -> Path:
    site = example.path("WP_PATH")
    (site / "wp-content" / "uploads").mkdir(parents=True)
    (site / "wp-config.php").write_text("<?php define('DB_NAME', 'wordpress');\n")
    (site / "wp-content" / "uploads" / "photo.jpg").write_bytes(b"\xff\xd8jpeg")
    return site


@patterns("wordpress")
def test_wordpress(example: Example) -> None:
    site = wordpress_site(example)
    wp = f"wp --path={site}"
    result = example.run()
    assert result.returncode == 0, explain(result)
    assert [c for c in example.fakes.calls() if not c.startswith("sudo ")] == [
        f"{wp} maintenance-mode activate",
        "mariadb-dump --single-transaction wordpress",
        f"{wp} option list --format=json",
        f"{wp} plugin list --format=json",
        f"{wp} maintenance-mode is-active",  # post_backup: on, so...
        f"{wp} maintenance-mode deactivate",  # ...off
        f"{wp} maintenance-mode is-active",  # finally: already off, nothing to do
    ]
    assert example.fakes.calls("sudo")[0] == f"sudo -u www-data {wp} maintenance-mode activate"
    dumps = example.path("BACKUP_DIR")
    assert example.names_in_latest(dumps) == [
        "wordpress-db.sql.gz",
        "wp-options.json",
        "wp-plugins.json",
    ]
    assert str(site / "wp-content" / "uploads" / "photo.jpg") in example.latest()
    options = json.loads(example.dump_in_latest(dumps / "wp-options.json"))
    assert options[0]["option_name"] == "siteurl"
    assert list(dumps.iterdir()) == []
    assert not (example.fakes.state / "wp-maintenance").exists()


@patterns("wordpress")
def test_wordpress_dump_failure_leaves_maintenance_mode(example: Example) -> None:
    site = wordpress_site(example)
    result = example.run(fail=("mariadb-dump",))
    assert result.returncode == 1, explain(result)
    assert example.snapshots() == []
    assert [c for c in example.fakes.calls() if not c.startswith("sudo ")][-2:] == [
        f"wp --path={site} maintenance-mode is-active",  # by finally
        f"wp --path={site} maintenance-mode deactivate",
    ]
    assert not (example.fakes.state / "wp-maintenance").exists(), "the site is back online"
    assert example.hook_lines(result, "on-error.sh")
    assert list(example.path("BACKUP_DIR").iterdir()) == [], "no partial dump"


# -- docker stack -------------------------------------------------------------------------------


def docker_stack(example: Example) -> None:
    compose = example.path("COMPOSE_FILE")
    compose.parent.mkdir(parents=True)
    compose.write_text("services:\n  postgres:\n    image: postgres:16\n")
    example.fakes.add_container("postgres", "backup-stop=true")
    example.fakes.add_container("webapp", "backup-stop=true")
    example.fakes.add_container("traefik")


@patterns("docker-stack")
def test_docker_stack(example: Example) -> None:
    docker_stack(example)
    compose = example.path("COMPOSE_FILE")
    result = example.run()
    assert result.returncode == 0, explain(result)
    assert example.fakes.calls() == [
        "docker ps --format {{.Names}}",
        "docker ps --filter label=backup-stop=true --format {{.Names}}",
        "docker stop --time 30 postgres",
        "docker stop --time 30 webapp",
        f"docker compose -f {compose} run --rm --no-deps postgres pg_dumpall -U postgres",
        "pg_dumpall -U postgres",
        f"docker compose -f {compose} config",
        "docker volume ls --format {{.Name}}",
        "docker start postgres",  # post_backup's docker-start; finally has nothing left
        "docker start webapp",
    ]
    dumps = example.path("BACKUP_DIR")
    assert example.names_in_latest(dumps) == [
        "docker-compose-resolved.yml",
        "postgres.sql.gz",
        "volumes-list.txt",
    ]
    assert str(compose) in example.latest()
    assert list(dumps.iterdir()) == []
    assert example.fakes.containers() == {
        "postgres": "running",
        "traefik": "running",
        "webapp": "running",
    }
    assert list((example.root / "run" / "resticm").iterdir()) == [], "record removed"
    assert "no container to restart" in result.stderr


@patterns("docker-stack")
def test_docker_stack_dump_failure_restarts_in_finally(example: Example) -> None:
    docker_stack(example)
    result = example.run(fail=("pg_dumpall",))
    assert result.returncode == 1, explain(result)
    assert example.snapshots() == []
    assert example.fakes.calls("docker")[-2:] == ["docker start postgres", "docker start webapp"]
    assert set(example.fakes.containers().values()) == {"running"}
    alert = "\n".join(example.hook_lines(result, "on-error.sh"))
    assert "pre-backup.sh: exited with status 1" in alert
    assert list(example.path("BACKUP_DIR").iterdir()) == []


# -- multi-database -----------------------------------------------------------------------------


@patterns("multi-database")
def test_multi_database(example: Example) -> None:
    rdb = example.path("REDIS_RDB")
    rdb.parent.mkdir(parents=True)
    rdb.write_bytes(b"REDIS0009" + os.urandom(300))
    result = example.run(active=("mariadb", "postgresql", "mongod", "redis"))
    assert result.returncode == 0, explain(result)
    tools = [c.split(" ")[0] for c in example.fakes.calls() if not c.startswith("systemctl")]
    assert tools == ["mariadb-dump", "sudo", "pg_dumpall", "mongodump"]
    names = example.names_in_latest(example.path("BACKUP_DIR"))
    assert [n.split("-")[0] for n in names] == ["mariadb", "mongodb", "postgres", "redis"]
    oks = [line for line in result.stderr.splitlines() if "] ok: " in line]
    assert len(oks) == 4, result.stderr


@patterns("multi-database")
def test_multi_database_verify_files_catches_a_bad_dump(example: Example) -> None:
    """mongodump 'succeeds' with a 1-byte archive; PostgreSQL is down: both are named."""
    rdb = example.path("REDIS_RDB")
    rdb.parent.mkdir(parents=True)
    rdb.write_bytes(b"REDIS0009" + os.urandom(300))
    result = example.run(fail=("mongodump-small",), active=("mariadb", "mongod", "redis"))
    assert result.returncode == 1, explain(result)
    assert example.snapshots() == []
    dumps = example.path("BACKUP_DIR")
    alert = "\n".join(example.hook_lines(result, "on-error.sh"))
    assert f"no file matches {dumps}/postgres-*.sql.gz" in alert
    assert "archive is too small: 1 bytes, expected at least 100 bytes" in alert


# -- python hooks -------------------------------------------------------------------------------


@patterns("python-hooks")
def test_python_hooks(example: Example) -> None:
    for name in ("webapp-prod", "redis-cache"):
        example.fakes.add_container(name)
    example.data("/srv/app/data")
    result = example.run()
    assert result.returncode == 0, explain(result)
    assert example.fakes.calls() == [
        "mariadb-dump --all-databases --single-transaction --quick --lock-tables=false "
        "--events --routines --triggers",
        "sudo -u postgres pg_dumpall",
        "pg_dumpall",
        "docker ps --format {{.Names}}",
        "docker stop --time 30 webapp-prod",
        "docker stop --time 30 redis-cache",
        "docker start webapp-prod",
        "docker start redis-cache",
    ]
    names = example.names_in_latest(example.path("BACKUP_DIR"))
    assert [n.split("-")[0] for n in names] == ["mariadb", "postgres"]
    assert all(n.endswith(".sql.gz") for n in names)
    assert "no containers to restart (finally)" in result.stderr
    assert not example.path("STOPPED_FILE").exists()


@patterns("python-hooks")
def test_python_hooks_dump_failure_after_stop(example: Example) -> None:
    """A container will not stop after the dumps: finally restarts the other one."""
    for name in ("webapp-prod", "redis-cache"):
        example.fakes.add_container(name)
    example.data("/srv/app/data")
    result = example.run(fail=("docker-stop:redis-cache",))
    assert result.returncode == 1, explain(result)
    assert example.snapshots() == []
    assert example.fakes.calls("docker")[-1] == "docker start webapp-prod"
    assert set(example.fakes.containers().values()) == {"running"}
    assert "ALERT: backup on" in result.stderr
    assert "failed to stop container redis-cache" in result.stderr


@patterns("python-hooks")
def test_python_hooks_pipefail(example: Example) -> None:
    """dump_gzipped sees mariadb-dump fail although gzip succeeded; no partial file."""
    example.data("/srv/app/data")
    result = example.run(fail=("mariadb-dump",))
    assert result.returncode == 1, explain(result)
    assert "mariadb-dump exited with status 2" in result.stderr
    assert list(example.path("BACKUP_DIR").iterdir()) == []
    assert example.fakes.calls("docker") == []


# -- embed.py -----------------------------------------------------------------------------------


def embed(tmp_path: Path, repo: Path, environ: dict[str, str], *args: str) -> Any:
    source = tmp_path / "data"
    source.mkdir(exist_ok=True)
    (source / "a.txt").write_text("alpha\n")
    config = tmp_path / "embed.yaml"
    config.write_text(
        f"repository: {repo}\npassword: {PASSWORD}\ndirectories: [{source}]\n"
        f"logging: {{file: {tmp_path / 'log' / 'resticm.log'}}}\n"
        f"hooks:\n  on_error: python:embed_alert:alert\n"
    )
    config.chmod(0o600)
    (tmp_path / "embed_alert.py").write_text(
        "def alert(ctx):\n    print('EMBED-ALERT', ctx.env['ERROR'].splitlines()[0])\n"
    )
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "embed.py"), str(config), "--report", str(report), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result, (json.loads(report.read_text()) if report.exists() else None)


def test_embed_runs_a_backup_with_hooks_from_code(
    tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    result, report = embed(tmp_path, repo, environ)
    assert result.returncode == 0, explain(result)
    assert "exit code:     0" in result.stdout
    assert "backup status: success" in result.stdout
    assert "finally saw:   BACKUP_STATUS=success" in result.stdout
    assert f"{tmp_path / 'data'}: " in result.stderr and " MB free" in result.stderr
    (pre,) = [p for p in report["phases"] if p["phase"] == "pre_backup"]
    assert [(h["name"], h["outcome"]) for h in pre["hooks"]] == [
        ("python:__main__:check_free_space", "ok")
    ]
    snapshot = report["steps"][-1]["summary"]["snapshot_id"]
    assert snapshot and f"snapshot:      {snapshot}" in result.stdout
    (written,) = snapshot_list(repo, environ)
    assert written.startswith(snapshot)


def test_embed_failing_hook_from_code(tmp_path: Path, repo: Path, environ: dict[str, str]) -> None:
    result, report = embed(tmp_path, repo, environ, "--min-free-mb", str(10**12))
    assert result.returncode == 1, explain(result)
    assert "backup status: not_run" in result.stdout
    assert "MB needed" in result.stdout
    assert "finally saw:   BACKUP_STATUS=not_run" in result.stdout
    assert "EMBED-ALERT pre_backup failed: python:__main__:check_free_space" in result.stdout
    assert report["exit_code"] == 1 and snapshot_list(repo, environ) == []


def test_embed_config_error_exits_2(tmp_path: Path, environ: dict[str, str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("repository: /r\npassword: p\nretention: {keep_daily: soon}\n")
    config.chmod(0o600)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "embed.py"), str(config)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{config}:3: retention.keep_daily" in result.stderr
    assert "Traceback" not in result.stderr


def snapshot_list(repo: Path, environ: dict[str, str]) -> list[str]:
    """The snapshot ids of a local repository, without a restic call (no key derivation)."""
    return sorted(p.name for p in (repo / "snapshots").iterdir())


# -- plugin-template ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def status_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/plugin-template, pip-installed into a private --target directory.

    As tests/test_plugin_distribution.py does: built offline with the installed
    hatchling, seen only by subprocesses (PYTHONPATH).
    """
    import importlib.util

    base = tmp_path_factory.mktemp("status-plugin")
    source = shutil.copytree(
        EXAMPLES / "plugin-template", base / "src", ignore=shutil.ignore_patterns("__pycache__")
    )
    site = base / "site"
    argv = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-input",
        "--disable-pip-version-check",
        "--target",
        str(site),
        str(source),
    ]
    if importlib.util.find_spec("hatchling") is not None:
        argv += ["--no-build-isolation", "--no-index"]
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore", "PIP_REQUIRE_VIRTUALENV": "0"}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    assert (site / "resticm_status_file.py").is_file()
    return site


def test_plugin_template_installs_and_runs(
    status_plugin: Path, tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    env = {k: v for k, v in environ.items() if k != "RESTICM_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = str(status_plugin)
    listed = subprocess.run(
        [sys.executable, "-m", "resticm_core", "plugins", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    plugin = next(p for p in json.loads(listed.stdout) if p["name"] == "status-file")
    assert plugin["distribution"] == "resticm-status-file"
    assert plugin["hook_kinds"] == ["status-file"]

    source = tmp_path / "data"
    source.mkdir()
    (source / "a.txt").write_text("a\n")
    status = tmp_path / "status" / "resticm.json"
    status.parent.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"repository: {repo}\npassword: {PASSWORD}\ndirectories: [{source}]\n"
        f"logging: {{file: ''}}\n"
        "hooks:\n  finally:\n    - {kind: status-file, path: status/resticm.json, mode: 0o640}\n"
    )
    config.chmod(0o600)
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(config), "backup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, explain(result)
    written = json.loads(status.read_text())
    assert written["phase"] == "finally" and written["backup_status"] == "success"
    (snapshot,) = snapshot_list(repo, environ)
    assert written["snapshot_id"] and snapshot.startswith(written["snapshot_id"])
    assert stat.S_IMODE(status.stat().st_mode) == 0o640
