"""info, env, run, context, backend and snapshots as a user runs them (real restic)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORD, requires_restic

pytestmark = [requires_restic, pytest.mark.restic]

BACKEND_PASSWORD = "backend-pass-9876"
AWS_SECRET = "aws-secret-abcdef"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def setup(tmp_path: Path, repo: Path, source: Path, environ: dict[str, str]) -> dict[str, Any]:
    data = {
        "repository": str(repo),
        "password": PASSWORD,
        "directories": [str(source), str(tmp_path / "missing")],
        "host": "cmd-host",
        "retention": {"keep_daily": 3, "keep_within": ""},
        "backends": {
            "off": {
                "repository": "s3:http://127.0.0.1:9/bucket",
                "password": BACKEND_PASSWORD,
                "env": {"AWS_ACCESS_KEY_ID": "id-1", "AWS_SECRET_ACCESS_KEY": AWS_SECRET},
            }
        },
        "copy_to_backends": ["off"],
        "logging": {"file": str(tmp_path / "log" / "r.log")},
    }
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps(data))
    cfg.chmod(0o600)
    env = {**environ, "HOME": str(tmp_path / "home")}
    return {"cfg": str(cfg), "env": env, "tmp": tmp_path}


def test_info_shows_the_effective_policy_and_no_secret(setup: dict[str, Any]) -> None:
    text = cli("-c", setup["cfg"], "info", env=setup["env"])
    assert text.returncode == 0, text.stderr
    assert "keep_daily: 3" in text.stdout and "keep_hourly: 24" in text.stdout  # Go defaults
    assert "keep_within" not in text.stdout  # "" switched it off
    assert "(does not exist)" in text.stdout and "off: s3:http://127.0.0.1:9/bucket" in text.stdout
    doc = json.loads(cli("-c", setup["cfg"], "info", "--json", env=setup["env"]).stdout)
    assert doc["forget_arguments"][:2] == ["--keep-hourly", "24"]
    assert doc["backends"]["off"]["env"] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    for secret in (PASSWORD, BACKEND_PASSWORD, AWS_SECRET):
        assert secret not in text.stdout + text.stderr + json.dumps(doc)


def test_env_backend_and_context(setup: dict[str, Any]) -> None:
    cfg, env = setup["cfg"], setup["env"]
    out = cli("-c", cfg, "env", "--backend", "off", "--format", "fish", env=env)
    assert out.returncode == 0, out.stderr
    assert "set -x RESTIC_REPOSITORY 's3:http://127.0.0.1:9/bucket'" in out.stdout
    assert f"set -x RESTIC_PASSWORD '{BACKEND_PASSWORD}'" in out.stdout
    bad = cli("-c", cfg, "env", "--format", "tcsh", env=env)
    assert bad.returncode == 2 and "unsupported format: tcsh" in bad.stderr

    # context use: later commands find the config without -c; backend use switches env.
    assert cli("context", "use", cfg, env=env).returncode == 0
    assert cli("backend", "use", "off", env=env).returncode == 0
    listed = cli("backend", "list", env=env)
    assert "→ off: s3:http://127.0.0.1:9/bucket (active)" in listed.stdout
    active = cli("env", env=env)
    assert f"export RESTIC_PASSWORD='{BACKEND_PASSWORD}'" in active.stdout
    assert cli("backend", "use", "nope", env=env).returncode == 2
    context = (Path(env["HOME"]) / ".config" / "resticm" / "context.yaml").read_text()
    assert "active_backend: off" in context and "config_file:" in context
    assert cli("context", "reset", env=env).returncode == 0
    assert cli("env", env=env).returncode == 2  # no context, no config found


def test_run_passes_arguments_untouched_and_returns_restics_exit_code(
    setup: dict[str, Any],
) -> None:
    cfg, env = setup["cfg"], setup["env"]
    (setup["tmp"] / "missing").mkdir()
    assert cli("-c", cfg, "backup", env=env).returncode == 0
    # -c after `run` is restic's (--compact), not resticm's --config.
    compact = cli("-c", cfg, "run", "snapshots", "-c", env=env)
    assert compact.returncode == 0, compact.stderr
    assert "1 snapshots" in compact.stdout
    missing = cli("-c", cfg, "run", "cat", "blob", "0" * 64, env=env)
    assert missing.returncode == 1  # restic's own exit code
    assert PASSWORD not in missing.stdout + missing.stderr

    latest = cli("-c", cfg, "snapshots", "--latest", "--json", env=env)
    snap = json.loads(latest.stdout)
    assert snap["hostname"] == "cmd-host"
    other_host = cli("-c", cfg, "snapshots", "--json", env=env)
    assert [s["id"] for s in json.loads(other_host.stdout)] == [snap["id"]]
