"""The plugin's own tests: an explicit registry, a real run, the real restic.

pip install -e '.[test]' && pytest
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import resticm_core
import resticm_status_file

PASSWORD = "test password"


@pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")
def test_status_file_in_finally(tmp_path: Path) -> None:
    repo, source, out = tmp_path / "repo", tmp_path / "src", tmp_path / "status.json"
    source.mkdir()
    (source / "a.txt").write_text("a\n")
    env = {**os.environ, "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(tmp_path / "c")}
    subprocess.run(["restic", "-r", str(repo), "init", "-q"], env=env, check=True)

    # Build the registry once, pass it to both: `kind: status-file` is then known
    # while the config is validated. entry_points=False: independent of what else
    # is installed (the builtin kinds are still there).
    registry = resticm_core.PluginRegistry.default(
        plugins=[resticm_status_file], entry_points=False
    )
    config = resticm_core.config_from_dict(
        {
            "repository": str(repo),
            "password": PASSWORD,
            "directories": [str(source)],
            "hooks": {"finally": [{"kind": "status-file", "path": str(out)}]},
        },
        registry=registry,
    )
    report = resticm_core.run(
        config,
        "backup",
        registry=registry,
        lock_dir=tmp_path / "l",
        environ={k: v for k, v in env.items() if k != "RESTIC_PASSWORD"},
    )
    assert report.exit_code == 0, report.errors
    status = json.loads(out.read_text())
    assert status["backup_status"] == "success"
    assert status["snapshot_id"] == report.snapshot_id
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_missing_directory_is_reported_by_check(tmp_path: Path) -> None:
    hook = resticm_status_file.StatusFileHook(path=str(tmp_path / "nope" / "s.json"))
    ctx = resticm_core.HookContext(
        phase=resticm_core.Phase.FINALLY, command="validate", env={}, config_dir=tmp_path
    )
    assert hook.check(ctx) == [
        f"status-file: directory {tmp_path / 'nope'} does not exist "
        f"(fix: mkdir -p {tmp_path / 'nope'})"
    ]
