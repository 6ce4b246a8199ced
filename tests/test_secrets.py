"""Secrets never leave the process: URL passwords and known secrets are masked."""

from __future__ import annotations

import pytest

from resticm_core.secrets import (
    MASK,
    Redactor,
    is_secret_name,
    redact_url,
    secret_values,
    url_password,
    url_secrets,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rest:https://user:pass@host:8000/repo", "rest:https://user:***@host:8000/repo"),
        ("rest:http://user:pass@host/", "rest:http://user:***@host/"),
        ("s3:https://key:secret@s3.example.com/bucket", "s3:https://key:***@s3.example.com/bucket"),
        ("https://user:p@ss@host/x", "https://user:***@host/x"),  # unencoded '@' in the password
        ("rest:https://:token1234@host/repo", "rest:https://:***@host/repo"),
        ("sftp://user:pw@host//srv/repo", "sftp://user:***@host//srv/repo"),
        ("rest:https://user@host/repo", "rest:https://user@host/repo"),  # no password
        ("sftp:user@host:/srv/repo", "sftp:user@host:/srv/repo"),
        ("s3:s3.amazonaws.com/bucket/path", "s3:s3.amazonaws.com/bucket/path"),
        ("/srv/restic-repo", "/srv/restic-repo"),
        ("rest:https://host/a@b", "rest:https://host/a@b"),  # '@' in the path, not the host part
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_url_password() -> None:
    assert url_password("rest:https://u:hunter22@host/") == "hunter22"
    assert url_password("rest:https://u@host/") is None
    assert url_password("/srv/repo") is None


def test_redactor_masks_each_secret_everywhere() -> None:
    redactor = Redactor(["hunter22", "s3cr3t-key"])
    text = "password hunter22 and key s3cr3t-key, again hunter22"
    assert redactor.redact(text) == "password *** and key ***, again ***"


def test_redactor_replaces_the_longest_secret_first() -> None:
    # Were "abcd" replaced first, "efgh" of the longer secret would survive.
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.redact("x abcdefgh y abcd") == "x *** y ***"


def test_redactor_ignores_empty_and_short_values() -> None:
    redactor = Redactor(["", "a", "abc", "abcd"])
    assert redactor.redact("a abc abcd") == "a abc ***"


def test_redactor_hides_the_password_of_configured_urls_wherever_it_appears() -> None:
    redactor = Redactor(urls=["rest:https://backup:Sup3rSecret@host/repo", "/srv/plain"])
    assert redactor.redact("auth with Sup3rSecret failed") == "auth with *** failed"


def test_redactor_masks_credentials_in_any_url_looking_token() -> None:
    redactor = Redactor()
    text = 'Head "http://user:unknown-pw@127.0.0.1:1/repo/config": refused; mail me@example.com'
    assert redactor.redact(text) == (
        'Head "http://user:***@127.0.0.1:1/repo/config": refused; mail me@example.com'
    )


def test_redactor_repr_does_not_show_secrets() -> None:
    assert "hunter22" not in repr(Redactor(["hunter22"]))


def test_mask_is_three_stars() -> None:
    assert MASK == "***"


# -- what is a secret (docs/configuration.md, "File permissions") --------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "aws_secret_access_key",
        "token",
        "B2_ACCOUNT_KEY",
        "AZURE_ACCOUNT_KEY",
        "AZURE_ACCOUNT_SAS",  # no secret word, named explicitly
        "PGPASSWORD",
        "MYSQL_PWD",
        "DB_PASS",
        "RESTIC_REST_PASSWORD",
        "AWS_SESSION_TOKEN",
        "OS_APPLICATION_CREDENTIAL_SECRET",
        "Authorization",
        "Proxy-Authorization",
        "X-Auth-Token",
        "X-Api-Key",
        "Cookie",
        "apiKey",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "password_file",  # where a secret is, not the secret
        "RESTIC_PASSWORD_FILE",
        "PGPASSFILE",
        "password_command",
        "RESTIC_PASSWORD_COMMAND",
        "password_env",  # the dumps' name of a variable
        "aws_access_key_id",  # the public half of the key pair
        "AWS_ACCESS_KEY_ID",
        "apiKeyId",
        "RESTIC_KEY_HINT",
        "SSH_AUTH_SOCK",
        "SSH_KEY_PATH",
        "OS_AUTH_URL",
        "AUTH_TYPE",  # "basic" masked in every message would only garble them
        "GOOGLE_APPLICATION_CREDENTIALS",  # a file path
        "PWD",  # the shell's working directory
        "OLDPWD",
        "repository",
        "channel",
        "keep_daily",
        "url",
    ],
)
def test_names_that_are_no_secret(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rest:https://u:PW@127.0.0.1:1/r", ["PW"]),
        ("https://hooks.slack.com/services/T0/B0/XXXX", ["T0/B0/XXXX"]),
        ("https://discord.com/api/webhooks/123/TOKEN", ["TOKEN"]),
        ("https://discordapp.com/api/v10/webhooks/123/TOKEN?wait=true", ["TOKEN"]),
        ("https://chat.googleapis.com/v1/spaces/AAA/messages?key=K1&token=T1", ["K1", "T1"]),
        ("https://hc-ping.com/0f3b-uuid/start", ["0f3b-uuid"]),
        ("https://hc.example.org/ping/0f3b-uuid", ["0f3b-uuid"]),
        ("https://kuma.example.org/api/push/AbCd?status=up", ["AbCd"]),
        ("https://x.blob.example/c?sv=2022&sig=abc%2Bdef", ["abc%2Bdef"]),
        ("https://api.example.org/x?access_token=zz&page=2", ["zz"]),
        ("curl -s https://u:pw1@host/x && echo done", ["pw1"]),  # a URL inside a command
        ("https://hooks.example.org/backup", []),
        ("https://ntfy.sh", []),
        ("sftp:user@host:/srv/repo", []),
        ("s3:s3.amazonaws.com/bucket", []),
        ("https://[::1/x", []),  # unparseable: nothing, no exception
    ],
)
def test_url_secrets(text: str, expected: list[str]) -> None:
    assert url_secrets(text) == expected


def test_redactor_hides_webhook_tokens_of_configured_urls() -> None:
    redactor = Redactor(urls=["https://hooks.slack.com/services/T000/B000/XXXXslack"])
    assert redactor.redact("invalid_token T000/B000/XXXXslack") == "invalid_token ***"


def test_switches_under_a_secret_name_are_no_secret() -> None:
    assert secret_values({"env": {"USE_AUTH": "true", "AUTH_TOKEN": "t0ken-1"}}) == ["t0ken-1"]
