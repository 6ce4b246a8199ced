"""Secret references ``${keyring:SERVICE/USERNAME}``: a password of the system keyring.

Works where the third-party ``keyring`` package is importable (it is no dependency
of resticm); elsewhere a reference says so. The password is looked up with
``keyring.get_password(SERVICE, USERNAME)``, split at the last ``/``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from resticm_core.errors import SecretReferenceError
from resticm_core.hookspecs import hookimpl


@hookimpl
def resticm_secret_reference(scheme: str, reference: str, environ: Mapping[str, str]) -> str | None:
    if scheme != "keyring":
        return None
    service, sep, username = reference.rpartition("/")
    if not sep or not service or not username:
        raise SecretReferenceError(f"{reference!r}: write keyring:SERVICE/USERNAME")
    try:
        keyring = importlib.import_module("keyring")
    except ImportError:
        raise SecretReferenceError(
            "the keyring package is not installed: pip install keyring into resticm's "
            "environment, or use ${file:...} or ${credential:...}"
        ) from None
    try:
        value = keyring.get_password(service, username)
    except Exception as exc:  # the backends raise their own types (KeyringError, DBus...)
        raise SecretReferenceError(f"keyring lookup failed: {type(exc).__name__}") from None
    if value is None:
        raise SecretReferenceError(f"the keyring has no password for {service}/{username}")
    return str(value)
