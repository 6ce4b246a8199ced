"""One list of what is a secret: the permission check refuses what the redactor masks.

Each case is a config whose only inline secret sits inside a URL or an HTTP header.
A copy readable by others is refused by the real ``resticm config validate`` (exit 2,
the key path, its line and the fix named, the value never shown); the same file at
0600 is accepted; and the redactor built from that config masks every secret value,
also where it appears alone, outside its URL or header.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest

from resticm_core.ansible_module import run_module
from resticm_core.config import Config
from resticm_core.config_file import config_from_dict, inline_secrets, load_config
from resticm_core.plugin_manager import PluginRegistry
from resticm_core.secrets import MASK, Redactor, find_secrets, secret_values
from resticm_core.testing import FakeRestic, RecordingSink

HEAD = "repository: /srv/restic-repo\npassword_file: pw\n"


@attrs.frozen
class Case:
    #: Everything after the two first lines of the config (or the whole file).
    yaml: str
    #: The dotted key path the message must name, and its 1-based line.
    key: str
    line: int
    #: The secret values in the file.
    secrets: tuple[str, ...]
    #: The YAML replaces HEAD (the repository line itself is the case).
    whole: bool = False


CASES = {
    "repository URL userinfo": Case(
        yaml='repository: "rest:https://u:PW-aaaa1111@127.0.0.1:1/r"\npassword_file: pw\n',
        key="repository",
        line=1,
        secrets=("PW-aaaa1111",),
        whole=True,
    ),
    "copy backend URL userinfo": Case(
        yaml="""\
            backends:
              offsite:
                repository: "rest:https://u:PW-bbbb2222@127.0.0.1:1/b"
                password_file: pw
            copy_to_backends: [offsite]
            """,
        key="backends.offsite.repository",
        line=5,
        secrets=("PW-bbbb2222",),
    ),
    "slack webhook URL": Case(
        yaml="""\
            notifications:
              providers:
                - type: slack
                  url: https://hooks.slack.com/services/T0000/B0000/XXXXslack33
            """,
        key="notifications.providers[0].url",
        line=6,
        secrets=("T0000/B0000/XXXXslack33",),
    ),
    "discord webhook URL": Case(
        yaml="""\
            notifications:
              providers:
                - type: discord
                  url: https://discord.com/api/webhooks/123456/DiscordTok3n-44
            """,
        key="notifications.providers[0].url",
        line=6,
        secrets=("DiscordTok3n-44",),
    ),
    "google chat URL key and token": Case(
        yaml="""\
            notifications:
              providers:
                - type: google_chat
                  url: https://chat.googleapis.com/v1/spaces/AAAA/messages?key=GKey-5555&token=GTok-6666
            """,
        key="notifications.providers[0].url",
        line=6,
        secrets=("GKey-5555", "GTok-6666"),
    ),
    "webhook Authorization header": Case(
        yaml="""\
            notifications:
              providers:
                - type: webhook
                  url: https://127.0.0.1:1/hook
                  options: {Authorization: "Bearer XYZ-webhook-7777"}
            """,
        key="notifications.providers[0].options.Authorization",
        line=7,
        secrets=("Bearer XYZ-webhook-7777", "XYZ-webhook-7777"),
    ),
}


def write_case(tmp_path: Path, case: Case, mode: int) -> Path:
    (tmp_path / "pw").write_text("repository password\n")
    body = textwrap.dedent(case.yaml)
    path = tmp_path / "config.yaml"
    # Appended, so the lines the cases name stay put: `config validate` sets up
    # logging, and without a file of its own a root run would open /var/log/resticm.
    logging = f"logging:\n  file: {tmp_path / 'log' / 'resticm.log'}\n"
    path.write_text((body if case.whole else HEAD + body) + logging)
    path.chmod(mode)
    return path


def validate(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "RESTICM_"))}
    env["HOME"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(path), "config", "validate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", CASES)
def test_readable_config_with_a_url_or_header_secret_is_refused(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    path = write_case(tmp_path, case, 0o644)
    result = validate(path, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    real = os.path.realpath(path)
    assert f"{real} is readable by group or others (mode 0644)" in result.stderr
    assert f"holds secrets inline: {case.key} (line {case.line}) " in result.stderr
    assert f"(fix: chmod 600 {real}" in result.stderr
    assert "Traceback" not in result.stderr
    for secret in case.secrets:
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("name", CASES)
def test_the_same_config_at_0600_is_accepted(name: str, tmp_path: Path) -> None:
    path = write_case(tmp_path, CASES[name], 0o600)
    result = validate(path, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: {os.path.realpath(path)}" in result.stdout


@pytest.mark.parametrize("name", CASES)
def test_the_redactor_of_that_config_masks_each_secret(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    config = load_config(write_case(tmp_path, case, 0o600), environ={})
    redactor = Redactor(config.secrets())
    # Each value alone, not only inside its URL or header: a library's error
    # message or a server's reply may quote just the token.
    text = " | ".join(f"got {secret} back" for secret in case.secrets)
    redacted = redactor.redact(text)
    for secret in case.secrets:
        assert secret not in redacted
    assert redacted.count(MASK) >= len(case.secrets)


# -- one list: the raw document and the models agree --------------------------------------------

FULL = {
    "repository": "rest:https://u:PW-repo-1@127.0.0.1:1/r",
    "password": "inline-password-2",
    "aws_access_key_id": "AKIA-not-secret",
    "aws_secret_access_key": "aws-secret-3",
    "env": {"B2_ACCOUNT_KEY": "b2-key-4", "B2_ACCOUNT_ID": "b2-id-not-secret"},
    "backends": {
        "offsite": {
            "repository": "s3:https://s3.example.org/bucket",
            "password_file": "/etc/restic/offsite-pw",
            "env": {"AZURE_ACCOUNT_SAS": "sas-5", "GOOGLE_APPLICATION_CREDENTIALS": "/gcp.json"},
        }
    },
    "hooks": {
        "environment": {"DB_PWD": "db-pwd-6", "PWD": "/not/a/secret"},
        "pre_backup": [{"kind": "script", "path": "/bin/true", "env": {"API_TOKEN": "tok-7"}}],
    },
    "notifications": {
        "providers": [
            {"type": "ntfy", "url": "https://ntfy.example.org", "token": "ntfy-token-8"},
            {"type": "healthchecks", "url": "https://hc-ping.com/uuid-9999"},
            {"type": "uptime_kuma", "url": "https://kuma.example.org/api/push/kuma-10"},
            {"type": "webhook", "url": "https://h.example.org/x", "options": {"X-Api-Key": "k-11"}},
        ]
    },
}
FULL_SECRETS = [
    "PW-repo-1",
    "inline-password-2",
    "aws-secret-3",
    "b2-key-4",
    "sas-5",
    "db-pwd-6",
    "tok-7",
    "ntfy-token-8",
    "uuid-9999",
    "kuma-10",
    "k-11",
]


def test_raw_document_and_models_yield_the_same_secrets() -> None:
    config = config_from_dict(FULL, registry=PluginRegistry.default(), environ={})
    raw = [(s.path, s.value) for s in find_secrets(FULL)]
    assert [value for _, value in raw] == FULL_SECRETS
    # The models are walked by their YAML keys, so the paths are the document's;
    # the models are walked in schema order, the document in its own: compare as sets.
    modelled = [(s.path, s.value) for s in find_secrets(config)]
    assert sorted(raw, key=str) == sorted(modelled, key=str)


def test_config_secrets_are_what_the_permission_check_refuses() -> None:
    config = config_from_dict(FULL, registry=PluginRegistry.default(), environ={})
    # The notifiers add their whole url (a webhook URL may be a credential of no shape).
    assert set(config.secrets()) >= set(FULL_SECRETS)
    assert set(secret_values(config)) == set(FULL_SECRETS)
    assert inline_secrets(FULL) == [
        "repository",
        "password",
        "aws_secret_access_key",
        "env.B2_ACCOUNT_KEY",
        "backends.offsite.env.AZURE_ACCOUNT_SAS",
        "hooks.environment.DB_PWD",
        "hooks.pre_backup[0].env.API_TOKEN",
        "notifications.providers[0].token",
        "notifications.providers[1].url",
        "notifications.providers[2].url",
        "notifications.providers[3].options.X-Api-Key",
    ]


def test_hook_environment_secrets_are_redacted_too() -> None:
    # Before the one list, hooks.environment was refused at 0644 but not masked.
    config = config_from_dict(FULL, registry=PluginRegistry.default(), environ={})
    assert Redactor(config.secrets()).redact("db-pwd-6 tok-7") == f"{MASK} {MASK}"


def test_secret_repr_never_shows_the_value() -> None:
    (secret,) = find_secrets({"password": "hunter22"})
    assert "hunter22" not in repr(secret)


def test_models_keep_their_credentials_in_one_class() -> None:
    config = config_from_dict(FULL, registry=PluginRegistry.default(), environ={})
    assert isinstance(config, Config)
    primary = config.primary_repository()
    assert (primary.name, primary.url, primary.password) == (
        "primary",
        FULL["repository"],
        "inline-password-2",
    )
    assert primary.storage_environment() == {
        "AWS_ACCESS_KEY_ID": "AKIA-not-secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-3",
        "B2_ACCOUNT_KEY": "b2-key-4",
        "B2_ACCOUNT_ID": "b2-id-not-secret",
    }
    assert primary.storage_secrets() == ["aws-secret-3", "b2-key-4"]
    offsite = config.repository_named("offsite")
    assert offsite.password_file == "/etc/restic/offsite-pw"
    assert offsite.storage_secrets() == ["sas-5"]


def test_ansible_warns_of_a_webhook_token_in_config_content(tmp_path: Path) -> None:
    # The Ansible module's "secrets inline" warning uses the same list: a Slack URL
    # in config_content ends up in Ansible's invocation log like a password would.
    (tmp_path / "pw").write_text("repository password\n")
    content = {
        "repository": str(tmp_path / "repo"),
        "password_file": str(tmp_path / "pw"),
        "directories": [str(tmp_path)],
        "logging": {"file": "", "console": False},
        "notifications": {
            "providers": [{"type": "slack", "url": "https://hooks.slack.com/services/T/B/XXXX1"}]
        },
    }
    fake = FakeRestic()
    fake.respond("backup", stdout=[FakeRestic.summary_line("1a2b3c4d")])
    params = {"config": None, "config_content": content, "command": "backup", "no_hooks": False}
    result = run_module(
        {**params, "tags": [], "password": None},
        False,
        runner=fake,
        lock_dir=tmp_path / "locks",
        output=RecordingSink(),
        environ={"PATH": os.environ.get("PATH", "")},
    )
    assert "failed" not in result, result
    assert any("config_content holds secrets inline" in w for w in result.get("warnings", []))
