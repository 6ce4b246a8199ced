"""What is a secret, and keeping secrets out of everything resticm prints, logs or sends.

The one definition of a secret in a configuration lives here (docs/configuration.md,
"File permissions", lists it for users):

- :func:`is_secret_name`: a key whose *name* makes its value a secret (``password``,
  ``B2_ACCOUNT_KEY``, an ``Authorization`` header...);
- :func:`url_secrets`: the secret parts of URLs in any value (the password of
  ``user:password@``, the token of a Slack, Discord, Google Chat, Healthchecks or
  Uptime Kuma URL, query parameters such as ``key=``, ``token=``, ``sig=``);
- :func:`find_secrets`: walks a parsed YAML tree or the config models and yields
  every secret with its key path. The permission check of
  :mod:`resticm_core.config_file` (a file others can read must hold none) and
  :meth:`Config.secrets() <resticm_core.config.Config.secrets>` (what the
  :class:`Redactor` masks) both use it, so they cannot disagree.

And the tools that hide them:

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
import urllib.parse
from collections.abc import Hashable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import attrs

from .model_keys import is_config_key, yaml_key

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
    # ":" first: a one-character search is a memchr, many times faster over a long
    # text (a read of hook output) than the three-character one.
    if ":" not in text or "://" not in text:
        return text
    return _URL_CREDENTIALS.sub(lambda m: f"{m['prefix']}{m['user']}:{MASK}@", text)


# -- what is a secret ----------------------------------------------------------------------------

#: A key whose name contains one of these words (case-insensitive, anywhere: ``PGPASSWORD``,
#: ``B2_ACCOUNT_KEY``, ``X-Api-Key``, ``Authorization``, ``MYSQL_PWD``) holds a secret,
#: unless :data:`NOT_SECRET_LAST_WORDS` or :data:`NOT_SECRET_NAMES` say otherwise.
SECRET_NAME_WORDS = (
    "PASSWORD",
    "PASS",  # DB_PASS, PASSPHRASE, PASSWD
    "PWD",  # MYSQL_PWD, DB_PWD (but not the shell's PWD: NOT_SECRET_NAMES)
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "AUTH",  # the Authorization and Proxy-Authorization headers, OS_AUTH_TOKEN
    "COOKIE",  # a Cookie header is a session
)
#: Names of secrets that hold none of the words above (restic's Azure SAS token).
SECRET_NAMES = frozenset({"AZURE_ACCOUNT_SAS"})
#: A secret-sounding name whose last word is one of these names where a secret is, or
#: which one, not the secret: ``password_file``, ``PGPASSFILE`` (any last word ending in
#: FILE), ``KEY_PATH``, ``password_command``, the dumps' ``password_env`` (a variable's
#: name), ``aws_access_key_id`` (the public half of an AWS key pair), ``RESTIC_KEY_HINT``
#: (a key id), ``SSH_AUTH_SOCK``, ``SMTP_AUTH_USER``, ``SECRET_NAME``, ``OS_AUTH_URL``
#: (a URL: its value is still searched for URL secrets), ``AUTH_TYPE: basic``,
#: ``AUTH_MODE``, ``AUTH_METHOD`` (masking "basic" or "token" everywhere would only
#: garble messages).
NOT_SECRET_LAST_WORDS = frozenset(
    {
        "FILE",
        "PATH",
        "DIR",
        "COMMAND",
        "CMD",
        "ENV",
        "ID",
        "HINT",
        "SOCK",
        "USER",
        "USERNAME",
        "NAME",
        "URL",
        "TYPE",
        "MODE",
        "METHOD",
    }
)
#: Values that are no secret whatever their key's name: switches (``USE_AUTH: "true"``).
#: Masking them would replace every "true" in every message.
NOT_SECRET_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "none", "null"})
#: Whole names that contain a word above but are no secret: the shell's working
#: directories, and Google's credentials *file* path.
NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD", "GOOGLE_APPLICATION_CREDENTIALS"})
#: Query parameters that carry a secret besides the secret-named ones (``key=``,
#: ``token=``, ``access_token=``, ``api_key=``...): signatures (Azure SAS ``sig=``).
SECRET_QUERY_PARAMETERS = frozenset({"sig", "signature"})

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NAME_WORDS = re.compile(r"[^A-Z0-9]+")
# A URL inside any text (a repository, a webhook, a command line); the same bounded
# scheme as _URL_CREDENTIALS. It ends at whitespace and at quotes and brackets.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s'\"<>()\[\]{}]+")
_DISCORD_WEBHOOK = re.compile(r"/api/(?:v\d+/)?webhooks/[^/]+/(?P<token>[^/?#]+)")
# ``Authorization: Bearer XYZ``: the credential may show up without its scheme word.
_AUTH_SCHEME = re.compile(r"(?i)(?:bearer|basic|token|bot|apikey)\s+(?P<credential>\S+)")


def is_secret_name(name: str) -> bool:
    """Does a key named *name* (a config key, an ``env:`` variable, a header) hold a secret?"""
    upper = _CAMEL_BOUNDARY.sub("_", name).upper()
    if upper in NOT_SECRET_NAMES:
        return False
    if upper in SECRET_NAMES:
        return True
    if not any(word in upper for word in SECRET_NAME_WORDS):
        return False
    words = [word for word in _NAME_WORDS.split(upper) if word]
    last = words[-1] if words else ""
    return not (last in NOT_SECRET_LAST_WORDS or last.endswith("FILE"))


def url_secrets(text: str) -> list[str]:
    """The secret parts of every URL in *text*, as written there.

    - the password of ``scheme://user:password@host`` (a repository, a copy backend);
    - Slack ``https://hooks.slack.com/services/T/B/XXXX``: the path after its first part;
    - Discord ``https://discord.com/api/webhooks/ID/TOKEN``: the token;
    - Healthchecks ``https://hc-ping.com/UUID`` (or ``/PING-KEY/slug``) and a
      self-hosted ``.../ping/UUID``: the UUID or ping key (anyone holding it can
      report a backup as done);
    - Uptime Kuma ``.../api/push/TOKEN``: the token;
    - the value of a query parameter with a secret name (Google Chat's ``key=`` and
      ``token=``, ``access_token=``, ``api_key=``...) or named ``sig``/``signature``.

    Other URLs, and the rest of these ones, are not secret.
    """
    if "://" not in text:
        return []
    found: list[str] = []
    for match in _URL_IN_TEXT.finditer(text):
        url = match.group()
        password = url_password(url)
        if password:
            found.append(password)
        found += _webhook_tokens(url)
    return found


def _webhook_tokens(url: str) -> list[str]:
    try:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:  # an invalid port or IPv6 literal: no URL to look into
        return []
    segments = parts.path.strip("/").split("/") if parts.path.strip("/") else []
    found: list[str] = []
    if host == "hooks.slack.com" and len(segments) > 1:
        found.append("/".join(segments[1:]))
    elif host in ("discord.com", "discordapp.com") or host.endswith(
        (".discord.com", ".discordapp.com")
    ):
        if webhook := _DISCORD_WEBHOOK.match(parts.path):
            found.append(webhook["token"])
    elif host == "hc-ping.com" and segments:
        found.append(segments[0])
    for marker in (("ping",), ("api", "push")):
        found += _segment_after(segments, marker)
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        name = urllib.parse.unquote_plus(name)
        if value and (is_secret_name(name) or name.lower() in SECRET_QUERY_PARAMETERS):
            found.append(value)
    return found


def _segment_after(segments: list[str], marker: tuple[str, ...]) -> list[str]:
    width = len(marker)
    return [
        segments[i + width]
        for i in range(len(segments) - width)
        if tuple(s.lower() for s in segments[i : i + width]) == marker and segments[i + width]
    ]


#: One step of a key path: a mapping key or a list index.
PathPart = Hashable


@attrs.frozen
class Secret:
    """One secret found in a configuration. Its ``repr`` never shows the value."""

    #: Where: YAML key names and list indexes, ``("backends", "offsite", "repository")``.
    path: tuple[PathPart, ...]
    #: The secret text itself: a whole value, or the part of a URL that is secret.
    value: str = attrs.field(repr=False)


# A config nests about six levels; the bound keeps a pathological tree from recursing away.
_MAX_DEPTH = 100


def find_secrets(node: object) -> Iterator[Secret]:
    """Every secret in *node*, in document order, each with its key path.

    *node* is a parsed YAML tree (mappings, lists, scalars: a file that may not even
    be a valid config yet) or the config models (attrs instances such as
    :class:`~resticm_core.config.Config`, a notifier, a hook), walked by their YAML
    keys. The same rules apply to both:

    - a non-empty scalar under a key for which :func:`is_secret_name` is true
      (list items count as being under their list's key) is a secret, whole (and
      the credential of an ``Authorization``-style ``Bearer XYZ`` value alone too);
    - in every other string, the :func:`url_secrets` parts are secrets.
    """
    yield from _walk(node, (), None, 0)


def secret_values(node: object) -> list[str]:
    """The values :func:`find_secrets` finds in *node*, each once."""
    return list(dict.fromkeys(secret.value for secret in find_secrets(node)))


def _walk(
    node: object, path: tuple[PathPart, ...], name: str | None, depth: int
) -> Iterator[Secret]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, str):
        if not node:
            return
        if name is not None and is_secret_name(name):
            if node.strip().lower() in NOT_SECRET_VALUES:
                return
            yield Secret(path, str(node))
            if scheme := _AUTH_SCHEME.fullmatch(node.strip()):
                yield Secret(path, scheme["credential"])
        else:
            yield from (Secret(path, part) for part in url_secrets(node))
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk(value, (*path, key), str(key), depth + 1)
    elif isinstance(node, list | tuple):
        for index, item in enumerate(node):
            yield from _walk(item, (*path, index), name, depth + 1)
    elif attrs.has(type(node)):
        yield from _walk_model(node, path, depth)
    elif _is_number(node) and name is not None and is_secret_name(name):
        # ``password: 123456``: refused by the converter later, but a secret all the same.
        yield Secret(path, str(node))


def _walk_model(node: Any, path: tuple[PathPart, ...], depth: int) -> Iterator[Secret]:

    for attribute in attrs.fields(type(node)):
        if is_config_key(attribute):
            key = yaml_key(attribute.name)
            yield from _walk(getattr(node, attribute.name), (*path, key), key, depth + 1)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Redactor:
    """Replaces known secrets and URL passwords in any text with ``***``.

    :param secrets: secret values (passwords, tokens, keys); empty or shorter
        than :data:`MIN_SECRET_LENGTH` characters are ignored.
    :param urls: repository or webhook URLs; their :func:`url_secrets` (an embedded
        password, a webhook token) are secrets too, hidden even where they appear
        outside the URL.
    """

    def __init__(self, secrets: Iterable[str] = (), urls: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        for url in urls:
            values.update(s for s in url_secrets(url) if len(s) >= MIN_SECRET_LENGTH)
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
