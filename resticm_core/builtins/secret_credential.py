"""Secret references ``${credential:NAME}``: a systemd credential.

systemd passes a unit's credentials (``LoadCredential=NAME:/path``,
``LoadCredentialEncrypted=NAME:/path``: ``resticm schedule install
--load-credential``) as files in ``$CREDENTIALS_DIRECTORY``, a private directory
only the service can read; the secret never sits in the config, the unit or the
environment. Outside such a unit, set ``CREDENTIALS_DIRECTORY`` to a directory of
your own (``systemd-run -P -p LoadCredential=... resticm`` does it for you).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from resticm_core.builtins.secret_file import read_secret_file
from resticm_core.errors import SecretReferenceError
from resticm_core.hookspecs import hookimpl

CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


@hookimpl
def resticm_secret_reference(scheme: str, reference: str, environ: Mapping[str, str]) -> str | None:
    if scheme != "credential":
        return None
    if not reference or "/" in reference or reference in (".", ".."):
        raise SecretReferenceError(f"{reference!r}: a credential name has no '/'")
    directory = environ.get(CREDENTIALS_ENV)
    if not directory:
        raise SecretReferenceError(
            f"${CREDENTIALS_ENV} is not set: run resticm from a systemd unit with "
            f"LoadCredential={reference}:/path (resticm schedule install --load-credential "
            f"{reference}:/path), or set {CREDENTIALS_ENV}"
        )
    path = Path(directory) / reference
    if not path.exists():
        raise SecretReferenceError(
            f"no credential {reference} in ${CREDENTIALS_ENV} ({directory}); "
            f"add LoadCredential={reference}:/path to the unit"
        )
    # systemd makes the directory and its files private to the service (0400, or
    # 0440 for a group with ReadOnly access); the owner and path are still checked.
    return read_secret_file(path, what=f"credential {reference}", check_mode=False)
