"""Keep secrets out of everything resticm prints, logs or sends.

Two tools:

- :func:`redact_url` hides the password of one repository URL
  (``rest:https://user:pass@host/repo`` -> ``rest:https://user:***@host/repo``);
- :class:`Redactor` knows the secrets of a configuration and scrubs any text
  (log lines, error messages, notification bodies) before it leaves the process;
- :func:`scrub_environment` removes repository passwords and config secrets from
  the process environment (``os.environ``), which in-process Python hooks and
  every process they start inherit.

Over-redaction is preferred to a leak: a secret is replaced wherever it occurs,
even inside an unrelated word.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, MutableMapping

#: Prefixes of the variables that carry a repository password (restic's own names).
PASSWORD_VARIABLE_PREFIXES = ("RESTIC_PASSWORD", "RESTIC_FROM_PASSWORD")

#: What replaces a secret.
MASK = "***"
#: Shorter strings are not treated as secrets: masking "a" or "on" would make
#: every message unreadable, and they are not worth protecting anyway.
MIN_SECRET_LENGTH = 4

# ``scheme://user:password@`` anywhere in a text. The password may contain '@'
# (people do not always percent-encode it): the greedy part backtracks to the
# last '@' before the host, as URL parsers do. It stops at whitespace and '/'.
_URL_CREDENTIALS = re.compile(
    # The scheme is bounded ({0,31}): unbounded, it rescans the rest of a long
    # line from every position (quadratic: a 64 KiB hook line took 4 s).
    r"(?P<prefix>[A-Za-z][A-Za-z0-9+.-]{0,31}://)(?P<user>[^\s/@:]*):(?P<password>[^\s/]*)@"
)


def _split_authority(url: str) -> tuple[str, str, str] | None:
    """``(before, userinfo, after)`` of a URL with a ``scheme://userinfo@`` part, else None."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        # sftp:user@host:/path and plain paths: a user name, never a secret.
        return None
    start = scheme_end + 3
    slash = url.find("/", start)
    authority_end = len(url) if slash < 0 else slash
    at = url.rfind("@", start, authority_end)
    if at < 0:
        return None
    return url[:start], url[start:at], url[at:]


def url_password(url: str) -> str | None:
    """The password embedded in *url* (``scheme://user:password@host``), if any."""
    parts = _split_authority(url)
    if parts is None or ":" not in parts[1]:
        return None
    return parts[1].split(":", 1)[1] or None


def redact_url(url: str) -> str:
    """*url* with the password of its ``user:password@`` part replaced by ``***``.

    ``rest:https://user:pass@host:8000/repo`` -> ``rest:https://user:***@host:8000/repo``;
    ``sftp:user@host:/srv/repo`` and plain paths are returned unchanged.
    """
    parts = _split_authority(url)
    if parts is None or ":" not in parts[1]:
        return url
    before, userinfo, after = parts
    user = userinfo.split(":", 1)[0]
    return f"{before}{user}:{MASK}{after}"


def _redact_url_credentials(text: str) -> str:
    if "://" not in text:
        return text
    return _URL_CREDENTIALS.sub(lambda m: f"{m['prefix']}{m['user']}:{MASK}@", text)


class Redactor:
    """Replaces known secrets and URL passwords in any text with ``***``.

    :param secrets: secret values (passwords, tokens, keys); empty or shorter
        than :data:`MIN_SECRET_LENGTH` characters are ignored.
    :param urls: repository URLs; a password embedded in one is treated as a
        secret too, so it is hidden even where it appears outside the URL.
    """

    def __init__(self, secrets: Iterable[str] = (), urls: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        for url in urls:
            password = url_password(url)
            if password and len(password) >= MIN_SECRET_LENGTH:
                values.add(password)
        # Longest first: a secret that contains another must be replaced whole,
        # or a fragment of it would survive the shorter replacement.
        self._secrets: tuple[str, ...] = tuple(sorted(values, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """*text* with every known secret and every URL password replaced by ``***``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _redact_url_credentials(text)

    def __repr__(self) -> str:
        # Never show the secrets themselves, only how many there are.
        return f"Redactor({len(self._secrets)} secrets)"


def scrub_environment(
    secrets: Iterable[str] = (),
    *,
    environ: MutableMapping[str, str] | None = None,
) -> dict[str, str]:
    """Remove repository passwords and config secrets from the process environment.

    Deletes ``RESTIC_PASSWORD*`` and ``RESTIC_FROM_PASSWORD*``, and every
    variable whose value is one of *secrets* (pass ``config.secrets()``), from
    *environ* (default ``os.environ``, which also unsets them for every process
    started later without an explicit ``env``). Returns a copy of the
    environment as it was before, to give to ``load_config(environ=...)`` and
    ``run(environ=...)``: an inherited ``RESTIC_PASSWORD`` still reaches restic
    when the config names no password (DESIGN §10), through the child's own
    environment.

    The library never calls it (it does not mutate ``os.environ``); the
    ``resticm`` CLI and the Ansible module call it at start-up, so an in-process
    Python hook cannot leak a password through ``os.environ`` or ``subprocess``.
    An application embedding :func:`resticm_core.run` calls it itself::

        env = resticm_core.scrub_environment()      # passwords out, captured first
        config = resticm_core.load_config(path, environ=env)
        resticm_core.scrub_environment(config.secrets())
        report = resticm_core.run(config, "backup", environ=env)
    """
    target: MutableMapping[str, str] = os.environ if environ is None else environ
    before = dict(target)
    values = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
    for key, value in before.items():
        if key.startswith(PASSWORD_VARIABLE_PREFIXES) or value in values:
            del target[key]
    return before
