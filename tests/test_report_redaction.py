"""No secret in any channel a run writes to, even when a hook prints it (issue 13.2).

Hooks echo what they like and Python hooks raise with what they like: their
output tails and errors enter the run report, and the report goes to
``resticm --json``, the webhook's ``report`` field (a third party), the status
file... The engine redacts every hook result where it enters the report
(resticm_core.hook_lifecycle), whichever executor built it. This test runs the
real CLI with real restic, a real HTTP server for the notifiers, the monitoring
files and a log file, and searches every one of them for every secret.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import http_recorder
from .conftest import PASSWORD, requires_restic, write_script

pytestmark = [requires_restic, pytest.mark.restic]

AWS_SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
NOTIFIER_TOKEN = "tok-5f0c2e9a-notifier"
URL_PASSWORD = "urlpw-3b8d71c4"
SECRETS = {
    "repository password": PASSWORD,
    "AWS secret key": AWS_SECRET,
    "notifier token": NOTIFIER_TOKEN,
    "URL password": URL_PASSWORD,
}


@pytest.fixture
def server() -> Iterator[http_recorder.Recorder]:
    yield from http_recorder.serve()


def leaks(text: str) -> list[str]:
    return [what for what, secret in SECRETS.items() if secret in text]


def write_setup(tmp_path: Path, repo: Path, source: Path, url: str) -> Path:
    hooks = tmp_path / "hooks"
    hooks.mkdir(mode=0o700)
    # Prints every secret, the last line on stderr (it becomes the error text), then fails.
    write_script(
        hooks / "pre.sh",
        textwrap.dedent(
            f"""\
            echo "repository password: {PASSWORD}"
            echo "aws secret: {AWS_SECRET}"
            echo "notifier token: {NOTIFIER_TOKEN}"
            echo "login https://backup:{URL_PASSWORD}@db.example.org/app" >&2
            exit 1
            """
        ),
    )
    # An on_error hook that raises with the password (runs after pre_backup failed).
    (tmp_path / "leaky_hooks.py").write_text(
        f"def fail(ctx):\n    raise RuntimeError('cannot reach the vault with {PASSWORD}')\n"
    )
    config = {
        "repository": str(repo),
        "password": PASSWORD,
        "aws_secret_access_key": AWS_SECRET,
        "directories": [str(source)],
        "logging": {"file": str(tmp_path / "log" / "resticm.log"), "console": True},
        "monitoring": {
            "prometheus_textfile": str(tmp_path / "metrics" / "resticm.prom"),
            "status_file": str(tmp_path / "status.json"),
        },
        "notifications": {
            "enabled": True,
            "notify_on_error": True,
            "providers": [
                {"type": "webhook", "url": f"{url}/webhook", "token": NOTIFIER_TOKEN},
                {"type": "slack", "url": f"{url}/slack"},
            ],
        },
        "hooks": {
            "pre_backup": [str(hooks / "pre.sh")],
            "on_error": [{"kind": "python", "callable": "leaky_hooks:fail"}],
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    path.chmod(0o600)
    return path


def test_no_secret_reaches_any_channel(
    tmp_path: Path,
    repo: Path,
    source: Path,
    environ: dict[str, str],
    server: http_recorder.Recorder,
) -> None:
    cfg = write_setup(tmp_path, repo, source, server.url)
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "--json", "-c", str(cfg), "backup"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    log_file = (tmp_path / "log" / "resticm.log").read_text()
    status_file = (tmp_path / "status.json").read_text()
    textfile = (tmp_path / "metrics" / "resticm.prom").read_text()
    webhook = server.by_path("/webhook")
    slack = server.by_path("/slack")
    assert webhook and slack, "both notifiers were called"
    channels = {
        "console": result.stderr,
        "JSON report": result.stdout,
        "log file": log_file,
        "status file": status_file,
        "textfile": textfile,
        "webhook request": "\n".join(r.raw() for r in webhook),
        "slack request": "\n".join(r.raw() for r in slack),
    }
    found = {name: leaks(text) for name, text in channels.items() if leaks(text)}
    assert found == {}, f"secrets in: {found}"

    # Not vacuous: the hook output and errors did arrive, masked.
    [pre] = [p for p in report["phases"] if p["phase"] == "pre_backup"]
    [script] = pre["hooks"]
    assert "repository password: ***" in script["output_tail"]
    assert "aws secret: ***" in script["output_tail"]
    assert "notifier token: ***" in script["output_tail"]
    assert "login https://backup:***@db.example.org/app" in script["output_tail"]
    assert "backup:***@db.example.org" in script["error"]
    [on_error] = [p for p in report["phases"] if p["phase"] == "on_error"]
    [python] = on_error["hooks"]
    assert python["outcome"] == "failed"
    assert "cannot reach the vault with ***" in python["error"]
    hook_report = json.loads(webhook[-1].body)["report"]
    assert hook_report["phases"] == report["phases"], "the webhook carries the same report"
    assert "repository password: ***" in result.stderr
    assert "repository password: ***" in log_file
    assert "backup:***@db.example.org" in json.loads(status_file)["commands"]["backup"]["errors"][0]
    assert "backup:***@db.example.org" in slack[-1].body.decode()
    assert 'resticm_run_exit_code{command="backup"' in textfile
