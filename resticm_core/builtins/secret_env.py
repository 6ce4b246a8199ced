"""Secret references ``${env:NAME}``: the value of an environment variable.

Unlike a plain ``${NAME}`` variable, the value is a secret wherever it is used: it is
added to the run's redaction (docs/configuration.md, "Secret references").
"""

from __future__ import annotations

from collections.abc import Mapping

from resticm_core.errors import SecretReferenceError
from resticm_core.hookspecs import hookimpl


@hookimpl
def resticm_secret_reference(scheme: str, reference: str, environ: Mapping[str, str]) -> str | None:
    if scheme != "env":
        return None
    value = environ.get(reference)
    if value is None:
        raise SecretReferenceError(f"environment variable {reference} is not set")
    return value
