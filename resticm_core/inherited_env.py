"""The inherited ``RESTIC_*`` variables that name a repository or a password, and the
environment without them: what every child resticm starts begins from (restic gets
its repository's own set on top; dump tools get none).
"""

from __future__ import annotations

from collections.abc import Mapping

#: Inherited variables that would name another repository or password than the
#: configured one (restic 0.14: RESTIC_PASSWORD_FILE beats RESTIC_PASSWORD, and
#: RESTIC_REPOSITORY_FILE together with RESTIC_REPOSITORY is an error).
SCRUBBED_VARIABLES = (
    "RESTIC_REPOSITORY",
    "RESTIC_REPOSITORY_FILE",
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_KEY_HINT",
)
SCRUBBED_PREFIXES = ("RESTIC_FROM_",)


def scrubbed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """*environ* without the inherited variables that name a repository or a password."""
    return {
        k: v
        for k, v in environ.items()
        if k not in SCRUBBED_VARIABLES and not k.startswith(SCRUBBED_PREFIXES)
    }
