"""Passwords leave the process environment at start-up (issue 13 point 7).

A Python hook shares resticm's process (in-process) or a fork of it
(``isolate: true``): whatever is in ``os.environ`` reaches every
``subprocess.run()`` it makes. The CLI scrubs ``os.environ`` once it has
captured it, and an inherited ``RESTIC_PASSWORD`` still backs up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from resticm_core import config_from_dict, run
from resticm_core.secrets import scrub_environment
from resticm_core.testing import RecordingSink

from .conftest import PASSWORD, requires_restic, snapshot_ids

#: Inherited variables that hold secrets: a copy source's password, and a
#: variable whose value is the password written in the config.
FROM_PASSWORD = "the copy source's own password"
TOKEN_VARIABLE = "MY_APP_TOKEN"

HOOKS_MODULE = """
import os
import subprocess


def record(ctx):
    # What a program the hook starts inherits, and what the hook itself can read.
    seen = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout
    with open(ctx.env["RECORD_TO"], "w") as out:
        out.write(seen)
        out.write("--- os.environ ---\\n")
        out.write("".join(f"{k}={v}\\n" for k, v in os.environ.items()))
"""


def write_config(tmp_path: Path, repo: Path, source: Path, *, inline: bool, isolate: bool) -> Path:
    (tmp_path / "envhooks.py").write_text(textwrap.dedent(HOOKS_MODULE))
    record = tmp_path / "recorded.txt"
    hook = (
        f"{{kind: python, callable: 'envhooks:record', isolate: {str(isolate).lower()}, "
        f"env: {{RECORD_TO: '{record}'}}}}"
    )
    password = f"password: {PASSWORD}\n" if inline else ""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"repository: {repo}\n{password}directories:\n  - {source}\n"
        f"hooks:\n  pre_backup:\n    - {hook}\n"
        f"logging:\n  file: {tmp_path / 'resticm.log'}\n"
    )
    cfg.chmod(0o600)
    return cfg


@requires_restic
@pytest.mark.restic
@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
@pytest.mark.parametrize("inline", [False, True], ids=["password-inherited", "password-in-config"])
def test_python_hooks_and_their_children_never_see_a_password(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
    isolate: bool,
    inline: bool,
) -> None:
    cfg = write_config(tmp_path, repo, source, inline=inline, isolate=isolate)
    env = {**environ, "RESTIC_FROM_PASSWORD": FROM_PASSWORD, "KEPT_VARIABLE": "an ordinary value"}
    if inline:
        env[TOKEN_VARIABLE] = PASSWORD  # a variable holding a secret of the config
    else:
        env["RESTIC_PASSWORD"] = PASSWORD  # the fallback: the config names no password
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(cfg), "backup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # The backup used the password: a snapshot exists (inherited or configured).
    assert len(snapshot_ids(repo, tmp_path / "cache")) == 1

    recorded = (tmp_path / "recorded.txt").read_text()
    assert "KEPT_VARIABLE=an ordinary value" in recorded, "the hook recorded its environment"
    assert PASSWORD not in recorded
    assert FROM_PASSWORD not in recorded
    assert "RESTIC_PASSWORD" not in recorded and "RESTIC_FROM_PASSWORD" not in recorded
    assert f"{TOKEN_VARIABLE}=" not in recorded, "a variable holding the password is removed"


@pytest.fixture
def module_name(tmp_path: Path) -> Iterator[str]:
    """The recording hook module beside the config, under a unique name (sys.modules)."""
    name = f"resticm_envhooks_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(HOOKS_MODULE))
    yield name
    sys.modules.pop(name, None)


@requires_restic
@pytest.mark.restic
def test_an_isolated_hook_of_an_embedding_app_gets_no_password_from_os_environ(
    tmp_path: Path,
    repo: Path,
    source: Path,
    module_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The library leaves os.environ alone; the isolated child scrubs its own copy."""
    monkeypatch.setenv("RESTIC_PASSWORD", PASSWORD)  # the app's, inherited: the fallback
    monkeypatch.setenv("RESTIC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RESTICM_STATE_DIR", str(tmp_path / "state"))
    record = tmp_path / "recorded.txt"
    hook = {"kind": "python", "callable": f"{module_name}:record", "isolate": True}
    config = config_from_dict(
        {
            "repository": str(repo),
            "directories": [str(source)],
            "hooks": {"pre_backup": [{**hook, "env": {"RECORD_TO": str(record)}}]},
        },
        base_dir=tmp_path,
    )
    report = run(config, "backup", lock_dir=tmp_path / "locks", output=RecordingSink())
    assert report.exit_code == 0, report.errors
    assert len(snapshot_ids(repo, tmp_path / "cache")) == 1
    recorded = record.read_text()
    assert f"RECORD_TO={record}" in recorded, "the child's environment is the hook's"
    assert PASSWORD not in recorded and "RESTIC_PASSWORD" not in recorded
    assert os.environ["RESTIC_PASSWORD"] == PASSWORD, "the library does not mutate os.environ"


def test_scrub_environment_returns_the_environment_it_scrubbed() -> None:
    environ = {
        "PATH": "/usr/bin",
        "RESTIC_PASSWORD": "pw-one",
        "RESTIC_PASSWORD_FILE": "/etc/pw",
        "RESTIC_FROM_PASSWORD_COMMAND": "pass show x",
        "RESTIC_REPOSITORY": "/srv/restic",
        "API_KEY": "a config secret",
        "SHORT": "abc",  # below the minimum secret length: never treated as one
    }
    before = scrub_environment(["a config secret", "abc"], environ=environ)
    assert before["RESTIC_PASSWORD"] == "pw-one" and len(before) == 7
    assert environ == {"PATH": "/usr/bin", "RESTIC_REPOSITORY": "/srv/restic", "SHORT": "abc"}


@pytest.mark.parametrize("scrub", [True, False], ids=["module-main", "library-call"])
def test_the_ansible_module_scrubs_config_secrets_only_when_it_owns_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scrub: bool
) -> None:
    """ansible_module.main() passes scrub_environ=True; a library caller's os.environ stays."""
    from resticm_core.ansible_module import run_module
    from resticm_core.testing import FakeRestic

    monkeypatch.setenv(TOKEN_VARIABLE, PASSWORD)  # a variable holding the config's password
    content = {
        "repository": str(tmp_path / "repo"),
        "password": PASSWORD,
        "directories": [str(tmp_path)],
        "logging": {"file": "", "console": False},
    }
    params = {"config": None, "config_content": content, "command": "backup"}
    params |= {"no_hooks": False, "tags": [], "password": None}
    result = run_module(
        params,
        False,
        runner=FakeRestic(),
        lock_dir=tmp_path / "locks",
        output=RecordingSink(),
        environ=dict(os.environ),
        scrub_environ=scrub,
    )
    assert not result.get("failed"), result
    assert (TOKEN_VARIABLE in os.environ) is not scrub
