"""The Ansible module's ``command: restore`` with the real restic (check mode = dry run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from resticm_core.ansible_module import argument_spec, run_module
from resticm_core.testing import RecordingSink

from .conftest import PASSWORD, requires_restic
from .test_restore import make_tree, restored, tree

pytestmark = [requires_restic, pytest.mark.restic]


def params(**values: Any) -> dict[str, Any]:
    """What AnsibleModule passes: every option, its default or None when unset."""
    base = {name: spec.get("default") for name, spec in argument_spec().items()}
    return {**base, **values}


def test_restore_command_check_mode_writes_nothing_then_restores(
    tmp_path: Path, repo: Path, environ: dict[str, str]
) -> None:
    src = make_tree(tmp_path / "src")
    data = {
        "repository": str(repo),
        "directories": [str(src)],
        "host": "ansible-host",
        "logging": {"file": "", "console": False},
    }
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({**data, "password": PASSWORD}))
    cfg.chmod(0o600)
    made = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), "backup"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    target = tmp_path / "target"
    common = {"config_content": data, "password": PASSWORD, "command": "restore"}
    kw = {"environ": environ, "output": RecordingSink(), "lock_dir": tmp_path / "locks"}

    checked = run_module(params(target=str(target), **common), True, **kw)
    assert "failed" not in checked, checked.get("msg")
    assert checked["changed"] is True and checked["report"]["dry_run"] is True
    assert not target.exists()

    done = run_module(params(target=str(target), **common), False, **kw)
    assert "failed" not in done, done.get("msg")
    assert done["changed"] is True and done["restored_from"] == "primary"
    assert done["files_restored"] == checked["files_restored"]
    assert tree(restored(target, src)) == tree(src)
    assert PASSWORD not in json.dumps(done)

    # A non-empty target without overwrite: a usage failure, nothing changed.
    again = run_module(params(target=str(target), **common), False, **kw)
    assert again["failed"] is True and again["exit_code"] == 2
    assert "is not empty" in again["msg"]
    missing = run_module(params(**common), False, **kw)
    assert missing["failed"] is True and "target" in missing["msg"]
