"""The environment of a restic child: inherited repository/password variables
scrubbed, the repository's own credentials set, secrets only ever in the environment.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable, Mapping, Sequence

from ..config import Repository
from ..inherited_env import scrubbed_environment
from ..secrets import is_secret_name, redact_url

log = logging.getLogger(__name__)

#: Where an inherited password may come from, in the order they are tried.
PASSWORD_VARIABLES = ("RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND")

PasswordProvider = Callable[[Repository], str | None]


def printable_command(
    args: Sequence[str], repository: Repository, extra_env: Mapping[str, str] | None = None
) -> str:
    """``restic -r <url> <args>`` with URL passwords hidden, for ``-v`` and dry runs.

    The repository really goes through ``RESTIC_REPOSITORY`` (and a copy source
    through ``RESTIC_FROM_REPOSITORY``, shown as a variable assignment).
    """
    line = shlex.join(["restic", "-r", redact_url(repository.url), *(redact_url(a) for a in args)])
    source = (extra_env or {}).get("RESTIC_FROM_REPOSITORY")
    if source:
        line = f"RESTIC_FROM_REPOSITORY={shlex.quote(redact_url(source))} {line}"
    return line


# -- the child environment ------------------------------------------------------------------------


def _inherited_password(environ: Mapping[str, str], prefix: str) -> tuple[str, str] | None:
    for name in PASSWORD_VARIABLES:
        if environ.get(name):
            return name.replace("RESTIC_", prefix, 1), environ[name]
    return None


def configured_password(repository: Repository, prefix: str = "RESTIC_") -> tuple[str, str] | None:
    """The variable and value for the password source the config names, if any.

    *prefix* ``RESTIC_FROM_`` gives the variables of a copy/init source.
    """
    if repository.password:
        return f"{prefix}PASSWORD", repository.password
    if repository.password_file:
        return f"{prefix}PASSWORD_FILE", os.path.expanduser(repository.password_file)
    if repository.password_command:
        return f"{prefix}PASSWORD_COMMAND", repository.password_command
    return None


def child_environment(
    repository: Repository,
    environ: Mapping[str, str],
    *,
    password_provider: PasswordProvider | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The complete environment of a restic child, and the secret values put in it.

    The password comes from the first source that applies: the config
    (``password``, ``password_file``, ``password_command``), then the plugin
    *password_provider*, then the inherited ``RESTIC_PASSWORD``,
    ``RESTIC_PASSWORD_FILE``, ``RESTIC_PASSWORD_COMMAND``. Exactly one password
    variable is set: with two, restic 0.14 lets the file win.
    """
    env = scrubbed_environment(environ)
    env["RESTIC_REPOSITORY"] = repository.url
    secrets: list[str] = []
    password = configured_password(repository)
    if password is None and password_provider is not None:
        provided = password_provider(repository)
        password = ("RESTIC_PASSWORD", provided) if provided else None
    if password is None:
        password = _inherited_password(environ, "RESTIC_")
    if password is not None:
        env[password[0]] = password[1]
        if is_secret_name(password[0]):
            secrets.append(password[1])
    if repository.credentials_from:
        log.debug(
            "%s: no storage credentials of its own; using those of %s (same provider)",
            repository.name,
            repository.credentials_from,
        )
    for overrides in (repository.storage_environment(), extra_env or {}):
        env.update(overrides)
        secrets += [v for k, v in overrides.items() if is_secret_name(k)]
    if "RESTIC_FROM_REPOSITORY" in env and not any(
        k.startswith("RESTIC_FROM_PASSWORD") for k in env
    ):
        # A copy/init source without a configured password falls back on the
        # inherited one, as the repository itself does.
        inherited = _inherited_password(environ, "RESTIC_FROM_")
        if inherited is not None:
            env[inherited[0]] = inherited[1]
            if is_secret_name(inherited[0]):
                secrets.append(inherited[1])
    return env, secrets
