"""Exceptions of resticm_core.

Expected failures (bad config, missing restic, a held lock) are exceptions the
CLI turns into one clear message and a documented exit code, never a traceback.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

#: One step of a path into the YAML document: a mapping key or a list index.
PathPart = Hashable
KeyPath = tuple[PathPart, ...]


class ResticmError(Exception):
    """Base class of every expected resticm error."""

    #: The exit code the CLI uses when this error ends a run.
    exit_code: int = 1


class ConfigError(ResticmError):
    """The configuration is invalid. Carries every problem found, each located.

    Each message reads ``file:line: key.path: what is wrong``.
    """

    exit_code = 2

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages: list[str] = list(messages)
        super().__init__("\n".join(self.messages))


class UsageError(ResticmError):
    """The command line or API call is wrong (unknown phase, backend...)."""

    exit_code = 2


class SecretReferenceError(ResticmError):
    """A ``${scheme:...}`` reference of the configuration cannot be resolved.

    Raised by secret providers (:func:`resticm_core.hookspecs.resticm_secret_reference`);
    the loader turns it into a located configuration error (exit 2). The message must
    never contain the secret.
    """

    exit_code = 2


class PluginError(ResticmError):
    """A plugin could not be loaded or two plugins claim the same kind."""

    exit_code = 2


class LockHeldError(ResticmError):
    """Another resticm run holds the lock of this configuration."""

    exit_code = 75


class ResticNotFoundError(ResticmError):
    """The restic binary is not installed or not on PATH."""


class SkipBackup(Exception):
    """Raised by a Python-callable pre_backup hook to skip this backup softly.

    The same as a script exiting 75 (EX_TEMPFAIL): backup and post_backup do not
    run, no error is reported, on_success runs with ``BACKUP_STATUS=skipped``.
    """


class ConfigValueError(ValueError):
    """A value the schema refuses; *message* is shown to the user as is.

    *subpath* locates the problem below the value being structured (the
    ``kind`` key of a hook entry, say), so the message points at that key.
    """

    def __init__(self, message: str, *, subpath: KeyPath = ()) -> None:
        super().__init__(message)
        self.message = message
        self.subpath = subpath
