"""Shared fixtures: real restic repositories, real hook scripts, a recording log.

Each test gets its own world (tmp_path): no fixed paths, no global state, so the
suite runs in parallel under pytest-xdist.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "correct horse battery staple"

#: What a resticm run as root writes outside its config when nothing says otherwise:
#: a change fails the run.
SYSTEM_PATHS = (Path("/var/log/resticm"),)
#: root's default lock directory: a lock file of this session's resticm runs there
#: fails the run. Only new files count (the lock of a real resticm run, there before
#: the session and rewritten while the suite runs, is not the suite's), and only
#: those of configs or repositories in this session's temp dirs: another suite or a
#: real resticm may take a lock there at the same time.
LOCK_PATHS = (Path("/run/resticm"),)


def _listing(paths: tuple[Path, ...]) -> dict[str, tuple[int, int]]:
    found = {}
    # Files only: an empty /var/log/resticm created by a config check holds nothing.
    for top in paths:
        if top.exists():
            for path in top.rglob("*"):
                with contextlib.suppress(OSError):
                    st = path.stat()
                    found[str(path)] = (st.st_size, st.st_mtime_ns)
    return found


def pytest_configure(config: pytest.Config) -> None:
    """Locks of the suite's resticm runs go to a private temp dir, not /run/resticm."""
    # A suite started in the background (`cmd &` in a script) inherits SIGINT ignored,
    # and so would every child: a shell cannot trap a signal ignored on entry, and the
    # tests of restic's SIGINT stop would see a KILL instead.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not os.environ.get("RESTICM_LOCK_DIR"):
        lock_dir = tempfile.mkdtemp(prefix="resticm-test-locks-")
        os.environ["RESTICM_LOCK_DIR"] = lock_dir
        config.add_cleanup(lambda: shutil.rmtree(lock_dir, ignore_errors=True))
    if not os.environ.get("RESTICM_STATE_DIR"):
        # Preflight records and deep-check state of CLI runs: never the user's own.
        state_dir = tempfile.mkdtemp(prefix="resticm-test-state-")
        os.environ["RESTICM_STATE_DIR"] = state_dir
        config.add_cleanup(lambda: shutil.rmtree(state_dir, ignore_errors=True))
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        config.stash[_SYSTEM_BEFORE] = _listing(SYSTEM_PATHS)
        config.stash[_LOCKS_BEFORE] = _listing(LOCK_PATHS)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite leaves the system alone: a test that wrote /var/log/resticm (a config
    without logging.file) or left a lock file in /run/resticm (a resticm started
    without the suite's RESTICM_LOCK_DIR) fails it."""
    config = session.config
    if hasattr(config, "workerinput") or _SYSTEM_BEFORE not in config.stash:
        return
    new_locks = _listing(LOCK_PATHS).keys() - config.stash[_LOCKS_BEFORE].keys()
    if new_locks:
        ours = _session_lock_names(config)
        changed = sorted(p for p in new_locks if Path(p).name in ours)
        others = len(new_locks) - len(changed)
        if others:
            print(f"\nnote: {others} new lock file(s) in /run/resticm of runs outside this session")
    else:
        changed = []
    before, after = config.stash[_SYSTEM_BEFORE], _listing(SYSTEM_PATHS)
    changed += sorted(p for p in after.keys() | before.keys() if before.get(p) != after.get(p))
    if changed:
        shown = "\n  ".join(changed[:20])
        print(f"\nthe test suite changed system paths (use tmp_path):\n  {shown}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _session_lock_names(config: pytest.Config) -> set[str]:
    """The lock file names of every config and repository under this session's temp
    dirs (xdist workers' dirs are below the controller's), as resticm names them."""
    from resticm_core.locking import lock_key

    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    names = set()
    for path in base.rglob("*"):
        with contextlib.suppress(OSError):
            if path.suffix in (".yaml", ".yml") and path.is_file():
                names.add(f"{lock_key(path, '')}.lock")
            elif path.name == "config" and (path.parent / "keys").is_dir():
                # A config_from_dict() config has no file: its lock is named by its repository.
                names.add(f"{lock_key(None, str(path.parent))}.lock")
    return names


_SYSTEM_BEFORE = pytest.StashKey[dict[str, tuple[int, int]]]()
_LOCKS_BEFORE = pytest.StashKey[dict[str, tuple[int, int]]]()
HAVE_RESTIC = shutil.which("restic") is not None

requires_restic = pytest.mark.skipif(not HAVE_RESTIC, reason="restic is not installed")


def _restic_on_path() -> tuple[int, int, int]:
    if not HAVE_RESTIC:
        return (0, 0, 0)
    out = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout
    found = re.search(r"\brestic (\d+)\.(\d+)\.(\d+)", out)
    return (int(found[1]), int(found[2]), int(found[3])) if found else (0, 0, 0)


#: The version of the restic on PATH: scripts/test.sh runs the restic tests once per
#: version (RESTIC_VERSIONS), and a few expectations differ by version.
RESTIC_VERSION = _restic_on_path()


def restic_version() -> tuple[int, int, int]:
    """The version of the restic the tests run, e.g. ``(0, 18, 0)``."""
    return RESTIC_VERSION


#: restic >= 0.18 (backend-error-redesign, on by default) retries an unreachable or
#: failing backend itself, for up to 15 minutes: tests of resticm's own retries of
#: a dead backend need the restic that gives up at once (0.14; 0.17 without the flag).
restic_gives_up_on_dead_backends = pytest.mark.skipif(
    RESTIC_VERSION >= (0, 18, 0),
    reason="restic >= 0.18 retries a dead backend itself for minutes",
)


def dump_path(label: str, database: str, extension: str = "sql") -> str:
    """A dump's path in its snapshot with the restic on PATH (restic 0.18.0: no directory)."""
    from resticm_core.dumps import STDIN_DIRECTORY_BROKEN

    separator = ":" if RESTIC_VERSION in STDIN_DIRECTORY_BROKEN else "/"
    return f"/{label}{separator}{database}.{extension}"


def exit_suffix(code_017: int) -> str:
    """`` (exit N)`` of a failure restic >= 0.17 gives its own exit code (10, 11, 12)."""
    return f" (exit {code_017 if RESTIC_VERSION >= (0, 17, 0) else 1})"


#: Fixtures that mean a test runs the real restic (they create repositories with it).
RESTIC_FIXTURES = frozenset({"repo", "template_repo"})


def runs_restic(item: pytest.Item) -> bool:
    """Does *item* run the real restic: a restic fixture, ``requires_restic`` or ``-m restic``?"""
    if RESTIC_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    for mark in item.iter_markers():
        if mark.name == "restic":
            return True
        if mark.name == "skipif" and mark.kwargs.get("reason") == "restic is not installed":
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test that runs restic carries the ``restic`` marker, so that
    # ``pytest -m restic`` (scripts/test.sh's pass per restic version) selects all of them.
    for item in items:
        if runs_restic(item):
            item.add_marker(pytest.mark.restic)


def restic_env(cache: Path, repo: Path | None = None, password: str = PASSWORD) -> dict[str, str]:
    """A clean environment for running restic by hand in a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env["RESTIC_CACHE_DIR"] = str(cache)
    env["RESTIC_PASSWORD"] = password
    if repo is not None:
        env["RESTIC_REPOSITORY"] = str(repo)
    return env


def hold_restic_lock(repo: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A restic holding a non-exclusive lock on *repo* as long as its stdin stays open.

    Returns once the lock can be read back: the file appears before restic has
    written it, and a restic killed in between leaves an unreadable file that
    restic (and resticm) ignore, i.e. no lock at all.
    """
    holder = subprocess.Popen(
        ["restic", "backup", "--stdin", "--stdin-filename", "held"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    locks = repo / "locks"
    deadline = time.monotonic() + 60
    while True:
        for lock in locks.glob("*") if locks.is_dir() else ():
            cat = ["restic", "--no-lock", "cat", "lock", lock.name]
            if subprocess.run(cat, env=env, capture_output=True).returncode == 0:
                return holder
        assert time.monotonic() < deadline, "restic did not take its lock"
        assert holder.poll() is None, "the lock holder exited"
        time.sleep(0.05)


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised repository per session; tests get copies (init costs a key derivation)."""
    if not HAVE_RESTIC:
        pytest.skip("restic is not installed")
    base = tmp_path_factory.mktemp("template")
    repo = base / "repo"
    subprocess.run(["restic", "init", "-q"], env=restic_env(base / "cache", repo), check=True)
    return repo


@pytest.fixture
def repo(tmp_path: Path, template_repo: Path) -> Path:
    """A fresh initialised local repository for this test."""
    target = tmp_path / "repo"
    shutil.copytree(template_repo, target)
    return target


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """The environment a run sees: inherited minus RESTIC_*, with a private cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env["RESTIC_CACHE_DIR"] = str(tmp_path / "cache")
    env["RESTICM_STATE_DIR"] = str(tmp_path / "state")  # deep-check state (issue 3)
    return env


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small source tree to back up."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.txt").write_text("beta\n" * 100)
    return src


def write_script(path: Path, body: str, mode: int = 0o700) -> Path:
    """An executable ``#!/bin/sh`` script with *body*."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body).lstrip("\n"))
    path.chmod(mode)
    return path


@pytest.fixture
def make_script(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, body: str, mode: int = 0o700) -> Path:
        return write_script(tmp_path / "hooks" / name, body, mode)

    return make


class CallLog:
    """A file hook scripts append to, one line per call: what ran, with what it saw."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def line(self, tag: str) -> str:
        """Shell that records *tag* and the variables a phase sees."""
        fields = " ".join(
            f"{v}=${{{v}-}}"
            for v in (
                "RESTICM_PHASE",
                "BACKUP_STATUS",
                "RESTICM_BACKUP_PARTIAL",
                "RESTICM_SNAPSHOT_ID",
            )
        )
        return (
            f'printf "%s\\n" "{tag} {fields} '
            f'BACKUP_ERROR=$(printf %s "${{BACKUP_ERROR-}}" | head -c 400 | tr "\\n" " ") '
            f'ERROR=$(printf %s "${{ERROR-}}" | head -c 200 | tr "\\n" "|")" >> {self.path}\n'
        )

    def entries(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def tags(self) -> list[str]:
        return [line.split(" ", 1)[0] for line in self.entries()]

    def entry(self, tag: str) -> dict[str, str]:
        """The variables recorded by the first call of *tag*."""
        for line in self.entries():
            name, _, rest = line.partition(" ")
            if name == tag:
                parts: dict[str, str] = {}
                key = None
                for token in rest.split(" "):
                    if "=" in token and token.split("=", 1)[0].isupper():
                        key, value = token.split("=", 1)
                        parts[key] = value
                    elif key:
                        parts[key] += " " + token
                return parts
        raise AssertionError(f"{tag} was not called; calls: {self.tags()}")


@pytest.fixture
def calls(tmp_path: Path) -> CallLog:
    return CallLog(tmp_path / "calls.log")


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "locks"


def snapshot_ids(repo: Path, cache: Path) -> list[str]:
    import json

    out = subprocess.run(
        ["restic", "snapshots", "--json", "--no-lock"],
        env=restic_env(cache, repo),
        capture_output=True,
        text=True,
        check=True,
    )
    return [s["short_id"] for s in json.loads(out.stdout or "[]")]


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A live process whose /proc/<pid>/mem makes restic exit 3 (unreadable file), even as root."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc.pid
    proc.kill()
    proc.wait()


def json_config(tmp_path: Path, source: Path, *, host: str, **keys: Any) -> Path:
    """``tmp_path/config.yaml`` (JSON is YAML, mode 0600): a repository in
    ``tmp_path/repo`` with the suite's password, *source* backed up as *host*, the log
    in ``tmp_path/log``, then *keys* (which may replace any of those)."""
    data: dict[str, Any] = {
        "repository": str(tmp_path / "repo"),
        "password": PASSWORD,
        "directories": [str(source)],
        "host": host,
        "logging": {"file": str(tmp_path / "log" / "resticm.log")},
        **keys,
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(data, indent=2))
    path.chmod(0o600)
    return path


def run_config(cfg: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m resticm_core -c CFG ARGS...``; the timeout only keeps a hang from
    blocking the suite."""
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def restore_logger() -> Iterator[logging.Logger]:
    """setup_logging reconfigures the process-wide ``resticm_core`` logger: put it back
    (propagation, level, handlers), or caplog in later tests of this worker sees nothing."""
    logger = logging.getLogger("resticm_core")
    saved = (logger.propagate, logger.level, list(logger.handlers))
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        if handler not in saved[2]:
            handler.close()
    logger.propagate, logger.level = saved[0], saved[1]
    for handler in saved[2]:
        logger.addHandler(handler)
