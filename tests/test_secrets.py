"""Secrets never leave the process: URL passwords and known secrets are masked."""

from __future__ import annotations

import pytest

from resticm_core.secrets import MASK, Redactor, redact_url, url_password


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
