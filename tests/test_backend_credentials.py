"""S3 copy backends without keys of their own use the primary's, as the Go tool did
(issue 16): real restic, a real S3 endpoint (moto_server on 127.0.0.1).

A ``restic`` wrapper first on PATH records which credentials each restic child got and
refuses an S3 repository without keys (restic would otherwise ask the cloud metadata
service, which a test must never reach); then it runs the real restic.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .conftest import PASSWORD, requires_restic
from .test_mirror_sync import moto  # noqa: F401  (the module-scoped S3 endpoint)

pytestmark = [requires_restic, pytest.mark.restic]


def restic_wrapper(bin_dir: Path, log: Path) -> None:
    real = shutil.which("restic")
    assert real is not None
    bin_dir.mkdir()
    script = bin_dir / "restic"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$RESTIC_REPOSITORY ${{AWS_ACCESS_KEY_ID:-none}} $1" >> "{log}"\n'
        'case "$RESTIC_REPOSITORY" in s3:*)\n'
        '  if [ -z "$AWS_ACCESS_KEY_ID" ]; then echo "Access Denied" >&2; exit 1; fi;;\n'
        "esac\n"
        f'exec "{real}" "$@"\n'
    )
    script.chmod(0o755)


def test_s3_backend_without_keys_uses_the_primarys(
    tmp_path: Path, source: Path, environ: dict[str, str], moto: str  # noqa: F811
) -> None:
    bucket = uuid.uuid4().hex[:12]
    primary, mirror, own = (f"s3:{moto}/{name}-{bucket}" for name in ("p", "m", "o"))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f'repository: "{primary}"\n'
        f'password: "{PASSWORD}"\n'
        'aws_access_key_id: "primary-key"\n'
        'aws_secret_access_key: "primary-secret"\n'
        f"directories:\n  - {source}\n"
        "retention:\n  keep_last: 1\n"
        "backends:\n"
        "  mirror:\n"  # the Go tool's config.example.yaml: no keys of its own
        f'    repository: "{mirror}"\n'
        f'    password: "{PASSWORD}"\n'
        "  own:\n"
        f'    repository: "{own}"\n'
        f'    password: "{PASSWORD}"\n'
        "    env:\n      AWS_ACCESS_KEY_ID: own-key\n      AWS_SECRET_ACCESS_KEY: own-secret\n"
        "copy_to_backends: [mirror, own]\n"
        f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n"
    )
    cfg.chmod(0o600)
    log = tmp_path / "restic-calls.log"
    restic_wrapper(tmp_path / "bin", log)
    env = {
        **{k: v for k, v in environ.items() if not k.startswith("AWS_")},
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{environ['PATH']}",
        "HOME": str(tmp_path / "home"),
    }

    def resticm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "resticm_core", "-c", str(cfg), *args],
            env=env, capture_output=True, text=True, timeout=240,
        )

    init = resticm("init", "--all")
    assert init.returncode == 0, init.stdout + init.stderr
    full = resticm("-v", "full")
    assert full.returncode == 0, full.stdout + full.stderr
    calls = [line.split() for line in log.read_text().splitlines()]
    on_mirror = {key for repo, key, _cmd in calls if repo == mirror}
    on_own = {key for repo, key, _cmd in calls if repo == own}
    assert on_mirror == {"primary-key"}  # forget, prune, check on the mirror too
    assert {"forget", "prune", "check"} <= {cmd for repo, _k, cmd in calls if repo == mirror}
    assert on_own == {"own-key"}  # a backend's own keys always win
    assert "mirror: no storage credentials of its own; using those of primary" in full.stderr
    assert "primary-secret" not in full.stderr + full.stdout
