"""Installed like a real tool (issue 17): wheels built here, installed outside the checkout.

Each test builds or installs into a fresh virtualenv under tmp_path and runs the installed
``resticm`` from tmp_path, so nothing of the checkout (its sources, its .venv, the
working directory on sys.path) can stand in for the installed package. Dependencies come
from the configured index or pip's cache (a minute on a cold cache).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PASSWORD, requires_restic, restic_env

CHECKOUT = Path(__file__).resolve().parent.parent
PLUGINS = [CHECKOUT / "plugins" / "resticm-dumps", CHECKOUT / "plugins" / "resticm-apprise"]


def _clean_env(base: dict[str, str]) -> dict[str, str]:
    """No trace of the test's own interpreter: its venv, its sys.path additions."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP"}
    return {k: v for k, v in base.items() if k not in drop}


def _run(argv: list[str | Path], *, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{argv}: exit {result.returncode}\n{result.stderr}"
    return result.stdout


def _fresh_venv(path: Path, env: dict[str, str]) -> Path:
    # From inside the test venv, `-m venv` bases the new one on the system interpreter.
    _run([sys.executable, "-m", "venv", path], cwd=path.parent, env=env)
    return path / "bin"


def _assert_imported_from(bin_dir: Path, cwd: Path, env: dict[str, str]) -> None:
    code = "import resticm_core, resticm_dumps, resticm_apprise as a; print(resticm_core.__file__)"
    where = Path(_run([bin_dir / "python", "-c", code], cwd=cwd, env=env).strip())
    site = bin_dir.parent / "lib"
    assert site in where.parents and "site-packages" in where.parts, where
    assert CHECKOUT not in where.parents


def _backup_and_check(bin_dir: Path, tmp_path: Path, env: dict[str, str], source: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["restic", "init", "-q"], env=restic_env(tmp_path / "cache", repo), check=True)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"repository: {repo}\npassword: {PASSWORD}\ndirectories: [{source}]\n"
        f"logging:\n  file: {tmp_path / 'resticm.log'}\n"
    )
    config.chmod(0o600)
    _run([bin_dir / "resticm", "-c", config, "backup"], cwd=tmp_path, env=env)
    listing = _run(["restic", "snapshots", "--json"], cwd=tmp_path, env=restic_env(
        tmp_path / "cache", repo))  # fmt: skip
    snapshots = json.loads(listing)
    assert [s["paths"] for s in snapshots] == [[str(source)]]


@requires_restic
@pytest.mark.timeout(900)
def test_built_wheels_install_into_a_fresh_venv_and_back_up(
    tmp_path: Path, environ: dict[str, str], source: Path
) -> None:
    """CI's build: three wheels; the plugins come in through the core's extras."""
    env = _clean_env(environ)
    dist = tmp_path / "dist"
    # --no-build-isolation: hatchling is in the test extras, so the build needs no index.
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", dist, CHECKOUT, *PLUGINS],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    (core,) = dist.glob("resticm_core-*.whl")
    assert len(list(dist.glob("*.whl"))) == 3
    version = core.name.split("-")[1]
    bin_dir = _fresh_venv(tmp_path / "venv", env)
    # The plugin names are on no index: --find-links offers the wheels just built.
    _run(
        [bin_dir / "pip", "install", "-q", "--find-links", dist, f"{core}[dumps,apprise]"],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert _run([bin_dir / "resticm", "--version"], cwd=tmp_path, env=env).strip() == (
        f"resticm {version}"
    )
    plugins = _run([bin_dir / "resticm", "plugins"], cwd=tmp_path, env=env)
    assert "resticm-dumps" in plugins and "resticm-apprise" in plugins
    _assert_imported_from(bin_dir, tmp_path, env)
    _backup_and_check(bin_dir, tmp_path, env, source)


@requires_restic
@pytest.mark.timeout(900)
def test_readme_server_install_from_the_checkout(
    tmp_path: Path, environ: dict[str, str], source: Path
) -> None:
    """README "Install on a server", with tmp_path/opt for /opt/resticm; then schedule it."""
    env = _clean_env(environ)
    prefix = tmp_path / "opt" / "resticm"
    prefix.parent.mkdir()
    bin_dir = _fresh_venv(prefix, env)
    # exactly the README's pip command, run in the checkout (build isolation: hatchling
    # comes from the index like on a server)
    _run([bin_dir / "pip", "install", "-q", ".", "./plugins/resticm-dumps",
          "./plugins/resticm-apprise"], cwd=CHECKOUT, env=env)  # fmt: skip
    _assert_imported_from(bin_dir, tmp_path, env)
    _backup_and_check(bin_dir, tmp_path, env, source)
    # The installed resticm schedules itself: ExecStart names this installation...
    shown = _run([bin_dir / "resticm", "schedule", "show"], cwd=tmp_path, env=env)
    assert f"ExecStart={bin_dir / 'resticm'}\n" in shown
    # ...and, since tmp_path is under /tmp, which the system unit's PrivateTmp= hides,
    # install refuses it (under /opt it would be accepted).
    units = tmp_path / "units"
    refused = subprocess.run(
        [bin_dir / "resticm", "schedule", "install", "--unit-dir", units],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "PrivateTmp=true hides" in refused.stderr and not units.exists()
    # the installed copy is not an editable one: no checkout warning
    user = [bin_dir / "resticm", "schedule", "install", "--user", "--unit-dir", units]
    accepted = subprocess.run(user, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stderr
    assert "checkout" not in accepted.stderr
    assert (units / "resticm.timer").is_file()
